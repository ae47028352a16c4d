"""`streamsink eval`: how often a detector names what is not there, method against method.

Every class is prompted on its own on every image (the attention-sink paper's
protocol); `streamsink.metrics` turns the detections into AP50, FPR_bg and AP50
at fixed FPR_bg. Methods share one loaded model: the stock prompt, sinks of
each kind and count, and the decoy-class baseline (a generic extra class such
as "object" whose boxes are dropped, the trick YOLO-World users apply). On
clips, each method is also scored after the temporal stage (fed every detection
above the floor, its own scores ranked), and the per-class states users read are
scored against the truth, each class prompted alone and all in one prompt.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from streamsink.errors import SourceError, SourceNotFoundError
from streamsink.metrics import (FPR_TARGETS, STATE_GRACE, AbstentionReport, PairResult, StateReport, StateTrack,
                                raw_missed_at, runs)
from streamsink.types import Detections, thresholds_of

logger = logging.getLogger(__name__)

NO_BOXES = np.zeros((0, 4), np.float64)


@dataclass(frozen=True)
class Sample:
    """One image and its exhaustive ground truth: label -> (m, 4) xyxy pixels."""

    id: str
    image: np.ndarray
    truth: dict[str, np.ndarray]


@dataclass(frozen=True)
class Dataset:
    """Independent images (for the per-image figures) and clips (ordered frames, for the smoother)."""

    name: str
    classes: tuple[str, ...]
    images: list[Sample]
    clips: list[list[Sample]] = field(default_factory=list)
    fps: float = 25.0  # of the clips, for flips per minute


@dataclass(frozen=True)
class Method:
    """One way to run the detector: how many sinks of which kind, and an optional decoy class."""

    name: str
    sinks: int = 0
    sink_init: str = "mean"
    decoy: str | None = None


DEFAULT_METHODS = "stock,sinks-mean-4,sinks-mean-16,sinks-mean-32,sinks-random-16,sinks-brackets-16,decoy-object"
CLIPS = " (clips)"  # the suffixes of a method's clip rows, raw and smoothed
SMOOTHED_CLIPS = " + smoother (clips)"


def parse_methods(spec: str) -> list[Method]:
    """`"stock,sinks-mean-16,decoy-object"` -> methods; one-line ValueError on anything else."""
    methods = []
    for name in (part.strip() for part in spec.split(",")):
        if not name:
            continue
        if name == "stock":
            methods.append(Method(name))
            continue
        kind, _, rest = name.partition("-")
        if kind == "decoy" and rest:
            methods.append(Method(name, decoy=rest.replace("_", " ")))
            continue
        init, _, count = rest.partition("-")
        if kind == "sinks" and init in ("mean", "random", "brackets") and count.isdigit() and int(count) > 0:
            methods.append(Method(name, sinks=int(count), sink_init=init))
            continue
        raise ValueError(
            f"unknown method {name!r}; use stock, sinks-<mean|random|brackets>-<N> or decoy-<word>, comma-separated"
        )
    if not methods:
        raise ValueError("methods names no method; e.g. --methods stock,sinks-mean-16")
    return methods


def _truth(annotations, classes: Sequence[str]) -> dict[str, np.ndarray]:
    boxes: dict[str, list] = {}
    for item in annotations:
        if item["label"] in classes:
            boxes.setdefault(item["label"], []).append(item["box"])
    return {label: np.asarray(b, np.float64).reshape(-1, 4) for label, b in boxes.items()}


def load_shapes_world():
    """The shapes world, which ships inside the package (`streamsink.shapes`)."""
    from streamsink import shapes

    return shapes


def shapes_dataset(seed: int, *, images: int = 100, clips: int = 2, clip_frames: int = 50) -> Dataset:
    """A fresh draw of the shapes world: `images` independent frames and `clips` short clips."""
    if images < 0 or clips < 0 or clip_frames < 1:
        raise ValueError(f"images and clips must be >= 0 and clip frames >= 1, got {images}, {clips}, {clip_frames}")
    shapes = load_shapes_world()
    classes = tuple(shapes.CLASSES)
    samples = [
        Sample(f"shapes-{seed}-{i}", image, _truth(annotations, classes))
        for i, (image, annotations) in enumerate(shapes.dataset(seed, images))
    ]
    clip_samples = []
    for k in range(clips):
        clip = shapes.make_clip(seed * 1000 + k, frames=clip_frames)
        clip_samples.append(
            [Sample(f"clip-{seed}-{k}-{i}", frame, _truth(annotations, classes)) for i, (frame, annotations) in enumerate(zip(clip.frames, clip.annotations))]
        )
    return Dataset(f"shapes (seed {seed})", classes, samples, clip_samples)


def coco_dataset(annotations: str | Path, images_dir: str | Path | None = None, *, limit: int | None = None) -> Dataset:
    """A COCO-format detection file; every category not annotated on an image is a negative there."""
    import cv2

    path = Path(annotations)
    if not path.is_file():
        raise SourceNotFoundError(f"no such annotation file: {path}")
    folder = Path(images_dir) if images_dir else path.parent
    by_image: dict[int, list] = {}
    try:
        data = json.loads(path.read_text())
        categories = {c["id"]: c["name"] for c in data["categories"]}
        entries = [(entry["id"], entry["file_name"]) for entry in data["images"]]
        for item in data.get("annotations", []):
            x, y, w, h = item["bbox"]
            label = categories[item["category_id"]]
            by_image.setdefault(item["image_id"], []).append({"label": label, "box": [x, y, x + w, y + h]})
    except (ValueError, KeyError, TypeError) as error:
        raise SourceError(f"not a COCO detection file: {path} ({type(error).__name__}: {error})") from None
    classes = tuple(categories.values())
    samples = []
    for image_id, file_name in entries[:limit]:
        file = folder / file_name
        bgr = cv2.imread(str(file), cv2.IMREAD_COLOR)
        if bgr is None:
            raise SourceError(f"cannot read image {file} listed in {path}")
        samples.append(Sample(str(image_id), np.ascontiguousarray(bgr[..., ::-1]), _truth(by_image.get(image_id, []), classes)))
    if not samples:
        raise SourceError(f"no images in {path}")
    return Dataset(path.name, classes, samples)


def _detect(variant, samples: Sequence[Sample], labels: tuple[str, ...], decoy: str | None, *, threshold: float,
            batch_size: int) -> list[Detections]:
    """`labels` (plus `decoy`) in one prompt on every sample, in batches; the decoy's boxes are dropped."""
    prompt = [*labels, decoy] if decoy else list(labels)
    out: list[Detections] = []
    for start in range(0, len(samples), batch_size):
        for d in variant.detect([s.image for s in samples[start : start + batch_size]], prompt, threshold=threshold):
            keep = d.class_id < len(labels)
            out.append(Detections(d.xyxy[keep], d.scores[keep], d.class_id[keep], labels))
    return out


