"""`streamsink eval`: how often a detector names what is not there, method against method.

Every class is prompted on its own on every image (the attention-sink paper's
protocol); `streamsink.metrics` turns the detections into AP50, FPR_bg and AP50
at fixed FPR_bg. Methods share one loaded model: the stock prompt, sinks of
each kind and count, and the decoy-class baseline (a generic extra class such
as "object" whose boxes are dropped, the trick YOLO-World users apply). On
clips, each method is also scored after the temporal smoother, against the same
method's raw detections at the same threshold.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from streamsink.errors import SourceError, SourceNotFoundError
from streamsink.metrics import FPR_TARGETS, AbstentionReport, PairResult
from streamsink.types import Detections

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


def _class_only(detections: Detections, label: str) -> Detections:
    """Keep the prompted class's boxes (drop a decoy's) and name only that class."""
    keep = detections.class_id == 0
    return Detections(detections.xyxy[keep], detections.scores[keep], np.zeros(int(keep.sum()), np.int64), (label,))


def detect_per_class(detector, method: Method, samples: Sequence[Sample], classes: Sequence[str], *, threshold: float,
                     batch_size: int) -> dict[str, list[Detections]]:
    """For each class prompted alone (plus the method's decoy), its detections on every sample, in order."""
    variant = detector.with_sinks(method.sinks, method.sink_init)
    found: dict[str, list[Detections]] = {}
    for label in classes:
        prompt = [label, method.decoy] if method.decoy else [label]
        per_sample: list[Detections] = []
        for start in range(0, len(samples), batch_size):
            batch = [s.image for s in samples[start : start + batch_size]]
            per_sample += [_class_only(d, label) for d in variant.detect(batch, prompt, threshold=threshold)]
        found[label] = per_sample
    return found


def pairs(samples: Sequence[Sample], found: dict[str, list[Detections]]) -> list[PairResult]:
    return [
        PairResult(sample.id, label, d.xyxy.astype(np.float64), d.scores.astype(np.float64), sample.truth.get(label, NO_BOXES))
        for label, detections in found.items()
        for sample, d in zip(samples, detections)
    ]


def smooth(found: dict[str, list[Detections]], threshold: float, smoother_options: dict | None = None) -> dict[str, list[Detections]]:
    """Each class's per-frame detections above `threshold`, passed through its own temporal smoother."""
    from streamsink.smoother import TemporalSmoother

    out = {}
    for label, frames in found.items():
        smoother = TemporalSmoother((label,), **(smoother_options or {}))
        out[label] = [smoother.update(d[d.scores >= threshold]) for d in frames]
    return out


def above(found: dict[str, list[Detections]], threshold: float) -> dict[str, list[Detections]]:
    return {label: [d[d.scores >= threshold] for d in frames] for label, frames in found.items()}


@dataclass
class Evaluation:
    """Figures per method name, and the AP50-vs-FPR_bg curve behind each."""

    dataset: str
    threshold: float
    figures: dict[str, dict[str, float]] = field(default_factory=dict)
    curves: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    def add(self, name: str, report: AbstentionReport, *, curve_points: int = 64) -> None:
        self.figures[name] = report.summary()
        points = report.operating_points()
        if len(points) > curve_points:
            keep = np.unique(np.linspace(0, len(points) - 1, curve_points).round().astype(int))
            points = [points[i] for i in keep]
        self.curves[name] = [(fpr, report.ap50(threshold)) for fpr, threshold in points]

    def to_json(self) -> dict:
        clean = {name: {k: (None if isinstance(v, float) and math.isnan(v) else round(v, 6)) for k, v in f.items()} for name, f in self.figures.items()}
        return {"dataset": self.dataset, "threshold": self.threshold, "methods": clean}


def evaluate(detector, dataset: Dataset, methods: Sequence[Method], *, threshold: float = 0.3, min_score: float = 0.01,
             batch_size: int = 8, smoother_options: dict | None = None,
             progress: Callable[[str], None] | None = None) -> Evaluation:
    """Score every method on `dataset`: images at every threshold >= `min_score`, clips at `threshold` raw and smoothed."""
    result = Evaluation(dataset.name, threshold)
    for method in methods:
        if progress:
            progress(method.name)
        if dataset.images:
            found = detect_per_class(detector, method, dataset.images, dataset.classes, threshold=min_score, batch_size=batch_size)
            result.add(method.name, AbstentionReport(pairs(dataset.images, found)))
        if dataset.clips:
            raw_pairs: list[PairResult] = []
            smoothed_pairs: list[PairResult] = []
            for clip in dataset.clips:
                found = detect_per_class(detector, method, clip, dataset.classes, threshold=threshold, batch_size=batch_size)
                raw_pairs += pairs(clip, above(found, threshold))
                smoothed_pairs += pairs(clip, smooth(found, threshold, smoother_options))
            result.add(f"{method.name}{CLIPS}", AbstentionReport(raw_pairs))
            result.add(f"{method.name}{SMOOTHED_CLIPS}", AbstentionReport(smoothed_pairs))
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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), canvas):
        from streamsink.errors import WriterError

        raise WriterError(f"cannot write {path}")
    return path
