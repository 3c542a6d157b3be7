"""train.mixed_precision: auto picks the policy the hardware computes natively;
train.jit_compile: auto picks XLA where the hardware class trains faster with it."""

from __future__ import annotations

import dataclasses

import keras
import pytest

from sagan import hardware
from sagan.hardware import Hardware, resolve_jit_compile, resolve_precision
from sagan.training.settings import resolve_settings
from sagan.training.step import GANTrainer
from tests.helpers import fingerprint_of, tiny_config

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
    assert hardware._cpu_flags(cpuinfo) == {"fpu", "avx2", "avx512_bf16"}
    assert hardware._cpu_flags(tmp_path / "absent") == frozenset()  # not Linux: float32


@pytest.fixture
def probe(monkeypatch):
    """``probe(machine)``: this process's hardware probe replaced by ``machine``."""

    def replace(machine: Hardware) -> None:
        monkeypatch.setattr(hardware, "detect_hardware", lambda: machine)

    yield replace
    keras.mixed_precision.set_global_policy("float32")


def test_auto_trains_and_fingerprints_as_the_policy_it_resolves_to(probe):
    auto = tiny_config(mixed_precision="auto")
    for machine, policy in ((_machine("avx512_bf16"), "mixed_bfloat16"), (_machine(), "none")):
        probe(machine)
        explicit = dataclasses.replace(
            auto, train=dataclasses.replace(auto.train, mixed_precision=policy)
        )
        assert fingerprint_of(auto) == fingerprint_of(explicit)
        trainer = GANTrainer(resolve_settings(auto))
        assert trainer.precision == policy
        assert keras.mixed_precision.global_policy().name == (
            "float32" if policy == "none" else policy
        )
    probe(_machine(gpus=((7, 5),)))
    trainer = GANTrainer(resolve_settings(auto))
    assert isinstance(trainer.g_optimizer, keras.optimizers.LossScaleOptimizer)
    assert not trainer.shares_backward  # float16 takes two backward passes


@pytest.mark.parametrize(
    "hardware, xla",
    [
        (_machine(), True),  # AVX2 only: the default step 1.27x faster with XLA (Zen 2 EPYC)
        (_machine("avx512f"), True),  # AVX-512 without BF16: the AVX2 class, not measured
        (_machine("avx512f", "avx512_bf16"), False),  # Zen 4: 0.84x in float32 with XLA
        (_machine("amx_bf16", "amx_tile"), False),  # oneDNN's AMX kernels, not measured
        (_machine(gpus=((7, 5),)), True),  # GPUs, on paper
        (_machine("avx512_bf16", gpus=((8, 0),)), True),  # the GPU trains, not the CPU
    ],
)
def test_auto_xla_follows_the_hardware_class(hardware, xla):
    resolution = resolve_jit_compile(tiny_config(jit_compile="auto").train, hardware)
    assert resolution.jit_compile is xla
    assert resolution.reason.startswith("auto: ")


def test_an_explicit_xla_setting_is_kept_whatever_the_hardware():
    for setting in (True, False):
        for machine in (_machine(), _machine("avx512_bf16")):
            train = tiny_config(jit_compile=setting).train
            assert resolve_jit_compile(train, machine).jit_compile is setting


def test_auto_leaves_xla_off_where_its_gradient_is_not_deterministic():
    """VGG19's max-pools: the perceptual loss past block 1 with train.deterministic."""
    perceptual = {"perceptual_weight": 1.0}
    avx2 = _machine()
    assert not resolve_jit_compile(
        tiny_config(jit_compile="auto", **perceptual).train, avx2
    ).jit_compile
    for relaxed in ({"deterministic": False}, {"perceptual_layers": ("block1_conv2",)}):
        train = tiny_config(jit_compile="auto", **perceptual, **relaxed).train
        assert resolve_jit_compile(train, avx2).jit_compile


def test_auto_xla_trains_and_fingerprints_as_what_it_resolves_to(probe):
    auto = tiny_config(jit_compile="auto")
    for machine, xla in ((_machine("avx512_bf16"), False), (_machine(), True)):
        probe(machine)
        explicit = dataclasses.replace(auto, train=dataclasses.replace(auto.train, jit_compile=xla))
        assert fingerprint_of(auto) == fingerprint_of(explicit)
        assert fingerprint_of(auto) != fingerprint_of(
            dataclasses.replace(auto, train=dataclasses.replace(auto.train, jit_compile=not xla))
        )
        trainer = GANTrainer(resolve_settings(auto))
        assert trainer._updates[False]._jit_compile is xla  # tf.function's record of it
