"""Procedural cartoon faces: the offline default dataset.

Each face is a pure function of ``(seed, index, image_size)``: a per-image
``np.random.default_rng([seed, index])`` draws the attribute labels and a small pose
jitter, Pillow draws the face at ``SUPERSAMPLE`` times the target size and a box
filter averages it down, so edges come out antialiased.

The faces carry long-range structure for self-attention to capture: the two eyes
share colour and size at positions mirrored about the face's axis (and look the
same way), glasses span both eyes with a bridge, the eyebrows take the hair's
colour. Attributes that must agree are labelled separately and listed in
``COHERENCE_PAIRS``, so a classifier that reads each one on its own can measure how
often generated faces agree with themselves. "Left" is the viewer's left.

Geometry is written in face units: the image spans [-1, 1] on both axes, y down.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

# Colours sit far apart in RGB so that a classifier can tell them at 64x64.
SKIN_TONES = ((252, 224, 200), (230, 182, 140), (182, 124, 84), (120, 78, 52))
FACE_WIDTHS = (0.37, 0.42, 0.48)  # half-widths: narrow, oval, wide; half-height is 0.5
HAIR_COLOURS = ((32, 28, 30), (122, 70, 34), (238, 204, 102), (214, 92, 36))
HAIR_STYLES = ("bald", "short", "long", "fringe")
EYE_COLOURS = ((116, 64, 24), (40, 110, 235), (40, 170, 70), (150, 60, 205))
EYE_SIZES = (0.8, 1.0, 1.25)
MOUTH_SHAPES = ("smile", "neutral", "open")
BACKGROUNDS = ((150, 192, 232), (164, 218, 172), (204, 176, 226), (236, 168, 168))
BACKGROUND_NAMES = ("blue", "green", "purple", "pink")  # in the order of BACKGROUNDS
SHIRTS = ((70, 80, 120), (110, 110, 110), (60, 110, 90), (140, 60, 70), (230, 230, 230))

ATTRIBUTE_CLASSES: dict[str, int] = {
    "skin_tone": len(SKIN_TONES),
    "face_shape": len(FACE_WIDTHS),
    "hair_colour": len(HAIR_COLOURS),
    "hair_style": len(HAIR_STYLES),
    "eyebrow_colour": len(HAIR_COLOURS),
    "left_eye_colour": len(EYE_COLOURS),
    "right_eye_colour": len(EYE_COLOURS),
    "eye_size": len(EYE_SIZES),
    "mouth_shape": len(MOUTH_SHAPES),
    "glasses": 2,
    "background": len(BACKGROUNDS),
}
ATTRIBUTE_NAMES: tuple[str, ...] = tuple(ATTRIBUTE_CLASSES)
# (leader, follower): the follower copies the leader's label; leaders come first.
COHERENCE_PAIRS: tuple[tuple[str, str], ...] = (
    ("hair_colour", "eyebrow_colour"),
    ("left_eye_colour", "right_eye_colour"),
)

SUPERSAMPLE = 4  # drawn at 4x and box-filtered down: smooth edges, ~1 ms a face at 64x64
FACE_CY = -0.1  # face centre; the neck and shoulders fill the image below it
FACE_RY = 0.5
OUTLINE = 0.02  # dark rim drawn around skin so a face never melts into its surroundings
ZOOM = 1.15  # face units to image half-widths: the head fills about 60 % of the height
MAX_SHIFT, MAX_SCALE, MAX_DEGREES = 0.08, 0.08, 8.0  # pose jitter: ~2.5 px, 8 %, 8 deg


@dataclass(frozen=True)
class _Pen:
    """Draws shapes given in face units through the image's pose transform."""

    draw: ImageDraw.ImageDraw
    matrix: np.ndarray  # (2, 2) face units -> canvas pixels: rotation times scale
    origin: np.ndarray  # (2,) canvas pixels of the face-unit point (0, 0)

    def _xy(self, points: np.ndarray) -> list[float]:
        return (points @ self.matrix.T + self.origin).ravel().tolist()

    def fill(self, points: np.ndarray, colour: tuple[int, ...]) -> None:
        self.draw.polygon(self._xy(points), fill=colour)

    def line(self, points: np.ndarray, colour: tuple[int, ...], width: float) -> None:
        pixels = max(1, round(width * abs(np.linalg.det(self.matrix)) ** 0.5))
        self.draw.line(self._xy(points), fill=colour, width=pixels, joint="curve")


