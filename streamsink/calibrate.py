"""`streamsink calibrate`: pick threshold and sinks for a false-alarm budget instead of by trial and error.

On a small labelled set, every sink setting (0 to 24 sinks, each init) runs once
with all of the set's classes in one prompt, the way people prompt; then every
display threshold of a grid is scored by the states users would read: on clips
the temporal stage's states, on still images the raw ones (a class is "present"
when it has a box). The chosen setting is the one with the fewest missed present
pairs whose false-"present" rate stays within the budget; ties go to fewer sinks
and a lower threshold. The attention-sink paper finds 64 images enough to rank
such settings; a few clips of a few hundred frames give thousands of pairs.

Ranking is not the whole job: the choice is the best of many on this set, so on
fresh footage its false-"present" rate comes out higher than measured here, and by
less the more clips it was chosen on. Measured on the demo model (48 clips of
another draw, each setting chosen for 1% on some clips and scored on the rest):
chosen on 9 clips, 1.9-2.6% on the others; on 24 clips, 0.6-2.0%. Hence 24 clips
by default for the shapes world, and a report line with the spread over single
clips (0-7% around a pooled 1%: a persistent false positive is a run of pairs).

One threshold for every class wastes the budget: a detector scores some classes
higher than others (session 8's demo model called background "triangle" at
0.3-0.4; today's holds squares to 0.375 and rings to 0.15), so a threshold low
enough for the weak classes lets the noisy ones raise alarms. Pairs are counted
per class, so each sink setting also gets a threshold per class: the choice with
the fewest missed pairs whose false "present" pairs, added over the classes, stay
within the budget (an exact small knapsack over the grid). That choice is then measured as a whole, and
competes with the single thresholds like any other candidate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from streamsink.evaluate import Dataset, Method, detect_together, presence_truth, raw_presence, smooth
from streamsink.metrics import STATE_GRACE, StateReport, StateTrack
from streamsink.profile import Profile, ProfileError, model_fingerprint
from streamsink.settings import SINK_INITS
from streamsink.types import thresholds_of

SINK_COUNTS = (0, 4, 8, 16, 24)
THRESHOLDS = tuple(round(float(t), 3) for t in np.arange(0.1, 0.801, 0.025))


@dataclass(frozen=True)
class Candidate:
    """One (sinks, init, threshold, class thresholds) and its state figures on the calibration set."""

    sinks: int
    sink_init: str
    threshold: float
    figures: dict[str, float]
    class_thresholds: dict[str, float] = field(default_factory=dict)
    per_clip_false_present: tuple[float, ...] = ()  # the same rate on each clip alone (how much footage scatters)

    @property
    def false_present(self) -> float:
        return self.figures["false_present"]

    @property
    def missed(self) -> float:
        return self.figures["missed"]


@dataclass
class Calibration:
    """Every candidate measured, the one chosen, and what the budget costs in recall."""

    profile: Profile
    candidates: list[Candidate] = field(default_factory=list)

    @property
    def chosen(self) -> Candidate:
        return next(c for c in self.candidates if (c.sinks, c.sink_init, c.threshold, c.class_thresholds) ==
                    (self.profile.sinks, self.profile.sink_init, self.profile.threshold, self.profile.class_thresholds))

    def report(self) -> list[str]:
        """Plain lines: the choice, its figures, and the recall the budget costs against the best unbounded."""
        chosen = self.chosen
        loosest = min(self.candidates, key=lambda c: (c.missed, c.false_present))
        sinks = f"{chosen.sinks} {chosen.sink_init} sinks" if chosen.sinks else "no sinks"
        own = "".join(f", {name} {value:g}" for name, value in chosen.class_thresholds.items())
        lines = [
            f"chosen: threshold {chosen.threshold:g}{own}, {sinks}",
            f"  false present {chosen.false_present:.1%} (budget {self.profile.max_false_alarms:.1%}), "
            f"missed {chosen.missed:.1%}, delay to present {chosen.figures['delay_present']:.1f} frames, "
            f"to absent {chosen.figures['delay_absent']:.1f}",
            f"  the budget costs {max(0.0, chosen.missed - loosest.missed):.1%} of recall: with no budget the best "
            f"setting measured misses {loosest.missed:.1%} at false present {loosest.false_present:.1%}",
        ]
        budget = self.profile.max_false_alarms
        single = [c for c in self.candidates if not c.class_thresholds and c.false_present <= budget]
        if chosen.class_thresholds and single:
            best = min(single, key=lambda c: c.missed)
            lines.append(f"  one threshold for every class would miss {best.missed:.1%} within the budget "
                         f"(threshold {best.threshold:g})")
        per_clip = [rate for rate in chosen.per_clip_false_present if not math.isnan(rate)]
        if len(per_clip) > 1:
            lines.append(f"  per clip its false present ranges {min(per_clip):.1%}-{max(per_clip):.1%} over "
                         f"{len(per_clip)} clips: fresh footage scatters as much, "
                         "so budget below the rate you can bear")
        return lines


def settings_grid(sink_counts: Sequence[int] = SINK_COUNTS, inits: Sequence[str] = SINK_INITS) -> list[tuple[int, str]]:
    """(sinks, init) pairs to try; 0 sinks once, whatever the init."""
    grid = [(0, "mean")] if 0 in sink_counts else []
    grid += [(n, init) for n in sink_counts if n > 0 for init in inits]
    return grid


def calibrate(detector, dataset: Dataset, *, model: str, max_false_alarms: float, sink_counts: Sequence[int] = SINK_COUNTS,
              inits: Sequence[str] = SINK_INITS, thresholds: Sequence[float] = THRESHOLDS, min_score: float = 0.05,
              smoother_options: dict | None = None, grace: int = STATE_GRACE, batch_size: int = 8,
              per_class: bool = True, progress: Callable[[str], None] | None = None) -> Calibration:
    """Measure every setting on `dataset` (clips if it has them, else its images) and choose within the budget
    (`per_class`: also a threshold per class for each setting)."""
    if not 0.0 <= max_false_alarms <= 1.0:
        raise ValueError(f"max false alarms must be a rate in [0, 1], got {max_false_alarms}")
    if not thresholds or any(not min_score <= t <= 1.0 for t in thresholds):
        raise ValueError(f"thresholds must lie in [min score={min_score}, 1], got {list(thresholds)}")
    clips = dataset.clips or ([dataset.images] if dataset.images else [])
    if not clips:
        raise ValueError(f"{dataset.name} has no images or clips to calibrate on")
    smoothed = bool(dataset.clips)
    classes = tuple(dataset.classes)
    truths = [presence_truth(clip, classes) for clip in clips]
    candidates: list[Candidate] = []
    for sinks, init in settings_grid(sink_counts, inits):
        if progress:
            progress(f"{sinks} {init} sinks" if sinks else "no sinks")
        method = Method(f"sinks-{init}-{sinks}" if sinks else "stock", sinks=sinks, sink_init=init)
        found = [detect_together(detector, method, clip, classes, threshold=min_score, batch_size=batch_size) for clip in clips]

        def measure(threshold: float, own: dict[str, float] | None = None) -> StateReport:
            tracks = []
            floors = thresholds_of(classes, threshold, own)
            for frames, truth in zip(found, truths):
                states = (smooth(frames, classes, threshold, smoother_options, own).states if smoothed
                          else raw_presence(frames, len(classes), floors))
                tracks.append(StateTrack(truth, states, dataset.fps))
            return StateReport(tracks, grace)

        counts = {}
        for threshold in thresholds:
            report = measure(float(threshold))
            candidates.append(Candidate(sinks, init, float(threshold), report.summary(),
                                        per_clip_false_present=per_clip_false_present(report)))
            counts[float(threshold)] = report.class_counts()
        if per_class and len(classes) > 1:
            own = _per_class_candidate(candidates[-len(thresholds):], counts, classes, max_false_alarms, measure)
            if own is not None:
                candidates.append(own)
    within = [c for c in candidates if not math.isnan(c.false_present) and c.false_present <= max_false_alarms]
    if not within:
        best = min(candidates, key=lambda c: c.false_present)
        raise ProfileError(f"no setting keeps false present within {max_false_alarms:.1%} on {dataset.name}: the lowest "
                           f"measured is {best.false_present:.1%} (threshold {best.threshold:g}, {best.sinks} sinks)")
    best = min(within, key=lambda c: (c.missed, c.sinks, len(c.class_thresholds), c.threshold))
    profile = Profile(best.threshold, best.sinks, best.sink_init, model_fingerprint(model), model_name=str(model),
                      max_false_alarms=float(max_false_alarms), dataset=dataset.name, measured=dict(best.figures),
                      class_thresholds=dict(best.class_thresholds))
    return Calibration(profile, candidates)


def per_clip_false_present(report: StateReport) -> tuple[float, ...]:
    """The false-"present" rate of each clip of `report` on its own (NaN where a clip has no absent pair)."""
    return tuple(StateReport([track], report.grace).false_present() for track in report.tracks)


def per_class_choice(counts: dict[float, dict[str, np.ndarray]], budget: int) -> tuple[float, ...] | None:
    """Each class's threshold (keys of `counts`, each with `StateReport.class_counts()` there) for the
    fewest missed pairs whose false-"present" pairs add up to at most `budget`; None when no choice fits.

    Exact: a multiple-choice knapsack over the false-present count, a few hundred entries wide."""
    grid = sorted(counts)
    n_classes = len(counts[grid[0]]["missed"])
    best: dict[int, tuple[int, tuple[float, ...]]] = {0: (0, ())}  # false present so far -> (missed, thresholds)
    for c in range(n_classes):
        following: dict[int, tuple[int, tuple[float, ...]]] = {}
        for spent, (missed, picks) in best.items():
            for threshold in grid:
                total = spent + int(counts[threshold]["false_present"][c])
                if total > budget:
                    continue
                entry = (missed + int(counts[threshold]["missed"][c]), picks + (threshold,))
                if total not in following or entry[0] < following[total][0]:
                    following[total] = entry
        best = following
        if not best:
            return None
    return min(best.items(), key=lambda item: (item[1][0], item[0]))[1][1]  # fewest missed, then fewest false present


def _per_class_candidate(single: list[Candidate], counts: dict[float, dict[str, np.ndarray]], classes: tuple[str, ...],
                         max_false_alarms: float, measure: Callable[..., StateReport]) -> Candidate | None:
    """The per-class choice of one sink setting, measured as a whole. Classes share objects in the temporal
    stage, so the whole can count a few pairs more than its parts: the budget shrinks by what it overshot."""
    absent = int(next(iter(counts.values()))["absent"].sum())
    budget = int(math.floor(max_false_alarms * absent + 1e-9))
    fitting = [c for c in single if c.false_present <= max_false_alarms]
    for _ in range(3):
        picks = per_class_choice(counts, budget)
        if picks is None:
            return None
        # Classes the set lacks take the setting's best single threshold (or the strictest of the picks).
        base = min(fitting, key=lambda c: (c.missed, c.threshold)).threshold if fitting else max(picks)
        own = {name: t for name, t in zip(classes, picks) if t != base}
        if not own:
            return None  # the single threshold already is the choice
        report = measure(base, own)
        figures = report.summary()
        if not figures["false_present"] > max_false_alarms:
            sinks, init = single[0].sinks, single[0].sink_init
            return Candidate(sinks, init, base, figures, own, per_clip_false_present(report))
        budget -= int(report.class_counts()["false_present"].sum()) - budget
    return None
