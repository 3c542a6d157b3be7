"""``train.mixed_precision: auto``: the compute precision this machine runs fastest and safely.

bfloat16 is fast only where the hardware computes it: CPUs with AMX or AVX-512 BF16 units
(``amx_bf16`` / ``avx512_bf16`` in their flags) and GPUs of compute capability 8.0 or more.
Elsewhere TensorFlow emulates it: on an AVX2-only CPU the default model's train step runs
about 9× slower in bfloat16 than in float32. GPUs of compute capability 7.x have float16
tensor cores but no bfloat16: they get ``mixed_float16`` (with loss scaling). Everything else
trains in float32 (``none``).

The resolved policy is what trains, what the checkpoint fingerprint holds and what MLflow
logs as ``train.mixed_precision_resolved``; an explicit policy is used as given.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

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
    found = [flag for flag in CPU_BFLOAT16_FLAGS if flag in hardware.cpu_flags]
    if found:
        return Resolution("mixed_bfloat16", f"auto: mixed_bfloat16 (CPU flag {found[0]})")
    return Resolution(
        "none",
        "auto: float32 (this CPU has no bfloat16 units: neither amx_bf16 nor avx512_bf16; "
        "mixed_bfloat16 would be emulated and several times slower)",
    )
