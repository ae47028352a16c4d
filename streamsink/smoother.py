"""Tracker-free temporal smoothing: show what recent frames agree on, per class.

A false positive on an absent class rarely stands in the same place frame after
frame, while a real object does. So a box reaches the output only after a vote:
it needs same-class evidence overlapping it (IoU >= `iou`) in at least
`min_hits` of the last `window` frames, the newest included. Nothing upstream
has to hand out identities, and the detector's boxes are the only input.

How one `update` works, per class (all numpy, vectorised across classes):

1. Associate. The boxes shown on the previous frame are matched greedily, best
   IoU first, to the new detections (IoU >= `iou` against the held box or the
   box moved on by its velocity). A matched box moves with an alpha-beta
   (g-h) filter: `alpha = 1 - smoothing` pulls it towards the detection and
   `beta = alpha**2 / (2 - alpha)` (Benedict-Bordner) updates a per-frame
   velocity. The velocity term is why there is no lag at constant speed: the
   filter predicts where the box should be before averaging, so a walker is
   followed exactly while detector jitter is cut (at the default 0.5, jitter
   variance falls to about 0.41, its standard deviation to about 0.64).
2. Hold. A shown box with no match stays in place for up to `hold` frames,
   then is released, so a few missed detections do not blink the box.
3. Vote. A detection no shown box took counts the frames among the last
   `window - 1` holding same-class evidence that overlaps it and that no shown
   box has already explained ("unclaimed"); with itself, `min_hits` such frames
   make a new shown box. Its first position and velocity come from a
   least-squares line through that evidence, so it starts without lag. The
   evidence it used is then claimed, so one object is never born twice and a
   stray duplicate next to a shown object finds no evidence of its own.
4. State. A class turns "present" after `present_after` consecutive frames
   showing a box of it and "absent" after `absent_after` consecutive frames
   showing none. The gap between entering (a vote) and leaving (hold, then
   `absent_after`) is the hysteresis that stops the state chattering.

Why one-frame flickers never show: a flicker has no overlapping evidence in
other frames, so its vote is 1 < `min_hits` (unless `min_hits` is 1); one that
lands on a box already shown only nudges that box. Why two
objects of one class side by side stay two: association is one-to-one and each
object's detections are evidence only where they overlap, so boxes with IoU
below `iou` never merge. A departed object is released after `hold` missed
frames and its class is "absent" at most `hold + absent_after` frames after its
last detection.

Is this a tracker? In part, honestly: step 1 carries the boxes on screen from
one frame to the next with a velocity, which is what a tracker's coasting does.
What it is not: it hands out no identities (the output is plain `Detections`),
has no appearance model and no optimal (Hungarian) assignment, and a box is
born only by the evidence vote, recomputed from the raw detections each frame.
When two boxes of one class cross, nothing promises which one continues.

Cost, bounded whatever the stream length. Each frame keeps at most
`max_boxes` detections per class (highest scores first). Memory: the evidence
of `window - 1` frames plus the shown boxes, at most `labels x max_boxes x window`
boxes of a few floats each. Time per frame, with n = detections and s = shown
boxes in the frame (both <= labels x max_boxes): O(n x (window - 1) x n) for
the vote and O(n x s) for association. With a handful of boxes that is a few
dozen small numpy calls: about 0.14 ms per frame on one laptop-class core, the
same at frame 100,000 as at frame 1.

Defaults are in frames, chosen for 25-30 fps video: a 5-frame window (about
0.2 s) with 3 hits, `hold=5` (about 0.2 s), `absent_after=10` (about 0.4 s).
At walking speed a person moves about a tenth of its width per frame, so
evidence four frames old still overlaps with IoU near 0.4, above the default
`iou=0.3`.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from numbers import Integral, Real

import numpy as np

from streamsink.types import Detections, box_iou

logger = logging.getLogger(__name__)

PRESENT = "present"
ABSENT = "absent"

_RUN_CAP = 1 << 30  # consecutive-frame counters saturate here, so ints stay small over endless streams


def _check_int(name: str, value: object, low: int, high: int | None = None, high_name: str = "") -> int:
    allowed = f">= {low}" if high is None else f"in [{low}, {high_name or high}]"
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"{name} must be an integer {allowed}, got {value!r}")
    value = int(value)
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be {allowed}, got {value}")
    return value


def _check_float(name: str, value: object, low: float, high: float, *, low_open: bool, high_open: bool) -> float:
    allowed = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{name} must be a number in {allowed}, got {value!r}")
    value = float(value)
    above = value > low if low_open else value >= low
    below = value < high if high_open else value <= high
    if not (above and below):
        raise ValueError(f"{name} must be in {allowed}, got {value:g}")
    return value


def _top_per_class(class_id: np.ndarray, keys: tuple[np.ndarray, ...], limit: int) -> np.ndarray:
    """Indices of at most `limit` rows per class, best first by `keys` (np.lexsort order, last key primary)."""
    order = np.lexsort(keys + (class_id,))
    sorted_cls = class_id[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_cls)) + 1]
    rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    return np.sort(order[rank < limit])


def _greedy_pairs(score: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """One-to-one pairs (row, col), highest score first, each with score >= threshold."""
    rows, cols = np.nonzero(score >= threshold)
    order = np.argsort(-score[rows, cols], kind="stable")
    used_r: set[int] = set()
    used_c: set[int] = set()
    pairs = []
    for r, c in zip(rows[order].tolist(), cols[order].tolist()):
        if r not in used_r and c not in used_c:
            used_r.add(r)
            used_c.add(c)
            pairs.append((r, c))
    return pairs


class _Evidence:
    """One past frame's detections (capped), with which of them a shown box already explains."""

    __slots__ = ("xyxy", "scores", "class_id", "claimed")

    def __init__(self, xyxy: np.ndarray, scores: np.ndarray, class_id: np.ndarray, claimed: np.ndarray) -> None:
        self.xyxy = xyxy
        self.scores = scores
        self.class_id = class_id
        self.claimed = claimed


