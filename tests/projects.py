"""Tiny copies of the project for the tests that run `dvc` and the stages as a user runs them:
each a fresh git repository with tiny params, commands run in it without an inherited
MLFLOW_TRACKING_URI. A *prepared* copy has its stages before train already run (prepare,
encoder, reference): the session makes it once per set of params, for all its pytest workers,
and each test gets its own copy, so that only the tests about those stages pay for them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import yaml

from tests.helpers import REPO

GIT = ("git", "-c", "user.name=t", "-c", "user.email=t@t")
PREPARED_LOG = "prepared.log"  # what the prepared project's `dvc repro` printed, in its copies


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
    timeout: float = 900,
    first_on_path: Path | None = None,
) -> subprocess.CompletedProcess:
    """``command`` in ``cwd``, its output captured as text; with ``check``, it must succeed."""
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


def edit_params(repo: Path, changes: dict) -> None:
    """Update params.yaml's sections with ``changes`` ({section: {key: value}})."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for section, values in changes.items():
        params[section].update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def commit(repo: Path, message: str = "change") -> None:
    run(*GIT, "add", "-A", cwd=repo)
    run(*GIT, "commit", "-qm", message, cwd=repo)


def tiny_project(root: Path, params: dict) -> Path:
    """The project's tracked files (its tests aside) in a fresh git repository at ``root``,
    with ``params`` on params.yaml, committed. No stage has run."""
    for name in run("git", "ls-files", cwd=REPO).stdout.splitlines():
        if (REPO / name).is_file() and not name.startswith("tests/"):
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    (root / "dvc.lock").unlink(missing_ok=True)
    edit_params(root, params)
    run("git", "init", "-q", cwd=root)
    commit(root, "tiny")
    return root


def prepared_project(root: Path, params: dict, shared: Path) -> Path:
    """A copy at ``root`` of :func:`tiny_project` after `dvc repro reference`, with its
    dvc.lock and outputs committed; what that repro printed is ``PREPARED_LOG`` beside it.

    ``shared`` is a folder that every pytest worker of the session sees: the first test to
    ask for these params makes the project there, under a lock, and the others wait for it.
    """
    key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    made = shared / f"prepared-{key}"
    with _exclusive(shared / f"prepared-{key}.lock"):
        if not made.exists():
            making = shared / f"making-{key}"  # left by a failed attempt: start again
            shutil.rmtree(making, ignore_errors=True)
            project = tiny_project(making / "repo", params)
            printed = run("dvc", "repro", "reference", cwd=project)
            (making / PREPARED_LOG).write_text(printed.stdout + printed.stderr)
            commit(project, "prepared")
            making.rename(made)
    shutil.copytree(made / "repo", root, symlinks=True, ignore=_dvc_tmp)
    shutil.copy2(made / PREPARED_LOG, root.parent / PREPARED_LOG)
    return root


def _dvc_tmp(folder: str, names: list[str]) -> list[str]:
    """copytree's filter: DVC's tmp folder (locks, the index of file hashes) belongs to the
    workspace that made it."""
    return ["tmp"] if Path(folder).name == ".dvc" else []


@contextlib.contextmanager
def _exclusive(lock_file: Path) -> Iterator[None]:
    """Hold ``lock_file`` alone among the processes that ask for it (waiting for it)."""
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