def detect_per_class(detector, method: Method, samples: Sequence[Sample], classes: Sequence[str], *, threshold: float,
                     batch_size: int) -> dict[str, list[Detections]]:
    """For each class prompted alone (plus the method's decoy), its detections on every sample, in order."""
    variant = detector.with_sinks(method.sinks, method.sink_init)
    return {label: _detect(variant, samples, (label,), method.decoy, threshold=threshold, batch_size=batch_size)
            for label in classes}


def detect_together(detector, method: Method, samples: Sequence[Sample], classes: Sequence[str], *, threshold: float,
                    batch_size: int) -> list[Detections]:
    """Every class in one prompt (plus the method's decoy, whose boxes are dropped), as people prompt for states."""
    variant = detector.with_sinks(method.sinks, method.sink_init)
    return _detect(variant, samples, tuple(classes), method.decoy, threshold=threshold, batch_size=batch_size)


def pairs(samples: Sequence[Sample], found: dict[str, list[Detections]]) -> list[PairResult]:
    return [
        PairResult(sample.id, label, d.xyxy.astype(np.float64), d.scores.astype(np.float64), sample.truth.get(label, NO_BOXES))
        for label, detections in found.items()
        for sample, d in zip(samples, detections)
    ]


@dataclass(frozen=True)
class Smoothed:
    """What the temporal stage made of one clip: every box it scores (for AP) and its states (frames, classes)."""

    scored: list[Detections]
    states: np.ndarray


