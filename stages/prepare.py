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
from sagan.stage import Stage

log = logging.getLogger("prepare")


def main() -> int:
    """Run the stage; a user error is one log line and exit status 1, not a traceback."""
    with Stage(log, ConfigError, DataError, owns=[PREPARED_DIR]) as stage:
        prepare(load_config().data, PREPARED_DIR)
    return stage.exit_code


if __name__ == "__main__":
    sys.exit(main())
