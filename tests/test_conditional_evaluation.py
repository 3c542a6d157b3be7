"""Conditional accuracy and intra-FID, against stand-ins whose answers are known."""

import numpy as np
import pytest

from sagan.config import ConfigError
from sagan.evaluation import metrics
from sagan.evaluation.scoring import (
    conditional_accuracy,
    intra_fid_column,
    intra_fid_scores,
    read_sample_attributes,
)


class ReadsTheFirstPixel:
    """A stand-in encoder: attribute j of an image is its pixel (0, 0) in channel j."""

    def predict_attributes(self, images: np.ndarray) -> np.ndarray:
        return images[:, 0, 0, :].astype(np.int32)  # (N, 3) "heads"


def test_conditional_accuracy_is_the_share_read_back_as_asked():
    images = np.zeros((4, 2, 2, 3), np.uint8)
    images[:, 0, 0, 2] = [1, 1, 0, 1]  # head 2 reads 1, 1, 0, 1
    images[:, 0, 0, 0] = [2, 0, 2, 2]  # head 0 reads 2, 0, 2, 2
    wanted = np.array([[1, 2], [1, 2], [1, 2], [0, 2]])  # (smile, hair) asked for
    scores = conditional_accuracy(ReadsTheFirstPixel(), [2, 0], ("smile", "hair"), images, wanted)
    assert scores == {
        "conditional_accuracy": (0.5 + 0.75) / 2,
        "conditional_accuracy_smile": 0.5,
        "conditional_accuracy_hair": 0.75,
    }
    real = conditional_accuracy(
        ReadsTheFirstPixel(), [2], ("smile",), images, wanted[:, :1], "conditional_accuracy_real"
    )
    assert real == {"conditional_accuracy_real": 0.5, "conditional_accuracy_real_smile": 0.5}


def test_intra_fid_is_the_fid_of_each_value_group():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(60, 4)), rng.normal(1.0, 2.0, size=(50, 4))
    real_values, fake_values = rng.integers(3, size=60), rng.integers(2, size=50)
    fake_values[0] = 2  # value 2: one generated image, too few for a covariance
    per_value = metrics.intra_fid(real, real_values, fake, fake_values)
    assert sorted(per_value) == [0, 1]
    for value, fid in per_value.items():
        expected = metrics.frechet_distance(
            metrics.gaussian_statistics(real[real_values == value]),
            metrics.gaussian_statistics(fake[fake_values == value]),
        )
        assert fid == pytest.approx(expected, rel=1e-12)
    scores = intra_fid_scores(real, real_values, fake, fake_values, "hair")
    assert scores == {
        "intra_fid": pytest.approx((per_value[0] + per_value[1]) / 2),
        "intra_fid_hair_0": per_value[0],
        "intra_fid_hair_1": per_value[1],
    }
    with pytest.raises(ValueError, match="raise evaluate.num_samples"):
        intra_fid_scores(real, real_values, fake[:1], fake_values[:1], "hair")


def test_the_sample_attributes_file_and_the_intra_fid_attribute(tmp_path):
    path = tmp_path / "attributes.csv"
    path.write_text("image,glasses,hair\n000000.png,1,3\n000001.png,0,2\n000002.png,1,0\n")
    names, classes = read_sample_attributes(path, 2)
    assert names == ("glasses", "hair") and classes.tolist() == [[1, 3], [0, 2]]
    with pytest.raises(ValueError, match="lists 3 samples, evaluate.num_samples is 4"):
        read_sample_attributes(path, 4)
    assert intra_fid_column(None, names) == 0 and intra_fid_column("hair", names) == 1
    with pytest.raises(
        ConfigError,
        match="evaluate.intra_fid_attribute: .* not conditioned on 'smile'; .*: glasses, hair",
    ):
        intra_fid_column("smile", names)
