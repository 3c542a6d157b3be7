"""Fixtures of the reliability suite (its helpers: helpers.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.reliability.helpers import make_repo


@pytest.fixture
def tiny_repo(tmp_path) -> Callable[..., Path]:
    """``tiny_repo(name="repo", changes=None)``: a fresh tiny project under tmp_path."""

    def make(name: str = "repo", changes: dict | None = None) -> Path:
        return make_repo(tmp_path / name, changes)

    return make
