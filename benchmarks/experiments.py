"""Reading finished DVC experiments for the study scripts (attention ablation, recipe study)."""

from __future__ import annotations

import dvc.api


def finished(prefix: str, commits: int = 20) -> list[dict]:
    """The ``dvc exp show`` rows of the finished experiments whose names start with ``prefix``,
    based on any of the last ``commits`` commits: a study outlives the commit it was queued on."""
    rows = dvc.api.exp_show(num=commits)
    done = [row for row in rows if row.get("State") in (None, "Success")]
    return [row for row in done if (row.get("Experiment") or "").startswith(prefix)]


def value(row: dict, file: str, key: str):
    """A metric of an ``exp_show`` row: DVC prefixes a key with its file when names collide."""
    return row.get(key, row.get(f"{file}:{key}"))


def seed(row: dict) -> int:
    """The row's ``train.seed`` (exp_show gives params as shown in its table: "1", 1.0)."""
    return int(float(row["train.seed"]))
