"""Golden values of the train step: losses and final weights after a few updates of each
update path, recorded before the step was restructured (issue 33), so that a refactor that
changes what the step computes fails here.

On the machine that recorded them (same CPU model, ISA flags and TensorFlow) the check is bit
for bit: every logged value and a digest of every checkpointed variable. Elsewhere kernels
round differently, so only the logged values are compared, to 1e-4 relative.

Record anew (only after a change meant to alter the numbers):
``python -m tests.test_golden_step``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from sagan.config import AUGMENTATIONS, Config
from sagan.training.settings import resolve_settings
from sagan.training.step import GANTrainer
from tests.helpers import conditioning, images, labelled_images, perceptual_options, tiny_config

GOLDEN = Path(__file__).parent / "golden" / "train_step.json"
UPDATES = 3
GROWTH = {"progressive": (16, 32), "progressive_steps": (2,), "progressive_fade": 1}
# Each case stacks options, so that every update path meets each option at least once.
CASES: dict[str, tuple[bool, dict, dict]] = {  # (conditional, train options, model options)
    "default": (False, {}, {}),
    "conditional-augment-consistency-perceptual": (
        True,
        {"augment": AUGMENTATIONS, "consistency_weight": 10.0, "perceptual": True},
        {},
    ),
    "gp-two-critics-multiscale-wasserstein": (
        False,
        {"gp_weight": 10.0, "n_critic": 2, "loss": "wasserstein"},
        {"discriminator_scales": (1, 2)},
    ),
    "alternating-float16-minibatch-stddev": (
        False,
        {"update": "alternating", "mixed_precision": "mixed_float16"},
        {"minibatch_stddev": 2},
    ),
    "growth-bfloat16-bce-no-ema": (
        False,
        {**GROWTH, "mixed_precision": "mixed_bfloat16", "loss": "bce", "ema_decay": None},
        {},
    ),
}


def machine() -> str:
    """What decides the step's rounding: the CPU model, its ISA flags, TensorFlow's version."""
    model, flags = "unknown", ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model == "unknown":
                model = value.strip()
            if key.strip() == "flags" and not flags:
                flags = value
    isa = sorted(f for f in flags.split() if f.startswith(("avx", "amx", "fma", "f16c")))
    return f"{model} | {' '.join(isa)} | tensorflow {tf.__version__}"


def _config(name: str, vgg19_weights: Path) -> Config:
    conditional, train_options, model_options = CASES[name]
    train_options = dict(train_options)
    if train_options.pop("perceptual", False):
        train_options |= perceptual_options(vgg19_weights)
    config = tiny_config(conditional, **train_options)
    return dataclasses.replace(config, model=dataclasses.replace(config.model, **model_options))


def run_case(name: str, vgg19_weights: Path) -> dict:
    """Each update's logged values (exact, as hex) and a digest of every checkpointed weight."""
    config = _config(name, vgg19_weights)
    attributes = conditioning() if config.model.conditional else None
    try:
        trainer = GANTrainer(resolve_settings(config), conditioning=attributes)
        batches = labelled_images() if attributes else images()
        iterator = iter(batches)
        updates = []
        for update in range(1, UPDATES + 1):
            trainer.begin_update(update)
            logged = trainer.train_step(iterator)
            updates.append({key: float(value).hex() for key, value in sorted(logged.items())})
        digest = hashlib.sha256()
        for model_or_state in trainer.checkpointed().values():
            for variable in _variables(model_or_state):
                digest.update(np.asarray(variable).tobytes())
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return {"updates": updates, "weights": digest.hexdigest()}


def _variables(state) -> list:
    if isinstance(state, tf.Variable):
        return [state.numpy()]
    return [v.numpy() for v in state.variables]


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads(GOLDEN.read_text())


@pytest.mark.parametrize("name", list(CASES))
def test_the_step_computes_what_it_computed_before_the_restructuring(name, golden, vgg19_stand_in):
    recorded = golden["cases"][name]
    now = run_case(name, vgg19_stand_in)
    if golden["machine"] == machine():
        assert now == recorded
        return
    assert len(now["updates"]) == len(recorded["updates"])
    for then_update, now_update in zip(recorded["updates"], now["updates"], strict=True):
        assert then_update.keys() == now_update.keys()
        for key, value in then_update.items():
            then_value, now_value = float.fromhex(value), float.fromhex(now_update[key])
            assert math.isclose(now_value, then_value, rel_tol=1e-4, abs_tol=1e-5), (key, name)


def record(vgg19_weights: Path) -> None:
    cases = {name: run_case(name, vgg19_weights) for name in CASES}
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps({"machine": machine(), "cases": cases}, indent=1) + "\n")


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        weights = Path(folder) / "vgg19_stand_in.weights.h5"
        keras.utils.set_random_seed(0)  # as tests/conftest.py's vgg19_stand_in
        keras.applications.VGG19(include_top=False, weights=None).save_weights(weights)
        record(weights)
    sys.exit(0)
