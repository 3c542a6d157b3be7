"""Feature-extractor throughput on random 64×64 uint8 images.

    python -m benchmarks.features --num 10000
    python -m benchmarks.features --inception-graph /path/to/classify_image_graph_def.pb

Target: the ``encoder`` at ≥ 2,000 images/s on 2 CPU cores. The Inception numbers put the
canonical 2015 graph (only with ``--inception-graph``: it needs the real file) beside a
weights-free Keras InceptionV3 forward pass on the same images.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from sagan.data.synthetic import ATTRIBUTE_CLASSES
from sagan.evaluation.features import (
    EncoderExtractor,
    FeatureExtractor,
    InceptionGraphExtractor,
    KerasInceptionExtractor,
    build_encoder,
)


def images_per_second(extractor: FeatureExtractor, images: np.ndarray) -> float:
    """Throughput after one warm-up batch (tracing and allocation excluded)."""
    extractor(images[:2])
    start = time.perf_counter()
    extractor(images)
    return len(images) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=10000, help="images for the encoder")
    parser.add_argument("--inception-num", type=int, default=200, help="images for Inception")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--inception-graph", default=None, help="classify_image_graph_def.pb")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    shape = (args.num, args.image_size, args.image_size, 3)
    images = rng.integers(0, 256, shape, dtype=np.uint8)
    encoder = EncoderExtractor(build_encoder(args.image_size, ATTRIBUTE_CLASSES))
    print(f"encoder: {images_per_second(encoder, images):.0f} images/s ({args.num} images)")

    few = images[: args.inception_num]
    keras_rate = images_per_second(KerasInceptionExtractor(weights=None), few)
    print(f"keras InceptionV3 (weights=None, 299x299): {keras_rate:.1f} images/s")
    if args.inception_graph is None:
        print("inception (2015 graph): skipped, pass --inception-graph to measure it")
    else:
        graph_rate = images_per_second(InceptionGraphExtractor(args.inception_graph), few)
        print(f"inception (2015 graph, pool_3): {graph_rate:.1f} images/s")


if __name__ == "__main__":
    main()
