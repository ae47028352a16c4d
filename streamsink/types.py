"""The values that flow between stages (`Frame`, `Detections`, `Result`) and the words for their states.

All three are frozen: a stage that changes something returns a new value
(`dataclasses.replace`), so a frame or detections held by one stage can never
change under another running in a different thread. The states are `str`
enums whose values are the plain words the JSONL carries ("present",
"failed", ...), so they compare equal to those words and serialise as them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from dataclasses import dataclass, field
from enum import Enum
from fractions import Fraction
from numbers import Real

import numpy as np


class _Word(str, Enum):
    """A state that is also its plain word: equal to it, printed and serialised as it."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    # Enum hashes by member name; a word must hash as itself to find its entry in a dict keyed by words.
    __hash__ = str.__hash__


class State(_Word):
    """What a prompted class is in a frame."""

    PRESENT = "present"
    ABSENT = "absent"


class SourceStatus(_Word):
    """How one source of a run is doing: waiting (not opened yet), running, done or failed."""

    WAITING = "waiting"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class FileStatus(_Word):
    """What became of one file of an archive: done now, skipped (complete already), failed, or pending (interrupted)."""

    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"
    PENDING = "pending"


SINK_INITS = ("mean", "random", "brackets")  # how sink embeddings are set (streamsink.detector.sinks)

@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded picture and where it came from.

    image: (H, W, 3) uint8, RGB.
    index: 0-based position among the frames the source delivered (live
        sources count dropped frames too, so gaps show where drops were).
    pts: presentation time in seconds from the source's own timestamps
        (stream PTS for video, capture clock for cameras without PTS).
    pts_ticks, time_base: the same time as an exact integer in the stream's
        time base, when the source has one; writers use it to keep timestamps
        bit-identical.
    dropped: live sources only: frames dropped so far, before this one, to keep up (in the
        source's buffer or the engine's inbox; one count from source to JSONL).
    captured_at: `time.monotonic()` when the frame was read, for latency.
    lost: network streams only: frames missed so far while the stream was away (outages
        between reconnects), estimated from each gap at the stream's rate; never in `dropped`.
    """

    image: np.ndarray
    index: int
    pts: float
    source: str = ""
    pts_ticks: int | None = None
    time_base: Fraction | None = None
    dropped: int = 0
    captured_at: float = 0.0
    lost: int = 0

    def __post_init__(self) -> None:
        image = self.image
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
            shape = getattr(image, "shape", type(image).__name__)
            raise ValueError(f"Frame.image: expected (H, W, 3) uint8 array, got {shape}")
        if image.dtype != np.uint8:
            raise ValueError(f"Frame.image: expected dtype uint8, got {image.dtype}")

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


def _as_array(name: str, value, dtype, shape: tuple[int | None, ...]) -> np.ndarray:
    """Convert to `dtype` and check the shape; `None` in `shape` matches any length."""
    array = np.asarray(value, dtype=dtype)
    expected = "(" + ", ".join("n" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
    if array.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, array.shape)):
        raise ValueError(f"Detections.{name}: expected {expected}, got {array.shape}")
    array.setflags(write=False)
    return array


@dataclass(frozen=True, slots=True)
class Detections:
    """Boxes found in one frame, in that frame's pixels.

    xyxy: (n, 4) float32, x1 y1 x2 y2 in pixels.
    scores: (n,) float32 in [0, 1].
    class_id: (n,) int64, each an index into `labels`.
    labels: the prompted class names, in prompt order; every frame of a run
        carries all of them, so a class with no box is still named.
    """

    xyxy: np.ndarray
    scores: np.ndarray
    class_id: np.ndarray
    labels: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        xyxy = _as_array("xyxy", self.xyxy, np.float32, (None, 4))
        n = len(xyxy)
        scores = _as_array("scores", self.scores, np.float32, (n,))
        class_id = _as_array("class_id", self.class_id, np.int64, (n,))
        labels = tuple(str(label) for label in self.labels)
        if n and (class_id.min() < 0 or class_id.max() >= len(labels)):
            raise ValueError(
                f"Detections.class_id: expected values in [0, {len(labels) - 1}] indexing labels, "
                f"got {class_id.min()}..{class_id.max()}"
            )
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "class_id", class_id)
        object.__setattr__(self, "labels", labels)

    @classmethod
    def empty(cls, labels: Sequence[str]) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), tuple(labels))

    def __len__(self) -> int:
        return len(self.scores)

    def __getitem__(self, index) -> Detections:
        """Select rows with a boolean mask, an index array or a slice; labels stay whole."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        mask = np.asarray(index) if not isinstance(index, slice) else index
        if isinstance(mask, np.ndarray) and mask.dtype == bool and mask.shape != (len(self),):
            raise IndexError(f"Detections: boolean mask expected ({len(self)},), got {mask.shape}")
        return Detections(self.xyxy[mask], self.scores[mask], self.class_id[mask], self.labels)

    def at_least(self, floors: Sequence[float]) -> Detections:
        """The boxes scoring at least their class's floor (`floors[class_id]`, one per label)."""
        if len(floors) != len(self.labels):
            raise ValueError(f"at_least needs one floor per label ({len(self.labels)}), got {len(floors)}")
        return self[self.scores >= np.asarray(floors, np.float32)[self.class_id]]

    @property
    def class_names(self) -> list[str]:
        return [self.labels[i] for i in self.class_id]

    def to_records(self) -> list[dict]:
        """The JSONL form: one `{"label", "score", "box"}` per detection, plain Python numbers."""
        return [
            {"label": self.labels[c], "score": round(float(s), 4), "box": [round(float(v), 2) for v in box]}
            for box, s, c in zip(self.xyxy, self.scores, self.class_id)
        ]

    def to_supervision(self) -> Any:
        """These detections as `supervision.Detections` (xyxy, confidence, class_id, and the label names in
        `data["class_name"]`), for supervision's annotators, zones and trackers. Needs supervision."""
        import supervision as sv

        return sv.Detections(xyxy=self.xyxy.astype(np.float32), confidence=self.scores.astype(np.float32),
                             class_id=self.class_id.astype(int),
                             data={"class_name": np.array(self.class_names, dtype=str)})

    @classmethod
    def from_supervision(cls, detections: Any, labels: Sequence[str]) -> Detections:
        """streamsink `Detections` from `supervision.Detections` whose `class_id`s index `labels` (the prompt);
        a box without a confidence scores 1. So a supervision-based app can feed streamsink's temporal stage."""
        n = len(detections)
        confidence = detections.confidence if detections.confidence is not None else np.ones(n, np.float32)
        if detections.class_id is None:
            raise ValueError("supervision detections need class_id (an index into labels) to become streamsink's")
        return cls(np.asarray(detections.xyxy, np.float32).reshape(n, 4), np.asarray(confidence, np.float32),
                   np.asarray(detections.class_id, np.int64), tuple(labels))


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, 4) x (m, 4) xyxy -> (n, m) IoU in the inputs' dtype; degenerate boxes have IoU 0 with everything."""
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.maximum(iw, 0.0) * np.maximum(ih, 0.0)
    area_a = np.maximum(a[:, 2] - a[:, 0], 0.0) * np.maximum(a[:, 3] - a[:, 1], 0.0)
    area_b = np.maximum(b[:, 2] - b[:, 0], 0.0) * np.maximum(b[:, 3] - b[:, 1], 0.0)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


