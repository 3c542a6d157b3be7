"""DVC stage ``prepare``: source images -> data/prepared/ TFRecord shards and manifest.json.

    python -m stages.prepare

Reads the ``data`` section of params.yaml in the working directory.
"""

from __future__ import annotations

import logging
import sys

from sagan.config import ConfigError, load_config
from sagan.data.errors import DataError
from sagan.data.prepare import prepare
from sagan.paths import PREPARED_DIR

log = logging.getLogger("prepare")


def main() -> int:
    """Run the stage; a user error is one log line and exit status 1, not a traceback."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        prepare(load_config().data, PREPARED_DIR)
    except (ConfigError, DataError) as error:
        log.error("%s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