def _arc(
    cx: float,
    cy: float,
    rx: float,
    ry: float,
    start: float = 0.0,
    stop: float = 2 * np.pi,
    n: int = 40,
) -> np.ndarray:
    """(n, 2) points on an ellipse from angle ``start`` to ``stop`` (radians, y down)."""
    t = np.linspace(start, stop, n)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def _mirror(points: np.ndarray) -> np.ndarray:
    return points * np.array([-1.0, 1.0])


def _shade(colour: tuple[int, ...], factor: float) -> tuple[int, ...]:
    return tuple(min(255, round(c * factor)) for c in colour)


def _sample_labels(rng: np.random.Generator) -> dict[str, int]:
    followers = {follower: leader for leader, follower in COHERENCE_PAIRS}
    labels: dict[str, int] = {}
    for name, classes in ATTRIBUTE_CLASSES.items():
        leader = followers.get(name)
        labels[name] = labels[leader] if leader else int(rng.integers(classes))
    return labels


def _make_pen(rng: np.random.Generator, draw: ImageDraw.ImageDraw, canvas: int) -> _Pen:
    scale = ZOOM * (1.0 + rng.uniform(-MAX_SCALE, MAX_SCALE))
    angle = np.deg2rad(rng.uniform(-MAX_DEGREES, MAX_DEGREES))
    shift = rng.uniform(-MAX_SHIFT, MAX_SHIFT, size=2)
    cos, sin = np.cos(angle), np.sin(angle)
    half = canvas / 2
    matrix = half * scale * np.array([[cos, -sin], [sin, cos]])
    return _Pen(draw, matrix, half * (1.0 + shift))


def _draw_body(pen: _Pen, skin: tuple[int, ...], shirt: tuple[int, ...]) -> None:
    neck = np.array([[-0.15, 0.2], [0.15, 0.2], [0.15, 0.8], [-0.15, 0.8]])
    pen.fill(neck, _shade(skin, 0.85))
    pen.fill(_arc(0.0, 1.15, 0.9, 0.5), shirt)


def _draw_head(pen: _Pen, rx: float, skin: tuple[int, ...]) -> None:
    rim = _shade(skin, 0.6)
    for side in (-1.0, 1.0):  # ears: mirrored about the face's axis
        ex = side * (rx - 0.01)
        pen.fill(_arc(ex, FACE_CY + 0.04, 0.08 + OUTLINE, 0.12 + OUTLINE), rim)
        pen.fill(_arc(ex, FACE_CY + 0.04, 0.08, 0.12), skin)
    pen.fill(_arc(0.0, FACE_CY, rx + OUTLINE, FACE_RY + OUTLINE, n=64), rim)
    pen.fill(_arc(0.0, FACE_CY, rx, FACE_RY, n=64), skin)


def _hair_cap(rx: float, cut: float, hairline: np.ndarray) -> np.ndarray:
    """Top of a hair ellipse down to height ``cut``, closed by ``hairline`` (right to left)."""
    cy, ry = FACE_CY - 0.04, FACE_RY + 0.05
    t0 = np.arcsin((cut - cy) / ry)
    outer = _arc(0.0, cy, rx + 0.06, ry, np.pi - t0, 2 * np.pi + t0)
    return np.concatenate([outer, hairline])


def _draw_hair(pen: _Pen, style: str, rx: float, colour: tuple[int, ...]) -> None:
    if style == "bald":  # tufts above the ears keep the hair colour visible
        tuft = _arc(rx - 0.01, FACE_CY - 0.06, 0.045, 0.14)
        pen.fill(tuft, colour)
        pen.fill(_mirror(tuft), colour)
        return
    if style == "fringe":  # straight bangs with a jagged edge, down to the eyebrows
        x = np.linspace(rx + 0.02, -rx - 0.02, 15)
        y = FACE_CY - 0.2 + 0.04 * (np.arange(15) % 2)
        pen.fill(_hair_cap(rx, FACE_CY - 0.2, np.stack([x, y], axis=1)), colour)
        return
    x = np.linspace(rx + 0.04, -rx - 0.04, 15)  # short and long: a hairline arched upward
    y = FACE_CY - 0.24 - 0.1 * (1 - (x / (rx + 0.04)) ** 2)
    pen.fill(_hair_cap(rx, FACE_CY - 0.24, np.stack([x, y], axis=1)), colour)


def _draw_long_hair_back(pen: _Pen, rx: float, colour: tuple[int, ...]) -> None:
    top = _arc(0.0, FACE_CY, rx + 0.12, FACE_RY + 0.08, np.pi, 2 * np.pi)
    pen.fill(np.concatenate([top, [[rx + 0.12, 0.85], [-rx - 0.12, 0.85]]]), colour)


