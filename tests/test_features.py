"""Feature extractors: the attribute encoder, the frozen-graph loader, Keras InceptionV3.

The canonical Inception graph is replaced by a tiny stand-in GraphDef with the same
tensor names and the same awkward parts (a JPEG-decoding front end, batch size 1 baked
in after pool_3, a BatchNormWithGlobalNormalization op from an old GraphDef version);
only the network is mocked where a download would happen.
"""

from __future__ import annotations

import io
import tarfile
import urllib.error
import urllib.request

import keras
import numpy as np
import pytest
import tensorflow as tf

from sagan.evaluation.features import (
    EncoderExtractor,
    InceptionGraphExtractor,
    InceptionUnavailableError,
    KerasInceptionExtractor,
    build_encoder,
    check_images,
    make_extractor,
    train_encoder,
)
from sagan.evaluation.features import inception as inception_module
from sagan.evaluation.features.inception import GRAPH_FILE, FrozenGraph, inception_graph_path
from sagan.evaluation.metrics import attribute_accuracy

STAND_IN_CHANNELS = 5
OLD_PRODUCER = 8  # before GraphDef version 9, which removed BatchNormWithGlobalNormalization


def _images(n: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------ images


@pytest.mark.parametrize(
    ("images", "match"),
    [
        (np.zeros((2, 16, 16, 3), np.float32), "uint8"),
        ([[0]], "uint8"),
        (np.zeros((16, 16, 3), np.uint8), r"\(N, H, W, 3\)"),
        (np.zeros((2, 16, 16, 1), np.uint8), r"\(N, H, W, 3\)"),
        (np.zeros((0, 16, 16, 3), np.uint8), "non-empty"),
        (np.zeros((2, 32, 32, 3), np.uint8), "data.image_size"),
    ],
)
def test_bad_images_are_clear_errors(images, match):
    with pytest.raises(ValueError, match=match):
        check_images(images, image_size=16)


# ----------------------------------------------------------------------------- encoder


def _colour_task(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """16×16 images whose left half's colour is attribute a (2 classes), right half's b (3)."""
    rng = np.random.default_rng(seed)
    labels = np.stack([rng.integers(2, size=n), rng.integers(3, size=n)], axis=1)
    palette = np.array([[220, 30, 30], [30, 30, 220], [30, 200, 30]], dtype=np.uint8)
    images = np.empty((n, 16, 16, 3), np.uint8)
    images[:, :, :8] = palette[labels[:, 0]][:, None, None]
    images[:, :, 8:] = palette[labels[:, 1]][:, None, None]
    noise = rng.integers(-20, 21, images.shape)
    return np.clip(images + noise, 0, 255).astype(np.uint8), labels


def test_encoder_has_one_head_per_attribute():
    encoder = build_encoder(32, {"a": 2, "b": 5}, feature_dim=24)
    logits = encoder(np.zeros((3, 32, 32, 3), np.float32))
    assert [tuple(head.shape) for head in logits] == [(3, 2), (3, 5)]
    with pytest.raises(ValueError, match="multiple of 16"):
        build_encoder(24, {"a": 2})


def test_encoder_initialisation_is_seeded():
    first, again = (build_encoder(16, {"a": 2}, 8, seed=3) for _ in range(2))
    other = build_encoder(16, {"a": 2}, 8, seed=4)
    for a, b in zip(first.weights, again.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert any(
        not np.array_equal(a.numpy(), c.numpy())
        for a, c in zip(first.weights, other.weights, strict=True)
    )


def test_encoder_learns_the_attributes():
    images, labels = _colour_task(512, seed=0)
    examples = tf.data.Dataset.from_tensor_slices((images.astype(np.float32) / 127.5 - 1, labels))
    encoder = build_encoder(16, {"a": 2, "b": 3}, feature_dim=16, seed=0)
    loss = train_encoder(encoder, examples, steps=30, seed=0, batch_size=32, learning_rate=3e-3)
    assert 0 < loss < 0.5  # the mean over all steps, the first ones included
    test_images, test_labels = _colour_task(200, seed=1)
    predicted = EncoderExtractor(encoder).predict_attributes(test_images)
    accuracy = attribute_accuracy(predicted, test_labels, ("a", "b"))
    assert min(accuracy.values()) > 0.95, accuracy


def test_encoder_features_are_the_penultimate_layer_batch_independent():
    encoder = build_encoder(16, {"a": 2, "b": 3}, feature_dim=12)
    images = _images(23, 16)
    features = EncoderExtractor(encoder, batch_size=5)(images)
    assert features.shape == (23, 12) and features.dtype == np.float32
    penultimate = keras.Model(encoder.input, encoder.get_layer("features").output)
    expected = penultimate(images.astype(np.float32) / 127.5 - 1.0).numpy()
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-6)
    # oneDNN picks its kernels by batch shape: on AVX2-only CPUs another batch size rounds
    # differently in the last bits (bitwise equal where AVX-512 runs).
    whole = EncoderExtractor(encoder, batch_size=23)(images)
    np.testing.assert_allclose(features, whole, rtol=1e-5, atol=1e-7)


def test_encoder_extractor_rejects_the_wrong_image_size():
    with pytest.raises(ValueError, match="16x16"):
        EncoderExtractor(build_encoder(16, {"a": 2}, 8))(_images(2, 32))


# ------------------------------------------------------------- the frozen Inception graph


def _stand_in_graph_def() -> tf.compat.v1.GraphDef:
    """A tiny 'classify_image_graph_def.pb': JPEG bytes → ... → pool_3 (1, 1, 1, 5)."""
    rng = np.random.default_rng(0)
    graph = tf.Graph()
    with graph.as_default():
        contents = tf.compat.v1.placeholder(tf.string, (), name="DecodeJpeg/contents")
        decoded = tf.cast(tf.io.decode_jpeg(contents, channels=3), tf.float32)
        image = tf.expand_dims(decoded, 0, name="ExpandDims")  # (1, H, W, 3) in [0, 255]
        resized = tf.compat.v1.image.resize_bilinear(image, [12, 12], name="ResizeBilinear")
        scaled = (resized - 128.0) * (1.0 / 128.0)
        kernel = rng.normal(size=(3, 3, 3, STAND_IN_CHANNELS)).astype(np.float32)
        conv = tf.nn.conv2d(scaled, kernel, 1, "SAME", name="conv/Conv2D")
        for name in ("mean", "variance", "beta", "gamma"):
            values = rng.uniform(0.5, 1.5, STAND_IN_CHANNELS).astype(np.float32)
            tf.constant(values, name=f"conv/batchnorm/{name}")
        batchnorm = tf.identity(conv, name="conv/batchnorm")  # its op is swapped below
        relu = tf.nn.relu(batchnorm, name="conv")
        pool = tf.nn.avg_pool2d(relu, 12, 1, "VALID", name="pool_3")  # (1, 1, 1, 5)
        flat = tf.reshape(pool, [1, STAND_IN_CHANNELS], name="pool_3/_reshape")
        tf.nn.softmax(flat, name="softmax")
    graph_def = graph.as_graph_def()
    (node,) = [node for node in graph_def.node if node.name == "conv/batchnorm"]
    node.op = "BatchNormWithGlobalNormalization"
    del node.input[:]
    node.input.extend(
        ["conv/Conv2D"] + [f"conv/batchnorm/{n}" for n in ("mean", "variance", "beta", "gamma")]
    )
    node.attr.clear()
    node.attr["T"].type = tf.float32.as_datatype_enum
    node.attr["variance_epsilon"].f = 1e-3
    node.attr["scale_after_normalization"].b = True
    graph_def.versions.producer = OLD_PRODUCER
    return graph_def


@pytest.fixture(scope="module")
def stand_in_bytes() -> bytes:
    return _stand_in_graph_def().SerializeToString()


@pytest.fixture
def stand_in_path(tmp_path, stand_in_bytes):
    path = tmp_path / GRAPH_FILE
    path.write_bytes(stand_in_bytes)
    return path


def _one_image_at_a_time(graph_bytes: bytes, images: np.ndarray) -> np.ndarray:
    """What the stand-in computes, run the TF 1 way: one image per session.run, batch 1."""
    graph_def = tf.compat.v1.GraphDef.FromString(graph_bytes)
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as session:
        rows = [
            session.run("pool_3:0", {"ExpandDims:0": image[None].astype(np.float32)})
            for image in images
        ]
    return np.concatenate(rows).reshape(len(images), -1)


def test_frozen_graph_runs_whole_batches(stand_in_path, stand_in_bytes):
    images = _images(7, 20, seed=1)
    with FrozenGraph(stand_in_path).session() as run:
        pool3 = run(images.astype(np.float32))
    assert pool3.shape == (7, 1, 1, STAND_IN_CHANNELS)
    expected = _one_image_at_a_time(stand_in_bytes, images)
    np.testing.assert_allclose(pool3.reshape(7, -1), expected, rtol=1e-5, atol=1e-6)


def test_inception_extractor_matches_the_graph_image_by_image(stand_in_path, stand_in_bytes):
    images = _images(11, 24, seed=2)
    extractor = make_extractor("inception", inception_graph=stand_in_path)
    extractor.batch_size = 4  # 3 batches, the last one short
    features = extractor(images)
    assert extractor.name == "inception" and features.shape == (11, STAND_IN_CHANNELS)
    expected = _one_image_at_a_time(stand_in_bytes, images)
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-6)


def test_a_file_that_is_no_graph_is_named(tmp_path):
    path = tmp_path / "junk.pb"
    path.write_bytes(b"\xff\xff not a protobuf")
    with pytest.raises(ValueError, match="junk.pb"):
        InceptionGraphExtractor(path)


def test_a_missing_local_graph_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="evaluate.inception_graph"):
        inception_graph_path(tmp_path / "nowhere.pb", cache_dir=tmp_path)


