"""Abstention metrics: AP50 on images that hold a class, false positives on images that do not.

The protocol follows the attention-sink paper: every class is prompted on its
own, one image at a time. A (image, class) pair is *positive* when the image
holds that class and *negative* (background) when it does not.

- AP50 is computed per class over its positive pairs (greedy matching by score,
  IoU >= 0.5, COCO's 101-point interpolated precision) and averaged over the
  classes that have any ground truth.
- FPR_bg(t) is the number of detections scoring >= t on negative pairs divided
  by the number of negative pairs: false positives per background image per
  negative prompt.
- AP50 at FPR_bg = x keeps only detections above the loosest threshold at
  which FPR_bg is x. Thresholds only exist between distinct negative scores, so
  tied scores are admitted or refused together; when x falls between two such
  operating points, AP is interpolated linearly in FPR between them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from streamsink import types

FPR_TARGETS = (0.01, 0.05, 0.25)


@dataclass(frozen=True)
class PairResult:
    """The detections for one prompted class on one image, and that class's ground truth there.

    boxes: (n, 4) float xyxy; scores: (n,); truth: (m, 4) float xyxy, empty on a negative pair.
    """

    image: str
    label: str
    boxes: np.ndarray
    scores: np.ndarray
    truth: np.ndarray

    @property
    def negative(self) -> bool:
        return len(self.truth) == 0


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, 4) x (m, 4) xyxy -> (n, m) IoU, in float64 whatever the inputs (metrics compare against 0.5 exactly)."""
    return types.box_iou(np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4))


def match(boxes: np.ndarray, scores: np.ndarray, truth: np.ndarray, iou: float = 0.5) -> np.ndarray:
    """True for each detection that claims a not-yet-claimed truth box at IoU >= `iou`, highest score first."""
    hits = np.zeros(len(scores), bool)
    if len(scores) == 0 or len(truth) == 0:
        return hits
    overlaps = box_iou(boxes, truth)
    taken = np.zeros(len(truth), bool)
    for i in np.argsort(-np.asarray(scores), kind="stable"):
        candidates = np.where(~taken & (overlaps[i] >= iou))[0]
        if len(candidates):
            best = candidates[np.argmax(overlaps[i, candidates])]
            taken[best] = hits[i] = True
    return hits


def average_precision(scores: np.ndarray, hits: np.ndarray, n_truth: int) -> float:
    """COCO-style 101-point interpolated AP from matched detections; 0 when nothing is found."""
    if n_truth == 0:
        raise ValueError("average precision needs at least one ground-truth box, got 0")
    if len(scores) == 0:
        return 0.0
    order = np.argsort(-np.asarray(scores), kind="stable")
    tp = np.cumsum(hits[order])
    fp = np.cumsum(~hits[order])
    recall = tp / n_truth
    precision = tp / np.maximum(tp + fp, 1)
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    points = np.linspace(0, 1, 101)
    index = np.searchsorted(recall, points, side="left")
    sampled = np.where(index < len(precision), precision[np.minimum(index, len(precision) - 1)], 0.0)
    return float(sampled.mean())


