"""The recipe study's queue and table, on exp_show-like rows."""

from __future__ import annotations

import copy

import yaml
from ruamel.yaml import YAML

from benchmarks import recipe_study
from sagan.config import config_from_dict
from tests.helpers import REPO


def test_each_lever_is_queued_alone_per_seed_with_the_equal_time_budget():
    commands = list(
        recipe_study.queue_commands(
            ["ttur", "reference", "default"], [0, 2], "recipe-", {recipe_study.REFERENCE_STEPS: 850}
        )
    )
    assert [c[5] for c in commands] == [
        "recipe-ttur-seed-0",
        "recipe-ttur-seed-2",
        "recipe-reference-seed-0",
        "recipe-reference-seed-2",
        "recipe-default-seed-0",
        "recipe-default-seed-2",
    ]
    assert commands[0][:4] == ["dvc", "exp", "run", "--queue"]
    previous = [f"{key}={value}" for key, value in recipe_study.PREVIOUS_DEFAULT.items()]
    settings = commands[1][7::2]  # every value after a -S
    assert settings == [*previous, "train.d_lr=4e-4", "train.seed=2"]
    assert set(commands[2][6::2]) == {"-S"}
    assert commands[2][7::2][-4:] == [
        "train.mixed_precision=none",
        "train.update=alternating",
        "train.steps=850",
        "train.seed=0",
    ]
    assert commands[4][6:] == ["-S", "train.seed=0"]  # the default: params.yaml as it is


def test_a_lever_overrides_the_previous_default_where_they_share_a_key():
    # the ema lever sets train.ema_decay, which the previous default sets to null: one -S
    # each, the lever's value (DVC would not say which of two it kept)
    assert recipe_study.overrides("previous-default", {})["train.ema_decay"] == "null"
    (command,) = recipe_study.queue_commands(["ema"], [0], "recipe-", {})
    decays = [setting for setting in command if setting.startswith("train.ema_decay=")]
    assert decays == ["train.ema_decay=0.995"]


def test_the_combined_lever_is_the_default_with_n_critic_2_at_equal_time():
    (command,) = recipe_study.queue_commands(
        ["ema-n-critic-2"], [1], "recipe-", {recipe_study.N_CRITIC_STEPS: 930}
    )
    settings = dict(setting.split("=", 1) for setting in command[7::2])
    assert settings == {
        "train.ema_decay": "0.995",
        "train.ema_start": "500",
        "train.deterministic": "true",
        "train.n_critic": "2",
        "train.steps": "930",
        "train.seed": "1",
    }


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


def test_every_lever_makes_a_valid_config():
    """Each lever's -S overrides on params.yaml, with the default equal-time budgets, load."""
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    yaml_1_2 = YAML(typ="safe")  # 4e-4 is a number in YAML 1.2, a string in PyYAML's 1.1
    for lever in [*recipe_study.LEVERS, *recipe_study.EXTENSIONS]:
        raw = copy.deepcopy(base)
        for key, setting in recipe_study.overrides(lever, recipe_study.DEFAULT_BUDGETS).items():
            section, name = key.split(".")
            raw[section][name] = yaml_1_2.load(setting)  # as DVC reads a -S value
        config_from_dict(raw, source=lever)
