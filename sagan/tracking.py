"""MLflow tracking: the only module that talks to MLflow's tracking store and model registry.

The training loop reports through the small :class:`Tracker` interface, so the library runs
and is tested without a tracking store (:class:`NullTracker`).

One MLflow run per set of params that produced the metrics in it. Train opens a run and
records its id in ``RUN_FILE``; generate, attention and evaluate log into the run of that
model whose params are the ones they run with (:func:`stage_run`): the training run, or,
where train is cached and other params changed (``dvc exp run -S generate.seed=1``), a run
of their own nested under it (MLflow's child run), so that the training run is never
rewritten under params that did not produce its metrics.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from filelock import FileLock

from sagan.config import Config, flatten
from sagan.files import read_json, write_json

logger = logging.getLogger(__name__)

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"  # the one documented environment override


BEST_ALIAS = "best"
EXPERIMENT_NAME = "dvc_exp_name"
BASELINE = "dvc_exp_baseline"  # the commit a DVC experiment started from
PARENT = "mlflow.parentRunId"  # MLflow's nesting: the UI shows the child under its parent
SOURCE_TYPE, SOURCE_NAME = "mlflow.source.type", "mlflow.source.name"
SOURCE_COMMIT = "mlflow.source.git.commit"
REGISTERED_MODEL_DESCRIPTION = (
    "SAGAN generators: a table of seed and count (or z) in, uint8 faces out. "
    "Version tags: fid, recall, extractor; the alias best: the lowest FID of an extractor."
)


class TrackingError(RuntimeError):
    """The tracking store cannot be reached or written."""


@contextmanager
def _store_errors(uri: str) -> Iterator[None]:
    """MLflow's errors (a server gone mid-run among them: MLflow retries, then gives up) as one
    line that names the store."""
    from mlflow.exceptions import MlflowException
    from requests import RequestException

    try:
        yield
    except (MlflowException, RequestException) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise TrackingError(
            f"lost the MLflow store {uri} ({reason}); the checkpoints are kept: once it is "
            "back, rerun the stage to resume into the same run"
        ) from error


# Where a metric comes from, as the first part of its MLflow name: the run page shows one
# section per part (train/d_loss, val/fid, eval/fid, ceiling/test/fid). Runs logged before
# these names keep theirs (d_loss, val_fid, eval_fid, ceiling_test_fid).
TRAIN, VALIDATION, EVALUATION, CEILING = "train", "val", "eval", "ceiling"


def section(name: str, metrics: dict[str, float]) -> dict[str, float]:
    """``metrics`` named into the run page's section ``name``: ``{f"{name}/{key}": value}``."""
    return {f"{name}/{key}": value for key, value in metrics.items()}


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

    def __init__(self, tracking_uri: str, run_id: str, model_id: str | None = None):
        from mlflow.tracking import MlflowClient

        self.tracking_uri = tracking_uri
        self.run_id = run_id
        self.model_id = model_id  # the logged generator's, once train has logged it
        self.client = MlflowClient(tracking_uri)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        entries = [Metric(key, float(value), now, step) for key, value in metrics.items()]
        with _store_errors(self.tracking_uri):
            self.client.log_batch(self.run_id, metrics=entries)

    def log_artifact(self, path: Path, artifact_dir: str | None = None) -> None:
        with _store_errors(self.tracking_uri):
            self.client.log_artifact(self.run_id, str(path), artifact_dir)

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        entries = [Param(key, str(value)) for key, value in params.items()]
        with _store_errors(self.tracking_uri):
            for start in range(0, len(entries), 100):  # MLflow takes at most 100 params a batch
                self.client.log_batch(self.run_id, params=entries[start : start + 100])

    def log_python_model(
        self,
        model_file: Path,
        artifacts: dict[str, Path],
        code_dir: Path,
        signature: Any,
        input_example: Any,
        requirements: list[str],
    ) -> str:
        """A pyfunc model from code (``model_file``, not a pickle) named ``generator``, with
        ``code_dir`` (a package) copied in; returns its MLflow model id."""
        import mlflow

        mlflow.set_tracking_uri(self.tracking_uri)
        with _store_errors(self.tracking_uri), mlflow.start_run(run_id=self.run_id):
            info = mlflow.pyfunc.log_model(
                name="generator",
                python_model=str(model_file),
                artifacts={name: str(path) for name, path in artifacts.items()},
                code_paths=[str(code_dir)],
                signature=signature,
                input_example=input_example,
                pip_requirements=requirements,
            )
        self.model_id = info.model_id
        return info.model_id

    def register_generator(self, name: str, scores: dict[str, float], extractor: str) -> str:
        """Register the logged generator as a version of ``name``, tagged with its scores.

        Moves the alias ``best`` to the version of lowest FID among those scored with
        ``extractor`` (FIDs of different feature networks do not compare) and returns the
        version. Evaluating the same run again updates its version, adds none.
        """
        from mlflow.exceptions import MlflowException

        if self.model_id is None:
            raise TrackingError(
                "the MLflow run holds no logged generator (models/mlflow_run.json names none): "
                "rerun train"
            )
        tags = {"fid": str(scores["fid"]), "recall": str(scores["recall"]), "extractor": extractor}
        try:
            with _store_lock(self.tracking_uri):  # two evaluations must not race for "best"
                version = self._model_version(name)
                for key, tag in tags.items():
                    self.client.set_model_version_tag(name, version, key, tag)
                scored = [
                    v
                    for v in self.client.search_model_versions(f"name = '{name}'")
                    if v.tags.get("extractor") == extractor and "fid" in v.tags
                ]
                best = min(scored, key=lambda v: float(v.tags["fid"]))
                self.client.set_registered_model_alias(name, BEST_ALIAS, best.version)
        except MlflowException as error:
            raise TrackingError(f"cannot register the generator as {name!r}: {error}") from error
        return version

    def _model_version(self, name: str) -> str:
        """This run's version of ``name``, created (with the registered model, if new) when
        missing."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.create_registered_model(name, description=REGISTERED_MODEL_DESCRIPTION)
        except MlflowException as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        # A run trains one generator: logged again (train rerun on its finished checkpoint),
        # it has the same weights, and keeps its version.
        for version in self.client.search_model_versions(
            f"name = '{name}' and run_id = '{self.run_id}'"
        ):
            return str(version.version)
        source = self.client.get_logged_model(self.model_id).artifact_location
        created = self.client.create_model_version(
            name, source, run_id=self.run_id, model_id=self.model_id
        )
        return str(created.version)

    def finish(self, status: str = "FINISHED") -> None:
        with _store_errors(self.tracking_uri):
            self.client.set_terminated(self.run_id, status)


def start_run(
    config: Config,
    tags: dict[str, str],
    run_id: str | None = None,
    run_file: Path | None = None,
) -> MlflowTracker:
    """Open (or, given ``run_id``, reopen) a run; fail now if the store is down.

    A new run's id goes to ``run_file`` as soon as the run exists, before its params are
    logged, so that a process killed meanwhile leaves a run the next attempt reopens rather
    than one left RUNNING for good.
    """
    uri = resolve_tracking_uri(config.mlflow.tracking_uri, repo_root())
    with _opened_store(uri) as client:
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
                config.mlflow.experiment, artifact_location=_artifact_root(uri, repo_root())
            )
        )
        run = client.create_run(
            experiment_id, tags=tags, run_name=_run_name(client, experiment_id, tags)
        )
    tracker = MlflowTracker(uri, run.info.run_id)
    if run_file is not None:
        write_run_file(run_file, tracker)
    tracker.log_params(flatten(config))
    return tracker


@contextmanager
def _opened_store(uri: str) -> Iterator[Any]:
    """A client of the store ``uri``, used under the store's lock; its failures as one line."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        _check_server(uri)
        # Opening a store first creates its tables, and the first run its experiment: two
        # processes doing either at once (`dvc queue start -j 2` on a fresh mlflow.db) fail
        # with "table already exists" or a duplicate experiment, so they take turns.
        with _store_lock(uri):
            yield MlflowClient(uri)
    except (MlflowException, OSError) as error:
        raise TrackingError(
            f"cannot use the MLflow store {uri} (mlflow.tracking_uri or ${TRACKING_URI_ENV}): "
            f"{error}"
        ) from error


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
    """Git commit, DVC experiment name and baseline, and data manifest hash, where known, and
    MLflow's source tags (the UI's *Source* column: the pipeline at that commit)."""
    tags = {SOURCE_TYPE: "LOCAL", SOURCE_NAME: "dvc.yaml"}
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    if commit.returncode == 0:
        tags["git_commit"] = tags[SOURCE_COMMIT] = commit.stdout.strip()
    # DVC's own variables, set for the stages of `dvc exp run`
    if os.environ.get("DVC_EXP_NAME"):
        tags[EXPERIMENT_NAME] = os.environ["DVC_EXP_NAME"]
    if os.environ.get("DVC_EXP_BASELINE_REV"):
        tags[BASELINE] = os.environ["DVC_EXP_BASELINE_REV"]
    if manifest_sha256:
        tags["data_manifest_sha256"] = manifest_sha256
    return tags


