"""The stage runner: which failures are one line, which exit status, how the run ends."""

from __future__ import annotations

import builtins
import logging
import os
import signal
import subprocess
import sys

import pytest

from sagan.quiet import import_tensorflow_quietly
from sagan.stage import Stage
from tests.helpers import REPO, tensorflow_noise

LOGGER = logging.getLogger("stages.test")


class Run:
    def __init__(self) -> None:
        self.status: str | None = None
        self.sigint = None  # the SIGINT handler while the run finishes

    def finish(self, status: str = "FINISHED") -> None:
        self.status, self.sigint = status, signal.getsignal(signal.SIGINT)


class UserError(Exception):
    pass


class LossError(Exception):
    pass


def _stage() -> Stage:
    return Stage(LOGGER, UserError, run_errors=(LossError,), interrupted="stopped; rerun")


def _run(error: BaseException | None, tracked: bool) -> tuple[Stage, Run]:
    run = Run()
    with _stage() as stage:
        if tracked:
            stage.track(run)
        if error is not None:
            raise error
    return stage, run


def test_a_block_that_ends_well_finishes_the_run_and_exits_0() -> None:
    stage, run = _run(None, tracked=True)
    assert stage.exit_code == 0 and run.status == "FINISHED"


def test_a_user_error_before_the_run_is_one_line_and_leaves_the_run_alone(caplog) -> None:
    stage, run = _run(UserError("data.path is missing"), tracked=False)
    assert stage.exit_code == 1 and run.status is None
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == [
        "data.path is missing"
    ]
    with pytest.raises(LossError):  # a run error before the run is no user error
        _run(LossError("nan"), tracked=False)


def test_after_the_run_is_open_failures_mark_it(caplog) -> None:
    stage, run = _run(LossError("nan loss"), tracked=True)
    assert stage.exit_code == 1 and run.status == "FAILED" and "nan loss" in caplog.text
    run = Run()
    with pytest.raises(UserError), _stage() as stage:
        stage.track(run)
        raise UserError("after the run opened: a traceback")
    assert run.status == "FAILED"


class LostStore(Run):
    """A run whose store is gone: marking it fails as the block did."""

    def finish(self, status: str = "FINISHED") -> None:
        raise LossError("store gone")


def test_a_store_lost_mid_run_is_the_one_line_the_stage_ends_with(caplog) -> None:
    with _stage() as stage:
        stage.track(LostStore())
        raise LossError("lost the store http://a:1")
    assert stage.exit_code == 1
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == ["lost the store http://a:1"]
    # Not a run error: both tracebacks, the store's with the block's as its context.
    with pytest.raises(LossError) as raised, _stage() as stage:
        stage.track(LostStore())
        raise UserError("unexpected")
    assert isinstance(raised.value.__context__, UserError)


def test_ctrl_c_marks_the_run_killed_and_exits_130(caplog) -> None:
    handler = signal.getsignal(signal.SIGINT)
    stage, run = _run(KeyboardInterrupt(), tracked=True)
    assert stage.exit_code == 130 and run.status == "KILLED" and "stopped; rerun" in caplog.text
    assert run.sigint is signal.SIG_IGN  # a second Ctrl-C cannot cut finishing short
    assert signal.getsignal(signal.SIGINT) is handler
    stage, run = _run(KeyboardInterrupt(), tracked=False)
    assert stage.exit_code == 130 and run.status is None


def test_entering_sweeps_the_temporaries_of_the_folders_the_stage_owns(tmp_path) -> None:
    owned, other = tmp_path / "samples", tmp_path / "elsewhere"
    for folder in (owned / "images", other):
        folder.mkdir(parents=True)
        (folder / ".sagan-tmp.000001.abc123.png").write_bytes(b"half a png")
        (folder / "000000.png").write_bytes(b"a png")
    with Stage(LOGGER, UserError, owns=[owned]):
        pass
    assert sorted(p.name for p in owned.rglob("*")) == ["000000.png", "images"]
    assert len(list(other.iterdir())) == 2  # not this stage's: left alone


def _import_stages(**environment: str) -> subprocess.CompletedProcess:
    """A fresh process that imports the stages package, then runs a TensorFlow op."""
    ours = ("TF_CPP_MIN_LOG_LEVEL", "SAGAN_QUIET_TENSORFLOW")
    env = {k: v for k, v in os.environ.items() if k not in ours} | environment
    script = (
        "import os, stages, tensorflow as tf; tf.constant(1) + 1; "
        "print(os.environ['TF_CPP_MIN_LOG_LEVEL'])"
    )
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.pipeline  # three fresh processes that import TensorFlow, as stages start
def test_stages_start_without_tensorflow_noise_unless_the_user_sets_its_level() -> None:
    quiet = _import_stages()
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout.strip() == "3"
    assert not tensorflow_noise(quiet.stderr)
    # The user's own level wins: nothing is hidden (and at 0 TensorFlow always says something,
    # the oneDNN notice on an x86 CPU, its GPUs on a GPU machine).
    chosen = _import_stages(TF_CPP_MIN_LOG_LEVEL="0")
    assert chosen.returncode == 0 and chosen.stdout.strip() == "0"
    assert tensorflow_noise(chosen.stderr)
    # A process started by a quiet one (as dvc repro under the tests) stays quiet.
    inherited = _import_stages(TF_CPP_MIN_LOG_LEVEL="3", SAGAN_QUIET_TENSORFLOW="1")
    assert not tensorflow_noise(inherited.stderr)


def test_a_failed_quiet_import_shows_what_tensorflow_printed(monkeypatch, capfd) -> None:
    def broken_import(name, *args, **kwargs):
        if name == "tensorflow":
            os.write(2, b"the reason tensorflow failed\n")
            raise ImportError("no tensorflow")
        return real_import(name, *args, **kwargs)

    real_import = builtins.__import__
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    monkeypatch.delenv("SAGAN_QUIET_TENSORFLOW", raising=False)
    monkeypatch.setattr(builtins, "__import__", broken_import)
    with pytest.raises(ImportError, match="no tensorflow"):
        import_tensorflow_quietly()
    assert "the reason tensorflow failed" in capfd.readouterr().err
