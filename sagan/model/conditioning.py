"""What a conditional model is conditioned on: attributes, their code and their distribution.

A conditional model sees the attributes named by ``model.condition_on`` as one vector: each
attribute's class as a one-hot code, concatenated in that order (K = Σ classes). A binary
attribute (every CelebA one) is off/on = class 0/1; a multi-class one (the synthetic faces'
skin tone, 4 classes) works the same way.

The training split's attribute combinations are kept as their distinct rows and how many
images carry each. Drawing rows with probability count/total gives the fake batch (and the
samples) attribute combinations at their real frequencies. This travels with the models as
``models/attributes.json``, so generate needs no access to the data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from sagan import randomness
from sagan.config import ConfigError
from sagan.files import read_json, write_json


@dataclass(frozen=True, eq=False)  # eq=False: numpy fields have no truth value to compare
class Conditioning:
    names: tuple[str, ...]  # conditioned attributes, in the order of model.condition_on
    classes: tuple[int, ...]  # classes of each
    columns: tuple[int, ...]  # their positions among the manifest's attribute_names
    rows: np.ndarray  # (U, k) int32: the distinct combinations of classes in the training split
    counts: np.ndarray  # (U,) int64: training images per combination

    @property
    def dim(self) -> int:
        """K, the length of the one-hot attribute vector."""
        return sum(self.classes)

    def select(self, labels: tf.Tensor) -> tf.Tensor:
        """(B, A) labels in manifest order → (B, k) classes of the conditioned attributes."""
        return tf.gather(labels, self.columns, axis=1)

    def encode(self, codes) -> tf.Tensor:
        """(B, k) classes → (B, K) float32 concatenated one-hot codes."""
        codes = tf.convert_to_tensor(codes, tf.int32)
        parts = [tf.one_hot(codes[:, i], depth) for i, depth in enumerate(self.classes)]
        return tf.concat(parts, axis=1)

    def draw(self, count: int, seed) -> tf.Tensor:
        """(count, k) int32 rows drawn at their training frequencies, keyed by a stateless seed.

        The first n of a draw are the draw of n, whatever ``count``.
        """
        cumulative = tf.constant(np.cumsum(self.counts), tf.int64)  # (U,)
        seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
        # a training image, by its position among the rows' counts
        images = randomness.integers(count, seed, cumulative[-1])  # (count,)
        rows = tf.searchsorted(cumulative, images, side="right")  # (count,)
        return tf.gather(tf.constant(self.rows, tf.int32), rows)

    def fixing(self, fixed: Mapping[str, int] | None, key: str) -> Conditioning:
        """The distribution given some attributes' classes: only the rows that carry them.

        ``fixed`` comes from the param ``key``; a name that is not conditioned on, a class out
        of range or a combination no training image has is a ConfigError naming ``key``.
        """
        if not fixed:
            return self
        self.check_classes(fixed, key)
        keep = np.ones(len(self.rows), bool)
        for name, value in fixed.items():
            keep &= self.rows[:, self.names.index(name)] == value
        if not keep.any():
            raise ConfigError(f"{key}: no training image has {dict(fixed)}")
        return dataclasses.replace(self, rows=self.rows[keep], counts=self.counts[keep])

    def check_classes(self, classes: Mapping[str, int], key: str) -> None:
        """Every name conditioned on, every class in range, or a ConfigError naming ``key``."""
        for name, value in classes.items():
            if name not in self.names:
                raise ConfigError(
                    f"{key}: the model is not conditioned on {name!r}; "
                    f"it is conditioned on: {', '.join(self.names)}"
                )
            column = self.names.index(name)
            if not 0 <= value < self.classes[column]:
                raise ConfigError(
                    f"{key}.{name} must be a class from 0 to {self.classes[column] - 1}, "
                    f"got {value}"
                )

    def save(self, path: Path) -> None:
        record = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        record = {name: np.asarray(value).tolist() for name, value in record.items()}
        write_json(path, record)


def read_conditioning(path: Path) -> Conditioning:
    """The conditioning that train saved beside a conditional model."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"no {path} beside a conditional generator: rerun train")
    record = read_json(path)
    return Conditioning(
        names=tuple(record["names"]),
        classes=tuple(record["classes"]),
        columns=tuple(record["columns"]),
        rows=np.asarray(record["rows"], np.int32).reshape(-1, len(record["names"])),
        counts=np.asarray(record["counts"], np.int64),
    )


def conditioning_from_labels(
    condition_on: Sequence[str] | None,
    attribute_names: Sequence[str],
    attribute_classes: Sequence[int],
    labels: np.ndarray,
) -> Conditioning:
    """The attributes named by ``model.condition_on`` (None: all) and their distribution.

    ``attribute_names`` / ``attribute_classes`` are the manifest's; ``labels`` the training
    split's (N, A) labels in that order. An unknown name is a ConfigError listing the valid ones.
    """
    if not attribute_names:
        raise ConfigError(
            "model.conditional needs attribute labels, and the prepared data has none: "
            "set model.conditional: false or prepare a labelled source"
        )
    names = tuple(attribute_names) if condition_on is None else tuple(condition_on)
    unknown = [name for name in names if name not in attribute_names]
    if unknown:  # a repeated name is a config error, checked when params.yaml loads
        raise ConfigError(
            f"model.condition_on: unknown attribute {unknown[0]!r}; "
            f"the prepared data's attributes are: {', '.join(attribute_names)}"
        )
    columns = tuple(list(attribute_names).index(name) for name in names)
    rows, counts = np.unique(np.asarray(labels)[:, columns], axis=0, return_counts=True)
    return Conditioning(
        names=names,
        classes=tuple(int(attribute_classes[column]) for column in columns),
        columns=columns,
        rows=rows.astype(np.int32),
        counts=counts.astype(np.int64),
    )


def sweep_codes(conditioning: Conditioning, base: np.ndarray, attribute: int) -> np.ndarray:
    """(F, k) base rows → (F, c, k): each row with ``attribute`` set to each of its c classes."""
    classes = conditioning.classes[attribute]
    codes = np.repeat(np.asarray(base)[:, None, :], classes, axis=1)  # (F, c, k)
    codes[:, :, attribute] = np.arange(classes)
    return codes


def model_inputs(x, attributes):
    """``x`` alone for an unconditional model, ``[x, attributes]`` for a conditional one.

    Both as tensors: Keras refuses a list that mixes NumPy arrays and tensors.
    """
    if attributes is None:
        return x
    return [tf.convert_to_tensor(x), tf.convert_to_tensor(attributes, tf.float32)]
