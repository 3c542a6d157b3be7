"""Hostile and malformed input: zip and decompression bombs, odd file names and symlinks,
params that are wrong in every way, models that would run code, damaged checkpoints.

Covered elsewhere and not repeated here: zip-slip names (``../``, absolute) and macOS junk
(tests/test_prepare_folder.py), unreadable and truncated images and damaged zip entries
(tests/test_prepare_images.py), a table of bad params values and ``!!python/object/apply``
(tests/test_config.py), a Lambda model refused by ``load_generator``
(tests/test_sampling.py), another model's checkpoints (tests/test_training.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import os
import shutil
import struct
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from sagan.config import (
    Config,
    ConfigError,
    DataConfig,
    TrainConfig,
    config_from_dict,
    load_config,
)
from sagan.data.prepare import prepare
from sagan.data.zipmembers import MAX_MEMBER_BYTES, list_members, read_member
from sagan.training.checkpoints import CheckpointError, Checkpoints
from sagan.training.settings import resolve_settings
from sagan.training.step import GANTrainer
from tests.helpers import REPO
from tests.projects import environment

FOLDER = DataConfig(
    source="folder",
    image_size=32,
    num_train=None,
    num_test=2,
    num_validation=1,
    crop_size=None,
    workers=1,
)


def _png(value: int, size: int = 40) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def _files(root: Path) -> set[Path]:
    return {path for path in root.rglob("*")}


# --- zip and decompression bombs ------------------------------------------------------


def _bomb(path: Path, size: int, method: int) -> None:
    """A zip whose one entry inflates to ``size`` zero bytes, written in 1 MiB chunks."""
    with zipfile.ZipFile(path, "w", method) as archive, archive.open("bomb.png", "w") as entry:
        chunk = bytes(2**20)
        for _ in range(size // len(chunk)):
            entry.write(chunk)


def _peak_bytes(function) -> int:
    tracemalloc.start()
    try:
        function()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_an_entry_declaring_an_absurd_size_is_refused_before_inflating(tmp_path):
    path = tmp_path / "bomb.zip"
    _bomb(path, MAX_MEMBER_BYTES + 2**20, zipfile.ZIP_DEFLATED)  # ~1000:1, 257 MiB
    (member,) = list_members(path)
    assert member.compress_size < MAX_MEMBER_BYTES / 500

    def read():
        with pytest.raises(ValueError, match=r"declares 269484032 bytes .* \(a zip bomb\?\)"):
            read_member(path, member)

    assert _peak_bytes(read) < 2**20  # not even the compressed bytes were read


@pytest.mark.parametrize("method", [zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2])
def test_an_entry_lying_about_its_size_inflates_no_further_than_declared(tmp_path, method):
    path = tmp_path / "liar.zip"
    _bomb(path, 64 * 2**20, method)
    (member,) = list_members(path)
    liar = member._replace(file_size=1000)  # what a forged central directory says

    def read():
        with pytest.raises(ValueError, match="truncated or its CRC does not match"):
            read_member(path, liar)

    assert _peak_bytes(read) < 4 * 2**20  # the compressed bytes, never the 64 MiB


def _huge_png(width: int, height: int) -> bytes:
    """A valid 1x1 PNG whose header claims ``width`` x ``height`` (a decompression bomb)."""
    data = bytearray(_png(0, size=1))
    ihdr = 8  # after the signature: length, "IHDR", then width and height
    data[ihdr + 8 : ihdr + 16] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr + 4 : ihdr + 8 + 13]))
    data[ihdr + 21 : ihdr + 25] = struct.pack(">I", crc)
    return bytes(data)


def test_bombs_in_a_folder_zip_are_skipped_with_their_reason(tmp_path):
    path = tmp_path / "faces.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for index in range(6):
            archive.writestr(f"faces/{index}.png", _png(index * 30))
        archive.writestr("faces/pixels.png", _huge_png(30000, 30000))  # 900 megapixels
        with archive.open("faces/zeros.png", "w") as entry:
            for _ in range(MAX_MEMBER_BYTES // 2**20 + 1):
                entry.write(bytes(2**20))
    config = dataclasses.replace(FOLDER, path=str(path), max_bad_fraction=0.5)

    def run():
        manifest = prepare(config, tmp_path / "out")
        assert sum(split.count for split in manifest.splits.values()) == 6
        reasons = {entry.file: entry.reason for entry in manifest.skipped}
        assert reasons["faces/pixels.png"].startswith("DecompressionBombError")
        assert "a zip bomb" in reasons["faces/zeros.png"]

    assert _peak_bytes(run) < 64 * 2**20


# --- odd names and symlinks -----------------------------------------------------------


def test_odd_file_names_and_symlinks_in_a_folder(tmp_path):
    source, outside, out = tmp_path / "faces", tmp_path / "elsewhere", tmp_path / "out"
    source.mkdir()
    outside.mkdir()
    for index in range(4):
        (source / f"{index}.png").write_bytes(_png(index * 40))
    (source / "new\nline.png").write_bytes(_png(200))
    with open(os.fsencode(source) + b"/latin1-\xe9.png", "wb") as file:  # not UTF-8
        file.write(_png(210))
    (outside / "far.png").write_bytes(_png(220))
    (source / "linked.png").symlink_to(outside / "far.png")  # read like any file
    (source / "dangling.png").symlink_to(tmp_path / "nowhere.png")  # unreadable: skipped
    (source / "loop").symlink_to(source, target_is_directory=True)  # never followed
    before = _files(tmp_path)

    config = dataclasses.replace(FOLDER, path=str(source), max_bad_fraction=0.5)
    manifest = prepare(config, out / "prepared")

    assert sum(split.count for split in manifest.splits.values()) == 6
    assert manifest.ignored["file name is not valid UTF-8"].examples == ("latin1-\\xe9.png",)
    assert [entry.file for entry in manifest.skipped] == ["dangling.png"]
    assert "FileNotFoundError" in manifest.skipped[0].reason
    assert {p for p in _files(tmp_path) - before if out not in p.parents} == {out}


# --- params ---------------------------------------------------------------------------

VALID = yaml.safe_load((REPO / "params.yaml").read_text())
KEYS = [(section, key) for section, values in VALID.items() for key in values]
HOSTILE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.integers(-3, 300), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@settings(max_examples=400, deadline=None)
@given(place=st.sampled_from(KEYS), value=HOSTILE)
def test_any_value_for_any_key_loads_or_names_the_key(place, value):
    section, key = place
    raw = {name: dict(values) for name, values in VALID.items()}
    raw[section][key] = value
    try:
        config = config_from_dict(raw)
    except ConfigError as error:
        assert f"{section}.{key}" in str(error)
        return
    loaded = getattr(getattr(config, section), key)
    if isinstance(loaded, float):
        assert math.isfinite(loaded)
    if isinstance(loaded, int | float) and not isinstance(loaded, bool):
        field = next(f for f in dataclasses.fields(getattr(config, section)) if f.name == key)
        assert not field.metadata.get("positive") or loaded > 0


@settings(max_examples=200, deadline=None)
@given(key=st.text(min_size=1, max_size=12), section=st.sampled_from(sorted(VALID)))
def test_an_unknown_key_is_named(key, section):
    raw = {name: dict(values) for name, values in VALID.items()}
    if key in raw[section]:
        return
    raw[section][key] = 1
    with pytest.raises(ConfigError, match=f"unknown key {section}."):
        config_from_dict(raw)


@pytest.mark.parametrize("section", sorted(VALID))
def test_every_missing_section_is_named(section):
    raw = {name: values for name, values in VALID.items() if name != section}
    with pytest.raises(ConfigError, match=f"missing section {section}"):
        config_from_dict(raw)


@pytest.mark.parametrize(
    "document",
    [
        "train: !!python/object/apply:os.system ['touch {marker}']\n",
        "train: !!python/object/new:subprocess.Popen [['touch', '{marker}']]\n",
        "train: !!python/name:os.system\n",
        "train: !!python/module:os\n",
        "!!python/object:sagan.config.Config {{}}\n",
    ],
)
def test_yaml_tags_that_would_run_code_are_refused(tmp_path, document):
    marker = tmp_path / "pwned"
    path = tmp_path / "params.yaml"
    path.write_text(document.format(marker=marker))
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(path)
    assert not marker.exists()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=st.text(max_size=60))
def test_any_params_text_loads_or_gives_a_config_error(tmp_path_factory, document):
    path = tmp_path_factory.mktemp("fuzz") / "params.yaml"
    path.write_text(document, encoding="utf-8", errors="surrogatepass")
    with contextlib.suppress(ConfigError):
        load_config(path)


@pytest.mark.pipeline
def test_a_bad_param_stops_train_before_anything_is_written(tmp_path):
    import subprocess
    import sys

    raw = {name: dict(values) for name, values in VALID.items()}
    raw["train"]["g_lr"] = float("nan")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    result = subprocess.run(
        [sys.executable, "-m", "stages.train"],
        cwd=tmp_path,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    assert "train.g_lr must be a finite number, got nan" in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]  # no run, no store


# --- models and checkpoints -----------------------------------------------------------


def test_generate_refuses_a_model_that_runs_code_with_one_line(tmp_path, monkeypatch, caplog):
    from stages import generate

    marker = tmp_path / "pwned"
    inputs = keras.Input((8,))
    touch = eval(f"lambda z: (__import__('pathlib').Path({str(marker)!r}).touch(), z)[1]")
    outputs = keras.layers.Lambda(touch)(inputs)
    (tmp_path / "models").mkdir()
    keras.Model(inputs, outputs).save(tmp_path / "models" / "generator.keras")
    marker.unlink(missing_ok=True)  # saving traced the lambda once
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)

    assert generate.main() == 1
    assert "cannot load models/generator.keras" in caplog.text and "safe_mode" in caplog.text
    assert not marker.exists() and not (tmp_path / "samples").exists()


def _tiny() -> Config:
    return Config(
        data=DataConfig(image_size=32),
        model=dataclasses.replace(Config().model, latent_dim=16, g_width=8, d_width=8),
        train=TrainConfig(mixed_precision="none"),
    )


def _checkpoints(root: Path) -> tuple[Checkpoints, GANTrainer]:
    config = _tiny()
    trainer = GANTrainer(resolve_settings(config))
    state = {"generator": trainer.generator, "step": trainer.step}
    return Checkpoints(root, resolve_settings(config), 3, **state), trainer


@pytest.mark.parametrize("damaged", ["data", "index"])
def test_a_truncated_checkpoint_is_a_clear_error_not_a_partial_load(tmp_path, damaged):
    checkpoints, trainer = _checkpoints(tmp_path)
    trainer.step.assign(1)
    checkpoints.save(1)
    (file,) = checkpoints.directory.glob(f"ckpt-1.{damaged}*")
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])

    fresh, trainer = _checkpoints(tmp_path)
    with pytest.raises(CheckpointError, match="ckpt-1 does not fit the current model"):
        fresh.restore_latest()
    assert int(trainer.step.numpy()) == 0


def test_a_garbled_or_missing_checkpoint_state_file_resumes_from_the_newest(tmp_path):
    checkpoints, trainer = _checkpoints(tmp_path)
    trainer.step.assign(3)
    checkpoints.save(3)
    (checkpoints.directory / "checkpoint").write_text("model_checkpoint_path: \x00garbage {")
    again, fresh = _checkpoints(tmp_path)
    assert again.restore_latest() and int(fresh.step.numpy()) == 3  # not a silent restart
    (checkpoints.directory / "checkpoint").unlink()  # as a kill during the first save leaves it
    again, fresh = _checkpoints(tmp_path)
    assert again.restore_latest() and int(fresh.step.numpy()) == 3
