"""Mode coverage by attribute, against values worked out by hand."""

import dataclasses

import numpy as np
import pytest

from sagan.data.manifest import Manifest
from sagan.evaluation.attribute_coverage import (
    attribute_coverage,
    class_shares,
    total_variation,
)
from sagan.evaluation.features import EncoderExtractor, build_encoder
from sagan.evaluation.scoring import attribute_reader

ATTRIBUTES = {"colour": 4, "glasses": 2}
REAL = np.array([[0, 0], [0, 0], [1, 0], [1, 0], [2, 0], [2, 0], [3, 0], [3, 1]])


def test_shares_and_total_variation():
    np.testing.assert_allclose(class_shares(np.array([0, 2, 2, 2]), 4), [0.25, 0, 0.75, 0])
    assert total_variation([0.25, 0.25, 0.5], [0.5, 0.25, 0.25]) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="0..3"):
        class_shares(np.array([0, 4]), 4)


def test_a_dropped_colour_and_missing_glasses_by_hand():
    # colour: real 1/4 each, fake 3/8, 3/8, 2/8, 0 -> TV ½(1/8 + 1/8 + 0 + 1/4) = 1/4, class 3
    # dropped. glasses: real 7/8, 1/8, fake 1, 0 -> TV 1/8, class 1 (1/8 >= 5%) dropped.
    fake = np.array([[0, 0], [0, 0], [0, 0], [1, 0], [1, 0], [1, 0], [2, 0], [2, 0]])
    scores = attribute_coverage(REAL, fake, ATTRIBUTES)
    assert scores == pytest.approx(
        {
            "attribute_tv_colour": 0.25,
            "attribute_tv_glasses": 0.125,
            "attribute_tv": 0.1875,
            "attribute_tv_max": 0.25,
            "dropped_classes": 2,
        }
    )


def test_an_under_represented_class_is_dropped_only_below_half_its_share():
    # colour 3 at 1/8 of the samples: exactly half its real share of 1/4, so not dropped.
    fake = np.array([[0, 0], [0, 0], [1, 0], [1, 0], [2, 0], [2, 0], [2, 1], [3, 1]])
    assert attribute_coverage(REAL, fake, ATTRIBUTES)["dropped_classes"] == 0
    assert attribute_coverage(REAL, REAL, ATTRIBUTES)["attribute_tv_max"] == 0.0


def test_shapes_that_do_not_fit_the_attributes_are_refused():
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        attribute_coverage(REAL[:, :1], REAL, ATTRIBUTES)


def test_the_reader_is_the_encoder_wherever_the_data_has_labels(tmp_path):
    labelled = Manifest("synthetic", 32, ("colour",), (4,), (), {})
    unlabelled = dataclasses.replace(labelled, attribute_names=(), attribute_classes=())
    encoder = EncoderExtractor(build_encoder(32, {"colour": 4}, feature_dim=8))
    assert attribute_reader(encoder, labelled, tmp_path / "unused.keras") is encoder
    assert attribute_reader(encoder, unlabelled, tmp_path / "unused.keras") is None
    # Another extractor: the encoder stage's network reads the attributes, so it must exist.
    with pytest.raises(FileNotFoundError, match="encoder stage trains it"):
        attribute_reader(object(), labelled, tmp_path / "encoder.keras")