class AbstentionReport:
    """All the figures of one method on one dataset; build with `from_pairs`."""

    def __init__(self, pairs: Sequence[PairResult], iou: float = 0.5) -> None:
        self.pairs = list(pairs)
        self.negatives = [p for p in self.pairs if p.negative]
        positives = [p for p in self.pairs if not p.negative]
        self.classes = sorted({p.label for p in positives})
        self._per_class: dict[str, tuple[np.ndarray, np.ndarray, int]] = {}
        for label in self.classes:
            scores, hits, n_truth = [], [], 0
            for pair in positives:
                if pair.label == label:
                    scores.append(np.asarray(pair.scores, np.float64))
                    hits.append(match(pair.boxes, pair.scores, pair.truth, iou))
                    n_truth += len(pair.truth)
            self._per_class[label] = (np.concatenate(scores), np.concatenate(hits), n_truth)
        self.negative_scores = np.sort(
            np.concatenate([np.asarray(p.scores, np.float64) for p in self.negatives] or [np.zeros(0)])
        )[::-1]

    def ap50(self, threshold: float = -np.inf) -> float:
        """Mean over classes of AP50, counting only detections scoring >= `threshold`."""
        if not self.classes:
            return float("nan")
        values = []
        for scores, hits, n_truth in self._per_class.values():
            keep = scores >= threshold
            values.append(average_precision(scores[keep], hits[keep], n_truth))
        return float(np.mean(values))

    def fpr_bg(self, threshold: float = -np.inf) -> float:
        """False positives per negative (image, prompt) pair at `threshold`."""
        if not self.negatives:
            return float("nan")
        return float(np.count_nonzero(self.negative_scores >= threshold) / len(self.negatives))

    def operating_points(self) -> list[tuple[float, float]]:
        """(fpr_bg, threshold) for each FPR_bg a threshold can give, strictest first.

        Each point's threshold is the loosest one with that FPR_bg: just above
        the next lower distinct negative score (all ties of a score are admitted
        or refused together), so every positive detection that costs no extra
        false positive counts. The first point admits no background detection,
        the last admits everything.
        """
        if not self.negatives:
            return []
        distinct = np.unique(self.negative_scores)[::-1]
        points = []
        for i, fpr_score in enumerate([np.inf, *distinct]):
            looser = distinct[i] if i < len(distinct) else None
            threshold = -np.inf if looser is None else float(np.nextafter(looser, np.inf))
            points.append((self.fpr_bg(fpr_score) if i else 0.0, threshold))
        return points

    def ap50_at_fpr(self, target: float) -> float:
        """AP50 when the threshold is set so that FPR_bg equals `target`, interpolated between operating points."""
        if not 0.0 <= target:
            raise ValueError(f"target FPR must be >= 0, got {target}")
        points = self.operating_points()
        if not points:
            return self.ap50()
        fpr_low, t_low = [(f, t) for f, t in points if f <= target][-1]
        above = [(f, t) for f, t in points if f > target]
        ap_low = self.ap50(t_low)
        if not above:
            return ap_low
        fpr_high, t_high = above[0]
        weight = (target - fpr_low) / (fpr_high - fpr_low)
        return float(ap_low + weight * (self.ap50(t_high) - ap_low))

    def negative_frames_with_detection(self) -> float:
        """Share of negative (image, prompt) pairs with at least one detection."""
        if not self.negatives:
            return float("nan")
        return sum(1 for p in self.negatives if len(p.scores)) / len(self.negatives)

    def summary(self) -> dict[str, float]:
        figures = {"ap50": self.ap50()}
        for target in FPR_TARGETS:
            figures[f"ap50_at_fpr_{target}"] = self.ap50_at_fpr(target)
        figures["fpr_bg"] = self.fpr_bg()
        figures["neg_frames_with_detection"] = self.negative_frames_with_detection()
        return figures


def pairs_from(records: Iterable[tuple[str, str, np.ndarray, np.ndarray, np.ndarray]]) -> list[PairResult]:
    """Build `PairResult`s from (image, label, boxes, scores, truth) tuples."""
    return [
        PairResult(image, label, np.asarray(b, np.float64).reshape(-1, 4), np.asarray(s, np.float64), np.asarray(t, np.float64).reshape(-1, 4))
        for image, label, b, s, t in records
    ]


# The states: what users read. One (frame, class) pair is a state to score; the ground truth says a
# class is present on a frame when an object of it is annotated there.

STATE_GRACE = 5  # frames after each ground-truth change left out of the rates: no causal stage can know sooner


@dataclass(frozen=True)
class StateTrack:
    """One clip's states against its truth: (frames, classes) bool arrays, True = present."""

    truth: np.ndarray
    states: np.ndarray
    fps: float = 25.0

    def __post_init__(self) -> None:
        truth, states = np.asarray(self.truth, bool), np.asarray(self.states, bool)
        if truth.ndim != 2 or truth.shape != states.shape:
            raise ValueError(f"truth and states must be (frames, classes) of one shape, got {truth.shape} and {states.shape}")
        object.__setattr__(self, "truth", truth)
        object.__setattr__(self, "states", states)


def runs(column: np.ndarray) -> list[tuple[int, int, bool]]:
    """(start, end, value) of each run of equal values in a 1-D bool array, end exclusive."""
    if len(column) == 0:
        return []
    edges = np.flatnonzero(column[1:] != column[:-1]) + 1
    starts, ends = np.r_[0, edges], np.r_[edges, len(column)]
    return [(int(s), int(e), bool(column[s])) for s, e in zip(starts, ends)]


def _changes(present: np.ndarray) -> int:
    """State changes in a (frames, classes) array, counting a class present at frame 0 as one."""
    return int(present[0].sum()) + int((present[1:] != present[:-1]).sum()) if len(present) else 0


