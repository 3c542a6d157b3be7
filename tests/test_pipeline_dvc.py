"""dvc.yaml agrees with the code: every stage's outputs, code deps and params."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from sagan import paths
from sagan.config import Config, flatten
from tests.helpers import REPO

STAGES = ("prepare", "train", "generate", "attention", "encoder", "reference", "evaluate")

# Params that change how fast or where a stage reports, never what it writes.
OUTPUT_NEUTRAL = {
    "data.workers",
    "generate.batch_size",
    "train.checkpoint_every",
    "train.keep_checkpoints",
    "train.worker_wait",
}
# The params each stage reads: whole sections, or single keys of other sections.
READS = {
    "prepare": ["data"],
    # With train.eval_every, train scores itself as evaluate scores (but num_samples and
    # intra_fid_attribute: train.eval_samples, and no conditional scores).
    "train": [
        "data.image_size",
        "model",
        "train",
        "evaluate.extractor",
        "evaluate.inception_graph",
        "evaluate.kid_subset_size",
        "evaluate.kid_subsets",
        "evaluate.pr_k",
        "evaluate.seed",
    ],
    "generate": ["generate"],
    "attention": ["attention", "train.seed"],
    "encoder": ["data.image_size", "encoder"],
    # The ceilings are scored as samples are, at the counts of evaluate's and training's samples.
    "reference": [
        "evaluate.extractor",
        "evaluate.inception_graph",
        "evaluate.kid_subset_size",
        "evaluate.kid_subsets",
        "evaluate.num_samples",
        "evaluate.pr_k",
        "evaluate.seed",
        "train.eval_samples",
    ],
    "evaluate": ["data.image_size", "evaluate"],
}
OUTS = {
    "prepare": [paths.PREPARED_DIR],
    "train": [paths.MODELS_DIR, paths.TRAIN_METRICS, paths.TRAIN_PLOTS_DIR],
    "generate": [paths.SAMPLES_DIR],
    "attention": [paths.ATTENTION_PLOTS_DIR],
    "encoder": [paths.ENCODER_DIR, paths.ENCODER_METRICS],
    "reference": [paths.REFERENCE_DIR, paths.CEILING_METRICS],
    "evaluate": [paths.EVAL_METRICS],
}


def _stage(name: str) -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"][name]


def _is_package_marker(path: Path) -> bool:
    """An ``__init__.py`` holding no code (a docstring at most): no dep, whatever it says."""
    if path.name != "__init__.py":
        return False
    body = ast.parse(path.read_text()).body
    return all(isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in body)


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
            base = REPO / name.replace(".", "/")
            for module in (base.with_suffix(".py"), base / "__init__.py"):
                if name.split(".")[0] in {"sagan", "stages"} and module.is_file():
                    found.add(module)
    return {module for module in found if not _is_package_marker(module)}


def _closure(start: Path) -> set[Path]:
    seen, todo = set(), [start]
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo.extend(_local_imports(path))
    return seen


def _out_paths(stage: dict) -> list[str]:
    return [next(iter(out)) if isinstance(out, dict) else out for out in stage["outs"]]


@pytest.mark.parametrize("name", STAGES)
def test_outs_are_the_paths_the_code_writes(name) -> None:
    assert _out_paths(_stage(name)) == [path.as_posix() for path in OUTS[name]]


def test_every_out_reaches_a_fresh_clone() -> None:
    """Cached outs travel through a DVC remote, the uncached ones (the metrics files) through
    Git: after `dvc pull`, a clone has every out (tests/test_end_to_end.py pushes and pulls)."""
    uncached = [
        path
        for name in STAGES
        for out in _stage(name)["outs"]
        if isinstance(out, dict)
        for path, options in out.items()
        if options.get("cache") is False
    ]
    assert uncached and all(path.startswith("metrics/") for path in uncached), uncached
    assert "/metrics/" not in (REPO / ".gitignore").read_text()


@pytest.mark.parametrize("name", STAGES)
def test_code_deps_are_the_modules_the_stage_runs(name) -> None:
    stage = _stage(name)
    assert stage["cmd"] == f"python -m stages.{name}"
    modules = _closure(REPO / "stages" / f"{name}.py")
    code_deps = {dep for dep in stage["deps"] if dep.endswith(".py")}
    assert code_deps == {p.relative_to(REPO).as_posix() for p in modules}


@pytest.mark.parametrize("name", STAGES)
def test_params_are_the_keys_that_shape_the_output(name) -> None:
    expected = {
        key
        for key in flatten(Config())
        if any(key == read or key.startswith(f"{read}.") for read in READS[name])
    } - OUTPUT_NEUTRAL
    assert set(_stage(name)["params"]) == expected


def test_the_generator_is_a_model_artifact_of_the_train_stage() -> None:
    artifact = yaml.safe_load((REPO / "dvc.yaml").read_text())["artifacts"]["sagan-generator"]
    assert artifact["type"] == "model" and artifact["desc"] and artifact["labels"]
    assert artifact["path"] == paths.MODELS_DIR.as_posix()
    assert artifact["path"] in _out_paths(_stage("train"))
