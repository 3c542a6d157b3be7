"""Training checkpoints that resume exactly and never load into the wrong model.

Checkpoints live in ``checkpoints/<fingerprint>/``, where the fingerprint hashes every
param that shapes the run (the model, the image size, the data and all of ``train``
except the budget and the logging cadence). Changing such a param therefore starts a
fresh run in a new folder, leaving the old one intact; raising ``train.steps`` resumes
and extends. A folder whose files do not fit the current model is an error, never a
silent partial load.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import tempfile
from pathlib import Path

import tensorflow as tf

from sagan.files import atomic_directory, read_json, write_json
from sagan.training.settings import TrainingSettings

logger = logging.getLogger(__name__)

# Keys that change how long or how visibly a run trains, which of its checkpoints is
# exported, or how its samples are drawn, not what its updates compute.
_BUDGET_KEYS = frozenset(
    {
        "steps",
        "epochs",
        "checkpoint_every",
        "keep_checkpoints",
        "log_every",
        "sample_every",
        "worker_wait",
        "eval_every",
        "eval_samples",
        "keep_best",
        "standing_samples",  # the EMA generator's refit, overwritten by every update
    }
)
# Model keys an unconditional run leaves unused: left out of its identity, so unconditional
# runs keep the fingerprints (and checkpoint folders) they had before conditioning existed.
_CONDITIONAL_KEYS = frozenset({"conditional", "condition_on"})
# Keys added later, left out while off so that older runs keep their fingerprints.
_OFF_MODEL_VALUES = {
    "discriminator_scales": (1,),
    "architecture": "reference",
    "minibatch_stddev": None,
    "pack": 1,
    "d_depth": 0,
}
_OFF_VALUES = {
    "augment": None,
    "perceptual_weight": 0.0,
    "progressive": None,
    "consistency_weight": 0.0,
    "lr_schedule": "constant",
    "r1_weight": 0.0,
}
# Train keys that only matter while the key they belong to is on (not at its _OFF_VALUES).
_DEPENDENT_KEYS = {
    "perceptual_weight": ("perceptual_layers", "perceptual_weights"),
    "progressive": ("progressive_steps", "progressive_fade"),
    "r1_weight": ("r1_every",),
}
IDENTITY_FILE = "run_identity.json"
BEST_DIR = "best"  # beside the rolling checkpoints: the best one so far (train.keep_best)
BEST_RECORD = "best.json"  # in BEST_DIR: its step, the metric and the score


class CheckpointError(RuntimeError):
    """A checkpoint folder that cannot be restored into the current model."""


def run_identity(settings: TrainingSettings) -> dict:
    """The params a checkpoint must share with the current run to be resumed.

    ``train.mixed_precision`` and ``train.jit_compile`` set to ``auto`` count as what they
    resolved to.
    """
    config = settings.config
    train = _without_off_values(config.train, _OFF_VALUES)
    unused = {key for owner, keys in _DEPENDENT_KEYS.items() if owner not in train for key in keys}
    budget = _BUDGET_KEYS
    if config.train.lr_schedule == "linear":  # the rates follow the budget: another is another run
        budget = budget - {"steps", "epochs"}
    train = {key: value for key, value in train.items() if key not in budget | unused}
    train["mixed_precision"] = settings.precision.policy
    train["jit_compile"] = settings.xla.jit_compile
    model = {
        key: value
        for key, value in _without_off_values(config.model, _OFF_MODEL_VALUES).items()
        if config.model.conditional or key not in _CONDITIONAL_KEYS
    }
    data = dataclasses.asdict(config.data)
    if config.data.source == "synthetic":  # its validation faces come after every other
        del data["num_validation"]
    return {"data": data, "model": model, "train": train}


def _without_off_values(section, off_values: dict) -> dict:
    """The section's keys and values, less those at their ``off_values`` entry."""
    return {
        key: value
        for key, value in dataclasses.asdict(section).items()
        if not (key in off_values and value == off_values[key])
    }


def fingerprint(settings: TrainingSettings) -> str:
    identity = json.dumps(run_identity(settings), sort_keys=True)
    return hashlib.sha256(identity.encode()).hexdigest()[:12]