class StateReport:
    """How true the per-class states are over clips: rates, delays and flips.

    - false_present: share of absent (frame, class) pairs said "present".
    - missed: share of present pairs said "absent".
    Both leave out the `grace` frames from each ground-truth change on (the frame of the
    change included), where a causal stage cannot know yet. Every class is taken as absent
    before a clip starts (as a stage's states are), so a class in view at frame 0 appears there.
    - delay_present / delay_absent: mean frames from a class appearing (leaving) until its
      state says so; a state that never follows within the stretch counts the stretch's length.
    - flips_per_minute: state changes per minute beyond the ground truth's own changes.
    """

    def __init__(self, tracks: Sequence[StateTrack], grace: int = STATE_GRACE) -> None:
        if grace < 0:
            raise ValueError(f"grace must be >= 0, got {grace}")
        self.tracks = list(tracks)
        self.grace = grace

    def _scored(self, track: StateTrack) -> np.ndarray:
        scored = np.ones_like(track.truth)
        before = np.vstack([np.zeros((1, track.truth.shape[1]), bool), track.truth])
        for t, c in np.argwhere(before[1:] != before[:-1]):
            scored[t : t + self.grace, c] = False
        return scored

    def _rate(self, said: bool, truth: bool) -> float:
        wrong = total = 0
        for track in self.tracks:
            pairs = self._scored(track) & (track.truth == truth)
            total += int(pairs.sum())
            wrong += int((pairs & (track.states == said)).sum())
        return wrong / total if total else float("nan")

    def class_counts(self) -> dict[str, np.ndarray]:
        """Per class (column): "false_present" and "absent" pairs, "missed" and "present" pairs, as counted
        by the rates (what a per-class choice of threshold adds up)."""
        n = self.tracks[0].truth.shape[1] if self.tracks else 0
        out = {key: np.zeros(n, np.int64) for key in ("false_present", "absent", "missed", "present")}
        for track in self.tracks:
            scored = self._scored(track)
            out["absent"] += (scored & ~track.truth).sum(axis=0)
            out["false_present"] += (scored & ~track.truth & track.states).sum(axis=0)
            out["present"] += (scored & track.truth).sum(axis=0)
            out["missed"] += (scored & track.truth & ~track.states).sum(axis=0)
        return out

    def false_present(self) -> float:
        return self._rate(True, False)

    def missed(self) -> float:
        return self._rate(False, True)

    def _delay(self, value: bool) -> float:
        delays = []
        for track in self.tracks:
            for c in range(track.truth.shape[1]):
                for start, end, truth in runs(track.truth[:, c]):
                    if truth != value or (start == 0 and not value):
                        continue
                    followed = np.flatnonzero(track.states[start:end, c] == value)
                    delays.append(int(followed[0]) if len(followed) else end - start)
        return float(np.mean(delays)) if delays else float("nan")

    def delay_present(self) -> float:
        return self._delay(True)

    def delay_absent(self) -> float:
        return self._delay(False)

    def flips_per_minute(self) -> float:
        extra, minutes = 0, 0.0
        for track in self.tracks:
            extra += _changes(track.states) - _changes(track.truth)
            minutes += len(track.truth) / track.fps / 60.0
        return extra / minutes if minutes else float("nan")

    def summary(self) -> dict[str, float]:
        return {
            "false_present": self.false_present(),
            "missed": self.missed(),
            "delay_present": self.delay_present(),
            "delay_absent": self.delay_absent(),
            "flips_per_minute": self.flips_per_minute(),
        }


RAW_SHIFTS = np.round(np.arange(-0.5, 1.0125, 0.0125), 4)  # up to +1: a shift that says nothing is present


def raw_missed_at(false_present: float, peaks: Sequence[np.ndarray], truths: Sequence[np.ndarray],
                  threshold: float | Sequence[float], *, grace: int = STATE_GRACE, fps: float = 25.0) -> float:
    """The fewest misses of the raw detector with every class's threshold moved by one shift (RAW_SHIFTS)
    while it says "present" falsely no more often than `false_present`: what the raw detector would miss at
    the temporal stage's false-alarm rate, so the two compare at equal false alarms and not only at equal
    thresholds (where a stricter stage trades misses for false alarms). `peaks`: per clip, each class's best
    score per frame (`evaluate.class_peaks`). NaN where no shift gets there."""
    floors = np.asarray(threshold, np.float64)
    best = float("nan")
    for shift in RAW_SHIFTS:
        report = StateReport([StateTrack(truth, peak >= floors + shift, fps) for peak, truth in zip(peaks, truths)],
                             grace)
        if report.false_present() <= false_present + 1e-12:
            missed = report.missed()
            if np.isnan(best) or missed < best:
                best = missed
    return best