def _run_name(client, experiment_id: str, tags: dict[str, str]) -> str | None:
    """The DVC experiment's name, else the short commit and a counter (``1a2b3c4-2``)."""
    if EXPERIMENT_NAME in tags:
        return tags[EXPERIMENT_NAME]
    if "git_commit" not in tags:
        return None  # MLflow picks a random one
    short = tags["git_commit"][:7]
    runs = client.search_runs(
        [experiment_id], filter_string=f"attributes.run_name LIKE '{short}-%'", max_results=1000
    )
    return f"{short}-{len(runs) + 1}"


def write_run_file(path: Path, tracker: MlflowTracker) -> None:
    """Record the run id (and the logged generator's model id) for the later stages."""
    record = {"run_id": tracker.run_id}
    if tracker.model_id is not None:
        record["model_id"] = tracker.model_id
    write_json(path, record)


def reopen_run(config: Config, run_file: Path) -> MlflowTracker:
    """The run ``run_file`` names, reopened (train resuming its run)."""
    record = _run_record(run_file)
    tracker = start_run(config, tags={}, run_id=record["run_id"])
    tracker.model_id = record.get("model_id")
    return tracker


def stage_run(config: Config, run_file: Path) -> MlflowTracker:
    """The run that generate, attention and evaluate log into: of the training run
    ``run_file`` names and its child runs, the one whose params are ``config``'s; a new
    child when none is (opened by the first of these stages to rerun, found by the others).

    The child holds ``config``'s params (all of params.yaml) and this execution's tags, and
    the id of the training run's generator, which it points to rather than copies. The
    training run is only read, unless its params are ``config``'s: then the stages finish
    what they began there (a stage killed and rerun, say).
    """
    record = _run_record(run_file)
    training_id = record["run_id"]
    params = {key: str(value) for key, value in flatten(config).items()}
    uri = resolve_tracking_uri(config.mlflow.tracking_uri, repo_root())
    with _opened_store(uri) as client:
        training = client.get_run(training_id)
        children = client.search_runs(
            [training.info.experiment_id], f"tags.`{PARENT}` = '{training_id}'"
        )
    same = [run for run in (training, *children) if _has_params(run, params)]
    if same:
        tracker = start_run(config, tags={}, run_id=same[0].info.run_id)
    else:
        tracker = start_run(config, {**run_tags(None), PARENT: training_id})
        logger.info("other params than the training run %s: a run under it", training_id)
    tracker.model_id = record.get("model_id")
    return tracker


def _has_params(run: Any, params: dict[str, str]) -> bool:
    return all(run.data.params.get(key) == value for key, value in params.items())


def _run_record(run_file: Path) -> dict:
    if not run_file.is_file():
        raise TrackingError(f"{run_file} is missing: run the train stage first")
    return read_json(run_file)
