"""Every DVC stage's frame: logging, a clean slate, one-line user errors, the run's end state.

    def main() -> int:
        with Stage(logger, ConfigError, DataError, owns=[paths.SAMPLES_DIR]) as stage:
            config = load_config()
            ...
            tracker = stage.track(reopen_run(config, paths.RUN_FILE))
            ...  # from here on a failure marks the MLflow run
        return stage.exit_code

Entering sweeps our temporaries (:func:`sagan.files.sweep_temporaries`) from the folders the
stage ``owns``: a run killed inside an atomic write leaves one behind, and DVC would publish
it with the stage's outputs. Before :meth:`Stage.track`, a user error (one of the types
given) is one log line and exit status 1, and Ctrl-C exit status 130: no run is touched.
After it, the run ends FINISHED when the block does; a ``run_errors`` one marks it FAILED
(unless the store is what failed), one log line, exit 1; Ctrl-C marks it KILLED (a second
Ctrl-C cannot cut that short), exit 130; anything else marks it FAILED and propagates with
its traceback.

It imports only :mod:`sagan.files`, which every stage writes through anyway, so it adds no
dvc.yaml dep on code a stage does not run.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Protocol, TypeVar

from sagan.files import sweep_temporaries

INTERRUPTED = 130  # the shell's status for a process stopped by SIGINT


class Run(Protocol):
    def finish(self, status: str = "FINISHED") -> None: ...


R = TypeVar("R", bound=Run)


class Stage:
    """A context manager around a stage's ``main()``; see the module docstring."""

    def __init__(
        self,
        logger: logging.Logger,
        *user_errors: type[Exception],
        run_errors: tuple[type[Exception], ...] = (),
        interrupted: str = "interrupted",
        owns: Iterable[Path] = (),
    ) -> None:
        self.logger = logger
        self.user_errors = user_errors
        self.run_errors = run_errors
        self.interrupted = interrupted  # the line logged on Ctrl-C
        self.owns = tuple(owns)  # folders (or the parents of files) that only this stage writes
        self.run: Run | None = None
        self.exit_code = 0

    def __enter__(self) -> Stage:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        for folder in self.owns:
            sweep_temporaries(folder)
        return self

    def track(self, run: R) -> R:
        """From now on, how the block ends is how ``run`` ends."""
        self.run = run
        return run

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        if self.run is None:
            return self._untracked(error)
        if error is None:
            self.run.finish()
        elif isinstance(error, KeyboardInterrupt):
            # Finishing talks to the store; a second Ctrl-C must not leave the run RUNNING.
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
            try:
                self.run.finish("KILLED")
            finally:
                signal.signal(signal.SIGINT, previous)
            return self._fail(self.interrupted, INTERRUPTED)
        else:
            try:
                self.run.finish("FAILED")
            except self.run_errors:
                # The store failed as well (the run stays RUNNING until a rerun reopens it):
                # the block's own error is the line to show, when it is one of ours.
                if not isinstance(error, self.run_errors):
                    raise
            if isinstance(error, self.run_errors):
                return self._fail(error, 1)
        return False

    def _untracked(self, error: BaseException | None) -> bool:
        if isinstance(error, KeyboardInterrupt):
            return self._fail(self.interrupted, INTERRUPTED)
        if isinstance(error, self.user_errors):
            return self._fail(error, 1)
        return False

    def _fail(self, message: object, exit_code: int) -> bool:
        self.logger.error("%s", message)
        self.exit_code = exit_code
        return True  # handled: main() returns exit_code