@dataclass(frozen=True, slots=True)
class Result:
    """Everything known about one frame once it has passed the detector.

    raw: the detector's output for this frame; with smoothing on, every box down to the temporal
        stage's floor (`TemporalSmoother.floors`: `margin` under the threshold, and the weaker duplicate
        queries that back an object, down to `support_floor`), which is what it reads.
    detections: what should be shown: smoothed, or `raw` when smoothing is off.
    states: every prompted class mapped to "present" or "absent".
    image: the frame as drawn by the engine's `render`, when it was given one.
    """

    frame: Frame
    raw: Detections
    detections: Detections
    states: dict[str, str]
    image: np.ndarray | None = None

    @property
    def index(self) -> int:
        return self.frame.index

    @property
    def pts(self) -> float:
        return self.frame.pts


def is_threshold(value: object) -> bool:
    """A number (not a bool) in [0, 1]: a score threshold."""
    return not isinstance(value, bool) and isinstance(value, Real) and 0.0 <= value <= 1.0


def thresholds_of(classes: Sequence[str], threshold: float,
                  class_thresholds: Mapping[str, float] | None = None) -> tuple[float, ...]:
    """Each class's display threshold, in the order given: its own (`class_thresholds`), else `threshold`."""
    own = class_thresholds or {}
    return tuple(float(own.get(name, threshold)) for name in classes)


def raw_states(detections: Detections) -> dict[str, str]:
    """States without smoothing: a class is present exactly when it has a box in this frame."""
    found = set(detections.class_id.tolist())
    return {label: State.PRESENT if i in found else State.ABSENT for i, label in enumerate(detections.labels)}
