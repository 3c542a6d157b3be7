"""One MLflow run per set of params, in a tiny project of its own: an experiment that reuses
the cached model gets a run under the training run (tests/test_tracking_server.py: the same
against a tracking server)."""

from __future__ import annotations

import json
import re

import pytest
from mlflow.tracking import MlflowClient

from tests.test_end_to_end import _repro, _run, _run_stdout, _tiny_repo, check_experiment_run

pytestmark = pytest.mark.pipeline


def test_an_experiment_on_a_cached_model_gets_a_run_of_its_own(tmp_path, session_folder):
    repo = _tiny_repo(tmp_path / "repo", session_folder)
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    recorded = json.loads((repo / "models" / "mlflow_run.json").read_text())
    before = client.get_run(recorded["run_id"])
    printed = _run("dvc", "exp", "run", "-n", "seed-one", "-S", "generate.seed=1", cwd=repo)
    assert set(re.findall(r"Running stage '(\w+)'", printed)) == {"generate", "evaluate"}
    commit = _run_stdout("git", "rev-parse", "HEAD", cwd=repo).strip()
    check_experiment_run(client, recorded["run_id"], "seed-one", commit)
    after = client.get_run(recorded["run_id"])
    assert (after.data.params, after.data.metrics, after.data.tags, after.info.end_time) == (
        before.data.params,
        before.data.metrics,
        before.data.tags,
        before.info.end_time,
    )
    assert _repro(repo) == set()  # nothing to rerun: no run opened
    assert len(client.search_runs([before.info.experiment_id])) == 2
