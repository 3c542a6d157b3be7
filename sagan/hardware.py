"""What ``auto`` resolves to on this machine: ``train.mixed_precision`` and ``train.jit_compile``.

Both follow the hardware class, read from the CPU's feature flags and each GPU's compute
capability, never from a timing at start-up: two runs of one commit on one machine must
train alike.

**Precision.** bfloat16 is fast only where the hardware computes it: CPUs with AMX or
AVX-512 BF16 units (``amx_bf16`` / ``avx512_bf16`` in their flags) and GPUs of compute
capability 8.0 or more. Elsewhere TensorFlow emulates it: on an AVX2-only CPU the default
model's train step runs about 9× slower in bfloat16 than in float32. GPUs of compute
capability 7.x have float16 tensor cores but no bfloat16: they get ``mixed_float16`` (with
loss scaling). Everything else trains in float32 (``none``).

**XLA.** On CPUs without bfloat16 units XLA's fused kernels beat TensorFlow's own (the
default step 1.27× faster on an AVX2-only EPYC); on CPUs with them TensorFlow's oneDNN
kernels win (on a Zen 4 EPYC, side by side, XLA made the step 0.66× as fast in float32 and
0.47× in bfloat16; AMX is not measured). GPUs get XLA (not measured here: no GPU of ours
runs TensorFlow). One exception whatever the hardware:
VGG19's max-pools have no deterministic gradient under XLA, so the perceptual loss past
block 1 with ``train.deterministic`` trains without it.

The resolved settings are what trains, what the checkpoint fingerprint holds and what
MLflow logs (``train.mixed_precision_resolved``, ``train.jit_compile_resolved``); an
explicit setting is used as given.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from sagan.config import TrainConfig, xla_cannot_be_deterministic

AUTO = "auto"
CPU_BFLOAT16_FLAGS = ("amx_bf16", "avx512_bf16")
CPUINFO = Path("/proc/cpuinfo")


@dataclass(frozen=True)
class Hardware:
    """What the policy depends on: the CPU's feature flags and each GPU's compute capability."""

    cpu_flags: frozenset[str]
    gpu_capabilities: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Resolution:
    policy: str  # none | mixed_float16 | mixed_bfloat16
    reason: str  # one line for the stage's log


@dataclass(frozen=True)
class JitResolution:
    jit_compile: bool
    reason: str  # one line for the stage's log


def _cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo; none where the file is absent (not Linux)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


@functools.cache
def detect_hardware() -> Hardware:
    import tensorflow as tf

    capabilities = []
    for gpu in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        capabilities.append(tuple(capability) if capability else (0, 0))
    return Hardware(_cpu_flags(), tuple(capabilities))


def has_bfloat16_units(hardware: Hardware) -> str | None:
    """The CPU flag that names this CPU's bfloat16 units, or None."""
    return next((flag for flag in CPU_BFLOAT16_FLAGS if flag in hardware.cpu_flags), None)


def resolve_precision(requested: str, hardware: Hardware | None = None) -> Resolution:
    """``requested`` unless it is ``auto``; then the policy ``hardware`` (this machine's when
    None) computes natively. With GPUs, the oldest one decides: every replica must keep up."""
    if requested != AUTO:
        return Resolution(requested, f"train.mixed_precision: {requested} (as set)")
    hardware = hardware or detect_hardware()
    if hardware.gpu_capabilities:
        major, minor = min(hardware.gpu_capabilities)
        where = f"GPU compute capability {major}.{minor}"
        if major >= 8:
            return Resolution("mixed_bfloat16", f"auto: mixed_bfloat16 ({where} has bfloat16)")
        if major == 7:
            return Resolution("mixed_float16", f"auto: mixed_float16 ({where}: float16 only)")
        return Resolution("none", f"auto: float32 ({where}: no fast half precision)")
    flag = has_bfloat16_units(hardware)
    if flag:
        return Resolution("mixed_bfloat16", f"auto: mixed_bfloat16 (CPU flag {flag})")
    return Resolution(
        "none",
        "auto: float32 (this CPU has no bfloat16 units: neither amx_bf16 nor avx512_bf16; "
        "mixed_bfloat16 would be emulated and several times slower)",
    )


def resolve_jit_compile(train: TrainConfig, hardware: Hardware | None = None) -> JitResolution:
    """``train.jit_compile`` unless it is ``auto``; then XLA where this hardware class (this
    machine's when ``hardware`` is None) trains faster with it."""
    if train.jit_compile != AUTO:
        setting = str(train.jit_compile).lower()
        return JitResolution(train.jit_compile, f"train.jit_compile: {setting} (as set)")
    if xla_cannot_be_deterministic(train):
        return JitResolution(
            False,
            "auto: no XLA (the perceptual loss's max-pools have no deterministic XLA gradient)",
        )
    hardware = hardware or detect_hardware()
    if hardware.gpu_capabilities:
        return JitResolution(True, "auto: XLA (GPU)")
    flag = has_bfloat16_units(hardware)
    if flag:
        return JitResolution(False, f"auto: no XLA (CPU flag {flag}: oneDNN's kernels are faster)")
    return JitResolution(True, "auto: XLA (a CPU without bfloat16 units: XLA's kernels are faster)")
