"""What the tests import: the repository's path, one tiny config factory, tiny datasets, a
tiny training run, and the stage workspace of the process-level tests. (The fixtures they
share are in conftest.py.)"""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

import numpy as np

from sagan import hardware
from sagan.config import Config, DataConfig, ModelConfig, TrainConfig
from sagan.hardware import Hardware

REPO = Path(__file__).resolve().parents[1]
IMAGE_SIZE = 32  # the smallest size with a 16x16 attention map in G and D
BATCH = 8

# What TensorFlow's C++ side prints (sagan/quiet.py hides it): absl's notice, and lines in
# its log format, "E0000 00:00:1796200505.931614    4161 meta_optimizer.cc:967] ...".
TENSORFLOW_LOG_LINE = re.compile(r"WARNING: All log messages before absl|[IWEF]\d{4} \d\d:\d\d:")

AVX2_FLAGS = frozenset({"sse4_2", "avx", "avx2", "fma", "f16c"})
# The CPU classes our machines come in, as the hardware probe sees them. Every test runs with
# the probe replaced by one of them (SAGAN_TEST_CPU names it; zen4 unless set), so that no
# verdict depends on the CPU that runs the suite: run it with each to check.
CPU_CLASSES = {
    "avx2": Hardware(AVX2_FLAGS, ()),  # an AVX2-only EPYC (Zen 2): float32, XLA
    "zen4": Hardware(AVX2_FLAGS | {"avx512f", "avx512_bf16"}, ()),  # Zen 4/5: bfloat16
    "amx": Hardware(AVX2_FLAGS | {"avx512f", "avx512_bf16", "amx_tile", "amx_bf16"}, ()),  # Xeon
}
DEFAULT_CPU_CLASS = "zen4"
# This machine's own probe (conftest.py replaces the module's), for the tests that compare
# with what a stage process resolved.
real_hardware = hardware.detect_hardware


def tensorflow_noise(printed: str) -> list[str]:
    """The lines of ``printed`` that are TensorFlow's C++ logs."""
    return [line for line in printed.splitlines() if TENSORFLOW_LOG_LINE.search(line)]


def tiny_config(conditional: bool = False, **train_overrides) -> Config:
    """The smallest Config that exercises every part: 32px faces, 8-channel networks, float32
    without XLA, 4 generator updates with a log row, a sample grid and a checkpoint every 2."""
    return Config(
        data=DataConfig(
            image_size=IMAGE_SIZE,
            num_train=64,
            num_test=16,
            num_validation=16,
            images_per_shard=32,
        ),
        # The default packed D (model.pack 2); the conditional projection D judges single images.
        model=ModelConfig(
            latent_dim=16,
            g_width=8,
            d_width=8,
            conditional=conditional,
            pack=1 if conditional else 2,
        ),
        train=TrainConfig(
            **{
                "batch_size": BATCH,
                "steps": 4,
                "checkpoint_every": 2,
                "log_every": 2,
                "sample_every": 2,
                "mixed_precision": "none",
                "jit_compile": False,  # XLA only where a test asks: compiling outweighs 4 steps
                "ema_start": 1,  # the default EMA generator, averaging from update 2
                "standing_samples": 4 * BATCH,  # the EMA refit in 4 batches, not 512 / 8
                **train_overrides,
            }
        ),
    )


def tiny_model(conditional: bool = False, **overrides) -> ModelConfig:
    """tiny_config()'s networks, with ``overrides`` of their ModelConfig fields."""
    return dataclasses.replace(tiny_config(conditional).model, **overrides)


