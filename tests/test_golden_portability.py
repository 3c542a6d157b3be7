"""The golden values of the train step hold on other CPUs: the cases run in a process whose
kernels round the way another CPU's do (oneDNN's optimisations off, or the step compiled by
XLA) and must pass the cross-machine rule of tests/test_golden_step.py, while the recording
machine's own run stays bit for bit (that module's test). Each process runs all five cases,
about a minute: the pipeline tier."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import REPO
from tests.test_golden_step import CASES, GOLDEN, machine, mismatches, precision

pytestmark = pytest.mark.pipeline

# (environment, flags of `python -m tests.test_golden_step`)
KERNELS = {
    "oneDNN off": ({"TF_ENABLE_ONEDNN_OPTS": "0"}, []),
    "XLA": ({}, ["--xla"]),
}


@pytest.mark.parametrize("kernels", list(KERNELS))
def test_the_golden_values_hold_where_kernels_round_otherwise(kernels, tmp_path):
    environment, flags = KERNELS[kernels]
    out = tmp_path / "cases.json"
    result = subprocess.run(
        [sys.executable, "-m", "tests.test_golden_step", "--out", str(out), *flags],
        cwd=REPO,
        env={**os.environ, **environment},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    golden, run = json.loads(GOLDEN.read_text()), json.loads(out.read_text())
    assert run["machine"] not in (golden["machine"], machine())  # the cross-machine rule holds
    rounded_otherwise = [
        name for name in CASES if run["cases"][name]["updates"] != golden["cases"][name]["updates"]
    ]
    assert rounded_otherwise, "these kernels computed every case bit for bit: nothing was shown"
    for name in CASES:
        assert not mismatches(golden["cases"][name], run["cases"][name], precision(name)), name
