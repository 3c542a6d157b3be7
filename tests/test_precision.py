"""train.mixed_precision: auto picks the policy the hardware computes natively."""

from __future__ import annotations

import dataclasses

import keras
import pytest

from sagan import precision
from sagan.precision import Hardware, resolve_precision
from sagan.training.checkpoints import fingerprint
from sagan.training.step import GANTrainer
from tests.conftest import IMAGE_SIZE, tiny_config

AVX2 = frozenset({"sse4_2", "avx", "avx2", "fma"})


def _machine(*cpu_flags: str, gpus: tuple[tuple[int, int], ...] = ()) -> Hardware:
    return Hardware(AVX2 | set(cpu_flags), gpus)


@pytest.mark.parametrize(
    "hardware, policy",
    [
        (_machine("amx_bf16", "amx_tile"), "mixed_bfloat16"),  # Sapphire Rapids and later
        (_machine("avx512f", "avx512_bf16"), "mixed_bfloat16"),  # Zen 4, Cooper Lake
        (_machine("avx512f"), "none"),  # AVX-512 without BF16: emulated
        (_machine(), "none"),  # AVX2 only: most laptops, Zen 2 servers
        (_machine(gpus=((8, 0),)), "mixed_bfloat16"),  # A100
        (_machine(gpus=((9, 0), (9, 0))), "mixed_bfloat16"),  # H100 pair
        (_machine(gpus=((7, 5),)), "mixed_float16"),  # T4
        (_machine("avx512_bf16", gpus=((7, 0),)), "mixed_float16"),  # the GPU trains, not the CPU
        (_machine(gpus=((8, 6), (7, 5))), "mixed_float16"),  # the oldest GPU decides
        (_machine(gpus=((6, 1),)), "none"),  # Pascal
    ],
)
def test_auto_follows_the_hardware(hardware, policy):
    resolution = resolve_precision("auto", hardware)
    assert resolution.policy == policy
    assert resolution.reason.startswith("auto: ")


def test_an_explicit_policy_is_kept_whatever_the_hardware():
    for policy in ("none", "mixed_float16", "mixed_bfloat16"):
        assert resolve_precision(policy, _machine()).policy == policy


def test_cpu_flags_come_from_proc_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 avx512_bf16\n")
    assert precision._cpu_flags(cpuinfo) == {"fpu", "avx2", "avx512_bf16"}
    assert precision._cpu_flags(tmp_path / "absent") == frozenset()  # not Linux: float32


@pytest.fixture
def probe(monkeypatch):
    """``probe(hardware)``: this process's hardware probe replaced by ``hardware``."""

    def replace(hardware: Hardware) -> None:
        monkeypatch.setattr(precision, "detect_hardware", lambda: hardware)

    yield replace
    keras.mixed_precision.set_global_policy("float32")


def test_auto_trains_and_fingerprints_as_the_policy_it_resolves_to(probe):
    auto = tiny_config(mixed_precision="auto")
    for hardware, policy in ((_machine("avx512_bf16"), "mixed_bfloat16"), (_machine(), "none")):
        probe(hardware)
        explicit = dataclasses.replace(
            auto, train=dataclasses.replace(auto.train, mixed_precision=policy)
        )
        assert fingerprint(auto) == fingerprint(explicit)
        trainer = GANTrainer(auto.model, auto.train, IMAGE_SIZE)
        assert trainer.precision == policy
        assert keras.mixed_precision.global_policy().name == (
            "float32" if policy == "none" else policy
        )
    probe(_machine(gpus=((7, 5),)))
    trainer = GANTrainer(auto.model, auto.train, IMAGE_SIZE)
    assert isinstance(trainer.g_optimizer, keras.optimizers.LossScaleOptimizer)
    assert not trainer.shares_backward  # float16 takes two backward passes
