"""Saved models: the file names train writes and the one safe way every stage loads them.

Models load in Keras's safe mode, so a file that would run arbitrary code on load (a
``Lambda`` layer's pickled function) is refused; our layers are registered by importing
:mod:`sagan.model.layers`.
"""

from __future__ import annotations

from pathlib import Path

import keras

from sagan.model import layers  # noqa: F401  (registers the custom layers with Keras)

GENERATOR = "generator.keras"
DISCRIMINATOR = "discriminator.keras"
EMA_GENERATOR = "generator_ema.keras"


def load_model(path: Path, hint: str = "run the train stage first") -> keras.Model:
    """The model saved at ``path``, in safe mode; ``hint`` says how to make a missing one."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"no {path}: {hint}")
    try:
        return keras.models.load_model(path, safe_mode=True)
    except ValueError as error:
        raise ValueError(f"cannot load {path}: {error}") from error


def load_generator(models_dir: Path) -> keras.Model:
    """The EMA generator when training kept one, else the generator."""
    ema = Path(models_dir) / EMA_GENERATOR
    return load_model(ema if ema.is_file() else Path(models_dir) / GENERATOR)
