"""The ceiling of every score: real faces of one split scored as if they were samples.

A generator that drew faces exactly like the data's would score what real faces score. The
faces scored come from the other split than the one they are compared with (never a face
against itself), and are as many as the samples those scores are compared with, because FID
and KID depend on the count:

- ``test``: ``evaluate.num_samples`` validation faces against the test split, the ceiling
  of metrics/eval.json;
- ``validation``: ``train.eval_samples`` test faces against the validation split, the
  ceiling of the evaluations during training (plots/train/quality.csv).

They are scored by :func:`~sagan.evaluation.scoring.score_samples`, the function that scores
samples, with the same settings: only the faces differ.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from sagan import paths
from sagan.config import Config
from sagan.data.manifest import Manifest
from sagan.evaluation.features import EncoderExtractor, FeatureExtractor
from sagan.evaluation.scoring import read_split, real_split, score_samples
from sagan.files import read_json

logger = logging.getLogger(__name__)

# The split a ceiling is scored against: the split its faces come from.
SCORED_FACES = {"test": "validation", "validation": "test"}


def ceiling_counts(config: Config) -> dict[str, int]:
    """How many faces each ceiling scores: as many as the samples it stands beside."""
    return {"test": config.evaluate.num_samples, "validation": config.train.eval_samples}


def ceilings(
    config: Config,
    extractor: FeatureExtractor,
    reader: EncoderExtractor | None,
    data_dir: Path,
) -> dict[str, dict[str, float]]:
    """``{"test": scores, "validation": scores}``: each split's ceiling (see the module).

    A split with fewer faces than asked gives them all, with a warning (and KID subsets of
    at most that many), so a small dataset still gets a ceiling, marked by its num_samples.
    """
    manifest = Manifest.read(data_dir)
    scores = {}
    for split, count in ceiling_counts(config).items():
        faces, _ = read_split(data_dir, SCORED_FACES[split])
        if len(faces) < count:
            logger.warning(
                "the %s ceiling scores all %d %s faces, fewer than the %d samples it stands "
                "beside: its FID and KID are biased upward",
                split,
                len(faces),
                SCORED_FACES[split],
                count,
            )
        faces = faces[:count]
        settings = config.evaluate
        settings = dataclasses.replace(
            settings, kid_subset_size=min(settings.kid_subset_size, len(faces))
        )
        reference = paths.reference_file(split, settings.extractor)
        real = real_split(data_dir, split, reference, reader)
        scores[split] = score_samples(settings, extractor, faces, real, manifest, reader)
    return scores


def read_ceilings(path: Path) -> dict[str, dict[str, float]]:
    """The reference stage's ceilings (:func:`ceilings`), from ``path``."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run the reference stage (dvc repro)")
    return read_json(path)
