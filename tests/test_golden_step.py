"""Golden values of the train step: losses and final weights after a few updates of each
update path, recorded before the step was restructured (issue 33), so that a refactor that
changes what the step computes fails here.

On the machine that recorded them (same CPU model, ISA flags, TensorFlow and kernel choice:
oneDNN, XLA) the check is bit for bit: every logged value and a digest of every checkpointed
variable. Elsewhere kernels sum in other orders, so only the logged values are compared, to
the tolerance of the case's compute precision (:data:`TOLERANCE`). The portability tests run
the cases in processes whose kernels differ the way another CPU's do (oneDNN off, XLA on) and
hold them to that rule.

Record anew (only after a change meant to alter the numbers):
``python -m tests.test_golden_step``. ``--out FILE`` writes the cases to FILE instead, and
``--xla`` compiles their steps with XLA.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from sagan.config import AUGMENTATIONS, Config
from sagan.training import losses
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


# Off the recording machine a logged value may move by TOLERANCE[precision] * max(|v|, 1)
# (the values are losses of order one, so small ones are held to an absolute bound). The
# largest moves seen, oneDNN off or XLA on against a Zen 4 recording, on an Intel Xeon:
TOLERANCE = {
    # 4e-5: far above float32's 1e-7, because Adam's first updates move each weight by about
    # ±lr whatever its gradient's size, so round-off that flips a tiny gradient moves it 2·lr
    "float32": 1e-3,
    "float16": 5e-3,  # 5 ulp of float16 (2^-10); 2e-4 seen
    "bfloat16": 2e-2,  # 2.5 ulp of bfloat16 (2^-7); 1.7e-3 seen
}
PRECISION = {"none": "float32", "mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}


def machine(xla: bool = False) -> str:
    """What decides the step's rounding: the CPU model, its ISA flags, TensorFlow's version
    and which kernels run (oneDNN's, unless TF_ENABLE_ONEDNN_OPTS=0; XLA's, with ``xla``)."""
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
    kernels = "oneDNN off" if os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "0" else "oneDNN"
    if xla:
        kernels += ", XLA"
    return f"{model} | {' '.join(isa)} | tensorflow {tf.__version__} | {kernels}"


def precision(name: str) -> str:
    """The compute dtype of case ``name``: what its tolerance follows."""
    return PRECISION[CASES[name][1].get("mixed_precision", "none")]


def mismatches(recorded: dict, now: dict, dtype: str | None) -> list[str]:
    """How ``now`` differs from ``recorded``: any bit when ``dtype`` is None (the recording
    machine), else a logged value past ``TOLERANCE[dtype]``. Empty when they agree."""
    if dtype is None:
        return [] if now == recorded else ["not bit for bit"]
    if len(now["updates"]) != len(recorded["updates"]):
        return [f"{len(now['updates'])} updates, {len(recorded['updates'])} recorded"]
    found = []
    for update, (then_update, now_update) in enumerate(
        zip(recorded["updates"], now["updates"], strict=True), start=1
    ):
        if then_update.keys() != now_update.keys():
            found.append(f"update {update}: logged {sorted(now_update)}, not {sorted(then_update)}")
            continue
        for key, value in then_update.items():
            then_value, now_value = float.fromhex(value), float.fromhex(now_update[key])
            bound = TOLERANCE[dtype] * max(abs(then_value), 1.0)
            if not abs(now_value - then_value) <= bound:
                found.append(f"update {update} {key}: {now_value!r} now, {then_value!r} recorded")
    return found


def _config(name: str, vgg19_weights: Path, xla: bool = False) -> Config:
    conditional, train_options, model_options = CASES[name]
    train_options = dict(train_options)
    if train_options.pop("perceptual", False):
        train_options |= perceptual_options(vgg19_weights)
    config = tiny_config(conditional, jit_compile=xla, **train_options)
    return dataclasses.replace(config, model=dataclasses.replace(config.model, **model_options))


def run_case(name: str, vgg19_weights: Path, xla: bool = False) -> dict:
    """Each update's logged values (exact, as hex) and a digest of every checkpointed weight."""
    config = _config(name, vgg19_weights, xla)
    attributes = conditioning() if config.model.conditional else None
    try:
        trainer = GANTrainer(resolve_settings(config), conditioning=attributes)
        batches = labelled_images() if attributes else images()
        iterator = iter(batches)
        updates = []
        for update in range(1, UPDATES + 1):
            trainer.begin_update(update, UPDATES)
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
    now = run_case(name, vgg19_stand_in)
    same_machine = golden["machine"] == machine()
    assert not mismatches(golden["cases"][name], now, None if same_machine else precision(name))


@pytest.mark.parametrize("name", list(CASES))
def test_a_logged_value_moved_past_its_precisions_tolerance_fails(name, golden):
    recorded = golden["cases"][name]
    dtype = precision(name)
    key, value = next(iter(recorded["updates"][-1].items()))
    bound = TOLERANCE[dtype] * max(abs(float.fromhex(value)), 1.0)

    def moved_by(step: float) -> dict:
        now = json.loads(json.dumps(recorded))
        now["updates"][-1][key] = (float.fromhex(value) + step).hex()
        return now

    assert mismatches(recorded, moved_by(1.5 * bound), dtype)
    assert not mismatches(recorded, moved_by(0.5 * bound), dtype)
    assert mismatches(recorded, moved_by(0.5 * bound), None)  # the recording machine: bitwise


def test_the_cross_machine_rule_catches_a_sign_flipped_in_the_loss(
    golden, vgg19_stand_in, monkeypatch
):
    def flipped_hinge_d_loss(real_logits, fake_logits):
        """E[relu(1 − D(x))] + E[relu(1 − D(G(z)))]: the fake term's sign flipped."""
        return tf.reduce_mean(tf.nn.relu(1.0 - real_logits)) + tf.reduce_mean(
            tf.nn.relu(1.0 - fake_logits)
        )

    hinge = losses.LOSSES["hinge"]
    monkeypatch.setitem(losses.LOSSES, "hinge", hinge._replace(discriminator=flipped_hinge_d_loss))
    now = run_case("default", vgg19_stand_in)
    assert mismatches(golden["cases"]["default"], now, precision("default"))


def record(vgg19_weights: Path, out: Path = GOLDEN, xla: bool = False) -> None:
    cases = {name: run_case(name, vgg19_weights, xla) for name in CASES}
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"machine": machine(xla), "cases": cases}, indent=1) + "\n")


if __name__ == "__main__":
    import tempfile

    parser = argparse.ArgumentParser(description="record the golden values of the train step")
    parser.add_argument("--out", type=Path, default=GOLDEN, help="where (default: the golden)")
    parser.add_argument("--xla", action="store_true", help="compile the steps with XLA")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        weights = Path(folder) / "vgg19_stand_in.weights.h5"
        keras.utils.set_random_seed(0)  # as tests/conftest.py's vgg19_stand_in
        keras.applications.VGG19(include_top=False, weights=None).save_weights(weights)
        record(weights, args.out, args.xla)
    sys.exit(0)
