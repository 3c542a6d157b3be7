"""MLflow tracking: the only module that talks to MLflow.

The training loop reports through the small :class:`Tracker` interface, so the library runs
and is tested without a tracking store (:class:`NullTracker`). One MLflow run spans a whole
pipeline execution: train opens it and records its id in ``RUN_FILE``; later stages reopen
the same run with :func:`reopen_run`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from filelock import FileLock

from sagan.config import Config, flatten
from sagan.files import read_json, write_json

logger = logging.getLogger(__name__)

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"  # the one documented environment override


class TrackingError(RuntimeError):
    """The tracking store cannot be reached or written."""


class Tracker(Protocol):
    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...

    def log_artifact(self, path: Path, artifact_dir: str | None = None) -> None: ...


class NullTracker:
    """Records nothing: for tests and for library use without MLflow."""

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        pass

    def log_artifact(self, path: Path, artifact_dir: str | None = None) -> None:
        pass


def repo_root(cwd: Path | None = None) -> Path:
    """The repository that ``mlflow ui`` runs in, also from a ``dvc exp run --temp/--queue`` copy.

    DVC runs temporary and queued experiments in ``<repo>/.dvc/tmp/exps/<...>``; their runs
    must land in ``<repo>``'s store, not in a store inside the throw-away copy.
    """
    cwd = (cwd or Path.cwd()).resolve()
    parts = cwd.parts
    for i in range(len(parts) - 2):
        if parts[i : i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    return cwd


def resolve_tracking_uri(configured: str, root: Path) -> str:
    """``$MLFLOW_TRACKING_URI`` if set, else ``mlflow.tracking_uri`` with relative paths
    (``sqlite:///mlflow.db``, ``mlruns``) made absolute against ``root``."""
    uri = os.environ.get(TRACKING_URI_ENV) or configured
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return f"sqlite:///{(root / uri.removeprefix('sqlite:///')).resolve()}"
    if "://" not in uri:
        return (root / uri).resolve().as_uri()
    return uri


class MlflowTracker:
    """Logs into one MLflow run through an explicit client (no global active run)."""

    def __init__(self, tracking_uri: str, run_id: str):
        from mlflow.tracking import MlflowClient

        self.tracking_uri = tracking_uri
        self.run_id = run_id
        self.client = MlflowClient(tracking_uri)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        entries = [Metric(key, float(value), now, step) for key, value in metrics.items()]
        self.client.log_batch(self.run_id, metrics=entries)

    def log_artifact(self, path: Path, artifact_dir: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_dir)

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        entries = [Param(key, str(value)) for key, value in params.items()]
        for start in range(0, len(entries), 100):  # MLflow takes at most 100 params a batch
            self.client.log_batch(self.run_id, params=entries[start : start + 100])

    def log_generator(self, generator) -> None:
        """The generator as an MLflow Keras model: z → images, or {z, attributes} → images."""
        import mlflow
        from mlflow.models import infer_signature

        inputs = {x.name: np.zeros((1, *x.shape[1:]), np.float32) for x in generator.inputs}
        example = inputs["z"] if len(inputs) == 1 else inputs  # a conditional G: by input name
        signature = infer_signature(example, generator(example, training=False).numpy())
        import keras
        import tensorflow as tf

        # Pinning the requirements spares MLflow a slow, failure-prone inference.
        requirements = [f"tensorflow=={tf.__version__}", f"keras=={keras.__version__}"]
        mlflow.set_tracking_uri(self.tracking_uri)
        with mlflow.start_run(run_id=self.run_id):
            mlflow.keras.log_model(
                generator, name="generator", signature=signature, pip_requirements=requirements
            )

    def finish(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status)


def start_run(
    config: Config,
    tags: dict[str, str],
    run_id: str | None = None,
    run_file: Path | None = None,
) -> MlflowTracker:
    """Open (or, given ``run_id``, reopen) the pipeline's run; fail now if the store is down.

    A new run's id goes to ``run_file`` as soon as the run exists, before its params are
    logged, so that a process killed meanwhile leaves a run the next attempt reopens rather
    than one left RUNNING for good.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    root = repo_root()
    uri = resolve_tracking_uri(config.mlflow.tracking_uri, root)
    try:
        _check_server(uri)
        # Opening a store first creates its tables, and the first run its experiment: two
        # processes doing either at once (`dvc queue start -j 2` on a fresh mlflow.db) fail
        # with "table already exists" or a duplicate experiment, so they take turns.
        with _store_lock(uri):
            client = MlflowClient(uri)
            if run_id is not None:
                client.update_run(run_id, status="RUNNING")
                return MlflowTracker(uri, run_id)
            experiment = client.get_experiment_by_name(config.mlflow.experiment)
            experiment_id = (
                experiment.experiment_id
                if experiment is not None
                # Artifacts beside the store, not in the working directory (which may be a
                # throw-away `dvc exp run` copy).
                else client.create_experiment(
                    config.mlflow.experiment, artifact_location=_artifact_root(uri, root)
                )
            )
        run = client.create_run(experiment_id, tags=tags)
    except (MlflowException, OSError) as error:
        raise TrackingError(
            f"cannot use the MLflow store {uri} (mlflow.tracking_uri or ${TRACKING_URI_ENV}): "
            f"{error}"
        ) from error
    tracker = MlflowTracker(uri, run.info.run_id)
    if run_file is not None:
        write_run_file(run_file, tracker)
    tracker.log_params(flatten(config))
    return tracker


def _store_lock(uri: str) -> FileLock:
    """A lock shared by every process on this machine that opens the store ``uri``.

    It lives in the temporary directory, not beside the store, so that it never shows up
    as an untracked file in the repository.
    """
    name = hashlib.sha256(uri.encode()).hexdigest()[:16]
    return FileLock(Path(tempfile.gettempdir()) / f"sagan-mlflow-{name}.lock")


def _artifact_root(uri: str, root: Path) -> str | None:
    """``<repo>/mlruns`` for a local store; a tracking server chooses its own."""
    if uri.startswith(("sqlite:", "file:")):
        return (root / "mlruns").resolve().as_uri()
    return None


def _check_server(uri: str) -> None:
    """A tracking server must answer now, not after MLflow's minutes of retries."""
    if not uri.startswith(("http://", "https://")):
        return
    import requests

    try:
        requests.get(f"{uri.rstrip('/')}/health", timeout=10).raise_for_status()
    except requests.RequestException as error:
        raise TrackingError(f"the MLflow server {uri} does not answer: {error}") from error


def run_tags(manifest_sha256: str | None) -> dict[str, str]:
    """Git commit, DVC experiment name and data manifest hash, where known."""
    tags = {}
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    if commit.returncode == 0:
        tags["git_commit"] = commit.stdout.strip()
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc_exp_name"] = os.environ["DVC_EXP_NAME"]
    if manifest_sha256:
        tags["data_manifest_sha256"] = manifest_sha256
    return tags


def write_run_file(path: Path, tracker: MlflowTracker) -> None:
    """Record the run id for the later stages."""
    write_json(path, {"run_id": tracker.run_id})


def reopen_run(config: Config, run_file: Path) -> MlflowTracker:
    """The run that train opened, for generate and evaluate to log into."""
    if not run_file.is_file():
        raise TrackingError(f"{run_file} is missing: run the train stage first")
    return start_run(config, tags={}, run_id=read_json(run_file)["run_id"])
