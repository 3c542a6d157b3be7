"""Fixtures of the reliability suite (its helpers: helpers.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.projects import commit, edit_params, prepared_project, tiny_project
from tests.reliability.helpers import TINY


@pytest.fixture
def tiny_repo(tmp_path, session_folder) -> Callable[..., Path]:
    """``tiny_repo(name="repo", changes=None, prepared=False)``: a fresh tiny project under
    tmp_path (TINY, ``changes`` on top), committed; ``prepared``: its stages before train
    have run (tests/projects.py)."""

    def make(name: str = "repo", changes: dict | None = None, prepared: bool = False) -> Path:
        root = tmp_path / name
        if prepared:
            repo = prepared_project(root, TINY, session_folder)
        else:
            repo = tiny_project(root, TINY)
        if changes:
            edit_params(repo, changes)
            commit(repo, "changes")
        return repo

    return make
