"""The generator's BatchNorm at sampling time (issue 14): moving averages or standing statistics.

A BatchNorm layer samples with the moving averages of the batch statistics it saw in
training; they lag a generator whose weights move fast. Standing statistics (BigGAN) refit
them to the final weights: the mean of the batch statistics of a few hundred faces of fixed
noise (:func:`sagan.model.batchnorm.refit_batch_norm`, what the EMA generator already gets).
This scores the samples of one trained generator (``models/generator.keras``, as the train
stage left it) both ways, with the evaluate stage's protocol, data and extractor:

    dvc exp apply <experiment>          # or dvc repro: models/, data/ and the encoder in place
    python -m benchmarks.sampling_batchnorm [--standing-samples 512 2048]

It prints one row per variant: FID, precision, recall, density, coverage, coherence, the
attribute histograms' mean and worst total variation, and the dropped classes.
"""

from __future__ import annotations

import argparse

import keras
import numpy as np

from benchmarks.recipe_study import COLUMNS
from sagan import paths
from sagan.config import TrainConfig, load_config
from sagan.data.manifest import Manifest
from sagan.evaluation.scoring import (
    attribute_reader,
    extractor_for,
    real_split,
    score_samples,
)
from sagan.model.batchnorm import refit_batch_norm, standing_inputs
from sagan.model.saved import GENERATOR, load_model
from sagan.sampling.faces import sample_codes, sample_images
from sagan.sampling.samples import sample_distribution

# The recipe study's quality columns, so the two tables read alike.
KEYS = [key for _, file, key, _ in COLUMNS if file == "metrics/eval.json"]


def standing_copy(
    generator: keras.Model, count: int, train: TrainConfig, conditioning
) -> keras.Model:
    """A copy of ``generator`` whose BatchNorm statistics are refitted on ``count`` faces, in
    batches of ``train.batch_size`` as training refits the EMA generator."""
    copy = keras.models.clone_model(generator)
    copy.set_weights(generator.get_weights())
    latent_dim = generator.inputs[0].shape[-1]
    refit_batch_norm(
        copy, standing_inputs(latent_dim, train.seed, train.batch_size, count, conditioning)
    )
    return copy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--standing-samples",
        nargs="+",
        type=int,
        default=[512],
        help="faces each standing refit averages (multiples of train.batch_size)",
    )
    args = parser.parse_args()
    config = load_config()
    settings = config.evaluate
    generator = load_model(paths.MODELS_DIR / GENERATOR)
    conditioning = sample_distribution(generator, config.generate, paths.CONDITIONING_FILE)
    attributes = None
    if conditioning is not None:
        codes = sample_codes(conditioning, settings.num_samples, config.generate.seed)
        attributes = conditioning.encode(codes).numpy()
    manifest = Manifest.read(paths.PREPARED_DIR)
    extractor = extractor_for(settings.extractor, paths.ENCODER_MODEL, settings.inception_graph)
    reader = attribute_reader(extractor, manifest, paths.ENCODER_MODEL)
    test = real_split(
        paths.PREPARED_DIR, "test", paths.reference_file("test", settings.extractor), reader
    )
    variants = {"moving averages (as trained)": generator}
    for count in args.standing_samples:
        copy = standing_copy(generator, count, config.train, conditioning)
        variants[f"standing statistics, {count} faces"] = copy
    print(f"| BatchNorm at sampling | {' | '.join(KEYS)} |")
    print("|---" * (len(KEYS) + 1) + "|")
    for name, model in variants.items():
        generate = config.generate
        batches = sample_images(
            model, settings.num_samples, generate.seed, generate.batch_size, attributes
        )
        samples = np.concatenate(list(batches))
        scores = score_samples(settings, extractor, samples, test, manifest, reader)
        cells = [f"{scores[key]:.3g}" if key in scores else "–" for key in KEYS]
        print(f"| {name} | {' | '.join(cells)} |", flush=True)


if __name__ == "__main__":
    main()
