"""README.md and docs/*.md cannot rot silently: links and anchors resolve, every
``-S key=value`` is a real param with a valid value, every ``python -m`` module exists.

Each checker returns the problems it finds; the tests below run it on the docs (no problem)
and on a broken snippet (the problem named), so a checker that finds nothing is seen to fail.
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest

from sagan.config import ConfigError, load_config
from tests.helpers import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
MODULE = re.compile(r"python -m ((?:benchmarks|stages)\.\w+)")


def _outside_code(text: str) -> str:
    """The text with fenced code blocks blanked (their `#` lines are comments, not headings)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.DOTALL | re.MULTILINE)


def anchors(text: str) -> set[str]:
    """GitHub's anchors of a Markdown page's headings."""
    found = set()
    for heading in re.findall(r"^#{1,6} (.+)$", _outside_code(text), flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


def broken_links(page: Path, text: str) -> list[str]:
    """Relative links of ``text`` (written in ``page``) whose file or #anchor does not exist."""
    problems = []
    for link in LINK.findall(_outside_code(text)):
        if re.match(r"[a-z]+:", link):
            continue  # http:, https:, mailto:
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists():
            problems.append(f"{page.name}: {link}: no file {path}")
        elif anchor and (target.suffix != ".md" or anchor not in anchors(target.read_text())):
            problems.append(f"{page.name}: {link}: no heading #{anchor}")
    return problems


def _commands(text: str) -> list[str]:
    """Every ``dvc exp run …`` command, continuation lines joined, in code blocks or inline."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return re.findall(r"dvc exp run[^\n`|]*", joined)


def bad_settings(text: str, workdir: Path) -> list[str]:
    """``-S key=value`` settings of ``text``'s commands that the pipeline refuses: each
    command's settings applied together to a copy of params.yaml by DVC's own code (Hydra's
    override grammar, unknown keys refused; a sweep such as ``-S 'train.seed=0,1'``, each of
    its experiments), then loaded as every stage loads it."""
    from dvc.exceptions import InvalidArgumentError
    from dvc.utils.hydra import apply_overrides, get_hydra_sweeps

    problems = []
    for command in _commands(text):
        try:
            words = shlex.split(command)
        except ValueError:
            continue  # an inline fragment cut at a quote
        settings = [words[i + 1] for i, word in enumerate(words[:-1]) if word == "-S"]
        settings = [s for s in settings if "=" in s and "$" not in s]  # shell variables: loops
        if not settings:
            continue
        params = workdir / "params.yaml"
        try:
            for experiment in get_hydra_sweeps({"params.yaml": settings}):
                shutil.copyfile(REPO / "params.yaml", params)
                apply_overrides(params, experiment["params.yaml"])
                load_config(params)
        except (InvalidArgumentError, ConfigError) as error:
            cause = f" ({error.__cause__})" if error.__cause__ else ""
            problems.append(f"{command.strip()}: {error}{cause}")
    return problems


def missing_modules(text: str) -> list[str]:
    """``python -m benchmarks.X`` / ``stages.X`` names whose module file does not exist."""
    return [
        name
        for name in MODULE.findall(text)
        if not (REPO / (name.replace(".", "/") + ".py")).is_file()
    ]


@pytest.mark.parametrize("page", DOCS, ids=lambda page: page.name)
def test_every_link_and_anchor_resolves(page):
    assert broken_links(page, page.read_text()) == []


@pytest.mark.parametrize("page", DOCS, ids=lambda page: page.name)
def test_every_dvc_setting_is_a_valid_param(page, tmp_path):
    assert bad_settings(page.read_text(), tmp_path) == []


@pytest.mark.parametrize("page", DOCS, ids=lambda page: page.name)
def test_every_python_module_exists(page):
    assert missing_modules(page.read_text()) == []


def test_the_readme_stays_a_page_a_user_reads():
    assert len((REPO / "README.md").read_text().splitlines()) <= 250


def test_each_docs_page_opens_with_its_title_and_a_paragraph():
    for page in DOCS[1:]:
        title, blank, opening, *_ = page.read_text().splitlines()
        assert title.startswith("# ") and blank == "" and opening[:1].isalpha(), page.name
        assert not opening.startswith(("python", "dvc")), page.name  # a paragraph, not a command


def test_the_checkers_find_a_broken_link_an_unknown_key_and_a_missing_module(tmp_path):
    page = REPO / "docs" / "model.md"
    assert broken_links(
        page, "[x](nowhere.md) [y](training.md#no-such-heading) [z](#the-model)"
    ) == [
        "model.md: nowhere.md: no file nowhere.md",
        "model.md: training.md#no-such-heading: no heading #no-such-heading",
    ]
    assert broken_links(page, "```\n[x](nowhere.md)\n```") == []  # code is not a link
    problems = bad_settings("dvc exp run -S train.lerning_rate=1 -S train.steps=3\n", tmp_path)
    assert len(problems) == 1 and "lerning_rate" in problems[0]
    assert "train.steps must be" in bad_settings("`dvc exp run -S train.steps=-3`", tmp_path)[0]
    assert bad_settings("dvc exp run -S train.steps=10 -S train.ema_start=5 \\\n", tmp_path) == []
    sweep = "dvc exp run --queue -S 'train.steps=600,100' -S train.ema_start=500\n"
    too_short = "train.ema_start (500) must be below train.steps (100)"
    assert too_short in bad_settings(sweep, tmp_path)[0]
    assert missing_modules("python -m benchmarks.train_step; python -m stages.nothing") == [
        "stages.nothing"
    ]
