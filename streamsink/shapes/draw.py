"""The shapes world's frames: classes, shapes, backgrounds, drawing and exact ground truth (see `streamsink.shapes`)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "ring")
DISTRACTORS: tuple[str, ...] = ("blob", "bar")
BACKGROUNDS: tuple[str, ...] = ("gradient", "noise", "stripes", "checker", "blobs")
MIN_VISIBLE = 0.3

PALETTE: tuple[tuple[int, int, int], ...] = (
    (220, 40, 40),
    (40, 170, 60),
    (40, 80, 220),
    (240, 200, 30),
    (245, 120, 20),
    (150, 60, 200),
    (30, 190, 210),
    (230, 60, 160),
    (245, 245, 245),
    (25, 25, 25),
)

_SS = 4  # supersampling factor for anti-aliased coverage
_MIN_CONTRAST = 110.0

Annotation = dict  # {"label": str, "box": [x1, y1, x2, y2], "visible": float}


@dataclass(frozen=True, slots=True)
class Shape:
    """One thing drawn in a frame; a list of them is drawn in order, later ones on top.

    kind: a class from CLASSES, or a distractor from DISTRACTORS (never in the ground truth).
    x, y: centre in pixels. size: circumradius in pixels (every class fits a circle of this radius).
    angle: rotation in degrees. aspect: distractors only, width / length (< 1 so they never pass for a class).
    """

    kind: str
    x: float
    y: float
    size: float
    angle: float = 0.0
    color: tuple[int, int, int] = (255, 255, 255)
    aspect: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in CLASSES + DISTRACTORS:
            raise ValueError(f"Shape.kind must be one of {CLASSES + DISTRACTORS}, got {self.kind!r}")
        if not self.size > 0:
            raise ValueError(f"Shape.size must be > 0, got {self.size}")


@dataclass(frozen=True, slots=True)
class Clip:
    """A generated clip: frames (RGB uint8, (H, W, 3)), per-frame annotations and the shapes behind them.

    classes: the classes that appear in at least one frame's ground truth; `absent` the rest,
    which never appear anywhere in the clip.
    """

    frames: list[np.ndarray]
    annotations: list[list[Annotation]]
    objects: list[list[Shape]]
    classes: tuple[str, ...]
    fps: int
    width: int
    height: int
    seed: int

    @property
    def absent(self) -> tuple[str, ...]:
        return tuple(c for c in CLASSES if c not in self.classes)

    def __len__(self) -> int:
        return len(self.frames)


def _rng(rng_or_seed: int | np.random.Generator) -> np.random.Generator:
    if isinstance(rng_or_seed, np.random.Generator):
        return rng_or_seed
    return np.random.default_rng(rng_or_seed)


def _check_size(width: int, height: int) -> None:
    if width < 16 or height < 16:
        raise ValueError(f"width and height must be >= 16, got {width}x{height}")


def _rotate(points: np.ndarray, shape: Shape) -> np.ndarray:
    a = math.radians(shape.angle)
    c, s = math.cos(a), math.sin(a)
    p = points * shape.size
    return np.stack([shape.x + c * p[:, 0] - s * p[:, 1], shape.y + s * p[:, 0] + c * p[:, 1]], 1)


def _unit_circle(n: int = 96) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([np.cos(t), np.sin(t)], 1)


def _outline(shape: Shape) -> tuple[np.ndarray, np.ndarray | None]:
    """The shape's outer polygon and, for a ring, its hole, in image pixels."""
    kind = shape.kind
    if kind in ("circle", "ring"):
        n = max(32, int(shape.size * 4))
        outer = _rotate(_unit_circle(n), shape)
        hole = _rotate(_unit_circle(n) * 0.55, shape) if kind == "ring" else None
        return outer, hole
    if kind == "square":
        unit = np.array([[math.cos(t), math.sin(t)] for t in np.arange(4) * math.pi / 2 + math.pi / 4])
    elif kind == "triangle":
        unit = np.array([[math.cos(t), math.sin(t)] for t in np.arange(3) * 2 * math.pi / 3 - math.pi / 2])
    elif kind == "star":
        t = np.arange(10) * math.pi / 5 - math.pi / 2
        r = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        unit = np.stack([r * np.cos(t), r * np.sin(t)], 1)
    elif kind == "cross":
        w = 0.3
        arm = math.sqrt(1 - w * w)
        unit = np.array(
            [[w, -arm], [w, -w], [arm, -w], [arm, w], [w, w], [w, arm],
             [-w, arm], [-w, w], [-arm, w], [-arm, -w], [-w, -w], [-w, -arm]]
        )
    elif kind == "bar":
        unit = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * np.array([1.0, shape.aspect])
    else:  # blob: an ellipse with a wobble, elongated so it never reads as a circle
        t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
        wobble = 1 + 0.12 * np.sin(3 * t + 1.0) + 0.08 * np.cos(5 * t)
        unit = np.stack([np.cos(t), shape.aspect * np.sin(t)], 1) * wobble[:, None] / 1.2
    return _rotate(unit, shape), None


