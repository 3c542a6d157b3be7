"""dvc.yaml's prepare stage agrees with the code: outputs, code deps and params."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import yaml

from sagan.config import DataConfig
from sagan.paths import PREPARED_DIR

REPO = Path(__file__).resolve().parents[1]
OUTPUT_NEUTRAL = {"workers"}  # params that change the speed of prepare, never its output


def _stage(name: str) -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"][name]


def _local_imports(path: Path) -> set[Path]:
    """The repository modules that ``path`` imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            module = REPO / (name.replace(".", "/") + ".py")
            if name.split(".")[0] in {"sagan", "stages"} and module.is_file():
                found.add(module)
    return found


def _closure(start: Path) -> set[Path]:
    seen, todo = set(), [start]
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo.extend(_local_imports(path))
    return seen


def test_prepare_outs_are_the_paths_the_code_writes() -> None:
    assert _stage("prepare")["outs"] == [PREPARED_DIR.as_posix()]


def test_prepare_deps_are_the_modules_the_stage_runs() -> None:
    modules = _closure(REPO / "stages" / "prepare.py")
    assert set(_stage("prepare")["deps"]) == {p.relative_to(REPO).as_posix() for p in modules}


def test_prepare_params_are_the_data_keys_that_shape_the_output() -> None:
    fields = {f.name for f in dataclasses.fields(DataConfig)} - OUTPUT_NEUTRAL
    assert set(_stage("prepare")["params"]) == {f"data.{name}" for name in fields}
