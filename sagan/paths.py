"""Output paths of the pipeline stages, relative to the repository root (DVC's working directory).

``dvc.yaml`` lists the same paths as stage outputs; a test keeps the two in step.
"""

from __future__ import annotations

from pathlib import Path

PREPARED_DIR = Path("data/prepared")  # prepare: TFRecord shards and their manifest
MANIFEST_NAME = "manifest.json"  # inside PREPARED_DIR: counts, attributes, skipped files, sha256

MODELS_DIR = Path("models")  # train: generator.keras, discriminator.keras (+ generator_ema.keras)
RUN_FILE = MODELS_DIR / "mlflow_run.json"  # train: the pipeline's MLflow run id, for later stages
CONDITIONING_FILE = MODELS_DIR / "attributes.json"  # train, conditional: sagan.model.conditioning
CHECKPOINTS_DIR = Path("checkpoints")  # train, outside DVC: checkpoints/<params fingerprint>/
TRAIN_METRICS = Path("metrics/train.json")  # train: final losses, gammas, steps, images/s
TRAIN_PLOTS_DIR = Path("plots/train")  # train: history.csv, samples/step_NNNNNN.png, attention/
SAMPLES_DIR = Path("samples")  # generate: images/NNNNNN.png, grid.png, interpolation.png
SAMPLE_IMAGES = SAMPLES_DIR / "images"
SAMPLE_ATTRIBUTES = SAMPLES_DIR / "attributes.csv"  # generate, conditional: each image's classes
ENCODER_DIR = Path("encoder")  # encoder: encoder.keras, the feature network of extractor=encoder
ENCODER_MODEL = ENCODER_DIR / "encoder.keras"
ENCODER_METRICS = Path("metrics/encoder.json")  # encoder: per-attribute test accuracy
REFERENCE_DIR = Path("data/reference")  # reference: <split>_<extractor>.npz, see reference_file
CEILING_METRICS = Path("metrics/ceiling.json")  # reference: real faces scored as samples
EVAL_METRICS = Path("metrics/eval.json")  # evaluate: fid, kid, kid_std, precision, recall, ...
QUALITY_FILE = "quality.csv"  # in TRAIN_PLOTS_DIR: the scores of each evaluation during training
ATTENTION_SNAPSHOTS = TRAIN_PLOTS_DIR / "attention"  # train: step_NNNNNN.npz map snapshots
ATTENTION_PLOTS_DIR = Path("plots/attention")  # attention: map overlays, gamma/sigma curves


def reference_file(split: str, extractor: str) -> Path:
    """The reference stage's features of a prepared split ("validation" or "test")."""
    return REFERENCE_DIR / f"{split}_{extractor}.npz"