def smooth(frames: Sequence[Detections], labels: Sequence[str], threshold: float,
           smoother_options: dict | None = None, class_thresholds: Mapping[str, float] | None = None) -> Smoothed:
    """One clip's detections (every score above the floor) through one temporal smoother at display
    `threshold` (and `class_thresholds`, where a class has its own)."""
    from streamsink.smoother import PRESENT, TemporalSmoother

    options = {"threshold": threshold, "class_thresholds": class_thresholds, **(smoother_options or {})}
    smoother = TemporalSmoother(labels, **options)
    scored, states = [], []
    for d in frames:
        smoother.update(d)
        scored.append(smoother.scored())
        states.append([smoother.states[label] == PRESENT for label in labels])
    return Smoothed(scored, np.array(states, bool).reshape(len(frames), len(labels)))


def class_peaks(frames: Sequence[Detections], n_labels: int) -> np.ndarray:
    """(frames, classes): each class's best score on each frame, -inf where it has no box."""
    out = np.full((len(frames), n_labels), -np.inf)
    for i, d in enumerate(frames):
        np.maximum.at(out[i], d.class_id, d.scores.astype(np.float64))
    return out


def raw_presence(frames: Sequence[Detections], n_labels: int, threshold: float | Sequence[float]) -> np.ndarray:
    """(frames, classes): a class is present exactly when it has a box at its threshold on that frame
    (`threshold`: one for all classes, or one per class)."""
    return class_peaks(frames, n_labels) >= np.broadcast_to(np.asarray(threshold, np.float64), (n_labels,))


def presence_truth(clip: Sequence[Sample], classes: Sequence[str]) -> np.ndarray:
    """(frames, classes): a class is present where an object of it is annotated."""
    return np.array([[len(s.truth.get(label, NO_BOXES)) > 0 for label in classes] for s in clip], bool).reshape(len(clip), len(classes))


ONE_CLASS, ALL_CLASSES = "one class", "all classes"  # the two ways a state row prompts
RAW, SMOOTHED = "raw", "smoothed"
RAW_MISSED = "raw_missed_at_same_false_present"  # a smoothed row's `raw_missed_at` its own false present


@dataclass
class Evaluation:
    """Figures per method name, the AP50-vs-FPR_bg curve behind each, and the state figures.

    states: method -> prompt (ONE_CLASS | ALL_CLASSES) -> stage (RAW | SMOOTHED) -> StateReport summary;
        SMOOTHED also holds RAW_MISSED, what raw misses at the stage's false-present rate (`raw_missed_at`).
    timeline: the first clip under ALL_CLASSES for `timeline_method` (the first): "truth", RAW and
        SMOOTHED, each (frames, classes) bool.
    """

    dataset: str
    threshold: float
    figures: dict[str, dict[str, float]] = field(default_factory=dict)
    curves: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    states: dict[str, dict[str, dict[str, dict[str, float]]]] = field(default_factory=dict)
    classes: tuple[str, ...] = ()
    timeline: dict[str, np.ndarray] = field(default_factory=dict)
    timeline_method: str = ""
    grace: int = STATE_GRACE
    class_thresholds: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, report: AbstentionReport, *, curve_points: int = 64) -> None:
        self.figures[name] = report.summary()
        points = report.operating_points()
        if len(points) > curve_points:
            keep = np.unique(np.linspace(0, len(points) - 1, curve_points).round().astype(int))
            points = [points[i] for i in keep]
        self.curves[name] = [(fpr, report.ap50(threshold)) for fpr, threshold in points]

    def to_json(self) -> dict:
        def clean(figures: dict[str, float]) -> dict:
            return {k: (None if isinstance(v, float) and math.isnan(v) else round(v, 6)) for k, v in figures.items()}

        out = {"dataset": self.dataset, "threshold": self.threshold, "class_thresholds": self.class_thresholds,
               "methods": {name: clean(f) for name, f in self.figures.items()}}
        if self.states:
            out["state_grace_frames"] = self.grace
            out["states"] = {m: {p: {stage: clean(f) for stage, f in stages.items()} for p, stages in prompts.items()}
                             for m, prompts in self.states.items()}
        return out