def _tgz_with(name: str, payload: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def test_graph_is_downloaded_once_and_cached(tmp_path, monkeypatch, stand_in_bytes):
    calls = []

    def fake_urlopen(url, timeout):
        calls.append(url)
        return io.BytesIO(_tgz_with(GRAPH_FILE, stand_in_bytes))

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    path = inception_graph_path(None, cache_dir=tmp_path / "cache")
    assert path == tmp_path / "cache" / GRAPH_FILE and path.read_bytes() == stand_in_bytes
    assert inception_graph_path(None, cache_dir=tmp_path / "cache") == path
    assert calls == [inception_module.INCEPTION_URL]
    assert [p.name for p in path.parent.iterdir()] == [GRAPH_FILE]  # no temporary left


def test_offline_download_says_where_to_put_the_graph(tmp_path, monkeypatch):
    def offline(url, timeout):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(InceptionUnavailableError) as error:
        make_extractor("inception", cache_dir=tmp_path)
    message = str(error.value)
    assert str(tmp_path / GRAPH_FILE) in message and "evaluate.inception_graph" in message
    assert inception_module.INCEPTION_URL in message and not list(tmp_path.iterdir())


@pytest.mark.parametrize("archive", [_tgz_with("README", b"nothing"), b"\x1f\x8b truncated"])
def test_a_bad_archive_is_an_error_that_leaves_nothing_behind(tmp_path, monkeypatch, archive):
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: io.BytesIO(archive))
    with pytest.raises(InceptionUnavailableError, match=GRAPH_FILE):
        inception_graph_path(None, cache_dir=tmp_path)
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------- Keras InceptionV3


def test_keras_inception_gives_2048_pooled_features():
    extractor = KerasInceptionExtractor(weights=None, batch_size=2)
    features = extractor(_images(2, 40))
    assert extractor.name == "keras_inception"
    assert features.shape == (2, 2048) and np.isfinite(features).all()
    assert (features >= 0).all()  # average of ReLU activations


def test_keras_inception_offline_is_a_clear_error(monkeypatch):
    def no_download(**kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None")

    monkeypatch.setattr(keras.applications, "InceptionV3", no_download)
    with pytest.raises(InceptionUnavailableError, match="evaluate.extractor"):
        make_extractor("keras_inception")


# ----------------------------------------------------------------------------- factory


def test_factory_names_its_choices():
    with pytest.raises(ValueError, match="encoder, inception, keras_inception"):
        make_extractor("vgg")
    with pytest.raises(ValueError, match="trained encoder"):
        make_extractor("encoder")
    encoder = build_encoder(16, {"a": 2}, 8)
    assert make_extractor("encoder", encoder=encoder).name == "encoder"
