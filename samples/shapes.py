"""The shapes world: synthetic frames and clips with exact ground truth.

Six classes of filled shapes, coloured independently of their class, on
textured backgrounds, with distractors that belong to no class. It gives the
demo footage, training images for the small demo detector, and frames where a
prompted class is known to be absent, which is what false positives are
measured on. Everything is RGB and deterministic given a seed.

Ground truth rule: a box is the tight box of the whole shape (amodal, from its
exact geometry, in continuous pixel coordinates where pixel i spans [i, i+1)),
clipped to the image. A shape whose visible area (inside the image and not
covered by anything drawn above it) is below `MIN_VISIBLE` of its full area is
left out of the ground truth.
"""

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


@dataclass(slots=True)
class _Track:
    kind: str
    color: tuple[int, int, int]
    start: int
    end: int
    x: float
    y: float
    vx: float
    vy: float
    size0: float
    size1: float
    angle: float
    spin: float
    aspect: float
    z: float
    inside: bool
    exit_at: int


def _spawn(
    rng: np.random.Generator,
    kind: str,
    color: tuple[int, int, int],
    start: int,
    end: int,
    width: int,
    height: int,
    fps: int,
    anchor: bool = False,
) -> _Track:
    """A track's plan; an anchor (the one object that spans its whole stretch) never leaves early."""
    side = min(width, height)
    distractor = kind in DISTRACTORS
    size0 = rng.uniform(0.07, 0.16) * side if not distractor else rng.uniform(0.1, 0.25) * side
    size1 = size0 * (rng.uniform(0.6, 1.6) if rng.random() < 0.6 else 1.0)
    aspect = 1.0 if not distractor else (rng.uniform(0.06, 0.15) if kind == "bar" else rng.uniform(0.3, 0.55))
    static = rng.random() < (0.6 if distractor else 0.25)
    speed = 0.0 if static else rng.uniform(0.4, 2.2) * width / 320 * 25 / fps
    heading = rng.uniform(0, 2 * np.pi)
    vx, vy = speed * math.cos(heading), speed * math.sin(heading)
    r = max(size0, size1)
    x, y = rng.uniform(r, width - r), rng.uniform(r, height - r)
    inside = True
    if not static and rng.random() < 0.5:  # enter from an edge, moving inwards, a little already showing
        speed = max(speed, 1.2 * width / 320 * 25 / fps)
        edge = rng.integers(4)
        inward = rng.uniform(0.8, 1.0) * speed
        along = rng.uniform(-1, 1) * math.sqrt(max(speed**2 - inward**2, 0))
        if edge == 0:
            x, vx, vy = -0.6 * size0, inward, along
        elif edge == 1:
            x, vx, vy = width + 0.6 * size0, -inward, along
        elif edge == 2:
            y, vy, vx = -0.6 * size0, inward, along
        else:
            y, vy, vx = height + 0.6 * size0, -inward, along
        inside = False
    leaves = not static and not anchor and rng.random() < 0.5
    exit_at = max(start, end - int(rng.uniform(1.0, 2.5) * fps)) if leaves else end
    spin = 0.0 if kind in ("circle", "ring") or rng.random() < 0.3 else rng.uniform(-3, 3) * 25 / fps
    return _Track(kind, color, start, end, float(x), float(y), vx, vy, float(size0), float(size1),
                  float(rng.uniform(0, 360)), float(spin), float(aspect), float(rng.random()), inside, exit_at)


def _simulate(track: _Track, width: int, height: int) -> dict[int, Shape]:
    """The track's shape in each frame of its life: linear motion, bouncing off the edges once fully inside."""
    states: dict[int, Shape] = {}
    x, y, vx, vy, inside = track.x, track.y, track.vx, track.vy, track.inside
    length = max(track.end - track.start - 1, 1)
    for f in range(track.start, track.end):
        size = track.size0 + (track.size1 - track.size0) * (f - track.start) / length
        if f >= track.exit_at and (x + size < 0 or x - size > width or y + size < 0 or y - size > height):
            break
        angle = track.angle + track.spin * (f - track.start)
        states[f] = Shape(track.kind, x, y, size, angle, track.color, track.aspect)
        x, y = x + vx, y + vy
        if not inside:
            inside = size <= x <= width - size and size <= y <= height - size
        if inside and f < track.exit_at:
            if (x < size and vx < 0) or (x > width - size and vx > 0):
                vx = -vx
            if (y < size and vy < 0) or (y > height - size and vy > 0):
                vy = -vy
    return states