class Checkpoints:
    """A ``tf.train.CheckpointManager`` over the trainer's state in its fingerprint folder."""

    def __init__(
        self, root: Path, settings: TrainingSettings, keep: int, writer: bool = True, **state
    ):
        """``writer``: False for a multi-worker job's non-chief tasks. They restore from the
        chief's folder and write each save to a temporary folder that they delete, since
        every worker must take part in a save."""
        self.directory = Path(root) / fingerprint(settings)
        self.identity = run_identity(settings)
        self.checkpoint = tf.train.Checkpoint(**state)
        self.writer = writer
        self.manager = None
        if writer:
            self.manager = tf.train.CheckpointManager(
                self.checkpoint, str(self.directory), max_to_keep=keep
            )

    def restore_latest(self) -> bool:
        """Restore the newest checkpoint; False (and a fresh start) when there is none."""
        latest = tf.train.latest_checkpoint(str(self.directory))
        latest = latest or self._newest_without_state_file()
        if latest is None:
            others = sorted(p.name for p in self.directory.parent.glob("*") if p.is_dir())
            others = [name for name in others if name != self.directory.name]
            if others:
                logger.info(
                    "no checkpoint for these params (%s); starting fresh. Checkpoints of other "
                    "params stay in %s: %s",
                    self.directory.name,
                    self.directory.parent,
                    ", ".join(others),
                )
            return False
        self._check_identity()
        try:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
        # IndexError: what TensorFlow raises for a truncated .data file.
        except (tf.errors.OpError, AssertionError, ValueError, IndexError) as error:
            raise CheckpointError(
                f"checkpoint {latest} does not fit the current model ({error}). "
                f"Delete {self.directory} to start this run afresh."
            ) from error
        logger.info("resumed from %s", latest)
        return True

    def _newest_without_state_file(self) -> str | None:
        """The newest ``ckpt-N`` when the ``checkpoint`` state file is missing or damaged.

        TensorFlow reads such a state file as "no checkpoint" with a mere warning, and a kill
        during the very first save leaves one behind: starting over would silently throw the
        finished steps away. An ``.index`` is written after its data, so it marks a whole one.
        """
        numbers = [int(p.stem.split("-")[1]) for p in self.directory.glob("ckpt-*.index")]
        if not numbers:
            return None
        newest = str(self.directory / f"ckpt-{max(numbers)}")
        logger.warning("%s is missing or damaged; using %s", self.directory / "checkpoint", newest)
        return newest

    def save(self, step: int) -> str:
        """Write the checkpoint of ``step``; a failed write (a full disk) leaves the older ones."""
        if not self.writer:
            with tempfile.TemporaryDirectory(prefix="sagan-worker-checkpoint-") as scratch:
                return self.checkpoint.write(str(Path(scratch) / f"ckpt-{step}"))
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            identity_path = self.directory / IDENTITY_FILE
            if not identity_path.exists():
                write_json(identity_path, self.identity)
            return self.manager.save(checkpoint_number=step)
        except (OSError, tf.errors.OpError) as error:
            raise CheckpointError(
                f"cannot write the checkpoint of step {step} to {self.directory} ({error}); "
                f"the earlier ones are kept: {self.manager.checkpoints or 'none yet'}"
            ) from error

    def save_best(self, step: int, record: dict) -> None:
        """Replace the best checkpoint with the state of ``step`` and its ``record``, whole
        (written aside, then renamed into place): never a mix of two steps."""
        if not self.writer:
            self.save(step)  # every worker takes part; only the chief keeps it
            return
        try:
            with atomic_directory(self.directory / BEST_DIR) as staging:
                self.checkpoint.write(str(staging / f"ckpt-{step}"))
                write_json(staging / BEST_RECORD, {**record, "step": step})
        except (OSError, tf.errors.OpError) as error:
            raise CheckpointError(
                f"cannot write the best checkpoint (step {step}) to {self.directory / BEST_DIR} "
                f"({error}); the previous best is kept"
            ) from error

    def best_record(self) -> dict | None:
        """The best checkpoint's record (step, metric, score), or None when there is none."""
        path = self.directory / BEST_DIR / BEST_RECORD
        return read_json(path) if path.is_file() else None

    def restore_best(self) -> dict:
        """Load the best checkpoint into the trainer's state; its record."""
        record = self.best_record()
        if record is None:
            raise CheckpointError(f"{self.directory / BEST_DIR} holds no best checkpoint")
        path = self.directory / BEST_DIR / f"ckpt-{record['step']}"
        try:
            self.checkpoint.restore(str(path)).assert_existing_objects_matched()
        except (tf.errors.OpError, AssertionError, ValueError, IndexError) as error:
            raise CheckpointError(f"best checkpoint {path} cannot be restored ({error})") from error
        return record

    def _check_identity(self) -> None:
        identity_path = self.directory / IDENTITY_FILE
        if not identity_path.exists():
            return
        saved = read_json(identity_path)
        current = json.loads(json.dumps(self.identity))
        if saved != current:
            differences = "; ".join(
                f"{key}: {saved_value!r} there, {value!r} now"
                for key, saved_value, value in _differences(
                    _with_off_values(saved), _with_off_values(current)
                )
            )
            raise CheckpointError(
                f"{self.directory} holds a run with other params than the current ones "
                f"({differences}; see {identity_path}). Delete the folder to start afresh."
            )


def _with_off_values(identity: dict) -> dict:
    """A (JSON) identity with the keys it leaves out while off written in, at their off value."""
    off = json.loads(json.dumps({"model": _OFF_MODEL_VALUES, "train": _OFF_VALUES}))
    return {
        section: {**off.get(section, {}), **values} if isinstance(values, dict) else values
        for section, values in identity.items()
    }


def _differences(saved: dict, current: dict, prefix: str = "") -> list[tuple[str, object, object]]:
    """(dotted key, saved value, current value) for each param the two identities disagree on."""
    found = []
    for key in sorted(saved.keys() | current.keys()):
        old, new = saved.get(key), current.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            found += _differences(old, new, f"{prefix}{key}.")
        elif old != new:
            found.append((f"{prefix}{key}", old, new))
    return found
