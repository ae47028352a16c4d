"""The detector as the engine's stages: batches of frames in, one `Detections` per frame out.

A batch goes through three steps that the engine runs in separate threads:
prepare (frames to pixels on the device), infer (forward pass and scoring; on
CUDA only queued) and finish (boxes to numpy). `DetectStages` is one prompt;
`RoutedDetect` serves frames of several sources, each with its own prompt.
Batching lives here too: files in fixed batches, live frames by latency.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from numbers import Real
from typing import Any

from streamsink.channels import END, Failure
from streamsink.types import Detections, Frame


def batches(frames: Iterable[Frame], size: int) -> Iterator[list[Frame]]:
    """Consecutive batches of `size` frames (the last may be shorter); every frame, in order."""
    batch: list[Frame] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def live_batches(frames: Any, size: int, max_latency: float,
                 ready: Callable[[], bool] | None = None) -> Iterator[list[Frame]]:
    """Batches of live frames: one leaves when full or when its first frame is `max_latency` s old.

    Frames already waiting are taken at once, so a busy detector gets
    bigger batches and an idle one answers every frame by itself.
    ready(): called before each batch is gathered, waits until the run can
    take one more (False: stopped); so frames are taken as late as possible.
    """
    while ready is None or ready():
        first = frames.get()
        if first is END:
            return
        if isinstance(first, Failure):
            raise first.error
        batch = [first]
        born = first.captured_at or time.monotonic()
        while len(batch) < size:
            try:
                item = frames.get(timeout=max(0.0, born + max_latency - time.monotonic()))
            except queue.Empty:
                break
            if item is END:
                yield batch
                return
            if isinstance(item, Failure):
                yield batch
                raise item.error
            batch.append(item)
        yield batch


# A detector with more parameters than this runs its forward pass on every core: its
# compute dwarfs decoding and encoding (Swin-T Grounding DINO on 2 cores: 2x slower with
# one core left free), while a small one gains from leaving them a core (x1.77 vs x1.58).
HEAVY_PARAMETERS = 20_000_000


def is_heavy(detector: Any) -> bool:
    """Whether a detector's forward pass wants every CPU core: a big model (see HEAVY_PARAMETERS), or any
    model on OpenVINO, whose thread pool shares the cores with decoding and encoding without torch's
    spinning (bench-tiny end to end, 2-core VM: x2.26 with 2 threads against x2.11 with 1, RESULTS.md 8)."""
    if getattr(detector, "backend", None) == "openvino":
        return True
    model = getattr(detector, "model", None)
    parameters = getattr(model, "parameters", None)
    return parameters is not None and sum(p.numel() for p in parameters()) > HEAVY_PARAMETERS


class DetectStages:
    """A `SinkDetector` and one prompt, split into the engine's stages.

    prepare: frames to pixels on the device; infer: forward pass and scoring;
    finish: boxes to numpy. Calling the object runs the three in a row, which
    is what the pipelined engine must equal. `threshold` is one score for all
    classes or one per class (the detector keeps the lowest; finish the rest).
    """

    def __init__(self, detector: Any, classes: tuple[str, ...], threshold: float | Sequence[float]) -> None:
        self.detector = detector
        self.classes = classes
        floors = (threshold,) * len(classes) if isinstance(threshold, Real) else tuple(threshold)
        if len(floors) != len(classes):
            raise ValueError(f"{len(floors)} thresholds for {len(classes)} classes {classes}")
        self.floors = tuple(float(floor) for floor in floors)
        self.threshold = min(self.floors, default=0.0)
        self._per_class = any(floor != self.threshold for floor in self.floors)
        self._staged = all(hasattr(detector, name) for name in ("prepare", "infer", "finish"))

    @property
    def device(self) -> Any:
        return getattr(self.detector, "device", None)

    @property
    def heavy(self) -> bool:
        """Whether the model is big enough to want every CPU core (see HEAVY_PARAMETERS)."""
        return is_heavy(self.detector)

    def prepare(self, batch: list[Frame]) -> Any:
        images = [frame.image for frame in batch]
        return self.detector.prepare(images) if self._staged else images

    def infer(self, prepared: Any) -> Any:
        if self._staged:
            return self.detector.infer(prepared, self.classes, threshold=self.threshold)
        return self.detector.detect(prepared, self.classes, threshold=self.threshold)

    def finish(self, pending: Any) -> list[Detections]:
        found = self.detector.finish(pending) if self._staged else pending
        return [d.at_least(self.floors) for d in found] if self._per_class else found

    def __call__(self, batch: list[Frame]) -> list[Detections]:
        return self.finish(self.infer(self.prepare(batch)))


def make_detect(detector: Any, classes: tuple[str, ...], threshold: float | Sequence[float]) -> DetectStages:
    """Adapt a `SinkDetector` (arrays in) to the engine's batches of `Frame`s, stage by stage."""
    return DetectStages(detector, classes, threshold)