class TemporalSmoother:
    """Decides, frame by frame and without a tracker, which boxes to show and which classes are here.

    labels: the prompted classes, in the detector's order; every `update` must
        carry exactly these labels.
    window: frames the vote looks at, the newest included (>= 1).
    min_hits: frames out of `window` that must hold overlapping evidence before a
        box is shown (1..window; 1 turns the vote off).
    hold: missed frames a shown box survives in place before it is released (>= 0).
    iou: overlap that counts as the same object, for evidence and association (0, 1].
    smoothing: how much a shown box trusts its own prediction over the new
        detection, [0, 1): 0 shows raw boxes, 0.5 halves the jitter's variance
        and more, with no lag at constant speed.
    present_after: consecutive frames showing a class before it is "present" (>= 1).
    absent_after: consecutive frames showing nothing of a class before it is "absent" (>= 1).
    max_boxes: detections per class and frame the smoother keeps, highest score
        first; it bounds memory and time (>= 1).
    """

    def __init__(
        self,
        labels: Sequence[str],
        *,
        window: int = 5,
        min_hits: int = 3,
        hold: int = 5,
        iou: float = 0.3,
        smoothing: float = 0.5,
        present_after: int = 1,
        absent_after: int = 10,
        max_boxes: int = 100,
    ) -> None:
        if isinstance(labels, str):
            raise ValueError(f"labels must be a sequence of class names, got the string {labels!r}")
        self._labels = tuple(str(label) for label in labels)
        if not self._labels:
            raise ValueError("labels must name at least 1 class, got 0")
        if len(set(self._labels)) != len(self._labels):
            twice = next(label for label in self._labels if self._labels.count(label) > 1)
            raise ValueError(f"labels must be unique, got {twice!r} more than once")
        self.window = _check_int("window", window, 1)
        self.min_hits = _check_int("min_hits", min_hits, 1, self.window, f"window={self.window}")
        self.hold = _check_int("hold", hold, 0)
        self.iou = _check_float("iou", iou, 0.0, 1.0, low_open=True, high_open=False)
        self.smoothing = _check_float("smoothing", smoothing, 0.0, 1.0, low_open=False, high_open=True)
        self.present_after = _check_int("present_after", present_after, 1)
        self.absent_after = _check_int("absent_after", absent_after, 1)
        self.max_boxes = _check_int("max_boxes", max_boxes, 1)
        self._alpha = 1.0 - self.smoothing
        self._beta = self._alpha**2 / (2.0 - self._alpha)
        self.reset()

    @property
    def labels(self) -> tuple[str, ...]:
        return self._labels

    @property
    def states(self) -> dict[str, str]:
        """Every label mapped to "present" or "absent" (a fresh dict; changing it changes nothing here)."""
        return {label: PRESENT if on else ABSENT for label, on in zip(self._labels, self._present.tolist())}

    def reset(self) -> None:
        """Forget everything, as before the first frame (for a new clip or after a seek)."""
        n = len(self._labels)
        self._evidence: deque[_Evidence] = deque(maxlen=self.window - 1)
        self._box = np.zeros((0, 4), np.float64)
        self._vel = np.zeros((0, 4), np.float64)
        self._score = np.zeros(0, np.float64)
        self._cls = np.zeros(0, np.int64)
        self._misses = np.zeros(0, np.int64)
        self._present = np.zeros(n, bool)
        self._shown_run = np.zeros(n, np.int64)
        self._empty_run = np.zeros(n, np.int64)

    def update(self, detections: Detections) -> Detections:
        """Take the newest frame's detections; return what to show for that frame (a new object)."""
        if not isinstance(detections, Detections):
            raise ValueError(f"detections must be a streamsink.Detections, got {type(detections).__name__}")
        if detections.labels != self._labels:
            raise ValueError(
                f"detections.labels must equal the smoother's labels {self._labels}, got {detections.labels}"
            )
        xyxy, scores, cls = self._capped(detections)
        claimed = np.zeros(len(scores), bool)

        matched = self._associate(xyxy, scores, cls, claimed)
        self._births(xyxy, scores, cls, claimed, matched)
        self._evidence.append(_Evidence(xyxy, scores, cls, claimed))
        self._update_states()

        keep = self._misses <= self.hold
        return Detections(
            self._box[keep].astype(np.float32),
            np.clip(self._score[keep], 0.0, 1.0).astype(np.float32),
            self._cls[keep].copy(),
            self._labels,
        )

    def _capped(self, detections: Detections) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Finite rows only, at most `max_boxes` per class; copies, so inputs are never touched."""
        xyxy = detections.xyxy.astype(np.float64)
        scores = detections.scores.astype(np.float64)
        cls = detections.class_id.copy()
        finite = np.isfinite(xyxy).all(axis=1) & np.isfinite(scores)
        if not finite.all():
            logger.debug("dropping %d detections with non-finite values", int((~finite).sum()))
            xyxy, scores, cls = xyxy[finite], scores[finite], cls[finite]
        if len(cls) > self.max_boxes:
            keep = _top_per_class(cls, (-scores,), self.max_boxes)
            xyxy, scores, cls = xyxy[keep], scores[keep], cls[keep]
        return xyxy, scores, cls

    def _associate(self, xyxy: np.ndarray, scores: np.ndarray, cls: np.ndarray, claimed: np.ndarray) -> np.ndarray:
        """Move shown boxes onto their detections (alpha-beta); age the rest; drop those past `hold`.

        Returns a mask of the detections a shown box took (those are marked claimed too).
        """
        taken = np.zeros(len(scores), bool)
        s = len(self._cls)
        if s == 0:
            return taken
        gap = (self._misses + 1).astype(np.float64)
        predicted = self._box + self._vel * gap[:, None]
        if len(scores):
            both = box_iou(np.concatenate([self._box, predicted]), xyxy)
            overlap = np.maximum(both[:s], both[s:])
            overlap[self._cls[:, None] != cls[None, :]] = 0.0
            pairs = _greedy_pairs(overlap, self.iou)
        else:
            pairs = []
        hit = np.zeros(s, bool)
        if pairs:
            shown_i = np.array([p[0] for p in pairs])
            det_i = np.array([p[1] for p in pairs])
            residual = xyxy[det_i] - predicted[shown_i]
            self._box[shown_i] = predicted[shown_i] + self._alpha * residual
            self._vel[shown_i] += (self._beta / gap[shown_i])[:, None] * residual
            self._score[shown_i] += self._alpha * (scores[det_i] - self._score[shown_i])
            hit[shown_i] = True
            taken[det_i] = True
            claimed[det_i] = True
        self._misses = np.where(hit, 0, self._misses + 1)
        alive = self._misses <= self.hold
        if not alive.all():
            self._box, self._vel, self._score = self._box[alive], self._vel[alive], self._score[alive]
            self._cls, self._misses = self._cls[alive], self._misses[alive]
        return taken

    def _births(
        self, xyxy: np.ndarray, scores: np.ndarray, cls: np.ndarray, claimed: np.ndarray, taken: np.ndarray
    ) -> None:
        """Show detections whose unclaimed overlapping evidence spans `min_hits` frames."""
        candidates = np.flatnonzero(~taken)
        frames = list(self._evidence)  # frames[-1] is one frame old, frames[0] is len(frames) frames old
        if len(candidates) == 0 or len(frames) + 1 < self.min_hits:
            return
        sizes = [len(f.scores) for f in frames]
        age_index = np.repeat(np.arange(len(frames)), sizes)
        overlap = np.zeros((len(candidates), len(age_index)))
        if len(age_index) and self.min_hits > 1:
            past_cls = np.concatenate([f.class_id for f in frames])
            past_claimed = np.concatenate([f.claimed for f in frames])
            overlap = box_iou(xyxy[candidates], np.concatenate([f.xyxy for f in frames]))
            overlap[(cls[candidates][:, None] != past_cls[None, :]) | past_claimed[None, :]] = 0.0
            rows, cols = np.nonzero(overlap >= self.iou)
            seen = np.zeros((len(candidates), len(frames)), bool)
            seen[rows, age_index[cols]] = True
            votes = 1 + seen.sum(axis=1)
        else:
            votes = np.ones(len(candidates), np.int64)
        strong = np.flatnonzero(votes >= self.min_hits)
        if len(strong) == 0:
            return

        starts = np.r_[0, np.cumsum(sizes)]
        born_box, born_vel, born_score, born_cls = [], [], [], []
        # Strongest first, so when two candidates share evidence the better one gets it.
        for k in strong[np.argsort(-scores[candidates[strong]], kind="stable")].tolist():
            d = int(candidates[k])
            times, boxes, cluster_scores, used = [0.0], [xyxy[d]], [scores[d]], []
            for j, frame in enumerate(frames):
                if sizes[j] == 0 or self.min_hits == 1:
                    continue
                row = np.where(frame.claimed, 0.0, overlap[k, starts[j] : starts[j + 1]])
                best = int(np.argmax(row))
                if row[best] >= self.iou:
                    times.append(float(j - len(frames)))
                    boxes.append(frame.xyxy[best])
                    cluster_scores.append(frame.scores[best])
                    used.append((frame, best))
            if len(times) < self.min_hits:
                continue
            box, vel = self._fit_line(np.array(times), np.array(boxes))
            for frame, best in used:
                frame.claimed[best] = True
            claimed[d] = True
            born_box.append(box)
            born_vel.append(vel)
            born_score.append(float(np.mean(cluster_scores)))
            born_cls.append(int(cls[d]))
        if born_box:
            self._box = np.concatenate([self._box, np.array(born_box)])
            self._vel = np.concatenate([self._vel, np.array(born_vel)])
            self._score = np.concatenate([self._score, np.array(born_score)])
            self._cls = np.concatenate([self._cls, np.array(born_cls, np.int64)])
            self._misses = np.concatenate([self._misses, np.zeros(len(born_box), np.int64)])
            if len(self._cls) > self.max_boxes:
                keep = _top_per_class(self._cls, (-self._score, self._misses), self.max_boxes)
                self._box, self._vel, self._score = self._box[keep], self._vel[keep], self._score[keep]
                self._cls, self._misses = self._cls[keep], self._misses[keep]

    @staticmethod
    def _fit_line(times: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Least-squares box(t) = box0 + vel * t through the evidence; returns (box0, vel) at t = 0 (now)."""
        if len(times) < 2:
            return boxes[0].copy(), np.zeros(4)
        t_mean = times.mean()
        dt = times - t_mean
        vel = (dt[:, None] * (boxes - boxes.mean(axis=0))).sum(axis=0) / float((dt**2).sum())
        return boxes.mean(axis=0) - vel * t_mean, vel

    def _update_states(self) -> None:
        shown = np.bincount(self._cls, minlength=len(self._labels)) > 0
        self._shown_run = np.where(shown, np.minimum(self._shown_run + 1, _RUN_CAP), 0)
        self._empty_run = np.where(shown, 0, np.minimum(self._empty_run + 1, _RUN_CAP))
        turn_on = ~self._present & (self._shown_run >= self.present_after)
        turn_off = self._present & (self._empty_run >= self.absent_after)
        if turn_on.any() or turn_off.any():
            for i in np.flatnonzero(turn_on | turn_off).tolist():
                logger.debug("%s is now %s", self._labels[i], PRESENT if turn_on[i] else ABSENT)
            self._present = (self._present | turn_on) & ~turn_off

    def __repr__(self) -> str:
        return (
            f"TemporalSmoother(labels={self._labels!r}, window={self.window}, min_hits={self.min_hits}, "
            f"hold={self.hold}, iou={self.iou:g}, smoothing={self.smoothing:g}, "
            f"present_after={self.present_after}, absent_after={self.absent_after}, max_boxes={self.max_boxes})"
        )

