"""MLflow tracking against a real SQLite store in a temporary folder."""

import dataclasses
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from sagan.config import Config, GenerateConfig, MlflowConfig, ModelConfig
from sagan.files import read_json
from sagan.model.conditioning import conditioning_from_labels
from sagan.model.networks import build_generator
from sagan.sampling.faces import sample_images
from sagan.sampling.served import log_generator
from sagan.tracking import (
    PARENT,
    MlflowTracker,
    TrackingError,
    reopen_run,
    repo_root,
    resolve_tracking_uri,
    run_tags,
    stage_run,
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
    model_id = log_generator(tracker, generator)
    write_run_file(in_repo / "run.json", tracker)
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
    loaded = mlflow.pyfunc.load_model(f"models:/{model_id}")
    faces = loaded.predict(pd.DataFrame({"seed": [3], "count": [2]}))
    np.testing.assert_array_equal(faces, next(sample_images(generator, 2, 3)))
    assert read_json(in_repo / "run.json") == {"run_id": tracker.run_id, "model_id": model_id}


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
    for reopen in (reopen_run, stage_run):
        with pytest.raises(TrackingError, match="run the train stage first"):
            reopen(Config(), in_repo / "models" / "mlflow_run.json")


def test_later_stages_with_the_training_params_log_into_the_training_run(in_repo):
    config = Config()
    training = start_run(config, run_tags(None))
    training.model_id = "m-123"
    write_run_file(in_repo / "run.json", training)
    training.finish()  # a stage killed after it, say: its rerun finishes what it began
    again = stage_run(config, in_repo / "run.json")
    assert again.run_id == training.run_id and again.model_id == "m-123"


def test_other_params_get_a_child_run_and_leave_the_training_run_alone(in_repo):
    config = Config()
    training = start_run(config, run_tags(None))
    training.log_metrics({"eval_fid": 300.0}, step=0)
    training.model_id = "m-123"
    write_run_file(in_repo / "run.json", training)
    training.finish()
    client = MlflowClient(training.tracking_uri)
    before = client.get_run(training.run_id)

    edited = Config(generate=dataclasses.replace(Config().generate, seed=1))
    child = stage_run(edited, in_repo / "run.json")
    child.log_metrics({"eval_fid": 310.0}, step=0)
    again = stage_run(edited, in_repo / "run.json")  # a later stage of the same experiment
    other = stage_run(Config(generate=GenerateConfig(seed=2)), in_repo / "run.json")

    assert child.run_id != training.run_id and again.run_id == child.run_id
    assert other.run_id not in (training.run_id, child.run_id)
    assert child.model_id == again.model_id == "m-123"  # the training run's generator
    run = client.get_run(child.run_id)
    assert run.data.tags[PARENT] == training.run_id
    assert run.data.params["generate.seed"] == "1" and run.data.metrics["eval_fid"] == 310.0
    after = client.get_run(training.run_id)
    assert after.data.params == before.data.params and after.data.tags == before.data.tags
    assert after.data.metrics == before.data.metrics == {"eval_fid": 300.0}
    assert (after.info.status, after.info.end_time) == (before.info.status, before.info.end_time)
    assert stage_run(config, in_repo / "run.json").run_id == training.run_id


def test_an_unreachable_store_fails_before_training(in_repo):
    config = Config(mlflow=MlflowConfig(tracking_uri="http://127.0.0.1:9"))
    with pytest.raises(TrackingError, match="does not answer"):
        start_run(config, {})
    (in_repo / "a_file").write_text("not a folder")
    config = Config(mlflow=MlflowConfig(tracking_uri="sqlite:///a_file/mlflow.db"))
    with pytest.raises(TrackingError, match="cannot use the MLflow store"):
        start_run(config, {})


def test_a_server_lost_mid_run_is_one_line_that_names_it(in_repo, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # MLflow's own: minutes by default
    tracker = MlflowTracker("http://127.0.0.1:9", run_id="0" * 32)  # nothing listens on port 9
    for call in (
        lambda: tracker.log_metrics({"d_loss": 1.0}, 2),
        lambda: tracker.log_params({"train.steps": 4}),
        lambda: tracker.finish("FAILED"),
    ):
        with pytest.raises(TrackingError) as raised:
            call()
        message = str(raised.value)
        assert message.startswith("lost the MLflow store http://127.0.0.1:9 (")
        assert "\n" not in message
        assert message.endswith("rerun the stage to resume into the same run")


def test_a_conditional_generator_asks_for_its_attributes(in_repo):
    config = Config(model=ModelConfig(latent_dim=8, g_width=8, d_width=8, conditional=True, pack=1))
    conditioning = conditioning_from_labels(None, ("glasses",), (2,), np.array([[0], [1]]))
    conditioning.save(in_repo / "attributes.json")
    tracker = start_run(config, {})
    generator = build_generator(config.model, 32, attribute_dim=2)
    model_id = log_generator(tracker, generator, in_repo / "attributes.json")
    tracker.finish()
    mlflow.set_tracking_uri(f"sqlite:///{in_repo}/mlflow.db")
    signature = mlflow.models.get_model_info(f"models:/{model_id}").signature
    assert signature.inputs.input_names() == ["seed", "count", "z", "glasses"]
    assert signature.outputs.inputs[0].shape == (-1, 32, 32, 3)


def _evaluated(config: Config, model_id: str, fid: float, extractor: str):
    """A finished run whose generator (``model_id``) was evaluated at ``fid``: its version."""
    tracker = start_run(config, {})
    tracker.model_id = model_id  # one logged model stands in for each run's own
    version = tracker.register_generator("faces", {"fid": fid, "recall": 0.5}, extractor)
    tracker.finish()
    return tracker, version


def test_best_moves_to_the_lowest_fid_of_the_same_extractor(in_repo):
    config = Config(model=ModelConfig(latent_dim=8, g_width=8, d_width=8))
    tracker = start_run(config, {})
    model_id = log_generator(tracker, build_generator(config.model, 32))
    tracker.finish()
    client = MlflowClient(f"sqlite:///{in_repo}/mlflow.db")

    def best() -> str:
        return str(client.get_model_version_by_alias("faces", "best").version)

    first, version = _evaluated(config, model_id, 300.0, "encoder")
    assert version == "1" and best() == "1"
    tags = client.get_model_version("faces", "1").tags
    assert tags == {"fid": "300.0", "recall": "0.5", "extractor": "encoder"}
    assert _evaluated(config, model_id, 200.0, "encoder")[1] == "2" and best() == "2"
    assert _evaluated(config, model_id, 250.0, "encoder")[1] == "3" and best() == "2"
    # An Inception FID does not compare with encoder FIDs: best among Inception versions.
    assert _evaluated(config, model_id, 900.0, "inception")[1] == "4" and best() == "4"
    # Evaluating a run again (a later stage: it reopens the run from the run file) updates
    # its version; no new one.
    write_run_file(in_repo / "run.json", first)
    again = reopen_run(config, in_repo / "run.json")
    assert again.register_generator("faces", {"fid": 100.0, "recall": 0.6}, "encoder") == "1"
    again.finish()
    assert best() == "1" and len(client.search_model_versions("name = 'faces'")) == 4
    assert client.get_model_version("faces", "1").tags["fid"] == "100.0"


def test_a_run_without_a_logged_generator_is_not_registered(in_repo):
    tracker = start_run(Config(), {})
    with pytest.raises(TrackingError, match="holds no logged generator.*rerun train"):
        tracker.register_generator("faces", {"fid": 1.0, "recall": 1.0}, "encoder")


def test_runs_are_named_after_the_experiment_or_the_commit_and_a_counter(in_repo):
    commit = {"git_commit": "0123456789abcdef"}
    names = [start_run(Config(), dict(commit)).run_id for _ in range(2)]
    names.append(start_run(Config(), {**commit, "dvc_exp_name": "tall-pine"}).run_id)
    client = MlflowClient(f"sqlite:///{in_repo}/mlflow.db")
    assert [client.get_run(run).info.run_name for run in names] == [
        "0123456-1",
        "0123456-2",
        "tall-pine",
    ]


def test_run_tags_name_the_source_and_the_experiment(monkeypatch):
    monkeypatch.setenv("DVC_EXP_NAME", "tall-pine")
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "0123abc")
    tags = run_tags("feed")
    assert tags["dvc_exp_baseline"] == "0123abc"
    assert tags["mlflow.source.type"] == "LOCAL" and tags["mlflow.source.name"] == "dvc.yaml"
    assert tags["mlflow.source.git.commit"] == tags["git_commit"] and len(tags["git_commit"]) == 40
    assert tags["dvc_exp_name"] == "tall-pine" and tags["data_manifest_sha256"] == "feed"
