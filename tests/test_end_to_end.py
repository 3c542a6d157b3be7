"""The whole pipeline through the real `dvc repro`, in a temporary git repository.

A tiny configuration (a few hundred faces, a few steps) keeps it to a couple of minutes; it
checks what a user relies on: every declared output, finite metrics, a no-op second repro,
which stages a param edit invalidates, the MLflow runs, and the outputs and experiments
shared through a DVC remote. (A shared MLflow server: tests/test_tracking_server.py.)
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import requests
import yaml
from mlflow.tracking import MlflowClient
from PIL import Image

from sagan.data import synthetic
from sagan.model.conditioning import model_inputs
from sagan.model.saved import load_generator
from sagan.sampling.faces import fixed_attributes, fixed_noise, generator_conditioning
from tests import projects
from tests.helpers import tensorflow_noise
from tests.projects import PREPARED_LOG, edit_params, prepared_project

pytestmark = pytest.mark.pipeline

TRAIN_SPEED = "images_per_second"  # the one figure of metrics/*.json that timing decides
TINY = {
    "data": {
        "num_train": 192,
        "num_test": 48,
        "num_validation": 48,
        "images_per_shard": 64,
        "image_size": 32,
        # In-process decoding: a pool's start costs ~5 s a prepare here (the reliability
        # suite's prepare runs, and its kills, use the pool).
        "workers": 1,
    },
    "model": {"latent_dim": 16, "g_width": 8, "d_width": 8, "attention_resolutions": [16]},
    "train": {
        "batch_size": 16,
        "steps": 4,
        "log_every": 2,
        "sample_every": 2,
        "ema_start": 1,
        "standing_samples": 32,
        "eval_every": 2,
        "eval_samples": 40,
        "jit_compile": False,  # the d_lr edit below turns XLA on: the pipeline runs with both
    },
    "generate": {"num_samples": 40, "batch_size": 20, "interpolation_steps": 4},
    "encoder": {"steps": 20, "batch_size": 16},
    "evaluate": {"num_samples": 40, "kid_subset_size": 16, "kid_subsets": 4},
}


def _run(*command: str, cwd: Path) -> str:
    """What ``command`` printed, stdout and stderr (it must succeed)."""
    result = projects.run(*command, cwd=cwd)
    return result.stdout + result.stderr


def _run_stdout(*command: str, cwd: Path) -> str:
    """What ``command`` printed to stdout alone (dvc prints warnings to stderr)."""
    return projects.run(*command, cwd=cwd).stdout


def _repro(repo: Path) -> set[str]:
    """Run `dvc repro`; the stages it ran (not those it skipped or restored from its cache)."""
    return set(re.findall(r"Running stage '(\w+)'", _run("dvc", "repro", cwd=repo)))


def _tiny_repo(root: Path, shared: Path, changes: dict | None = None, repro: bool = True) -> Path:
    """A prepared copy of the project with TINY params (tests/projects.py; ``changes`` on top,
    committed), after its first `dvc repro` (what the stages printed: ``repro.log`` beside
    it, the prepared project's part first) unless ``repro`` is False."""
    prepared_project(root, TINY, shared)
    if changes:
        edit_params(root, changes)
        projects.commit(root, "changes")
    if repro:
        printed = (root.parent / PREPARED_LOG).read_text() + _run("dvc", "repro", cwd=root)
        (root.parent / "repro.log").write_text(printed)
    return root


def _run_queued(repo: Path, name: str, *options: str) -> None:
    """`dvc exp run --queue -n name *options`, then `dvc queue start`, waited for (15 min at
    most) and checked."""
    _run("dvc", "exp", "run", "--queue", "-n", name, *options, cwd=repo)
    _run("dvc", "queue", "start", cwd=repo)
    deadline = time.monotonic() + 900
    while "Queued" in (status := _run_stdout("dvc", "queue", "status", cwd=repo)) or (
        "Running" in status
    ):
        assert time.monotonic() < deadline, status
        time.sleep(2)
    assert "Success" in status, status + _run("dvc", "queue", "logs", name, cwd=repo)


def _results(repo: Path) -> dict:
    """What a run writes that must not depend on the run: every metrics file but the train
    stage's speed, and the hash dvc.lock records for the sample images. (Not the models':
    a .keras file records when it was saved.)"""
    results = {}
    for path in sorted((repo / "metrics").glob("*.json")):
        values = json.loads(path.read_text())
        values.pop(TRAIN_SPEED, None)
        results[path.name] = values
    outs = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["generate"]["outs"]
    results["samples"] = next(out["md5"] for out in outs if out["path"] == "samples")
    return results


@pytest.fixture(scope="module")
def repo(tmp_path_factory, session_folder) -> Path:
    """The tiny project after its first `dvc repro` (the tests below edit it further)."""
    root = _tiny_repo(tmp_path_factory.mktemp("e2e") / "repo", session_folder)
    (root.parent / "first_results.json").write_text(json.dumps(_results(root)))
    _keep_git_files(root, root.parent / "first")
    return root


def _keep_git_files(repo: Path, into: Path) -> None:
    """Copy what Git holds of a run (params.yaml, dvc.lock, metrics/) into ``into``, which
    may go back with :func:`_restore_git_files`."""
    into.mkdir()
    for name in ("params.yaml", "dvc.lock"):
        shutil.copy2(repo / name, into / name)
    shutil.copytree(repo / "metrics", into / "metrics")


def _restore_git_files(kept: Path, repo: Path) -> None:
    """Back to the run that :func:`_keep_git_files` kept, as `git checkout` and
    `dvc checkout` of its commit would: its files, then its outputs from DVC's cache."""
    for name in ("params.yaml", "dvc.lock"):
        shutil.copy2(kept / name, repo / name)
    shutil.rmtree(repo / "metrics")
    shutil.copytree(kept / "metrics", repo / "metrics")
    _run("dvc", "checkout", cwd=repo)
    assert json.loads(_run_stdout("dvc", "status", "--json", cwd=repo)) == {}


def test_every_declared_output_exists(repo):
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        for out in stage["outs"]:
            path = repo / (next(iter(out)) if isinstance(out, dict) else out)
            assert path.exists(), f"{name} did not write {path}"
    assert len(list((repo / "samples" / "images").glob("*.png"))) == 40
    assert (repo / "models" / "generator.keras").is_file()
    assert sorted(p.name for p in (repo / "plots" / "attention").iterdir()) == [
        "discriminator_attention_16.png",
        "discriminator_attention_16_over_training.png",
        "gamma_sigma.png",
        "generator_attention_16.png",
        "generator_attention_16_over_training.png",
    ]


def test_metrics_are_finite_numbers(repo):
    evaluation = json.loads((repo / "metrics" / "eval.json").read_text())
    for key in (
        "fid",
        "kid",
        "kid_std",
        "precision",
        "recall",
        "density",
        "coverage",
        "coherence",
        "attribute_tv",
        "attribute_tv_max",
        "attribute_tv_glasses",
    ):
        assert isinstance(evaluation[key], float) and math.isfinite(evaluation[key]), key
    assert 0 <= evaluation["dropped_classes"] <= sum(synthetic.ATTRIBUTE_CLASSES.values())
    assert evaluation["num_samples"] == 40 and evaluation["extractor"] == "encoder"
    # Real faces scored as samples: each score of eval.json has its ceiling (test_quality.py).
    ceiling = json.loads((repo / "metrics" / "ceiling.json").read_text())
    assert set(ceiling) == {"test", "validation"}
    assert set(ceiling["test"]) == set(evaluation) - {"extractor"}
    assert ceiling["test"]["num_samples"] == ceiling["validation"]["num_samples"] == 40
    assert ceiling["test"]["fid"] < evaluation["fid"]
    training = json.loads((repo / "metrics" / "train.json").read_text())
    assert training["steps"] == 4
    assert all(math.isfinite(value) for value in training.values())


def test_the_quality_curve_is_a_plot_and_the_best_checkpoint_is_exported(repo):
    with (repo / "plots" / "train" / "quality.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["step"]) for row in rows] == [2, 4]
    fids = [float(row["fid"]) for row in rows]
    training = json.loads((repo / "metrics" / "train.json").read_text())
    assert training["best_fid"] == min(fids)
    assert training["best_step"] == [2, 4][fids.index(min(fids))]
    plots = json.loads(_run_stdout("dvc", "plots", "show", "--json", cwd=repo))["data"]
    (fid_plot,) = plots["Validation FID"]
    drawn = fid_plot["content"]["data"]["values"]
    assert [(int(v["step"]), float(v["fid"])) for v in drawn] == list(
        zip([2, 4], fids, strict=True)
    )


def test_the_stages_print_their_own_lines_and_no_tensorflow_noise(repo):
    printed = (repo.parent / "repro.log").read_text()
    assert "registered the generator as models:/sagan-generator/1" in printed
    assert not tensorflow_noise(printed)


def test_a_second_repro_does_nothing(repo):
    output = _run("dvc", "repro", cwd=repo)
    assert "didn't change, skipping" in output and "Running stage" not in output


def test_param_edits_rerun_only_the_stages_that_read_them(repo):
    original = (repo / "params.yaml").read_text()
    try:
        edit_params(repo, {"train": {"checkpoint_every": 7}})
        assert _repro(repo) == set()
        (repo / "params.yaml").write_text(original)
        # evaluate and attention read disjoint params (tests/test_pipeline_dvc.py), so one
        # edit of each shows that each reruns its own stage only (train reads evaluate's
        # scoring settings, but not num_samples; reference scores its ceilings at it, and
        # writes the same features: train stays cached).
        edit_params(
            repo, {"evaluate": {"num_samples": 32}, "attention": {"queries": {"nose": [0.5, 0.5]}}}
        )
        assert _repro(repo) == {"reference", "evaluate", "attention"}
        (repo / "params.yaml").write_text(original)
        edit_params(repo, {"train": {"d_lr": 4.0e-4, "jit_compile": True}})
        # (reference: its ceilings back at evaluate.num_samples 40)
        assert _repro(repo) == {"reference", "train", "generate", "attention", "evaluate"}
    finally:
        # Back to the first run's files and outputs, for the tests below. (Run again, train
        # would find that run's finished checkpoint and take no step: tests/test_training.py.)
        _restore_git_files(repo.parent / "first", repo)


def test_every_training_run_lands_whole_in_mlflow(repo):
    # Experiments in DVC's temporary copies (dvc exp run --temp / --queue) reporting to this
    # repository's store: tests/reliability/test_concurrency.py.
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("sagan")
    every_run = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time"])
    runs = [run for run in every_run if "mlflow.parentRunId" not in run.data.tags]
    # One run per execution: the first repro, then the d_lr edit (with XLA) trained; the
    # evaluate.num_samples edit between them reused the first model, in a run under it.
    (child,) = [run for run in every_run if run not in runs]
    assert child.data.tags["mlflow.parentRunId"] == runs[0].info.run_id
    assert child.data.params["evaluate.num_samples"] == "32"
    assert "train/d_loss" not in child.data.metrics
    assert [run.data.params["train.d_lr"] for run in runs] == ["0.0001", "0.0004"]
    assert [run.data.params["train.jit_compile_resolved"] for run in runs] == ["False", "True"]
    for run in runs:
        assert run.info.status == "FINISHED"
        assert run.data.tags.get("git_commit")
        history = client.get_metric_history(run.info.run_id, "train/d_loss")
        assert [m.step for m in history] == [2, 4]
        # The quality curve on the validation split (train.eval_every: 2), a chart per score.
        for score in ("val/fid", "val/recall", "val/dropped_classes", "val/coherence"):
            history = client.get_metric_history(run.info.run_id, score)
            assert [m.step for m in history] == [2, 4], score
            assert all(math.isfinite(m.value) for m in history), score
        assert run.data.metrics["train/best_step"] in (2, 4)
        assert math.isfinite(run.data.metrics["eval/fid"])
        ceilings = ("ceiling/test/fid", "ceiling/validation/fid", "ceiling/test/recall")
        assert all(math.isfinite(run.data.metrics[key]) for key in ceilings)
        generated = [a.path for a in client.list_artifacts(run.info.run_id, "generate")]
        assert "generate/grid.png" in generated
        attention = [a.path for a in client.list_artifacts(run.info.run_id, "attention")]
        assert "attention/generator_attention_16.png" in attention

    commit = _run("git", "rev-parse", "HEAD", cwd=repo).strip()
    # the commit's runs numbered in order: the first, the child, the d_lr edit
    assert [run.info.run_name for run in runs] == [f"{commit[:7]}-1", f"{commit[:7]}-3"]
    assert child.info.run_name == f"{commit[:7]}-2"
    assert runs[0].data.tags["mlflow.source.git.commit"] == commit


def check_experiment_run(client: MlflowClient, training_id: str, name: str, commit: str) -> None:
    """After `dvc exp run -n name -S generate.seed=1` on the model of the run ``training_id``:
    two runs, the experiment's with its own params, scores and samples, named and tagged as
    DVC names it, under the training run, which is as it was."""
    experiment = client.get_experiment_by_name("sagan")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time"])
    assert [run.info.run_id for run in runs][:1] == [training_id] and len(runs) == 2
    training, ours = runs
    assert training.data.params["generate.seed"] == "0" and ours.data.params["generate.seed"] == "1"
    assert ours.info.run_name == ours.data.tags["dvc_exp_name"] == name
    assert ours.data.tags["mlflow.parentRunId"] == training_id
    assert ours.data.tags["dvc_exp_baseline"] == ours.data.tags["git_commit"] == commit
    assert ours.info.status == "FINISHED" and math.isfinite(ours.data.metrics["eval/fid"])
    assert ours.data.metrics["eval/fid"] != training.data.metrics["eval/fid"]  # other samples
    generated = [a.path for a in client.list_artifacts(ours.info.run_id, "generate")]
    assert "generate/grid.png" in generated
    assert [m.step for m in client.get_metric_history(training_id, "eval/fid")] == [0]
    assert "train/d_loss" not in ours.data.metrics  # train was cached: no copy of its curves


def test_evaluate_registers_each_run_and_best_is_the_lowest_fid(repo):
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    versions = client.search_model_versions("name = 'sagan-generator'")
    fids = {str(v.version): float(v.tags["fid"]) for v in versions}
    # each evaluated run: the two trained, and the evaluate.num_samples edit's child run
    assert len(fids) == 3 and {v.tags["extractor"] for v in versions} == {"encoder"}
    best = client.get_model_version_by_alias("sagan-generator", "best")
    assert fids[str(best.version)] == min(fids.values())


def test_a_process_that_cannot_import_this_repo_draws_faces_from_best(repo, tmp_path):
    drawn = _draw_from_best(f"sqlite:///{repo / 'mlflow.db'}", tmp_path)
    assert drawn == "(3, 32, 32, 3) uint8 True"


def _draw_from_best(tracking_uri: str, cwd: Path) -> str:
    """What a process that cannot import this repository prints after drawing 3 faces from
    ``models:/sagan-generator@best`` in ``tracking_uri``: their shape, dtype, and whether all
    of our code it ran came from the model's own copy."""
    # Only the installed dependencies: `python -S` skips the .pth file of the project's
    # editable install, so `sagan` comes from the model's own copy of the code or not at all.
    script = textwrap.dedent(
        """
        import importlib.util, sys, mlflow, pandas as pd
        assert importlib.util.find_spec("sagan") is None
        model = mlflow.pyfunc.load_model("models:/sagan-generator@best")
        faces = model.predict(pd.DataFrame({"seed": [0], "count": [3]}))
        ours = [m.__file__ for n, m in sys.modules.items() if n.split(".")[0] == "sagan"]
        print(faces.shape, faces.dtype, bool(ours) and all("/code/sagan/" in f for f in ours))
        """
    )
    environment = {
        **os.environ,
        "PYTHONPATH": sysconfig.get_paths()["purelib"],
        "MLFLOW_TRACKING_URI": tracking_uri,
    }
    result = subprocess.run(
        [sys.executable, "-S", "-c", script],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()[-1]


def test_the_served_model_draws_the_faces_generate_drew_and_refuses_bad_requests(repo):
    model_id = json.loads((repo / "models" / "mlflow_run.json").read_text())["model_id"]
    batch = TINY["generate"]["batch_size"]
    generated = np.stack(
        [np.asarray(Image.open(repo / "samples" / "images" / f"{i:06d}.png")) for i in range(batch)]
    )
    with _served(repo, f"models:/{model_id}") as url:

        def faces(count: int) -> np.ndarray:
            request = {"dataframe_split": {"columns": ["seed", "count"], "data": [[0, count]]}}
            answer = requests.post(f"{url}/invocations", json=request, timeout=120)
            assert answer.status_code == 200, answer.text
            return np.asarray(answer.json()["predictions"], np.uint8)

        # generate.seed is 0. A request that fills one of generate's batches draws its faces
        # to the bit; a smaller one differs by at most 1 in a few values (the tiny model
        # computes in bfloat16, which rounds differently in batches of another size).
        np.testing.assert_array_equal(faces(batch), generated)
        few = faces(3).astype(int) - generated[:3]
        assert few.shape == (3, 32, 32, 3) and np.abs(few).max() <= 1
        for bad, message in (
            ({"seed": 0, "count": -2}, "count must be at least 1, got -2"),
            ({"seed": 0}, "missing: ['count']"),
        ):
            answer = requests.post(
                f"{url}/invocations", json={"dataframe_records": [bad]}, timeout=120
            )
            assert answer.status_code == 400 and message in answer.json()["message"], answer.text


@contextlib.contextmanager
def _served(repo: Path, model_uri: str):
    """`mlflow models serve` on a free local port: its URL once it answers, stopped after."""
    port = _free_port()
    environment = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "MLFLOW_TRACKING_URI": f"sqlite:///{repo / 'mlflow.db'}",
    }
    command = ["mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local"]
    server = subprocess.Popen(
        [*command, "-h", "127.0.0.1", "-p", str(port)],
        cwd=repo,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its workers stop with it
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_answering(server, f"{url}/ping", lambda: server.stdout.read().decode())
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_answering(server: subprocess.Popen, url: str, output: Callable[[], str]) -> None:
    """Poll ``url`` until it answers (180 s at most); ``output()`` tells why if ``server`` dies."""
    deadline = time.monotonic() + 180
    while True:
        assert server.poll() is None, output()
        assert time.monotonic() < deadline, f"{url} did not answer in 180 s"
        with contextlib.suppress(requests.ConnectionError):
            if requests.get(url, timeout=5).ok:
                return
        time.sleep(0.5)


def test_a_remote_carries_the_outputs_and_a_queued_rerun_of_the_commit_agrees(repo, tmp_path):
    # A local folder stands in for S3 (docs/tracking.md shows the same commands with S3).
    # The project is copied first: committing here would rename the runs' commit.
    assert (repo / "params.yaml").read_text() == (repo.parent / "first" / "params.yaml").read_text()
    origin = tmp_path / "origin"
    shutil.copytree(repo, origin, symlinks=True)
    _run("dvc", "remote", "add", "-d", "shared", str(tmp_path / "remote"), cwd=origin)
    projects.commit(origin, "the outputs' dvc.lock, the remote")
    _run("dvc", "push", cwd=origin)

    # A fresh clone pulls every output: nothing to rerun, the same generator.
    first = _clone(origin, tmp_path / "first")
    _run("dvc", "pull", cwd=first)
    assert json.loads(_run_stdout("dvc", "status", "--json", cwd=first)) == {}
    assert _repro(first) == set()
    np.testing.assert_array_equal(_faces(first), _faces(origin))

    # The same commit again from scratch (--force: every stage, no checkpoint), as a queued
    # experiment: DVC's queue worker, in a temporary copy under .dvc/tmp/exps. With
    # train.deterministic (the default) and an encoder stage that repeats by itself, it
    # draws the same faces as the workspace `dvc repro` did and scores them alike, to the bit.
    _run_queued(first, "again", "--force")
    # Pushed from this clone and pulled into another, it is listed with its FID in both.
    _run("dvc", "exp", "push", "origin", "again", cwd=first)
    second = _clone(origin, tmp_path / "second")
    _run("dvc", "exp", "pull", "origin", "again", cwd=second)
    fids = [_experiment_fids(clone).get("again") for clone in (first, second)]
    assert fids[0] is not None and fids[0] == fids[1], fids
    _run("dvc", "exp", "apply", "again", cwd=second)
    results = _results(second)
    assert results == json.loads((repo.parent / "first_results.json").read_text())
    assert results["eval.json"]["fid"] > 0 and set(results) >= {"train.json", "encoder.json"}


def _clone(origin: Path, target: Path) -> Path:
    _run("git", "clone", "-q", str(origin), str(target), cwd=origin.parent)
    return target


def _faces(repo: Path) -> np.ndarray:
    """What the generator in ``repo``'s models/ draws from the progress grids' noise (and,
    conditional, their attributes)."""
    generator = load_generator(repo / "models")
    noise = fixed_noise(seed=0, latent_dim=TINY["model"]["latent_dim"], count=8)
    conditioning = generator_conditioning(generator, repo / "models" / "attributes.json")
    inputs = model_inputs(noise, fixed_attributes(conditioning, seed=0, count=8))
    return np.asarray(generator(inputs, training=False))


def _experiment_fids(repo: Path) -> dict[str, float]:
    """The FID `dvc exp show` lists for each experiment of ``repo``."""
    shown = json.loads(_run_stdout("dvc", "exp", "show", "--json", cwd=repo))
    fids = {}
    for commit in shown:
        for experiment in commit.get("experiments") or []:
            for revision in experiment["revs"]:
                metrics = revision["data"]["metrics"]["metrics/eval.json"]["data"]
                fids[revision["name"]] = metrics["fid"]
    return fids


def test_a_conditional_pipeline_writes_its_attributes_and_metrics(repo):
    # Last in this module: it leaves the repository conditional.
    edit_params(
        repo,
        {
            "model": {"conditional": True, "pack": 1, "condition_on": ["glasses", "hair_colour"]},
            "generate": {"attributes": {"glasses": 1}},
        },
    )
    assert _repro(repo) == {"train", "generate", "attention", "evaluate"}
    assert json.loads((repo / "models" / "attributes.json").read_text())["names"] == [
        "glasses",
        "hair_colour",
    ]
    rows = (repo / "samples" / "attributes.csv").read_text().splitlines()
    assert rows[0] == "image,glasses,hair_colour" and len(rows) == 41
    assert {row.split(",")[1] for row in rows[1:]} == {"1"}  # generate.attributes holds
    assert (repo / "samples" / "sweep.png").is_file()
    evaluation = json.loads((repo / "metrics" / "eval.json").read_text())
    for key in (
        "conditional_accuracy",
        "conditional_accuracy_glasses",
        "conditional_accuracy_real_hair_colour",
        "intra_fid",
        "intra_fid_glasses_1",
    ):
        assert math.isfinite(evaluation[key]), key
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("sagan")
    run = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])[0]
    assert run.data.params["model.conditional"] == "True"
    assert math.isfinite(run.data.metrics["eval/conditional_accuracy"])
