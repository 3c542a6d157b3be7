"""Generate's samples with a conditional generator: attributes, their file and the sweep grid."""

import csv
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from sagan.config import ConfigError, GenerateConfig, ModelConfig
from sagan.model.conditioning import conditioning_from_labels
from sagan.model.networks import build_generator
from sagan.sampling.faces import sample_images
from sagan.sampling.samples import SWEEP_FACES, sample_distribution, write_samples

CONFIG = ModelConfig(latent_dim=8, g_width=8, d_width=8, conditional=True, pack=1)
# glasses (2 classes), skin (3 classes): every combination but (glasses 1, skin 2)
LABELS = np.array([[0, 0], [0, 1], [0, 2], [1, 0], [1, 1]] * 4, np.int32)


@pytest.fixture(scope="module")
def conditioning():
    return conditioning_from_labels(None, ("glasses", "skin"), (2, 3), LABELS)


@pytest.fixture(scope="module")
def generator(conditioning):
    keras.utils.set_random_seed(0)
    return build_generator(CONFIG, 32, conditioning.dim)


def _read_attributes(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="") as handle:
        header, *rows = list(csv.reader(handle))
    return header, rows


def test_samples_record_their_attributes_and_the_sweep_switches_one_at_a_time(
    generator, conditioning, tmp_path
):
    config = GenerateConfig(num_samples=6, batch_size=4, interpolation_steps=3)
    write_samples(generator, config, tmp_path / "samples", conditioning)
    header, rows = _read_attributes(tmp_path / "samples" / "attributes.csv")
    assert header == ["image", "glasses", "skin"]
    assert [row[0] for row in rows] == [f"{i:06d}.png" for i in range(6)]
    codes = np.array([[int(v) for v in row[1:]] for row in rows])
    assert {tuple(code) for code in codes} <= {tuple(row) for row in LABELS}

    # k attributes × SWEEP_FACES rows, one column per class of the widest attribute (3)
    sweep = np.asarray(Image.open(tmp_path / "samples" / "sweep.png"))
    assert sweep.shape == (2 * SWEEP_FACES * 32, 3 * 32, 3)
    tiles = sweep.reshape(2 * SWEEP_FACES, 32, 3, 32, 3).transpose(0, 2, 1, 3, 4)
    assert not tiles[:SWEEP_FACES, 2].any()  # glasses has two classes: the third tile is black
    for face in range(SWEEP_FACES):
        sample = np.asarray(Image.open(tmp_path / "samples" / "images" / f"{face:06d}.png"))
        for attribute in range(2):
            # the tile at the sample's own class is the sample itself: same z, same attributes
            tile = tiles[attribute * SWEEP_FACES + face, codes[face, attribute]]
            np.testing.assert_allclose(tile, sample, atol=2)
        assert np.abs(tiles[face, 0].astype(int) - tiles[face, 1]).max() > 0  # glasses matter


def test_fixed_attributes_hold_in_every_sample(generator, conditioning, tmp_path):
    conditioning.save(tmp_path / "attributes.json")
    settings = GenerateConfig(num_samples=20, attributes={"glasses": 1})
    fixed = sample_distribution(generator, settings, tmp_path / "attributes.json")
    write_samples(generator, settings, tmp_path / "samples", fixed)
    _, rows = _read_attributes(tmp_path / "samples" / "attributes.csv")
    assert {row[1] for row in rows} == {"1"} and {row[2] for row in rows} == {"0", "1"}


def test_attributes_a_model_cannot_honour_fail_clearly(generator, conditioning, tmp_path):
    path = tmp_path / "attributes.json"
    conditioning.save(path)
    with pytest.raises(ConfigError, match="generate.attributes: the model is not conditioned on"):
        sample_distribution(generator, GenerateConfig(attributes={"smile": 1}), path)
    with pytest.raises(ConfigError, match="no training image has"):
        sample_distribution(generator, GenerateConfig(attributes={"glasses": 1, "skin": 2}), path)
    unconditional = build_generator(ModelConfig(latent_dim=8, g_width=8, d_width=8), 32)
    with pytest.raises(ConfigError, match="holds an unconditional one"):
        sample_distribution(unconditional, GenerateConfig(attributes={"a": 1}), path)
    assert sample_distribution(unconditional, GenerateConfig(), path) is None


def test_conditional_samples_depend_on_the_seed_not_the_batch_size(generator, conditioning):
    attributes = conditioning.encode(LABELS[:10]).numpy()
    whole = np.concatenate(list(sample_images(generator, 10, 3, 10, attributes)))
    pieces = np.concatenate(list(sample_images(generator, 10, 3, 4, attributes)))
    np.testing.assert_allclose(whole, pieces, atol=1)