def _extent(shape: Shape) -> tuple[float, float, float, float]:
    """Exact tight box of the whole shape (circles analytically, polygons from their vertices)."""
    if shape.kind in ("circle", "ring"):
        return shape.x - shape.size, shape.y - shape.size, shape.x + shape.size, shape.y + shape.size
    outer, _ = _outline(shape)
    return float(outer[:, 0].min()), float(outer[:, 1].min()), float(outer[:, 0].max()), float(outer[:, 1].max())


def _coverage(shape: Shape) -> tuple[int, int, np.ndarray]:
    """Anti-aliased coverage (0..1) of the whole shape on its own pixel grid: (x0, y0, mask)."""
    x1, y1, x2, y2 = _extent(shape)
    x0, y0 = math.floor(x1), math.floor(y1)
    w, h = max(1, math.ceil(x2) - x0), max(1, math.ceil(y2) - y0)
    canvas = np.zeros((h * _SS, w * _SS), np.uint8)
    outer, hole = _outline(shape)

    def to_canvas(points: np.ndarray) -> np.ndarray:
        # Continuous coordinate u lands on supersample pixel centre u * SS - 0.5 (cv2 puts centres on integers).
        p = (points - np.array([x0, y0])) * _SS - 0.5
        return np.round(p * 16).astype(np.int32)[None]

    cv2.fillPoly(canvas, to_canvas(outer), 255, cv2.LINE_8, shift=4)
    if hole is not None:
        cv2.fillPoly(canvas, to_canvas(hole), 0, cv2.LINE_8, shift=4)
    mask = cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    return x0, y0, mask