def _split(rng: np.random.Generator, total: int, parts: int, minimum: int) -> list[int]:
    """`total` split into `parts` random lengths, each at least `minimum` when that is possible."""
    if parts <= 0:
        return []
    minimum = min(minimum, total // parts)
    weights = rng.uniform(0.5, 1.5, parts)
    spare = total - minimum * parts
    sizes = [minimum + int(spare * w / weights.sum()) for w in weights]
    sizes[-1] += total - sum(sizes)
    return sizes


def make_clip(
    seed: int,
    *,
    frames: int = 50,
    width: int = 320,
    height: int = 240,
    fps: int = 25,
    max_objects: int = 3,
    empty_fraction: float = 0.2,
    classes: Sequence[str] | None = None,
    max_distractors: int = 3,
) -> Clip:
    """A short video: one background, shapes that enter, bounce, scale, spin and leave, and stretches of nothing.

    The clip alternates active stretches (about 3 s each) with empty ones (`empty_fraction` of the
    frames, where no class shape is drawn; distractors may still be). When there are several
    active stretches, the first holds a single class. `classes` fixes which classes appear (each at least
    once when there is room); by default 1 to 3 are drawn from the seed, so three or more classes are
    absent from every clip.
    """
    _check_size(width, height)
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    if fps < 1:
        raise ValueError(f"fps must be >= 1, got {fps}")
    if max_objects < 1:
        raise ValueError(f"max_objects must be >= 1, got {max_objects}")
    if not 0 <= empty_fraction < 1:
        raise ValueError(f"empty_fraction must be in [0, 1), got {empty_fraction}")
    if classes is not None and (not classes or any(c not in CLASSES for c in classes)):
        raise ValueError(f"classes must be a non-empty subset of {CLASSES}, got {list(classes)}")
    rng = np.random.default_rng(seed)
    background = make_background(rng, width, height)
    if classes is None:
        classes = [CLASSES[i] for i in rng.choice(len(CLASSES), size=rng.integers(1, 4), replace=False)]
    classes = list(classes)

    empty_total = round(empty_fraction * frames) if empty_fraction > 0 else 0
    if empty_fraction > 0 and frames >= 2:
        empty_total = max(1, empty_total)
    active_total = frames - empty_total
    n_active = max(1, round(active_total / (3 * fps)))
    active = _split(rng, active_total, n_active, min(active_total, fps))
    empty = _split(rng, empty_total, n_active, 1) if empty_total else [0] * n_active
    empty_first = bool(rng.random() < 0.5)

    used: list[tuple[int, int, int]] = []

    def color() -> tuple[int, int, int]:
        c = _pick_color(rng, background, used)
        used.append(c)
        return c

    tracks: list[_Track] = []
    planned: set[str] = set()
    cursor = 0
    for k, (a_len, e_len) in enumerate(zip(active, empty)):
        if empty_first:
            cursor += e_len
        start, end = cursor, cursor + a_len
        cursor = end
        if not empty_first:
            cursor += e_len
        if a_len <= 0:
            continue
        if k == 0 and n_active > 1:
            pool = [classes[rng.integers(len(classes))]]
        else:
            pool = [c for c in classes if rng.random() < 0.7] or [classes[rng.integers(len(classes))]]
        kinds = [pool[i] for i in rng.integers(len(pool), size=rng.integers(1, max_objects + 1))]
        if k == n_active - 1:  # the last stretch brings in any requested class not shown yet
            missing = [c for c in classes if c not in planned]
            room = max(len(kinds), min(len(missing), max_objects))
            kinds = (missing + [c for c in kinds if c not in missing])[:room]
        planned.update(kinds)
        for j, kind in enumerate(kinds):
            t0 = start if j == 0 else start + int(rng.integers(0, max(1, a_len // 2)))
            t1 = end if j == 0 else int(rng.integers(min(t0 + a_len // 3, end - 1), end)) + 1
            tracks.append(_spawn(rng, kind, color(), t0, t1, width, height, fps, j == 0))

    for _ in range(int(rng.integers(0, max_distractors + 1))):
        if rng.random() < 0.5:
            t0, t1 = 0, frames
        else:
            t0 = int(rng.integers(0, frames))
            t1 = int(rng.integers(t0, frames)) + 1
        tracks.append(_spawn(rng, DISTRACTORS[rng.integers(len(DISTRACTORS))], color(), t0, t1, width, height, fps))

    tracks.sort(key=lambda t: t.z)
    states = [_simulate(t, width, height) for t in tracks]
    out_frames, out_annotations, out_objects = [], [], []
    for f in range(frames):
        objects = [s[f] for s in states if f in s]
        image, annotations = _compose(background, objects, MIN_VISIBLE)
        out_frames.append(image)
        out_annotations.append(annotations)
        out_objects.append(objects)
    seen = {a["label"] for frame in out_annotations for a in frame}
    present = tuple(c for c in CLASSES if c in seen)
    return Clip(out_frames, out_annotations, out_objects, present, fps, width, height, seed)
