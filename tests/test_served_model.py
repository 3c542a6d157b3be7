"""The generator as an MLflow pyfunc model (sagan.sampling.served), logged to a real SQLite store.

A conditional tiny generator is logged once and loaded back through ``models:/<id>``; the
requests it answers are checked against what the generate stage's functions draw. Loading it
in a process that cannot import this repository, and serving it over HTTP:
tests/test_end_to_end.py.
"""

from __future__ import annotations

import base64
import io

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from PIL import Image

from sagan.config import Config
from sagan.model.conditioning import conditioning_from_labels
from sagan.model.networks import build_generator
from sagan.sampling.faces import sample_codes, sample_images
from sagan.sampling.grids import to_uint8
from sagan.sampling.served import MAX_FACES, log_generator
from sagan.tracking import start_run
from tests.helpers import IMAGE_SIZE, labels, tiny_model

NAMES = ("skin", "glasses")  # helpers.labels(): 3 and 2 classes


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """(the generator, its conditioning, the pyfunc model loaded from the store)."""
    root = tmp_path_factory.mktemp("served")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        conditioning = conditioning_from_labels(None, NAMES, (3, 2), labels())
        conditioning.save(root / "attributes.json")
        config = Config(model=tiny_model(conditional=True))
        generator = build_generator(config.model, IMAGE_SIZE, attribute_dim=conditioning.dim)
        tracker = start_run(config, {})
        model_id = log_generator(tracker, generator, root / "attributes.json")
        tracker.finish()
        mlflow.set_tracking_uri(f"sqlite:///{root}/mlflow.db")
        yield generator, conditioning, mlflow.pyfunc.load_model(f"models:/{model_id}")


def test_seed_and_count_give_the_first_faces_generate_draws(logged):
    generator, conditioning, model = logged
    faces = model.predict(pd.DataFrame({"seed": [5, 2], "count": [3, 1]}))
    expected = []
    for seed, count in ((5, 3), (2, 1)):
        attributes = conditioning.encode(sample_codes(conditioning, count, seed)).numpy()
        expected.extend(next(sample_images(generator, count, seed, attributes=attributes)))
    assert faces.dtype == np.uint8 and faces.shape == (4, IMAGE_SIZE, IMAGE_SIZE, 3)
    np.testing.assert_array_equal(faces, np.stack(expected))


def test_attribute_columns_hold_those_attributes_fixed(logged):
    generator, conditioning, model = logged
    faces = model.predict(pd.DataFrame({"seed": [4], "count": [6], "skin": [2]}))
    codes = sample_codes(conditioning.fixing({"skin": 2}, "test"), 6, 4)
    assert set(codes[:, 0]) == {2}
    attributes = conditioning.encode(codes).numpy()
    expected = next(sample_images(generator, 6, 4, attributes=attributes))
    np.testing.assert_array_equal(faces, expected)


def test_a_z_row_draws_the_face_of_that_vector(logged):
    generator, conditioning, model = logged
    z = np.random.default_rng(0).standard_normal(16)
    faces = model.predict(pd.DataFrame({"z": [z.tolist()], "skin": [1], "glasses": [0]}))
    attributes = conditioning.encode([[1, 0]]).numpy()
    expected = generator([z[None].astype(np.float32), attributes], training=False).numpy()
    np.testing.assert_array_equal(faces, to_uint8(expected))


def test_png_format_returns_the_same_faces_as_base64_png_files(logged):
    _, _, model = logged
    request = pd.DataFrame({"seed": [1], "count": [2]})
    encoded = model.predict(request, params={"format": "png"})
    decoded = [np.asarray(Image.open(io.BytesIO(base64.b64decode(text)))) for text in encoded]
    np.testing.assert_array_equal(np.stack(decoded), model.predict(request))


@pytest.mark.parametrize(
    "request_rows, params, message",
    [
        ({"seed": [0], "count": [-1]}, None, "count must be at least 1, got -1"),
        ({"seed": [0]}, None, r"needs the columns seed and count \(or z\); missing: \['count'\]"),
        ({"seed": [0], "count": [MAX_FACES + 1]}, None, f"at most {MAX_FACES} faces"),
        ({"z": [[0.0] * 3], "skin": [0], "glasses": [0]}, None, "z must hold 16 numbers, got 3"),
        ({"z": [[0.0] * 16], "skin": [0]}, None, r"needs every attribute; missing: \['glasses'\]"),
        ({"seed": [0], "count": [1], "skin": [7]}, None, "skin must be a class from 0 to 2"),
        ({"seed": [0], "count": [1]}, {"format": "jpeg"}, "format must be one of uint8, png"),
    ],
)
def test_a_bad_request_is_refused_with_a_message_naming_the_culprit(
    logged, request_rows, params, message
):
    _, _, model = logged
    with pytest.raises(MlflowException, match=message) as refused:
        model.predict(pd.DataFrame(request_rows), params=params)
    assert refused.value.error_code == "INVALID_PARAMETER_VALUE"  # the server's 400
