"""Inception features: the canonical FID network, and Keras' InceptionV3 as a stand-in.

``inception`` is the 2015-12-05 TensorFlow Inception graph that the original TTUR code,
pytorch-fid, torch-fidelity and clean-fid's legacy mode use: its 2048-d ``pool_3``
activations, fed images the way TTUR feeds them (float RGB in [0, 255] into
``ExpandDims:0``; the graph itself resizes to 299×299 and scales to [-1, 1]). Only
these features give FIDs comparable with published ones.

The graph uses ``BatchNormWithGlobalNormalization``, an op TensorFlow refuses to run in
any graph newer than GraphDef version 9. TF 2 functions (``wrap_function``) run at the
current version and fail, so the graph runs in a ``tf.compat.v1.Session`` over a
``tf.Graph`` that keeps the file's old producer version, as TTUR ran it. A placeholder of
shape (None, H, W, 3) replaces ``ExpandDims:0`` (batch size 1 in the file), so whole
batches go through at once; this is what TTUR's patch of the static shapes achieves.

``keras_inception`` is ``keras.applications.InceptionV3`` with ImageNet weights,
average-pooled (2048-d) after a bilinear resize to 299×299. Its weights differ from the
2015 graph's, so its FIDs are NOT comparable with published numbers.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import keras
import numpy as np
import tensorflow as tf
from google.protobuf.message import DecodeError

from sagan.evaluation.features.base import check_images, run_batched
from sagan.files import atomic_path

INCEPTION_URL = "http://download.tensorflow.org/models/image/imagenet/inception-2015-12-05.tgz"
GRAPH_FILE = "classify_image_graph_def.pb"  # the frozen GraphDef inside the archive
INPUT_TENSOR = "ExpandDims:0"  # (1, H, W, 3) float in [0, 255], after JPEG decoding
OUTPUT_TENSOR = "pool_3:0"  # (1, 1, 1, 2048)
KERAS_INPUT_SIZE = 299
DOWNLOAD_TIMEOUT_S = 60

logger = logging.getLogger(__name__)


class InceptionUnavailableError(RuntimeError):
    """The Inception network's weights are neither on disk nor downloadable."""


def default_cache_dir() -> Path:
    """Where Keras keeps its downloaded weights too: ``~/.keras/models``."""
    return Path.home() / ".keras" / "models"


def inception_graph_path(local_file: str | Path | None, cache_dir: str | Path | None) -> Path:
    """The frozen graph: ``local_file`` if given, else the cached copy, downloaded once."""
    if local_file is not None:
        path = Path(local_file)
        if not path.is_file():
            raise FileNotFoundError(
                f"evaluate.inception_graph names {path}, which does not exist; put "
                f"{GRAPH_FILE} from {INCEPTION_URL} there or set the key to null to download it"
            )
        return path
    cached = Path(cache_dir if cache_dir is not None else default_cache_dir()) / GRAPH_FILE
    if not cached.is_file():
        download_inception_graph(cached)
    return cached


def download_inception_graph(destination: Path, url: str = INCEPTION_URL) -> None:
    """Fetch the 2015 Inception archive and extract its frozen graph to ``destination``."""
    logger.info("downloading the FID Inception graph from %s", url)
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        with (
            urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response,
            tempfile.TemporaryFile() as archive,
        ):
            shutil.copyfileobj(response, archive)
            archive.seek(0)
            _extract_graph(archive, destination)
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        raise InceptionUnavailableError(
            f"could not download the FID Inception graph from {url} ({error}). Without "
            f"internet: fetch that archive elsewhere, extract {GRAPH_FILE} from it and put it "
            f"at {destination}, or name its path in evaluate.inception_graph"
        ) from error
    logger.info("saved the FID Inception graph to %s", destination)


def _extract_graph(archive: BinaryIO, destination: Path) -> None:
    """Copy the archive's graph member to ``destination`` atomically (never a half file)."""
    try:
        with (
            tarfile.open(fileobj=archive, mode="r:gz") as tar,
            atomic_path(destination) as temporary,
            temporary.open("wb") as out,
        ):
            shutil.copyfileobj(tar.extractfile(GRAPH_FILE), out)
    except (KeyError, tarfile.TarError, EOFError) as error:
        raise InceptionUnavailableError(
            f"the downloaded archive is damaged or has no {GRAPH_FILE} ({error!r})"
        ) from error


class FrozenGraph:
    """A frozen GraphDef run from ``input_name`` to ``output_name`` over whole batches."""

    def __init__(
        self, path: str | Path, input_name: str = INPUT_TENSOR, output_name: str = OUTPUT_TENSOR
    ):
        graph_def = tf.compat.v1.GraphDef()
        try:
            graph_def.ParseFromString(Path(path).read_bytes())
        except DecodeError as error:
            raise ValueError(f"{path} is not a frozen TensorFlow GraphDef") from error
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.images = tf.compat.v1.placeholder(tf.float32, (None, None, None, 3))
            (self.output,) = tf.compat.v1.import_graph_def(
                graph_def, {input_name: self.images}, [output_name], name="net"
            )

    @contextlib.contextmanager
    def session(self) -> Iterator[Callable[[np.ndarray], np.ndarray]]:
        """Yield ``run(batch) → output``, valid inside the ``with`` block (one session)."""
        with tf.compat.v1.Session(graph=self.graph) as session:
            yield lambda batch: session.run(self.output, {self.images: batch})


class InceptionGraphExtractor:
    """FID's canonical features: ``pool_3`` of the 2015 Inception graph, 2048-d."""

    name = "inception"

    def __init__(self, graph_path: str | Path, batch_size: int = 50):  # 50: TTUR's default
        self.batch_size = batch_size
        self._graph = FrozenGraph(graph_path)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = check_images(images)
        with self._graph.session() as run:
            return run_batched(
                lambda batch: run(batch.astype(np.float32)),  # (B, 1, 1, 2048)
                images,
                self.batch_size,
                desc="inception features",
            )


class KerasInceptionExtractor:
    """Keras InceptionV3, average-pooled 2048-d; FIDs not comparable with published ones."""

    name = "keras_inception"

    def __init__(self, weights: str | None = "imagenet", batch_size: int = 32):
        self.batch_size = batch_size
        try:
            model = keras.applications.InceptionV3(
                include_top=False,
                weights=weights,
                input_shape=(KERAS_INPUT_SIZE, KERAS_INPUT_SIZE, 3),
                pooling="avg",
            )
        except Exception as error:  # Keras reports a failed download as a bare Exception
            raise InceptionUnavailableError(
                f"could not load Keras InceptionV3 weights {weights!r} ({error}); without "
                f"internet, put inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5 in "
                f"{default_cache_dir()} or choose evaluate.extractor: encoder"
            ) from error
        self._forward = _resized_forward(model)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = check_images(images)
        return run_batched(self._forward, images, self.batch_size, desc="keras inception features")


def _resized_forward(model: keras.Model) -> Callable[[np.ndarray], tf.Tensor]:
    """uint8 (B, H, W, 3) → bilinear 299×299 → [-1, 1] (Inception's preprocessing) → model.

    Run eagerly: tracing InceptionV3 costs seconds and saves nothing on convolutions this big.
    """

    def forward(images: np.ndarray) -> tf.Tensor:
        size = (KERAS_INPUT_SIZE, KERAS_INPUT_SIZE)
        resized = tf.image.resize(tf.cast(images, tf.float32), size)  # (B, 299, 299, 3)
        return model(resized / 127.5 - 1.0, training=False)

    return forward