def make_background(
    rng_or_seed: int | np.random.Generator, width: int, height: int, kind: str | None = None
) -> np.ndarray:
    """A muted textured background (RGB uint8) that coloured shapes stand out from."""
    _check_size(width, height)
    if kind is not None and kind not in BACKGROUNDS:
        raise ValueError(f"background kind must be one of {BACKGROUNDS}, got {kind!r}")
    rng = _rng(rng_or_seed)
    kind = kind or BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
    base = rng.uniform(70, 190, 3)
    other = np.clip(base + rng.normal(0, 40, 3), 40, 220)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    if kind == "gradient":
        a = rng.uniform(0, 2 * np.pi)
        t = x * math.cos(a) + y * math.sin(a)
        t = (t - t.min()) / max(float(np.ptp(t)), 1.0)
    elif kind == "noise":
        gh, gw = rng.integers(3, 9), rng.integers(3, 9)
        t = cv2.resize(rng.random((gh, gw)).astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    elif kind == "stripes":
        a = rng.uniform(0, np.pi)
        period = rng.uniform(0.05, 0.25) * min(width, height)
        t = 0.5 + 0.5 * np.sin((x * math.cos(a) + y * math.sin(a)) * 2 * np.pi / period)
    elif kind == "checker":
        cell = rng.uniform(0.06, 0.2) * min(width, height)
        a = rng.uniform(0, np.pi / 2)
        u, v = x * math.cos(a) + y * math.sin(a), -x * math.sin(a) + y * math.cos(a)
        t = ((np.floor(u / cell) + np.floor(v / cell)) % 2).astype(np.float32)
        t = cv2.GaussianBlur(t, (0, 0), 1.0)
    else:  # blobs
        t = np.zeros((height, width), np.float32)
        for _ in range(rng.integers(3, 8)):
            cx, cy = rng.uniform(0, width), rng.uniform(0, height)
            r = rng.uniform(0.1, 0.3) * min(width, height)
            t += rng.uniform(0.5, 1.0) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))
        t = np.clip(t, 0, 1)
    t = np.clip(t, 0, 1)[..., None]
    image = base * (1 - t) + other * t
    image += rng.normal(0, 4, (height, width, 1)) + rng.normal(0, 2, (height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def _pick_color(
    rng: np.random.Generator, background: np.ndarray, avoid: Sequence[tuple[int, int, int]] = ()
) -> tuple[int, int, int]:
    """A palette colour far from the background's mean, preferring ones not yet used."""
    mean = background.reshape(-1, 3).mean(0)
    far = [c for c in PALETTE if np.linalg.norm(np.array(c) - mean) >= _MIN_CONTRAST]
    far = far or sorted(PALETTE, key=lambda c: -np.linalg.norm(np.array(c) - mean))[:3]
    fresh = [c for c in far if c not in avoid] or far
    c = np.array(fresh[rng.integers(len(fresh))]) + rng.integers(-12, 13, 3)
    return tuple(int(v) for v in np.clip(c, 0, 255))


def _compose(
    background: np.ndarray, objects: Sequence[Shape], min_visible: float
) -> tuple[np.ndarray, list[Annotation]]:
    height, width = background.shape[:2]
    image = background.astype(np.float32)
    layers = []
    for shape in objects:
        x0, y0, mask = _coverage(shape)
        h, w = mask.shape
        ax, ay, bx, by = max(x0, 0), max(y0, 0), min(x0 + w, width), min(y0 + h, height)
        full = float(mask.sum())
        if ax >= bx or ay >= by or full <= 0:
            layers.append((shape, None, full))
            continue
        a = mask[ay - y0 : by - y0, ax - x0 : bx - x0, None]
        image[ay:by, ax:bx] = image[ay:by, ax:bx] * (1 - a) + np.asarray(shape.color, np.float32) * a
        layers.append((shape, (ax, ay, bx, by, a[..., 0]), full))

    # Visible area, front to back: what each layer covers times what is still uncovered above it.
    transmit = np.ones((height, width), np.float32)
    visible = [0.0] * len(layers)
    for i in range(len(layers) - 1, -1, -1):
        _, region, _ = layers[i]
        if region is None:
            continue
        ax, ay, bx, by, a = region
        visible[i] = float((a * transmit[ay:by, ax:bx]).sum())
        transmit[ay:by, ax:bx] *= 1 - a

    annotations: list[Annotation] = []
    for (shape, region, full), seen in zip(layers, visible):
        if shape.kind not in CLASSES or region is None or seen < min_visible * full:
            continue
        x1, y1, x2, y2 = _extent(shape)
        box = [min(max(x1, 0.0), width), min(max(y1, 0.0), height), min(max(x2, 0.0), width), min(max(y2, 0.0), height)]
        annotations.append({"label": shape.kind, "box": [round(v, 2) for v in box], "visible": round(seen / full, 3)})
    return np.clip(image + 0.5, 0, 255).astype(np.uint8), annotations


def render_frame(
    rng_or_seed: int | np.random.Generator,
    width: int,
    height: int,
    objects: Sequence[Shape],
    *,
    background: np.ndarray | None = None,
) -> np.ndarray:
    """Draw `objects` in order (later on top) over `background`, or over a fresh one drawn from the rng."""
    _check_size(width, height)
    if background is None:
        background = make_background(rng_or_seed, width, height)
    elif background.shape != (height, width, 3) or background.dtype != np.uint8:
        raise ValueError(f"background must be ({height}, {width}, 3) uint8, got {background.shape} {background.dtype}")
    return _compose(background, objects, MIN_VISIBLE)[0]


def annotate(
    objects: Sequence[Shape], width: int, height: int, *, min_visible: float = MIN_VISIBLE
) -> list[Annotation]:
    """Ground truth for `objects` drawn in order: boxes of class shapes at least `min_visible` visible."""
    _check_size(width, height)
    return _compose(np.zeros((height, width, 3), np.uint8), objects, min_visible)[1]


def _random_shape(rng: np.random.Generator, kind: str, width: int, height: int, color: tuple[int, int, int]) -> Shape:
    side = min(width, height)
    if kind in DISTRACTORS:
        size = rng.uniform(0.08, 0.25) * side
        aspect = rng.uniform(0.06, 0.15) if kind == "bar" else rng.uniform(0.3, 0.55)
    else:
        size = rng.uniform(0.06, 0.18) * side
        aspect = 1.0
    x = rng.uniform(-0.3 * size, width + 0.3 * size)
    y = rng.uniform(-0.3 * size, height + 0.3 * size)
    return Shape(kind, float(x), float(y), float(size), float(rng.uniform(0, 360)), color, float(aspect))


def make_image(
    seed: int | np.random.Generator,
    *,
    width: int = 320,
    height: int = 240,
    max_objects: int = 3,
    empty_probability: float = 0.3,
    classes: Sequence[str] = CLASSES,
    max_distractors: int = 2,
) -> tuple[np.ndarray, list[Annotation]]:
    """One independent frame and its ground truth; `classes` limits which classes may appear."""
    _check_size(width, height)
    if max_objects < 1:
        raise ValueError(f"max_objects must be >= 1, got {max_objects}")
    if not 0 <= empty_probability <= 1:
        raise ValueError(f"empty_probability must be in [0, 1], got {empty_probability}")
    bad = [c for c in classes if c not in CLASSES]
    if bad or not classes:
        raise ValueError(f"classes must be a non-empty subset of {CLASSES}, got {list(classes)}")
    rng = _rng(seed)
    background = make_background(rng, width, height)
    n = 0 if rng.random() < empty_probability else int(rng.integers(1, max_objects + 1))
    kinds = [classes[i] for i in rng.integers(len(classes), size=n)]
    kinds += [DISTRACTORS[i] for i in rng.integers(len(DISTRACTORS), size=rng.integers(0, max_distractors + 1))]
    rng.shuffle(kinds)
    used: list[tuple[int, int, int]] = []
    objects = []
    for kind in kinds:
        color = _pick_color(rng, background, used)
        used.append(color)
        objects.append(_random_shape(rng, kind, width, height, color))
    return _compose(background, objects, MIN_VISIBLE)


def dataset(seed: int, n: int, **kwargs) -> Iterator[tuple[np.ndarray, list[Annotation]]]:
    """`n` independent images; image i depends only on (seed, i), so any slice can be regenerated alone."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    for i in range(n):
        yield make_image(np.random.default_rng([seed, i]), **kwargs)