def images(
    count: int = 64, seed: int = 0, nan_from: int | None = None, image_size: int = IMAGE_SIZE
):
    """Batches of ``BATCH`` uniform-noise images, repeated; NaN from image ``nan_from`` on."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    pixels = rng.uniform(-1, 1, (count, image_size, image_size, 3)).astype("float32")
    pixels[nan_from : count if nan_from is not None else 0] = np.nan
    return tf.data.Dataset.from_tensor_slices(pixels).repeat().batch(BATCH, drop_remainder=True)


def labels(count: int = 64) -> np.ndarray:
    """(count, 2) labels of two attributes (3 and 2 classes), repeating a 4-row pattern."""
    return np.tile(np.array([[0, 1], [2, 0], [2, 1], [1, 1]], np.int32), (count // 4, 1))


def labelled_images(count: int = 64, image_size: int = IMAGE_SIZE):
    import tensorflow as tf

    pixels = images(count, image_size=image_size).unbatch()
    return tf.data.Dataset.zip(
        pixels, tf.data.Dataset.from_tensor_slices(labels(count)).repeat()
    ).batch(BATCH, drop_remainder=True)


def conditioning():
    """The conditioning on attributes ("b", "a") of :func:`labels`."""
    from sagan.model.conditioning import conditioning_from_labels

    return conditioning_from_labels(("b", "a"), ("a", "b"), (3, 2), labels())


def fingerprint_of(config: Config) -> str:
    """The checkpoint folder name of ``config`` on this machine."""
    from sagan.training.checkpoints import fingerprint
    from sagan.training.settings import resolve_settings

    return fingerprint(resolve_settings(config))


def train_tiny(config: Config, root: Path, dataset=None):
    """``config`` trained by the real loop on :func:`images` at its data.image_size (or on
    ``dataset``) into ``root`` (checkpoints/, plots/); the trainer and the final metrics."""
    from sagan.training.loop import TrainPaths, train
    from sagan.training.settings import resolve_settings
    from sagan.training.step import GANTrainer

    size = config.data.image_size
    attributes = conditioning() if config.model.conditional else None
    trainer = GANTrainer(resolve_settings(config), conditioning=attributes)
    paths = TrainPaths(checkpoints=root / "checkpoints", plots=root / "plots")
    default = labelled_images(image_size=size) if attributes else images(image_size=size)
    return trainer, train(trainer, dataset or default, 64, paths)


def stage_workspace(
    root: Path, prepared: Path, model: dict | None = None, train: dict | None = None
) -> Path:
    """A folder where ``python -m stages.train`` runs as `dvc repro` would run it: params.yaml
    with tiny networks (``model`` and ``train`` overrides on top) and ``prepared`` (made with
    tiny_config().data) copied to data/prepared."""
    import yaml

    from sagan.config import config_from_dict

    root.mkdir()
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    data = tiny_config().data  # the params prepared was made with
    params["data"].update(
        num_train=data.num_train,
        num_test=data.num_test,
        num_validation=data.num_validation,
        image_size=data.image_size,
        images_per_shard=data.images_per_shard,
    )
    params["model"].update(latent_dim=16, g_width=8, d_width=8, **(model or {}))
    tiny_train = {
        "batch_size": 8,
        "checkpoint_every": 4,
        "log_every": 4,
        "sample_every": 12,
        "deterministic": True,
        "ema_start": 1,
        "standing_samples": 32,
        "eval_every": None,  # no encoder or validation features here (test_quality.py has them)
        "keep_best": None,
    }
    params["train"].update({**tiny_train, **(train or {})})
    assert config_from_dict(params).data == data
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copytree(prepared, root / "data" / "prepared")
    return root


def start_stage(
    cwd: Path,
    stage: str = "train",
    environment: dict[str, str] | None = None,
    cpu: int | None = None,
):
    """``python -m stages.<stage>`` started in ``cwd`` (output and errors in one text pipe),
    with this environment plus ``environment``, MLFLOW_TRACKING_URI left out; pinned to CPU
    ``cpu`` when given."""
    import os
    import subprocess
    import sys

    env = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}
    env.update(PYTHONPATH=str(REPO), **(environment or {}))
    return subprocess.Popen(
        [sys.executable, "-m", f"stages.{stage}"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=None if cpu is None else lambda: os.sched_setaffinity(0, {cpu}),
    )


def perceptual_options(weights: Path) -> dict:
    """tiny_config() overrides that switch the perceptual loss on, with two cheap layers."""
    return {
        "perceptual_weight": 1.0,
        "perceptual_layers": ("block1_conv2", "block2_conv2"),
        "perceptual_weights": str(weights),
    }