def evaluate(detector, dataset: Dataset, methods: Sequence[Method], *, threshold: float = 0.3, min_score: float = 0.01,
             batch_size: int = 8, smoother_options: dict | None = None, grace: int = STATE_GRACE,
             class_thresholds: Mapping[str, float] | None = None,
             progress: Callable[[str], None] | None = None) -> Evaluation:
    """Score every method on `dataset`.

    Images: AP50 and FPR_bg over every threshold >= `min_score`. Clips: the same, raw and after the
    temporal stage, which receives every detection >= `min_score` and whose own scores are ranked; and
    the states (a raw state is "some box >= `threshold`"), with each class prompted alone and with all
    classes in one prompt. `class_thresholds` give some classes a display threshold of their own.
    """
    own = dict(class_thresholds or {})
    result = Evaluation(dataset.name, threshold, classes=tuple(dataset.classes), grace=grace, class_thresholds=own)
    classes = tuple(dataset.classes)
    floors = thresholds_of(classes, threshold, own)
    for method in methods:
        if progress:
            progress(method.name)
        if dataset.images:
            found = detect_per_class(detector, method, dataset.images, classes, threshold=min_score, batch_size=batch_size)
            result.add(method.name, AbstentionReport(pairs(dataset.images, found)))
        if not dataset.clips:
            continue
        raw_pairs: list[PairResult] = []
        smoothed_pairs: list[PairResult] = []
        tracks: dict[str, dict[str, list[StateTrack]]] = {p: {RAW: [], SMOOTHED: []} for p in (ONE_CLASS, ALL_CLASSES)}
        peaks: dict[str, list[np.ndarray]] = {ONE_CLASS: [], ALL_CLASSES: []}  # the raw scores, for RAW_MISSED
        for k, clip in enumerate(dataset.clips):
            truth = presence_truth(clip, classes)
            alone = detect_per_class(detector, method, clip, classes, threshold=min_score, batch_size=batch_size)
            smoothed_alone = {label: smooth(frames, (label,), threshold, smoother_options, own)
                              for label, frames in alone.items()}
            raw_pairs += pairs(clip, alone)
            smoothed_pairs += pairs(clip, {label: s.scored for label, s in smoothed_alone.items()})
            peaks[ONE_CLASS].append(np.hstack([class_peaks(alone[c], 1) for c in classes]))
            raw_alone = peaks[ONE_CLASS][-1] >= np.asarray(floors)
            tracks[ONE_CLASS][RAW].append(StateTrack(truth, raw_alone, dataset.fps))
            tracks[ONE_CLASS][SMOOTHED].append(StateTrack(truth, np.hstack([smoothed_alone[c].states for c in classes]), dataset.fps))
            together = detect_together(detector, method, clip, classes, threshold=min_score, batch_size=batch_size)
            peaks[ALL_CLASSES].append(class_peaks(together, len(classes)))
            raw_together = peaks[ALL_CLASSES][-1] >= np.asarray(floors)
            smoothed_together = smooth(together, classes, threshold, smoother_options, own).states
            tracks[ALL_CLASSES][RAW].append(StateTrack(truth, raw_together, dataset.fps))
            tracks[ALL_CLASSES][SMOOTHED].append(StateTrack(truth, smoothed_together, dataset.fps))
            if k == 0 and not result.timeline:
                result.timeline = {"truth": truth, RAW: raw_together, SMOOTHED: smoothed_together}
                result.timeline_method = method.name
        result.add(f"{method.name}{CLIPS}", AbstentionReport(raw_pairs))
        result.add(f"{method.name}{SMOOTHED_CLIPS}", AbstentionReport(smoothed_pairs))
        result.states[method.name] = {
            prompt: {stage: StateReport(t, grace).summary() for stage, t in stages.items()} for prompt, stages in tracks.items()
        }
        for prompt, stages in result.states[method.name].items():
            stages[SMOOTHED][RAW_MISSED] = raw_missed_at(stages[SMOOTHED]["false_present"], peaks[prompt],
                                                         [t.truth for t in tracks[prompt][RAW]], floors, grace=grace,
                                                         fps=dataset.fps)
    return result


COLUMNS = ("ap50", *(f"ap50_at_fpr_{t}" for t in FPR_TARGETS), "fpr_bg", "neg_frames_with_detection")


