"""Evaluation during training: the validation split, the scores, the curve, the best checkpoint."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from sagan import paths
from sagan.config import ConfigError, EvaluateConfig, GenerateConfig, config_from_dict
from sagan.data.manifest import Manifest
from sagan.data.prepare import prepare
from sagan.evaluation.ceiling import ceilings
from sagan.evaluation.features import EncoderExtractor, build_encoder
from sagan.evaluation.scoring import (
    read_samples,
    read_split,
    real_split,
    save_reference,
    score_samples,
)
from sagan.evaluation.validation import ValidationScorer, check_keep_best
from sagan.model.networks import build_generator
from sagan.paths import QUALITY_FILE
from sagan.sampling.samples import write_samples
from sagan.training.checkpoints import BEST_DIR, BEST_RECORD
from sagan.training.quality import MINUTES, STEP, is_better
from sagan.training.settings import resolve_settings
from tests.helpers import REPO, fingerprint_of, images, tiny_config

EVAL_SAMPLES = 24
SETTINGS = EvaluateConfig(num_samples=EVAL_SAMPLES, kid_subset_size=8, kid_subsets=4)


def _config(**train):
    config = tiny_config(**{"eval_every": 2, "eval_samples": EVAL_SAMPLES, **train})
    return dataclasses.replace(config, evaluate=SETTINGS)


def _indices(prepared: Path, split: str, read_records) -> set[int]:
    return {int(record.filename.split("/")[1]) for record in read_records(prepared, split)}


def test_the_validation_split_is_disjoint_from_train_and_test_and_stable(
    prepared_data: Path, read_records, tmp_path: Path
) -> None:
    data = tiny_config().data
    splits = {
        split: _indices(prepared_data, split, read_records)
        for split in Manifest.read(prepared_data).splits
    }
    assert set(splits) == {"train", "validation", "test"}
    # Validation comes after the test faces: train and test are what they were before it.
    assert splits["train"] == set(range(data.num_train))
    test_end = data.num_train + data.num_test
    assert splits["test"] == set(range(data.num_train, test_end))
    assert splits["validation"] == set(range(test_end, test_end + data.num_validation))

    again = prepare(data, tmp_path / "again")  # prepare rerun: the same splits, byte for byte
    assert again.splits == Manifest.read(prepared_data).splits


@pytest.fixture(scope="module")
def scoring(prepared_data: Path, tmp_path_factory):
    """An (untrained, seeded) encoder, the validation reference, and a scorer with it."""
    config = _config()
    manifest = Manifest.read(prepared_data)
    encoder = EncoderExtractor(
        build_encoder(config.data.image_size, manifest.attributes, feature_dim=8)
    )
    reference = tmp_path_factory.mktemp("reference") / "validation_encoder.npz"
    save_reference(reference, encoder(read_split(prepared_data, "validation")[0]))
    validation = real_split(prepared_data, "validation", reference, encoder)
    scorer = ValidationScorer(config, encoder, validation, manifest, encoder)
    return config, scorer


def test_training_scores_equal_the_evaluate_path_on_the_same_samples(
    scoring, tmp_path: Path
) -> None:
    config, scorer = scoring
    generator = build_generator(config.model, config.data.image_size)
    during_training = scorer(generator)

    # What generate writes from the same seed, read back and scored as evaluate does.
    settings = GenerateConfig(num_samples=EVAL_SAMPLES, seed=config.train.seed, batch_size=10)
    write_samples(generator, settings, tmp_path / "samples")
    samples = read_samples(tmp_path / "samples" / "images", EVAL_SAMPLES, config.data.image_size)
    np.testing.assert_array_equal(samples, scorer.samples(generator))
    evaluated = score_samples(
        SETTINGS, scorer.extractor, samples, scorer.validation, scorer.manifest, scorer.reader
    )
    assert during_training == evaluated
    for key in (
        "fid",
        "precision",
        "recall",
        "density",
        "coverage",
        "attribute_tv",
        "attribute_tv_max",
        "dropped_classes",
        "coherence",
    ):
        assert key in during_training


def test_the_ceiling_scores_real_faces_of_the_other_split_as_samples(
    scoring, prepared_data: Path, tmp_path: Path, monkeypatch, caplog
) -> None:
    """Each ceiling is score_samples itself, on as many faces of the other split as the
    samples it stands beside: never the reference's own faces."""
    _, scorer = scoring
    encoder, manifest = scorer.extractor, scorer.manifest
    monkeypatch.chdir(tmp_path)  # the reference stage's files, at their paths
    faces = {split: read_split(prepared_data, split)[0] for split in ("validation", "test")}
    for split, split_faces in faces.items():
        save_reference(paths.reference_file(split, "encoder"), encoder(split_faces))
    shared = {face.tobytes() for face in faces["test"]} & {f.tobytes() for f in faces["validation"]}
    assert not shared  # the two splits hold no face in common

    config = _config(eval_samples=10)
    config = dataclasses.replace(config, evaluate=dataclasses.replace(SETTINGS, num_samples=12))
    got = ceilings(config, encoder, encoder, prepared_data)

    for split, other, count in (("test", "validation", 12), ("validation", "test", 10)):
        reference = paths.reference_file(split, "encoder")
        real = real_split(prepared_data, split, reference, encoder)
        as_samples = score_samples(
            config.evaluate, encoder, faces[other][:count], real, manifest, encoder
        )
        assert got[split] == as_samples and got[split]["num_samples"] == count
        itself = score_samples(
            config.evaluate, encoder, faces[split][:count], real, manifest, encoder
        )
        assert got[split]["fid"] != itself["fid"]

    # A split smaller than the samples: all of its faces, KID subsets no larger, a warning.
    fewer = _config(eval_samples=20)
    with caplog.at_level("WARNING"):
        assert ceilings(fewer, encoder, encoder, prepared_data)["validation"]["num_samples"] == 16
    assert "scores all 16 test faces, fewer than the 20 samples" in caplog.text