def _draw_eyes(
    pen: _Pen, rng: np.random.Generator, labels: dict[str, int], rx: float, brow: tuple[int, ...]
) -> float:
    """Draw both eyes and eyebrows; return the eyes' half-spacing for the glasses."""
    k = EYE_SIZES[labels["eye_size"]]
    spacing = 0.44 * rx + 0.02
    gaze = rng.uniform(-0.035, 0.035) * k  # both eyes look the same way
    for side, name in ((-1.0, "left_eye_colour"), (1.0, "right_eye_colour")):
        x = side * spacing
        pen.line(
            _arc(x, FACE_CY + 0.02, 0.12 * k, 0.06 + 0.1 * k, 1.15 * np.pi, 1.85 * np.pi, n=12),
            brow,
            0.055,
        )
        pen.fill(_arc(x, FACE_CY, 0.1 * k + 0.015, 0.068 * k + 0.015), (40, 30, 30))
        pen.fill(_arc(x, FACE_CY, 0.1 * k, 0.068 * k), (250, 250, 250))
        pen.fill(_arc(x + gaze, FACE_CY, 0.066 * k, 0.066 * k, n=24), EYE_COLOURS[labels[name]])
        pen.fill(_arc(x + gaze, FACE_CY, 0.024 * k, 0.024 * k, n=16), (15, 15, 20))
    return spacing


def _draw_mouth(pen: _Pen, shape: str, skin: tuple[int, ...]) -> None:
    pen.fill(_arc(0.0, FACE_CY + 0.15, 0.045, 0.03, n=16), _shade(skin, 0.78))  # nose
    lips, y = (160, 40, 55), FACE_CY + 0.3
    if shape == "smile":
        pen.line(_arc(0.0, y - 0.08, 0.14, 0.1, 0.15 * np.pi, 0.85 * np.pi, n=16), lips, 0.045)
    elif shape == "neutral":
        pen.line(np.array([[-0.11, y], [0.11, y]]), lips, 0.045)
    else:
        pen.fill(_arc(0.0, y, 0.11, 0.075), (100, 20, 35))
        pen.fill(_arc(0.0, y, 0.11, 0.075, 1.15 * np.pi, 1.85 * np.pi, n=16), (245, 245, 245))


def _draw_glasses(pen: _Pen, rx: float, spacing: float) -> None:
    frame, radius, width = (25, 25, 30), 0.155, 0.035
    for side in (-1.0, 1.0):
        pen.line(_arc(side * spacing, FACE_CY, radius, radius * 0.85, n=33), frame, width)
        arm = [[side * (spacing + radius), FACE_CY - 0.02], [side * (rx + 0.02), FACE_CY - 0.04]]
        pen.line(np.array(arm), frame, width)
    bridge = _arc(0.0, FACE_CY, spacing - radius + 0.01, 0.05, 1.1 * np.pi, 1.9 * np.pi, n=8)
    pen.line(bridge, frame, width)


def render_face(seed: int, index: int, image_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Render face ``index`` of the dataset ``seed``.

    Returns the image, (image_size, image_size, 3) uint8 RGB, and its labels,
    (len(ATTRIBUTE_NAMES),) int32 in the order of ``ATTRIBUTE_NAMES``.
    """
    if image_size < 16:
        raise ValueError(f"image_size must be at least 16, got {image_size} (data.image_size)")
    rng = np.random.default_rng([seed, index])
    labels = _sample_labels(rng)
    skin = SKIN_TONES[labels["skin_tone"]]
    hair = HAIR_COLOURS[labels["hair_colour"]]
    style = HAIR_STYLES[labels["hair_style"]]
    rx = FACE_WIDTHS[labels["face_shape"]]
    shirt = SHIRTS[rng.integers(len(SHIRTS))]

    canvas = image_size * SUPERSAMPLE
    image = Image.new("RGB", (canvas, canvas), BACKGROUNDS[labels["background"]])
    pen = _make_pen(rng, ImageDraw.Draw(image), canvas)
    if style == "long":
        _draw_long_hair_back(pen, rx, hair)
    _draw_body(pen, skin, shirt)
    _draw_head(pen, rx, skin)
    _draw_hair(pen, style, rx, hair)
    spacing = _draw_eyes(pen, rng, labels, rx, _shade(HAIR_COLOURS[labels["eyebrow_colour"]], 0.8))
    _draw_mouth(pen, MOUTH_SHAPES[labels["mouth_shape"]], skin)
    if labels["glasses"]:
        _draw_glasses(pen, rx, spacing)

    small = image.resize((image_size, image_size), Image.Resampling.BOX)
    return np.array(small), np.array([labels[n] for n in ATTRIBUTE_NAMES], dtype=np.int32)
