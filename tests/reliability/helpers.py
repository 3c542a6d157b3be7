"""What the reliability suite's tests import: its tiny params, and a command started in the
background the way a user starts it. The fixture that makes a tiny copy of the project is in
conftest.py; the copies and the commands run in them: tests/projects.py."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from tests.projects import environment

# Smaller than the end-to-end test's TINY: every `dvc repro` here takes seconds, not minutes.
TINY = {
    "data": {
        "num_train": 64,
        "num_test": 32,
        "num_validation": 16,
        "images_per_shard": 32,
        "image_size": 32,
    },
    "model": {"latent_dim": 16, "g_width": 8, "d_width": 8, "attention_resolutions": [16]},
    "train": {
        "batch_size": 8,
        "steps": 12,
        "checkpoint_every": 2,
        "log_every": 2,
        "sample_every": 6,
        "deterministic": True,
        "ema_start": 1,
        "standing_samples": 16,
    },
    "generate": {"num_samples": 16, "batch_size": 16, "interpolation_steps": 3},
    "encoder": {"steps": 6, "batch_size": 16, "feature_dim": 16},
    "evaluate": {"num_samples": 16, "kid_subset_size": 8, "kid_subsets": 2},
}


def start(*command: str, cwd: Path, new_session: bool = False) -> subprocess.Popen:
    """``command`` running in the background, stdout and stderr together as text.

    ``new_session``: its own process group, so that a signal to the group reaches the stage
    that DVC runs as well as DVC. SIGINT is reset to its default in the child: a shell that
    runs the tests in the background hands it down ignored, and Python then never raises
    KeyboardInterrupt.
    """
    return subprocess.Popen(
        command,
        cwd=cwd,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=new_session,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
