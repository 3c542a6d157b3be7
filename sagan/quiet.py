"""TensorFlow imported without its C++ start-up noise.

Loading TensorFlow prints oneDNN notices, "could not find cuda drivers", advice on CPU
instructions, and a failed ``cuInit`` when it looks for GPUs. Most of it goes through absl
before TensorFlow's log level applies, so ``TF_CPP_MIN_LOG_LEVEL`` alone cannot hide it. The
stages import TensorFlow here first, with the process's stderr pointed at a temporary file:
dropped when the import succeeds, replayed when it fails. Afterwards the level is 3: the C++
side's later messages are hidden too (such as grappler's "remapper failed", which training
the default model prints and which changes nothing); a failure that matters still reaches
the user as a Python exception. A user who sets ``TF_CPP_MIN_LOG_LEVEL`` sees everything,
as TensorFlow prints it.
"""

from __future__ import annotations

import os
import sys
import tempfile

LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL"  # TensorFlow's own variable
# Marks a level set here, not by the user: processes started from a quiet one (`dvc repro`
# run by a test, a stage's workers) inherit both and stay quiet too.
SET_HERE = "SAGAN_QUIET_TENSORFLOW"


def import_tensorflow_quietly() -> None:
    """Import TensorFlow, hiding what it prints (unless the user chose a log level)."""
    if LOG_LEVEL in os.environ and SET_HERE not in os.environ:
        return
    os.environ[LOG_LEVEL] = "3"  # fatal only, once TensorFlow's logging is set up
    os.environ[SET_HERE] = "1"
    sys.stderr.flush()
    with tempfile.TemporaryFile() as captured:
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            # Only the import: finding the devices here would create TensorFlow's context
            # before a stage can configure it (collective ops, op determinism). The search
            # for GPUs logs later, at level 3, hidden.
            import tensorflow  # noqa: F401
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