def _rows(root: Path, config) -> list[dict[str, str]]:
    path = root / "checkpoints" / fingerprint_of(config) / "plots" / QUALITY_FILE
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _best(root: Path, config) -> dict:
    import json

    return json.loads(
        (root / "checkpoints" / fingerprint_of(config) / BEST_DIR / BEST_RECORD).read_text()
    )


def _without_minutes(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{key: value for key, value in row.items() if key != MINUTES} for row in rows]


@pytest.fixture(scope="module")
def straight_run(scoring, tmp_path_factory):
    """6 updates evaluated at 2, 4 and 6, uninterrupted: what a resumed run must match."""
    _, scorer = scoring
    config = _config(steps=6, keep_best="recall")
    root = tmp_path_factory.mktemp("straight")
    trainer, metrics = _train(config, root, scorer)
    return config, root, trainer, metrics


def _train(config, root: Path, scorer):
    from sagan.training.loop import TrainPaths, train
    from sagan.training.step import GANTrainer

    trainer = GANTrainer(resolve_settings(config))
    paths = TrainPaths(checkpoints=root / "checkpoints", plots=root / "plots")
    return trainer, train(trainer, images(), 64, paths, scorer=scorer)


def test_the_curve_has_a_row_per_evaluation_and_the_best_checkpoint_is_exported(
    straight_run,
) -> None:
    config, root, trainer, metrics = straight_run
    rows = _rows(root, config)
    assert [int(row[STEP]) for row in rows] == [2, 4, 6]
    minutes = [float(row[MINUTES]) for row in rows]
    assert 0 < minutes[0] < minutes[1] < minutes[2]
    recalls = [float(row["recall"]) for row in rows]
    best_step = [2, 4, 6][int(np.argmax(recalls))]  # the first of equals: ties keep the earlier
    assert _best(root, config) == {"metric": "recall", "value": max(recalls), "step": best_step}
    assert metrics["best_step"] == best_step and metrics["best_recall"] == max(recalls)
    assert int(trainer.step.numpy()) == best_step  # the trainer holds the best state to export
    # The published plots hold the curve too (plots/train/quality.csv in the pipeline).
    assert (root / "plots" / QUALITY_FILE).read_text() == (
        root / "checkpoints" / fingerprint_of(config) / "plots" / QUALITY_FILE
    ).read_text()


class _Killed(Exception):
    """Stands in for a kill -9: the process stops where it is."""


@pytest.mark.parametrize("where", ["while scoring", "after the row, before the best"])
def test_a_run_killed_during_an_evaluation_resumes_with_the_whole_curve(
    where: str, scoring, straight_run, tmp_path: Path, monkeypatch
) -> None:
    from sagan.training.checkpoints import Checkpoints

    config, straight_root, _, straight_metrics = straight_run
    _, scorer = scoring
    calls = []

    def scorer_dying_at_step_4(generator):
        calls.append(1)
        if where == "while scoring" and len(calls) == 2:
            raise _Killed
        return scorer(generator)

    if where == "after the row, before the best":
        # The first evaluation (step 2) is always a new best: its row is written, then the
        # best checkpoint's write dies.
        def dying_save_best(self, step, record):
            raise _Killed

        monkeypatch.setattr(Checkpoints, "save_best", dying_save_best)
    with pytest.raises(_Killed):
        _train(config, tmp_path, scorer_dying_at_step_4)
    monkeypatch.undo()
    trainer, metrics = _train(config, tmp_path, scorer)

    assert _without_minutes(_rows(tmp_path, config)) == _without_minutes(
        _rows(straight_root, config)
    )
    assert _best(tmp_path, config) == _best(straight_root, config)
    assert metrics["best_step"] == straight_metrics["best_step"]


def test_better_follows_the_metric_direction() -> None:
    assert is_better("fid", 10.0, 12.0) and not is_better("fid", 12.0, 10.0)
    assert is_better("recall", 0.6, 0.5) and not is_better("recall", 0.5, 0.5)
    assert is_better("dropped_classes", 0, None)


def test_keep_best_needs_evaluations_and_eval_samples_fit_the_scores() -> None:
    import yaml

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train"].update(eval_every=None, keep_best="fid")
    with pytest.raises(ConfigError, match="train.keep_best .* train.eval_every is null"):
        config_from_dict(params)
    params["train"].update(eval_every=100, eval_samples=100)
    with pytest.raises(ConfigError, match=r"kid_subset_size \(500\) .* train.eval_samples"):
        config_from_dict(params)
    params["train"].update(eval_samples=1000, keep_best="sharpness")
    with pytest.raises(ConfigError, match="train.keep_best must be one of fid, kid"):
        config_from_dict(params)


def test_keep_best_must_be_a_score_the_data_allows(prepared_data: Path) -> None:
    manifest = Manifest.read(prepared_data)
    check_keep_best("coherence", manifest)  # the synthetic faces have all of them
    unlabelled = dataclasses.replace(
        manifest, source="folder", attribute_names=(), attribute_classes=(), coherence_pairs=()
    )
    check_keep_best("recall", unlabelled)
    with pytest.raises(ConfigError, match="train.keep_best is 'dropped_classes'.* has none"):
        check_keep_best("dropped_classes", unlabelled)
    with pytest.raises(ConfigError, match="train.keep_best is 'coherence'.* no attributes that"):
        check_keep_best("coherence", dataclasses.replace(manifest, coherence_pairs=()))