HEADERS = ("AP50", "AP50@.01", "AP50@.05", "AP50@.25", "FPR_bg", "neg w/ det")


def table(evaluation: Evaluation):
    """A rich table, one row per method; AP50@x is AP50 at FPR_bg = x."""
    from rich.table import Table

    out = Table(title=f"abstention on {evaluation.dataset}", title_justify="left")
    out.add_column("method", no_wrap=True)
    for header in HEADERS:
        out.add_column(header, justify="right", no_wrap=True)
    for name, figures in evaluation.figures.items():
        out.add_row(name, *("-" if math.isnan(figures[c]) else f"{figures[c]:.3f}" for c in COLUMNS))
    return out


STATE_COLUMNS = ("false_present", "missed", "delay_present", "delay_absent", "flips_per_minute", RAW_MISSED)
STATE_HEADERS = ("false present", "missed", "delay on", "delay off", "extra flips/min", "raw missed, same FP")


def state_table(evaluation: Evaluation):
    """A rich table of the states, one row per method, prompt and stage (delays in frames)."""
    from rich.table import Table

    own = "".join(f", {name} {value:g}" for name, value in evaluation.class_thresholds.items())
    out = Table(title=f"states on {evaluation.dataset} (threshold {evaluation.threshold:g}{own}, "
                      f"{evaluation.grace} frames of grace after each change)", title_justify="left")
    for header in ("method", "prompt", "stage"):
        out.add_column(header, no_wrap=True)
    for header in STATE_HEADERS:
        out.add_column(header, justify="right", no_wrap=True)
    for method, prompts in evaluation.states.items():
        for prompt, stages in prompts.items():
            for stage, figures in stages.items():
                cells = []
                for column in STATE_COLUMNS:
                    value = figures.get(column, math.nan)
                    rate = column in ("false_present", "missed", RAW_MISSED)
                    cells.append("-" if math.isnan(value) else f"{value:.1%}" if rate else f"{value:.1f}")
                out.add_row(method, prompt, stage, *cells)
    return out


LINE_STYLES = {"images": None, "clips": (10, 6), "smoothed clips": (2, 5)}  # (on, off) dash lengths in pixels


def plot_style(name: str) -> tuple[str, str]:
    """(method, row kind) of a figures row. A method keeps one colour and its image, clip and smoothed-clip
    curves differ by line style: one colour per row repeated colours once seven methods made 21 rows."""
    for suffix, kind in ((SMOOTHED_CLIPS, "smoothed clips"), (CLIPS, "clips")):
        if name.endswith(suffix):
            return name[: -len(suffix)], kind
    return name, "images"


def _styled_polyline(canvas: np.ndarray, points: np.ndarray, colour, thickness: int, dash: tuple[int, int] | None) -> None:
    """cv2.polylines, dashed when `dash` = (on, off) pixels: the pattern runs on along the whole line."""
    import cv2

    if dash is None or len(points) < 2:
        cv2.polylines(canvas, [points], False, colour, thickness, cv2.LINE_AA)
        return
    on, off = dash
    travelled = 0.0
    for a, b in zip(points[:-1].astype(float), points[1:].astype(float)):
        length, done = float(np.hypot(*(b - a))), 0.0
        while done < length:
            phase = travelled % (on + off)
            step = min((on - phase) if phase < on else (on + off - phase), length - done)
            if phase < on:
                start, end = a + (b - a) * done / length, a + (b - a) * (done + step) / length
                cv2.line(canvas, tuple(int(round(v)) for v in start), tuple(int(round(v)) for v in end), colour, thickness, cv2.LINE_AA)
            done, travelled = done + step, travelled + step


