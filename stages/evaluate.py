"""DVC stage `evaluate`: FID, KID and precision/recall of the samples against the test split.

Writes metrics/eval.json and logs it to the pipeline's MLflow run. With the encoder
extractor on synthetic faces it also scores global coherence (both eyes the same colour,
eyebrows the hair's colour) on the samples and on real test faces (the ceiling).

Samples of a conditional generator (generate wrote samples/attributes.csv) also get the
conditional accuracy of each attribute (the encoder reads back the class asked for; on real
test images, the true class: the ceiling) and intra-FID over the values of
``evaluate.intra_fid_attribute``.
"""

from __future__ import annotations

import logging
import sys
from typing import NamedTuple

import numpy as np

from sagan import paths
from sagan.config import ConfigError, EvaluateConfig, load_config
from sagan.data.errors import DataError
from sagan.evaluation import metrics
from sagan.evaluation.features import EncoderExtractor, InceptionUnavailableError
from sagan.evaluation.scoring import (
    CONDITIONAL_ACCURACY_REAL,
    EXTRACTOR,
    coherence_scores,
    conditional_accuracy,
    extractor_for,
    intra_fid_column,
    intra_fid_scores,
    load_encoder,
    load_reference,
    manifest_attributes,
    read_sample_attributes,
    read_samples,
    read_split,
)
from sagan.files import sweep_temporaries, write_json
from sagan.tracking import TrackingError, reopen_run

logger = logging.getLogger("stages.evaluate")


class Conditioned(NamedTuple):
    """What conditional samples were asked for, and where their attributes sit in the data."""

    names: tuple[str, ...]
    classes: np.ndarray  # (N, k): each sample's class of each conditioned attribute
    columns: list[int]  # the attributes' positions in the manifest (and encoder heads)
    intra_fid: int  # which of them intra-FID groups by
    encoder: EncoderExtractor


def read_conditioned(
    settings: EvaluateConfig, attribute_classes: dict[str, int], extractor
) -> Conditioned | None:
    """The samples' attributes (None when generate wrote none: an unconditional model)."""
    if not paths.SAMPLE_ATTRIBUTES.is_file():
        return None
    names, classes = read_sample_attributes(paths.SAMPLE_ATTRIBUTES, settings.num_samples)
    manifest_names = list(attribute_classes)
    missing = [name for name in names if name not in manifest_names]
    if missing:
        raise DataError(f"the prepared data has no attribute {missing[0]!r}: rerun train")
    encoder = (
        extractor
        if isinstance(extractor, EncoderExtractor)
        else EncoderExtractor(load_encoder(paths.ENCODER_MODEL))
    )
    columns = [manifest_names.index(name) for name in names]
    column = intra_fid_column(settings.intra_fid_attribute, names)
    return Conditioned(names, classes, columns, column, encoder)


def conditional_scores(
    conditioned: Conditioned,
    samples: np.ndarray,
    fake: np.ndarray,
    real: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
) -> dict[str, float]:
    """Conditional accuracy (generated and real) and intra-FID of conditional samples."""
    names, columns, column = conditioned.names, conditioned.columns, conditioned.intra_fid
    real_labels = test_labels[:, columns]  # (M, k)
    return {
        **conditional_accuracy(conditioned.encoder, columns, names, samples, conditioned.classes),
        **conditional_accuracy(
            conditioned.encoder, columns, names, test_images, real_labels, CONDITIONAL_ACCURACY_REAL
        ),
        **intra_fid_scores(
            real, real_labels[:, column], fake, conditioned.classes[:, column], names[column]
        ),
    }


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sweep_temporaries(paths.EVAL_METRICS.parent)  # what a killed run left
    try:
        config = load_config()
        settings = config.evaluate
        source, attribute_classes = manifest_attributes(paths.PREPARED_DIR)
        real, real_stats = load_reference(paths.REFERENCE_DIR / f"{settings.extractor}.npz")
        samples = read_samples(paths.SAMPLE_IMAGES, settings.num_samples, config.data.image_size)
        extractor = extractor_for(settings.extractor, paths.ENCODER_MODEL, settings.inception_graph)
        conditioned = read_conditioned(settings, attribute_classes, extractor)
        tracker = reopen_run(config, paths.RUN_FILE)
    except (
        ConfigError,
        DataError,
        FileNotFoundError,
        ValueError,
        TrackingError,
        InceptionUnavailableError,
    ) as error:
        logger.error("%s", error)
        return 1
    try:
        fake = extractor(samples)
        scores = metrics.compute_metrics(
            real,
            fake,
            kid_subset_size=settings.kid_subset_size,
            kid_subsets=settings.kid_subsets,
            pr_k=settings.pr_k,
            seed=settings.seed,
            real_statistics=real_stats,
        )
        coherence = settings.extractor == "encoder" and source == "synthetic"
        if coherence or conditioned is not None:
            test_images, test_labels = read_split(paths.PREPARED_DIR, "test")
        if coherence:
            scores.update(
                coherence_scores(extractor, samples, test_images, tuple(attribute_classes))
            )
        if conditioned is not None:
            scores.update(
                conditional_scores(conditioned, samples, fake, real, test_images, test_labels)
            )
        write_json(paths.EVAL_METRICS, {**scores, EXTRACTOR: settings.extractor})
        tracker.log_metrics({f"eval_{key}": value for key, value in scores.items()}, step=0)
        tracker.log_artifact(paths.EVAL_METRICS, "evaluate")
    except BaseException:
        tracker.finish("FAILED")
        raise
    tracker.finish()
    logger.info("%s", scores)
    return 0


if __name__ == "__main__":
    sys.exit(main())
