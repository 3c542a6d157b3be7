"""The multi-worker job this process belongs to: TF_CONFIG checked, the chief named.

``train.strategy: multi_worker`` runs TensorFlow's MultiWorkerMirroredStrategy, which takes
the cluster from the ``TF_CONFIG`` environment variable (TensorFlow's convention, read here
once, by :func:`read_cluster`). It is checked before anything starts, so that a malformed
one is one line naming the problem, and a worker that never joins ends the stage after
``train.worker_wait`` seconds instead of hanging: TensorFlow's own wait is not bounded and
yields to neither Ctrl-C nor SIGTERM.

The chief (task ``chief``, or worker 0 where the cluster has none) alone writes the MLflow
run, ``models/``, ``metrics/`` and ``plots/``; every worker takes part in each checkpoint,
as TensorFlow requires, the others into temporary folders they delete.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import tensorflow as tf

logger = logging.getLogger(__name__)
TF_CONFIG = "TF_CONFIG"
TASK_TYPES = ("chief", "worker")
EXAMPLE = json.dumps(
    {"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}
)
_HELP = f"set it on every machine, e.g. {EXAMPLE} (README, Scaling out)"


class ClusterError(ValueError):
    """A TF_CONFIG that cannot describe this process's place in a multi-worker job."""


@dataclass(frozen=True)
class Cluster:
    tasks: dict[str, tuple[str, ...]]  # task type -> addresses ("host:port")
    task_type: str
    index: int

    @property
    def name(self) -> str:
        return f"{self.task_type} {self.index}"

    @property
    def address(self) -> str:
        return self.tasks[self.task_type][self.index]

    @property
    def is_chief(self) -> bool:
        if "chief" in self.tasks:
            return self.task_type == "chief"
        return self.index == 0

    @property
    def peers(self) -> dict[str, str]:
        """Every other task of the job: its name and address."""
        return {
            f"{task_type} {index}": address
            for task_type, addresses in self.tasks.items()
            for index, address in enumerate(addresses)
            if (task_type, index) != (self.task_type, self.index)
        }


def read_cluster(strategy: str, tf_config: str | None) -> Cluster | None:
    """The job described by ``tf_config`` (TF_CONFIG's text) for ``train.strategy``.

    None where this process trains alone: any other strategy (a TF_CONFIG it would ignore
    is reported), and raises a ClusterError when multi_worker lacks a sound TF_CONFIG.
    """
    if strategy != "multi_worker":
        if tf_config:
            logger.warning("TF_CONFIG is set but train.strategy is %s: training alone", strategy)
        return None
    if not tf_config:
        raise ClusterError(f"train.strategy is multi_worker but {TF_CONFIG} is not set: {_HELP}")
    try:
        raw = json.loads(tf_config)
    except json.JSONDecodeError as error:
        raise ClusterError(f"{TF_CONFIG} is not valid JSON ({error}): {_HELP}") from error
    if not isinstance(raw, dict):
        raise ClusterError(f"{TF_CONFIG} must be a JSON object: {_HELP}")
    tasks = _tasks(raw.get("cluster"))
    task = raw.get("task")
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise ClusterError(f"{TF_CONFIG} has no task {{type, index}} for this process: {_HELP}")
    task_type, index = task["type"], task["index"]
    if task_type not in tasks:
        raise ClusterError(
            f"{TF_CONFIG} task type {task_type!r} is not in its cluster ({', '.join(tasks)})"
        )
    if (
        isinstance(index, bool)
        or not isinstance(index, int)
        or not 0 <= index < len(tasks[task_type])
    ):
        raise ClusterError(
            f"{TF_CONFIG} task index {index!r} is out of range: the cluster has "
            f"{len(tasks[task_type])} {task_type} task(s), indexed from 0"
        )
    return Cluster(tasks, task_type, index)


def _tasks(cluster) -> dict[str, tuple[str, ...]]:
    if not isinstance(cluster, dict) or not cluster.get("worker"):
        raise ClusterError(f"{TF_CONFIG} has no cluster with a worker list: {_HELP}")
    tasks = {}
    for task_type, addresses in cluster.items():
        if task_type not in TASK_TYPES:
            raise ClusterError(
                f"{TF_CONFIG} cluster has task type {task_type!r}; multi_worker training "
                f"uses {' and '.join(TASK_TYPES)} only"
            )
        if not isinstance(addresses, list) or not all(
            isinstance(a, str) and a.rpartition(":")[2].isdigit() for a in addresses
        ):
            raise ClusterError(
                f"{TF_CONFIG} cluster {task_type} must be a list of host:port, got {addresses!r}"
            )
        tasks[task_type] = tuple(addresses)
    every = [address for addresses in tasks.values() for address in addresses]
    repeated = sorted({a for a in every if every.count(a) > 1})
    if repeated:
        raise ClusterError(f"{TF_CONFIG} lists {repeated[0]} for more than one task")
    return tasks


def _listening(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


def join(cluster: Cluster, wait_seconds: float) -> tf.distribute.Strategy:
    """MultiWorkerMirroredStrategy for ``cluster``, once every task has joined.

    TensorFlow blocks until all tasks are up, in C++ that holds the interpreter and ignores
    SIGTERM and Ctrl-C. A watchdog process ends this one (SIGKILL) after ``wait_seconds``,
    with one line naming the tasks that are not listening. Nothing has been written by then.
    """
    import tensorflow as tf

    job = {"name": cluster.name, "peers": cluster.peers}
    command = [sys.executable, "-m", __name__, str(os.getpid()), str(wait_seconds), json.dumps(job)]
    watchdog = subprocess.Popen(command)
    logger.info(
        "%s of %d at %s: waiting for the others",
        cluster.name,
        len(cluster.peers) + 1,
        cluster.address,
    )
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    finally:
        watchdog.kill()
        watchdog.wait()
    logger.info(
        "%s: the job has started (%d replicas)", cluster.name, strategy.num_replicas_in_sync
    )
    return strategy


def _watch(pid: int, wait_seconds: float, job: dict) -> None:
    """The watchdog of :func:`join`: after ``wait_seconds``, report and end process ``pid``."""
    time.sleep(wait_seconds)
    absent = [f"{name} ({a})" for name, a in job["peers"].items() if not _listening(a)]
    reason = f"not listening: {', '.join(absent)}" if absent else "every task listens"
    print(
        f"ERROR stages.train: {job['name']}: the job did not start within {wait_seconds:g} s "
        f"(train.worker_wait): {reason}; start every worker with its TF_CONFIG, or check the "
        "addresses",
        file=sys.stderr,
        flush=True,
    )
    os.kill(pid, signal.SIGKILL)


if __name__ == "__main__":
    _watch(int(sys.argv[1]), float(sys.argv[2]), json.loads(sys.argv[3]))
