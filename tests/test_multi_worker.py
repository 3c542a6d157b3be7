"""train.strategy: multi_worker with two real worker processes on 127.0.0.1, one CPU each:
the same losses as one process, one MLflow run and one set of outputs, a resume after one
worker is killed, and a clear end for a TF_CONFIG that cannot work."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from sagan.training.cluster import ClusterError, read_cluster
from tests.helpers import stage_workspace, start_stage

STEPS = 8
# float32 on every machine: in bfloat16 (what `auto` picks on a CPU with bfloat16 units) two
# workers' reductions in another order move the losses by more than the 1e-4 compared below.
TRAIN = {
    "steps": STEPS,
    "log_every": 2,
    "checkpoint_every": 2,
    "sample_every": 8,
    "mixed_precision": "none",
}


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _tf_config(ports: list[int], index: int) -> str:
    workers = [f"127.0.0.1:{port}" for port in ports]
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


def _start_job(root: Path, ports: list[int], indices=(0, 1)):
    """The workers of ``indices``, each on its own CPU, in ``root``."""
    cpus = sorted(os.sched_getaffinity(0))
    return [
        start_stage(root, environment={"TF_CONFIG": _tf_config(ports, i)}, cpu=cpus[i % len(cpus)])
        for i in indices
    ]


def _finish(processes, timeout: float = 300) -> list[str]:
    logs = [process.communicate(timeout=timeout)[0] for process in processes]
    for process, log in zip(processes, logs, strict=True):
        assert process.returncode == 0, log
    return logs


def _losses(root: Path) -> list[dict[str, float]]:
    with (root / "plots" / "train" / "history.csv").open() as handle:
        return [
            {key: float(row[key]) for key in ("step", "d_loss", "g_loss", "d_real", "d_fake")}
            for row in csv.DictReader(handle)
        ]


def _runs(root: Path):
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    return client.search_runs([client.get_experiment_by_name("sagan").experiment_id])


@pytest.fixture
def job(prepared_data, tmp_path):
    def make(name: str, strategy: str = "multi_worker") -> Path:
        return stage_workspace(
            tmp_path / name, prepared_data, train={**TRAIN, "strategy": strategy}
        )

    return make


@pytest.mark.pipeline
def test_two_workers_train_as_one_process_and_the_chief_writes_once(job):
    root = job("job")
    logs = _finish(_start_job(root, _free_ports(2)))
    single = job("single", strategy="default")
    _finish([start_stage(single)])

    for together, alone in zip(_losses(root), _losses(single), strict=True):
        for key, value in alone.items():
            assert together[key] == pytest.approx(value, rel=1e-4, abs=1e-5), (key, together)
    runs = _runs(root)
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.params["train.strategy"] == "multi_worker"
    assert (root / "models" / "generator.keras").is_file()
    assert (root / "metrics" / "train.json").is_file()
    assert "worker 1: done; the chief writes the outputs" in logs[1]
    (folder,) = (root / "checkpoints").iterdir()  # one run, no worker folders beside it
    assert sorted(p.name for p in folder.glob("ckpt-*.index")) == [
        "ckpt-4.index",
        "ckpt-6.index",
        "ckpt-8.index",
    ]
    assert not list(root.rglob(".sagan-tmp.*"))


@pytest.mark.pipeline
def test_a_job_with_a_killed_worker_resumes_from_the_last_checkpoint(job):
    root = job("job")
    ports = _free_ports(2)
    chief, worker = _start_job(root, ports)
    deadline = time.monotonic() + 300
    while not list(root.glob("checkpoints/*/ckpt-4.index")):
        assert chief.poll() is None and worker.poll() is None, chief.stdout.read()
        assert time.monotonic() < deadline, "no checkpoint appeared in time"
        time.sleep(0.05)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    try:  # the chief finds its peer gone and stops, rather than waiting for ever
        chief_log = chief.communicate(timeout=180)[0]
    except Exception:
        chief.kill()
        raise
    assert chief.returncode == 1, chief_log
    assert "the job lost /job:worker/replica:0/task:1 (UnavailableError)" in chief_log
    assert "restart every worker to resume" in chief_log and "Traceback" not in chief_log

    logs = _finish(_start_job(root, _free_ports(2)))
    assert "resumed from checkpoints/" in logs[0] and "resumed from checkpoints/" in logs[1]
    assert _losses(root)[-1]["step"] == STEPS
    runs = _runs(root)
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"  # the chief reopened its run
    assert "resumed from checkpoints/" in logs[0] and "ckpt-" in logs[0]


@pytest.mark.pipeline
def test_a_missing_worker_or_a_bad_tf_config_ends_the_stage_with_one_line(prepared_data, tmp_path):
    root = stage_workspace(
        tmp_path / "alone",
        prepared_data,
        train={**TRAIN, "strategy": "multi_worker", "worker_wait": 5},
    )
    ports = _free_ports(2)
    started = time.monotonic()
    (process,) = _start_job(root, ports, indices=(0,))
    log = process.communicate(timeout=120)[0]
    assert process.returncode == -signal.SIGKILL, log  # the watchdog's end: TensorFlow holds on
    assert time.monotonic() - started < 60
    assert (
        "did not start within 5 s (train.worker_wait): not listening: "
        f"worker 1 (127.0.0.1:{ports[1]})" in log
    )
    assert not (root / "mlflow.db").exists() and not (root / "checkpoints").exists()

    # A TF_CONFIG that cannot work ends the stage at once, on one line, before any work.
    process = start_stage(root, environment={"TF_CONFIG": _tf_config(ports, 2)})
    log = process.communicate(timeout=120)[0]
    assert process.returncode == 1, log
    assert "ERROR stages.train: TF_CONFIG task index 2 is out of range" in log
    assert "Traceback" not in log and not (root / "mlflow.db").exists()


@pytest.mark.parametrize(
    "tf_config, message",
    [
        (None, "train.strategy is multi_worker but TF_CONFIG is not set"),
        ("{cluster", "TF_CONFIG is not valid JSON"),
        ('{"cluster": {"worker": ["a:1", "b:2"]}}', "TF_CONFIG has no task {type, index}"),
        ('{"cluster": {}, "task": {"type": "worker", "index": 0}}', "has no cluster with a worker"),
        (
            '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}',
            "task index 2 is out of range: the cluster has 2 worker task",
        ),
        (
            '{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}',
            "task type 'chief' is not in its cluster",
        ),
        (
            '{"cluster": {"worker": ["a:1", "a:1"]}, "task": {"type": "worker", "index": 0}}',
            "lists a:1 for more than one task",
        ),
        (
            '{"cluster": {"worker": ["a"]}, "task": {"type": "worker", "index": 0}}',
            "must be a list of host:port",
        ),
        (
            '{"cluster": {"worker": ["a:1"], "ps": ["b:2"]}, "task": {"type": "ps", "index": 0}}',
            "task type 'ps'",
        ),
    ],
)
def test_a_tf_config_that_cannot_work_is_named(tf_config, message):
    with pytest.raises(ClusterError, match=message.replace("{", r"\{").replace("}", r"\}")):
        read_cluster("multi_worker", tf_config)


def test_the_chief_is_worker_0_or_the_chief_task():
    workers = '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": %d}}'
    assert read_cluster("multi_worker", workers % 0).is_chief
    assert not read_cluster("multi_worker", workers % 1).is_chief
    with_chief = json.dumps(
        {"cluster": {"chief": ["c:3"], "worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}
    )
    cluster = read_cluster("multi_worker", with_chief)
    assert not cluster.is_chief and cluster.peers == {"chief 0": "c:3"}
    assert read_cluster("mirrored", with_chief) is None  # other strategies train alone
