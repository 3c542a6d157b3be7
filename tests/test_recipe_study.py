"""The recipe study's queue and table, on exp_show-like rows."""

from __future__ import annotations

from benchmarks import recipe_study


def test_each_lever_is_queued_alone_per_seed_with_the_equal_time_budget():
    commands = list(recipe_study.queue_commands(["ttur", "float32"], [0, 2], "recipe-", 880))
    assert [c[5] for c in commands] == [
        "recipe-ttur-seed-0",
        "recipe-ttur-seed-2",
        "recipe-float32-seed-0",
        "recipe-float32-seed-2",
    ]
    assert commands[0][:4] == ["dvc", "exp", "run", "--queue"]
    assert commands[1][6:] == ["-S", "train.d_lr=4e-4", "-S", "train.seed=2"]
    assert commands[2][6:] == [
        "-S",
        "train.mixed_precision=none",
        "-S",
        "train.steps=880",
        "-S",
        "train.seed=0",
    ]


def _row(lever: str, run_seed: int, fid: float) -> dict:
    metrics = {key: 0.5 for _, _, key, _ in recipe_study.COLUMNS}
    return {
        "Experiment": f"recipe-{lever}-seed-{run_seed}",
        "train.seed": str(run_seed),
        "train.batch_size": "64",
        **metrics,
        "fid": fid,
        "metrics/train.json:steps": 1500,
        "images_per_second": 160.0,
    }


def test_the_table_shows_the_median_and_range_over_seeds(capsys):
    rows = [_row("default", s, fid) for s, fid in ((0, 500), (1, 900), (2, 600))]
    rows.append(_row("ema", 0, 300))
    groups = {}
    for row in rows:
        groups.setdefault(recipe_study.lever_of(row, "recipe-"), []).append(row)
    recipe_study.print_table(groups)
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].startswith("| default | 0, 1, 2 | 10.0 [10.0–10.0] | 600 [500–900] |")
    assert lines[3].startswith("| ema | 0 | 10.0 | 300 |")  # one seed: no range
