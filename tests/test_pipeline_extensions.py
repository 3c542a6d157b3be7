"""The multi-scale discriminator, the perceptual loss and progressive growing through the real
`dvc repro` / `dvc exp run`, in a tiny repository of their own (so that the pipeline tier's two
workers share the repros)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from PIL import Image

from sagan.model.saved import load_model
from tests.projects import edit_params
from tests.test_end_to_end import _repro, _run, _tiny_repo

pytestmark = pytest.mark.pipeline


@pytest.fixture(scope="module")
def repo(tmp_path_factory, session_folder) -> Path:
    """The tiny project with a two-scale discriminator, after its first `dvc repro`."""
    changes = {"model": {"discriminator_scales": [1, 2]}}
    return _tiny_repo(tmp_path_factory.mktemp("extensions") / "repo", session_folder, changes)


def _last_run_metrics(repo: Path) -> dict[str, float]:
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("sagan")
    run = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])[0]
    return run.data.metrics


def _history_columns(repo: Path) -> list[str]:
    return (repo / "plots" / "train" / "history.csv").read_text().splitlines()[0].split(",")


def _fid(repo: Path) -> float:
    return json.loads((repo / "metrics" / "eval.json").read_text())["fid"]


def test_a_multi_scale_discriminator_runs_the_pipeline(repo):
    columns = set(_history_columns(repo))
    assert {"d_loss_scale1", "d_loss_scale2", "sigma_d_sn_scale2_logit"} <= columns
    assert math.isfinite(_last_run_metrics(repo)["train/d_loss_scale2"])
    assert math.isfinite(_fid(repo))
    assert (repo / "plots" / "attention" / "discriminator_attention_16.png").is_file()


def test_the_perceptual_loss_runs_the_pipeline_with_local_weights(repo, vgg19_stand_in):
    perceptual = {
        "perceptual_weight": 1.0,
        "perceptual_layers": ["block1_conv2", "block2_conv2"],
        "perceptual_weights": str(vgg19_stand_in),
    }
    edit_params(repo, {"model": {"discriminator_scales": [1]}, "train": perceptual})
    assert _repro(repo) == {"train", "generate", "attention", "evaluate"}
    assert "perceptual_loss" in _history_columns(repo)
    assert "d_loss_scale2" not in _history_columns(repo)
    assert _last_run_metrics(repo)["train/perceptual_loss"] > 0
    assert math.isfinite(_fid(repo))


def test_progressive_growing_runs_as_a_dvc_experiment(repo):
    """The README's `dvc exp run -S train.progressive=…` line, at the tiny repo's 32px:
    16px for 2 updates, then 32px fading in over 1 update and alone for the last."""
    growth = {
        "train.progressive": "[16,32]",
        "train.progressive_steps": "[2]",
        "train.progressive_fade": "1",
        "train.perceptual_weight": "0",
        "model.discriminator_scales": "[1]",
    }
    overrides = [arg for key, value in growth.items() for arg in ("-S", f"{key}={value}")]
    _run("dvc", "exp", "run", "-n", "grown", *overrides, cwd=repo)
    rows = (repo / "plots" / "train" / "history.csv").read_text().splitlines()
    resolution = rows[0].split(",").index("resolution")
    assert [row.split(",")[resolution] for row in rows[1:]] == ["16", "32"]
    assert _last_run_metrics(repo)["train/resolution"] == 32
    assert math.isfinite(_fid(repo))
    generator = load_model(repo / "models" / "generator.keras")
    assert generator.outputs[0].shape[1:] == (32, 32, 3)
    assert "grown" in _run("dvc", "exp", "show", "--no-pager", "--csv", cwd=repo)


def test_the_residual_sagan_runs_at_128_px_as_a_dvc_experiment(repo):
    """The README's `dvc exp run -S model.architecture=resnet`, here at 128 px: every stage
    (prepare, train, generate, attention, evaluate and its encoder) at the new size."""
    residual = {
        "model.architecture": "resnet",
        "model.g_width": "4",
        "model.d_width": "4",
        "data.image_size": "128",
        "train.progressive": "null",
        "train.perceptual_weight": "0",
        "model.discriminator_scales": "[1]",
    }
    overrides = [arg for key, value in residual.items() for arg in ("-S", f"{key}={value}")]
    _run("dvc", "exp", "run", "-n", "residual", *overrides, cwd=repo)
    generator = load_model(repo / "models" / "generator.keras")
    assert generator.outputs[0].shape[1:] == (128, 128, 3)
    assert generator.get_layer("up128_conv2") and generator.get_layer("attention_16")
    with Image.open(repo / "samples" / "grid.png") as grid:
        assert grid.width % 128 == 0
    assert math.isfinite(_last_run_metrics(repo)["train/d_loss"])
    assert math.isfinite(_fid(repo))
    attention = sorted(p.name for p in (repo / "plots" / "attention").glob("*_attention_16.png"))
    assert attention == ["discriminator_attention_16.png", "generator_attention_16.png"]
    assert "residual" in _run("dvc", "exp", "show", "--no-pager", "--csv", cwd=repo)
