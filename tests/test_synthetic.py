"""The synthetic face renderer: shapes, determinism, labels and their visible effect."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

from sagan.data.synthetic import (
    ATTRIBUTE_CLASSES,
    ATTRIBUTE_NAMES,
    COHERENCE_PAIRS,
    EYE_COLOURS,
    render_face,
)

NUM_FACES = 200  # enough for every class of every attribute to appear


@pytest.fixture(scope="module")
def faces() -> tuple[np.ndarray, np.ndarray]:
    """(N, 64, 64, 3) images and (N, A) labels of faces 0..N-1 of seed 7."""
    images, labels = zip(*(render_face(7, i) for i in range(NUM_FACES)), strict=True)
    return np.stack(images), np.stack(labels)


def _column(labels: np.ndarray, name: str) -> np.ndarray:
    return labels[:, ATTRIBUTE_NAMES.index(name)]


@pytest.mark.parametrize("size", [32, 64, 128])
def test_shapes_and_dtypes(size: int) -> None:
    image, labels = render_face(0, 0, size)
    assert image.shape == (size, size, 3) and image.dtype == np.uint8
    assert labels.shape == (len(ATTRIBUTE_NAMES),) and labels.dtype == np.int32


def test_public_names_agree() -> None:
    assert tuple(ATTRIBUTE_CLASSES) == ATTRIBUTE_NAMES
    assert all(a in ATTRIBUTE_NAMES and b in ATTRIBUTE_NAMES for a, b in COHERENCE_PAIRS)
    assert all(2 <= n <= 6 for n in ATTRIBUTE_CLASSES.values())


def test_same_inputs_give_identical_bytes() -> None:
    first, second = render_face(3, 11), render_face(3, 11)
    assert first[0].tobytes() == second[0].tobytes()
    assert np.array_equal(first[1], second[1])


def test_different_index_or_seed_gives_different_image() -> None:
    image = render_face(3, 11)[0]
    assert not np.array_equal(image, render_face(3, 12)[0])
    assert not np.array_equal(image, render_face(4, 11)[0])


def test_independent_of_call_order_and_process() -> None:
    forward = [render_face(5, i)[0] for i in range(6)]
    backward = [render_face(5, i)[0] for i in reversed(range(6))][::-1]
    with ProcessPoolExecutor(max_workers=2) as pool:
        pooled = [image for image, _ in pool.map(render_face, [5] * 6, range(6))]
    for a, b, c in zip(forward, backward, pooled, strict=True):
        assert a.tobytes() == b.tobytes() == c.tobytes()


def test_labels_in_range(faces: tuple[np.ndarray, np.ndarray]) -> None:
    _, labels = faces
    classes = np.array(list(ATTRIBUTE_CLASSES.values()))
    assert (labels >= 0).all() and (labels < classes).all()


@pytest.mark.parametrize("pair", COHERENCE_PAIRS)
def test_coherence_pairs_always_equal(
    faces: tuple[np.ndarray, np.ndarray], pair: tuple[str, str]
) -> None:
    _, labels = faces
    assert np.array_equal(_column(labels, pair[0]), _column(labels, pair[1]))


@pytest.mark.parametrize("name", ATTRIBUTE_NAMES)
def test_every_class_appears(faces: tuple[np.ndarray, np.ndarray], name: str) -> None:
    _, labels = faces
    assert set(_column(labels, name)) == set(range(ATTRIBUTE_CLASSES[name]))


def _dark_fraction(images: np.ndarray) -> np.ndarray:
    """Per image, the fraction of near-black pixels in the band the eyes sit in."""
    band = images[:, 20:34, 18:46].astype(np.float64)  # (N, 14, 28, 3): eyes, not hair
    return (band.max(axis=-1) < 60).mean(axis=(1, 2))


def test_glasses_darken_the_eye_band(faces: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = faces
    dark = _dark_fraction(images)
    with_glasses = _column(labels, "glasses") == 1
    assert dark[with_glasses].mean() > dark[~with_glasses].mean() + 0.05


@pytest.mark.parametrize("side", ["left", "right"])
def test_iris_colour_matches_the_label(faces: tuple[np.ndarray, np.ndarray], side: str) -> None:
    """Each half of the eye band shows its eye's iris colour, and no other.

    Brown irises share their colour with brown hair and dark skin, so a face reads
    as brown-eyed when no pixel is close to one of the other iris colours.
    """
    images, labels = faces
    half = images[:, 20:34, 14:32] if side == "left" else images[:, 20:34, 32:50]
    palette = np.array(EYE_COLOURS, dtype=np.float64)  # (K, 3); class 0 is brown
    distance = np.linalg.norm(half[..., None, :] - palette, axis=-1)  # (N, 14, 18, K)
    votes = (distance < 30).sum(axis=(1, 2))  # (N, K) pixels close to each iris colour
    votes[:, 0] = 0
    predicted = np.where(votes.max(axis=1) > 0, votes.argmax(axis=1), 0)
    assert np.array_equal(predicted, _column(labels, f"{side}_eye_colour"))
