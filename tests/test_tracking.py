"""MLflow tracking against a real SQLite store in a temporary folder."""

from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from sagan.config import Config, MlflowConfig, ModelConfig
from sagan.model.networks import build_generator
from sagan.tracking import (
    TrackingError,
    reopen_run,
    repo_root,
    resolve_tracking_uri,
    start_run,
    write_run_file,
)


@pytest.fixture
def in_repo(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


def test_relative_store_paths_resolve_against_the_repo_root(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri("sqlite:///mlflow.db", tmp_path) == (
        f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    )
    assert resolve_tracking_uri("sqlite:////abs/m.db", tmp_path) == "sqlite:////abs/m.db"
    assert resolve_tracking_uri("mlruns", tmp_path) == (tmp_path / "mlruns").resolve().as_uri()
    assert resolve_tracking_uri("http://server:5000", tmp_path) == "http://server:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://elsewhere:5000")
    assert resolve_tracking_uri("sqlite:///mlflow.db", tmp_path) == "http://elsewhere:5000"


def test_dvc_experiment_copies_report_to_the_repo_they_came_from(tmp_path):
    copy = tmp_path / "repo" / ".dvc" / "tmp" / "exps" / "tmpabc123"
    copy.mkdir(parents=True)
    assert repo_root(copy) == (tmp_path / "repo").resolve()
    assert repo_root(tmp_path) == tmp_path.resolve()


def test_a_run_holds_params_tags_metrics_artifacts_and_a_loadable_generator(in_repo):
    config = Config(model=ModelConfig(latent_dim=8, g_width=8, d_width=8))
    tracker = start_run(config, {"git_commit": "abc"})
    tracker.log_metrics({"d_loss": 1.5, "g_loss": -0.5}, step=10)
    tracker.log_metrics({"d_loss": 1.25, "g_loss": -0.25}, step=20)
    picture = in_repo / "grid.png"
    picture.write_bytes(b"\x89PNG not really")
    tracker.log_artifact(picture, "samples")
    generator = build_generator(config.model, 32)
    tracker.log_generator(generator)
    tracker.finish()

    client = MlflowClient(f"sqlite:///{in_repo}/mlflow.db")
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["train.batch_size"] == "64"
    assert run.data.params["model.latent_dim"] == "8"
    assert run.data.tags["git_commit"] == "abc"
    history = client.get_metric_history(tracker.run_id, "d_loss")
    assert [(m.step, m.value) for m in history] == [(10, 1.5), (20, 1.25)]
    assert [a.path for a in client.list_artifacts(tracker.run_id, "samples")] == [
        "samples/grid.png"
    ]
    # Artifacts sit beside the store in the repo, not in the working directory of the stage.
    assert (in_repo / "mlruns").is_dir()

    mlflow.set_tracking_uri(f"sqlite:///{in_repo}/mlflow.db")
    loaded = mlflow.keras.load_model(f"runs:/{tracker.run_id}/generator")
    z = np.random.default_rng(0).standard_normal((2, 8)).astype("float32")
    np.testing.assert_allclose(loaded(z).numpy(), generator(z).numpy(), atol=1e-6)


def test_later_stages_reopen_the_same_run(in_repo):
    config = Config()
    tracker = start_run(config, {})
    tracker.finish()
    write_run_file(in_repo / "models" / "mlflow_run.json", tracker)
    again = reopen_run(config, in_repo / "models" / "mlflow_run.json")
    assert again.run_id == tracker.run_id
    assert MlflowClient(again.tracking_uri).get_run(again.run_id).info.status == "RUNNING"
    again.finish("FAILED")
    assert MlflowClient(again.tracking_uri).get_run(again.run_id).info.status == "FAILED"


def test_a_missing_run_file_says_which_stage_to_run(in_repo):
    with pytest.raises(TrackingError, match="run the train stage first"):
        reopen_run(Config(), in_repo / "models" / "mlflow_run.json")


def test_an_unreachable_store_fails_before_training(in_repo):
    config = Config(mlflow=MlflowConfig(tracking_uri="http://127.0.0.1:9"))
    with pytest.raises(TrackingError, match="does not answer"):
        start_run(config, {})
    (in_repo / "a_file").write_text("not a folder")
    config = Config(mlflow=MlflowConfig(tracking_uri="sqlite:///a_file/mlflow.db"))
    with pytest.raises(TrackingError, match="cannot use the MLflow store"):
        start_run(config, {})


def test_a_conditional_generator_is_logged_with_named_inputs(in_repo):
    config = Config(model=ModelConfig(latent_dim=8, g_width=8, d_width=8, conditional=True))
    tracker = start_run(config, {})
    generator = build_generator(config.model, 32, attribute_dim=3)
    tracker.log_generator(generator)
    tracker.finish()
    mlflow.set_tracking_uri(f"sqlite:///{in_repo}/mlflow.db")
    loaded = mlflow.keras.load_model(f"runs:/{tracker.run_id}/generator")
    inputs = [np.ones((2, 8), np.float32), np.eye(3, dtype=np.float32)[[0, 2]]]
    np.testing.assert_allclose(loaded(inputs).numpy(), generator(inputs).numpy(), atol=1e-6)
    signature = mlflow.models.get_model_info(f"runs:/{tracker.run_id}/generator").signature
    assert signature.inputs.input_names() == ["z", "attributes"]
