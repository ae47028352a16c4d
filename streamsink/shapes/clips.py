"""The shapes world's clips: shapes that enter, move and leave over time, with ground truth per frame."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from streamsink.shapes.draw import (
    CLASSES,
    DISTRACTORS,
    MIN_VISIBLE,
    Clip,
    Shape,
    _check_size,
    _compose,
    _pick_color,
    make_background,
)


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