def plot(evaluation: Evaluation, path: str | Path, *, width: int = 900, height: int = 600) -> Path:
    """AP50 against FPR_bg (log scale), one curve per method that has negatives; written as PNG with OpenCV."""
    import cv2

    from streamsink.render import DEFAULT_PALETTE

    left, right, top, bottom = 70, 260, 40, 60
    canvas = np.full((height, width, 3), 255, np.uint8)
    largest = max((f for curve in evaluation.curves.values() for f, _ in curve), default=1.0)
    low, high = -3.0, float(max(0, math.ceil(math.log10(max(largest, 1e-3)))))

    def to_xy(fpr: float, ap: float) -> tuple[int, int]:
        x = left + (math.log10(min(max(fpr, 10**low), 10**high)) - low) / (high - low) * (width - left - right)
        y = height - bottom - ap * (height - top - bottom)
        return int(round(x)), int(round(y))

    cv2.rectangle(canvas, (left, top), (width - right, height - bottom), (0, 0, 0), 1)
    for decade in range(int(low), int(high) + 1):
        x, _ = to_xy(10.0**decade, 0)
        cv2.line(canvas, (x, height - bottom), (x, height - bottom + 5), (0, 0, 0), 1)
        cv2.putText(canvas, f"1e{decade}", (x - 14, height - bottom + 20), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    for target in FPR_TARGETS:
        x, _ = to_xy(target, 0)
        cv2.line(canvas, (x, top), (x, height - bottom), (200, 200, 200), 1)
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        _, y = to_xy(1.0, tick)
        cv2.putText(canvas, f"{tick:.2f}", (left - 40, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(canvas, "FPR_bg (false positives per negative image and prompt)", (left, height - 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(canvas, f"AP50 against FPR_bg: {evaluation.dataset}", (left, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    drawn = 0
    methods: list[str] = []
    for name, curve in evaluation.curves.items():
        if len(curve) < 1:
            continue
        method, kind = plot_style(name)
        if method not in methods:
            methods.append(method)
        colour = tuple(int(c) for c in DEFAULT_PALETTE[methods.index(method) % len(DEFAULT_PALETTE)][::-1])
        points = np.array([to_xy(f, a) for f, a in curve], np.int32)
        if len(points) == 1:
            cv2.circle(canvas, tuple(points[0]), 4, colour, -1, cv2.LINE_AA)
        _styled_polyline(canvas, points, colour, 2, LINE_STYLES[kind])
        y = top + 10 + 20 * drawn
        _styled_polyline(canvas, np.array([[width - right + 5, y], [width - right + 32, y]], np.int32), colour, 3, LINE_STYLES[kind])
        cv2.putText(canvas, name[:30], (width - right + 35, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        drawn += 1
    return _write_png(canvas, path)


def plot_states(evaluation: Evaluation, path: str | Path, *, width: int = 900) -> Path:
    """Per-class timelines of one clip: the truth, the raw states and the temporal stage's, as PNG.

    Each class gets three strips (truth, raw, smoothed); a filled cell is "present". Read at a
    glance: a smoothed strip that matches the truth strip is a stage that tells the truth.
    """
    import cv2

    if not evaluation.timeline:
        raise ValueError("this evaluation has no clips, so no state timeline to plot")
    truth = evaluation.timeline["truth"]
    frames, n_classes = truth.shape
    left, top, strip, gap = 170, 50, 12, 14
    height = top + n_classes * (3 * strip + gap) + 40
    canvas = np.full((height, width, 3), 255, np.uint8)
    scale = (width - left - 20) / max(frames, 1)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(canvas, f"states on the first clip, all classes prompted: {evaluation.timeline_method} ({evaluation.dataset})",
                (10, 25), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    rows = (("truth", (60, 60, 60)), (RAW, (40, 40, 220)), (SMOOTHED, (200, 120, 30)))  # BGR
    for c, label in enumerate(evaluation.classes):
        y0 = top + c * (3 * strip + gap)
        for r, (kind, colour) in enumerate(rows):
            y = y0 + r * strip
            cv2.putText(canvas, f"{label} {kind}", (10, y + strip - 2), font, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
            cv2.rectangle(canvas, (left, y), (width - 20, y + strip - 2), (235, 235, 235), -1)
            for start, end, on in runs(evaluation.timeline[kind][:, c]):
                if on:
                    cv2.rectangle(canvas, (left + int(start * scale), y), (left + max(int(end * scale) - 1, int(start * scale)), y + strip - 2), colour, -1)
    cv2.putText(canvas, f"frame 0 .. {frames}", (left, height - 15), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return _write_png(canvas, path)


def _write_png(canvas: np.ndarray, path: str | Path) -> Path:
    import cv2

    from streamsink.errors import WriterError

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), canvas):
        raise WriterError(f"cannot write {path}")
    return path
