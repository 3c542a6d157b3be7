"""What the reliability suite's tests import: a tiny copy of the project in a fresh git
repository, and commands run in it the way a user runs them (no inherited
MLFLOW_TRACKING_URI). The fixture that makes the copy is in conftest.py."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from tests.helpers import REPO

# Smaller than the end-to-end test's TINY: every `dvc repro` here takes seconds, not minutes.
TINY = {
    "data": {
        "num_train": 64,
        "num_test": 32,
        "num_validation": 16,
        "images_per_shard": 32,
        "image_size": 32,
    },
    "model": {"latent_dim": 16, "g_width": 8, "d_width": 8, "attention_resolutions": [16]},
    "train": {
        "batch_size": 8,
        "steps": 12,
        "checkpoint_every": 2,
        "log_every": 2,
        "sample_every": 6,
        "deterministic": True,
        "ema_start": 1,
        "standing_samples": 16,
    },
    "generate": {"num_samples": 16, "batch_size": 16, "interpolation_steps": 3},
    "encoder": {"steps": 6, "batch_size": 16, "feature_dim": 16},
    "evaluate": {"num_samples": 16, "kid_subset_size": 8, "kid_subsets": 2},
}


def environment(first_on_path: Path | None = None) -> dict[str, str]:
    """The test's environment minus MLFLOW_TRACKING_URI, with the venv's tools on PATH.

    ``first_on_path`` goes before the repository on PYTHONPATH: a ``sitecustomize.py`` there
    runs at the start of every Python process, the stages that DVC runs included.
    """
    env = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    python_path = [REPO] if first_on_path is None else [first_on_path, REPO]
    env["PYTHONPATH"] = os.pathsep.join(map(str, python_path))
    return env


def run(
    *command: str,
    cwd: Path,
    check: bool = True,
    timeout: float = 600,
    first_on_path: Path | None = None,
):
    result = subprocess.run(
        command,
        cwd=cwd,
        env=environment(first_on_path),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check:
        assert result.returncode == 0, (
            f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"
        )
    return result


def start(*command: str, cwd: Path, new_session: bool = False) -> subprocess.Popen:
    """``command`` running in the background, stdout and stderr together as text.

    ``new_session``: its own process group, so that a signal to the group reaches the stage
    that DVC runs as well as DVC. SIGINT is reset to its default in the child: a shell that
    runs the tests in the background hands it down ignored, and Python then never raises
    KeyboardInterrupt.
    """
    return subprocess.Popen(
        command,
        cwd=cwd,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=new_session,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def edit_params(repo: Path, changes: dict) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for section, values in changes.items():
        params[section].update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def commit(repo: Path, message: str = "change") -> None:
    git = ("git", "-c", "user.name=t", "-c", "user.email=t@t")
    run(*git, "add", "-A", cwd=repo)
    run(*git, "commit", "-qm", message, cwd=repo)


def make_repo(root: Path, changes: dict | None = None) -> Path:
    """The project's tracked files in a fresh, committed git repository with TINY params."""
    tracked = run("git", "ls-files", cwd=REPO).stdout.splitlines()
    for name in tracked:
        if (REPO / name).is_file() and not name.startswith("tests/"):
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    (root / "dvc.lock").unlink(missing_ok=True)
    edit_params(root, TINY)
    if changes:
        edit_params(root, changes)
    run("git", "init", "-q", cwd=root)
    commit(root, "tiny")
    return root