class LivePrompts:
    """Each source's classes, changeable while the run goes on (the web page's prompt box).

    The detect stages read a source's classes when they prepare a batch, so a
    change takes effect from the next batch on; frames already in flight keep
    the classes they were detected with (their `Detections.labels` say which),
    which is how the temporal stage knows to restart. `check(classes)`, when
    given, refuses a prompt the detector cannot take (too long) before it is
    applied, so a bad request never reaches the forward pass (settable: the CLI
    opens the page before the model has loaded).
    """

    def __init__(self, prompts: Mapping[str, tuple[str, ...]], check: Any = None) -> None:
        self._prompts = dict(prompts)
        self.check = check
        self._lock = threading.Lock()

    def __getitem__(self, name: str) -> tuple[str, ...]:
        return self._prompts[name]

    def items(self) -> list[tuple[str, tuple[str, ...]]]:
        with self._lock:
            return list(self._prompts.items())

    def change(self, name: str, prompt: str | Sequence[str]) -> tuple[str, ...]:
        """Give source `name` a new prompt; its classes. KeyError for an unknown source, PromptError for a bad prompt."""
        from streamsink.detector.prompt import parse_classes

        if name not in self._prompts:
            raise KeyError(name)
        classes = parse_classes(prompt)
        if self.check is not None:
            self.check(classes)
        with self._lock:
            self._prompts[name] = classes
        return classes


class RoutedDetect:
    """The engine's detect stages for frames of several sources, each source with its own prompt.

    A batch may hold frames of any sources; it is split by prompt and each
    part is its own forward pass (a pass takes one prompt), so sources that
    share a prompt share passes. Results come back in the batch's order.
    `prompts` may be `LivePrompts`: a changed prompt is read at the next batch.
    `threshold` is a score, or a function of a prompt's classes giving one per class.
    """

    def __init__(self, detector: Any, prompts: Mapping[str, tuple[str, ...]] | LivePrompts,
                 threshold: float | Callable[[tuple[str, ...]], Sequence[float]]) -> None:
        self._prompts = prompts if isinstance(prompts, LivePrompts) else dict(prompts)
        self._detector, self._threshold = detector, threshold
        self._stages: dict[tuple[str, ...], DetectStages] = {}
        first = self._stages_for(next(iter(self._prompts.items()))[1])
        self.device = first.device
        self.heavy = first.heavy

    def _stages_for(self, classes: tuple[str, ...]) -> DetectStages:
        stages = self._stages.get(classes)
        if stages is None:
            floors = self._threshold(classes) if callable(self._threshold) else self._threshold
            stages = self._stages[classes] = DetectStages(self._detector, classes, floors)
        return stages

    def _split(self, batch: list[Frame]) -> dict[tuple[str, ...], list[int]]:
        groups: dict[tuple[str, ...], list[int]] = {}
        for i, frame in enumerate(batch):
            groups.setdefault(self._prompts[frame.source], []).append(i)
        return groups

    def prepare(self, batch: list[Frame]) -> tuple[int, list]:
        parts = []
        for classes, indices in self._split(batch).items():
            stages = self._stages_for(classes)
            parts.append((stages, indices, stages.prepare([batch[i] for i in indices])))
        return len(batch), parts

    def infer(self, prepared: tuple[int, list]) -> tuple[int, list]:
        count, parts = prepared
        return count, [(stages, indices, stages.infer(item)) for stages, indices, item in parts]

    def finish(self, pending: tuple[int, list]) -> list[Detections]:
        count, parts = pending
        results: list[Detections | None] = [None] * count
        for stages, indices, item in parts:
            for i, detections in zip(indices, stages.finish(item)):
                results[i] = detections
        return results  # type: ignore[return-value]

    def __call__(self, batch: list[Frame]) -> list[Detections]:
        return self.finish(self.infer(self.prepare(batch)))
