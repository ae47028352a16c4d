"""The engine: frames in, detections and per-class states out, stages overlapped.

Three stages run at once, joined by bounded queues so memory stays flat and a
slow stage holds the others back instead of piling up frames:

    source (decodes ahead in its own thread) -> detect (batches, forward pass,
    smoothing; this module's worker thread) -> the caller (render, encode, ...)

torch and PyAV both release the GIL in their heavy work, so the forward pass
of one batch overlaps the decoding of the next and the caller's encoding of the
previous one. Files keep every frame in order; live sources drop oldest frames
in the source, never here, and are sent one frame at a time so a batch never
waits for frames that have not been captured yet.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from streamsink.detector.prompt import parse_classes
from streamsink.types import Detections, Frame

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "iSEE-Laboratory/llmdet_tiny"

ABSENT = "absent"
PRESENT = "present"


@dataclass(frozen=True, slots=True)
class Result:
    """Everything known about one frame once it has passed the detector.

    raw: the detector's output for this frame.
    detections: what should be shown: smoothed, or `raw` when smoothing is off.
    states: every prompted class mapped to "present" or "absent".
    """

    frame: Frame
    raw: Detections
    detections: Detections
    states: dict[str, str]

    @property
    def index(self) -> int:
        return self.frame.index

    @property
    def pts(self) -> float:
        return self.frame.pts


def check_settings(*, threshold: float, batch_size: int) -> None:
    """Reject settings that would fail late, after a model has been loaded."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")


def raw_states(detections: Detections) -> dict[str, str]:
    """States without smoothing: a class is present exactly when it has a box in this frame."""
    found = set(detections.class_id.tolist())
    return {label: PRESENT if i in found else ABSENT for i, label in enumerate(detections.labels)}


def batches(frames: Iterable[Frame], size: int) -> Iterator[list[Frame]]:
    batch: list[Frame] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


_DONE = object()


def iterate(
    frames: Iterable[Frame],
    detect: Callable[[list[Frame]], list[Detections]],
    *,
    batch_size: int = 4,
    smoother: Any | None = None,
    queue_size: int = 4,
) -> Iterator[Result]:
    """Run `detect` on batches of `frames` in a worker thread and yield one `Result` per frame, in order.

    `detect` maps a batch of frames to one `Detections` per frame. `smoother`
    is anything with `update(Detections) -> Detections` and `states`. Stopping
    the iteration early (break, `close()`, an exception in the caller) stops the
    worker and closes `frames` if it can be closed.
    """
    results: queue.Queue = queue.Queue(maxsize=queue_size)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                results.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for batch in batches(frames, batch_size):
                if stop.is_set():
                    return
                found = detect(batch)
                if len(found) != len(batch):
                    raise RuntimeError(f"detector returned {len(found)} results for {len(batch)} frames")
                for frame, raw in zip(batch, found):
                    if smoother is not None:
                        shown = smoother.update(raw)
                        states = dict(smoother.states)
                    else:
                        shown, states = raw, raw_states(raw)
                    if not put(Result(frame, raw, shown, states)):
                        return
        except BaseException as error:  # handed to the caller's thread, raised there
            put(error)
        finally:
            put(_DONE)

    worker = threading.Thread(target=work, name="streamsink-detect", daemon=True)
    worker.start()
    try:
        while True:
            item = results.get()
            if item is _DONE:
                break
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join(timeout=30)
        close = getattr(frames, "close", None)
        if close is not None:
            close()


def run(
    source: str | int,
    prompt: str | Sequence[str],
    *,
    model: str = DEFAULT_MODEL,
    sinks: int = 16,
    sink_init: str = "mean",
    device: str = "auto",
    threshold: float = 0.3,
    batch_size: int = 4,
    smooth: bool = True,
    smoother_options: dict[str, Any] | None = None,
    detector: Any | None = None,
) -> Iterator[Result]:
    """Detect `prompt`'s classes in every frame of `source`, lazily, one `Result` per frame.

    `source` is anything `open_source` reads: a file, "camera0", a URL, a folder
    or glob. Pass an already loaded `detector` (a `SinkDetector`) to share one
    model across runs; otherwise `model` is loaded with `sinks` and `sink_init`.
    Settings and the prompt are checked now; the source and the model are
    opened when iteration starts and released when it ends or stops early.
    """
    classes = parse_classes(prompt)
    check_settings(threshold=threshold, batch_size=batch_size)
    return _run(source, classes, model, sinks, sink_init, device, threshold, batch_size, smooth, smoother_options or {}, detector)


def _run(source, classes, model, sinks, sink_init, device, threshold, batch_size, smooth, smoother_options, detector):
    from streamsink.sources import open_source

    with open_source(source) as frames:
        if detector is None:
            from streamsink.detector import SinkDetector

            detector = SinkDetector.from_pretrained(model, sinks=sinks, sink_init=sink_init, device=device)
        smoother = None
        if smooth:
            from streamsink.smoother import TemporalSmoother

            smoother = TemporalSmoother(classes, **smoother_options)
        yield from iterate(
            frames,
            make_detect(detector, classes, threshold),
            batch_size=1 if frames.is_live else batch_size,
            smoother=smoother,
        )


def make_detect(detector: Any, classes: tuple[str, ...], threshold: float) -> Callable[[list[Frame]], list[Detections]]:
    """Adapt `SinkDetector.detect` (arrays in) to the engine's batches of `Frame`s."""

    def detect(batch: list[Frame]) -> list[Detections]:
        return detector.detect([frame.image for frame in batch], classes, threshold=threshold)

    return detect
