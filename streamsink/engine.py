"""The engine: frames in, detections and per-class states out, stages overlapped.

Stages run at once, each in its own thread, joined by bounded queues so
memory stays flat and a slow stage holds the others back (back-pressure)
instead of piling up frames:

    source (decodes ahead in its own thread)
      -> batch + prepare (group frames, resize/normalise, copy to the device)
      -> infer (forward pass and scoring; on CUDA only queued, by event)
      -> finish (wait, boxes to numpy, smoothing, optional drawing)
      -> the caller (encode, JSONL, window ...)

torch, OpenCV and PyAV release the GIL in their heavy work, so decoding,
preprocessing of the next batch, the forward pass and encoding of the last
one overlap. Files keep every frame, in order. Live sources drop their oldest
frames in the source (never here; `Frame.dropped` reports it) and are batched
dynamically: a batch leaves when full or when its first frame has waited
`max_latency` seconds. Every stage is a plain function of the stage before,
so the results are the same as running them one after another.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from streamsink.channels import DONE, Channel, Failure, Stopped
from streamsink.detector.prompt import parse_classes
from streamsink.smoother import ABSENT, PRESENT
from streamsink.types import Detections, Frame

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "iSEE-Laboratory/llmdet_tiny"


# Latency budget of a live batch: it leaves when full or when its first frame is this old.
# 0 takes only the frames already waiting: a detector that keeps up answers each frame
# alone, a busy one gets the frames that piled up meanwhile (benchmarks/RESULTS.md, 4).
DEFAULT_MAX_LATENCY = 0.0


@dataclass(frozen=True, slots=True)
class Result:
    """Everything known about one frame once it has passed the detector.

    raw: the detector's output for this frame.
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


def check_settings(*, threshold: float, batch_size: int, max_latency: float = DEFAULT_MAX_LATENCY) -> None:
    """Reject settings that would fail late, after a model has been loaded."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    if not max_latency >= 0.0:
        raise ValueError(f"max latency must be >= 0 seconds, got {max_latency}")


def raw_states(detections: Detections) -> dict[str, str]:
    """States without smoothing: a class is present exactly when it has a box in this frame."""
    found = set(detections.class_id.tolist())
    return {label: PRESENT if i in found else ABSENT for i, label in enumerate(detections.labels)}


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


# A detector with more parameters than this runs its forward pass on every core: its
# compute dwarfs decoding and encoding (Swin-T Grounding DINO on 2 cores: 2x slower with
# one core left free), while a small one gains from leaving them a core (x1.77 vs x1.58).
HEAVY_PARAMETERS = 20_000_000


def default_threads(cpus: int | None = None, *, heavy: bool = False) -> int:
    """torch's intra-op threads for a CPU run.

    A small model leaves one core to decoding, drawing and encoding, which
    keep about a core busy; a forward pass that also wants that core makes
    every stage wait on the others. A heavy model takes every core.
    """
    cpus = cpus or os.cpu_count() or 1
    return cpus if heavy else max(1, cpus - 1)


def live_batches(frames: Channel, size: int, max_latency: float) -> Iterator[list[Frame]]:
    """Batches of live frames: one leaves when full or when its first frame is `max_latency` s old.

    Frames already waiting are taken at once, so a busy detector gets
    bigger batches and an idle one answers every frame by itself.
    """
    for first in frames:
        batch = [first]
        born = first.captured_at or time.monotonic()
        while len(batch) < size:
            try:
                item = frames.get(timeout=max(0.0, born + max_latency - time.monotonic()))
            except queue.Empty:
                break
            if item is DONE:
                yield batch
                return
            if isinstance(item, Failure):
                yield batch
                raise item.error
            batch.append(item)
        yield batch


class DetectStages:
    """A `SinkDetector` and one prompt, split into the engine's stages.

    prepare: frames to pixels on the device; infer: forward pass and scoring;
    finish: boxes to numpy. Calling the object runs the three in a row, which
    is what the pipelined engine must equal.
    """

    def __init__(self, detector: Any, classes: tuple[str, ...], threshold: float) -> None:
        self.detector = detector
        self.classes = classes
        self.threshold = threshold
        self._staged = all(hasattr(detector, name) for name in ("prepare", "infer", "finish"))

    @property
    def device(self) -> Any:
        return getattr(self.detector, "device", None)

    @property
    def heavy(self) -> bool:
        """Whether the model is big enough to want every CPU core (see HEAVY_PARAMETERS)."""
        model = getattr(self.detector, "model", None)
        parameters = getattr(model, "parameters", None)
        return parameters is not None and sum(p.numel() for p in parameters()) > HEAVY_PARAMETERS

    def prepare(self, batch: list[Frame]) -> Any:
        images = [frame.image for frame in batch]
        return self.detector.prepare(images) if self._staged else images

    def infer(self, prepared: Any) -> Any:
        if self._staged:
            return self.detector.infer(prepared, self.classes, threshold=self.threshold)
        return self.detector.detect(prepared, self.classes, threshold=self.threshold)

    def finish(self, pending: Any) -> list[Detections]:
        return self.detector.finish(pending) if self._staged else pending

    def __call__(self, batch: list[Frame]) -> list[Detections]:
        return self.finish(self.infer(self.prepare(batch)))


def make_detect(detector: Any, classes: tuple[str, ...], threshold: float) -> DetectStages:
    """Adapt a `SinkDetector` (arrays in) to the engine's batches of `Frame`s, stage by stage."""
    return DetectStages(detector, classes, threshold)


def _identity(value: Any) -> Any:
    return value


def iterate(
    frames: Iterable[Frame],
    detect: Callable[[list[Frame]], list[Detections]],
    *,
    batch_size: int = 4,
    smoother: Any | None = None,
    queue_size: int = 4,
    live: bool | None = None,
    max_latency: float = DEFAULT_MAX_LATENCY,
    render: Callable[[Result], np.ndarray] | None = None,
    threads: int | None = None,
    in_flight: int = 2,
    smoother_for: Callable[[Frame], Any] | None = None,
) -> Iterator[Result]:
    """Run `detect` on batches of `frames` in pipelined stages and yield one `Result` per frame, in order.

    detect: maps a batch of frames to one `Detections` per frame; when it
        also has `prepare`, `infer` and `finish` (see `DetectStages`) these
        run in separate stages, `in_flight` batches deep between infer and finish.
    smoother: anything with `update(Detections) -> Detections` and `states`.
    smoother_for: instead of `smoother`, the smoother of each frame (one per
        source when frames of several sources are mixed, see multiplex).
    live: batch dynamically (full or `max_latency` s old); default: `frames.is_live`.
    render: `render(result) -> image`, run in the finish stage so drawing
        overlaps the caller's encoding; its image is `Result.image`.
    threads: torch's intra-op threads while a CPU detector runs (None: leave
        the cores of decoding and encoding free, see `default_threads`; 0:
        leave torch's setting alone). Restored when the run ends.

    Stopping the iteration early (break, `close()`, an exception in the
    caller) stops every stage and closes `frames` if it can be closed.
    """
    check_settings(threshold=0.0, batch_size=batch_size, max_latency=max_latency)
    if live is None:
        live = bool(getattr(frames, "is_live", False))
    staged = all(hasattr(detect, name) for name in ("prepare", "infer", "finish"))
    prepare = detect.prepare if staged else _identity
    infer = detect.infer if staged else detect
    finish = detect.finish if staged else _identity

    stop = threading.Event()
    incoming = Channel(batch_size, stop)
    prepared = Channel(1 if live else 2, stop)
    pending = Channel(in_flight, stop)
    results = Channel(queue_size, stop)

    def stage(name: str, body: Callable[[], None], out: Channel) -> threading.Thread:
        def work() -> None:
            try:
                body()
            except Stopped:
                return
            except BaseException as error:  # handed downstream, raised in the caller's thread
                out.put(Failure(error))
            out.put(DONE)

        return threading.Thread(target=work, name=f"streamsink-{name}", daemon=True)

    def feed() -> None:
        for frame in frames:
            if not incoming.put(frame):
                return

    def batch_and_prepare() -> None:
        groups = live_batches(incoming, batch_size, max_latency) if live else batches(frames, batch_size)
        for batch in groups:
            if stop.is_set() or not prepared.put((batch, prepare(batch))):
                return

    def run_infer() -> None:
        for batch, item in prepared:
            if not pending.put((batch, infer(item))):
                return

    def finish_and_smooth() -> None:
        for batch, item in pending:
            found = finish(item)
            if len(found) != len(batch):
                raise RuntimeError(f"detector returned {len(found)} results for {len(batch)} frames")
            for frame, raw in zip(batch, found):
                frame_smoother = smoother_for(frame) if smoother_for is not None else smoother
                if frame_smoother is not None:
                    shown = frame_smoother.update(raw)
                    states = dict(frame_smoother.states)
                else:
                    shown, states = raw, raw_states(raw)
                result = Result(frame, raw, shown, states)
                if render is not None:
                    result = Result(frame, raw, shown, states, render(result))
                if not results.put(result):
                    return

    workers = [
        stage("batch", batch_and_prepare, prepared),
        stage("infer", run_infer, pending),
        stage("finish", finish_and_smooth, results),
    ]
    if live:
        workers.insert(0, stage("feed", feed, incoming))
    previous_threads = _set_threads(detect, threads)
    try:
        for worker in workers:
            worker.start()
        yield from results
    finally:
        stop.set()
        close = getattr(frames, "close", None)
        if live and close is not None and not hasattr(frames, "gi_frame"):
            close()  # wakes a reader blocked on a live source; sources close from any thread
        for worker in workers:
            worker.join(timeout=30)
        if close is not None:
            close()
        if previous_threads is not None:
            import torch

            torch.set_num_threads(previous_threads)


def _set_threads(detect: Any, threads: int | None) -> int | None:
    """Set torch's thread count for a CPU detector; returns the setting to restore, or None."""
    device = getattr(detect, "device", None)
    if threads == 0 or device is None or getattr(device, "type", str(device)) != "cpu":
        return None
    if threads is not None and threads < 0:
        raise ValueError(f"threads must be >= 0, got {threads}")
    import torch

    previous = torch.get_num_threads()
    wanted = threads or default_threads(heavy=bool(getattr(detect, "heavy", False)))
    if wanted != previous:
        torch.set_num_threads(wanted)
        logger.debug("torch threads %d -> %d for this run", previous, wanted)
    return previous


def run(
    source: str | int | Sequence[str | int],
    prompt: str | Sequence[str] | Mapping[str | int, str | Sequence[str]],
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
    max_latency: float = DEFAULT_MAX_LATENCY,
    threads: int | None = None,
) -> Iterator[Result]:
    """Detect `prompt`'s classes in every frame of `source`, lazily, one `Result` per frame.

    `source` is anything `open_source` reads: a file, "camera0", a URL, a folder
    or glob. Pass an already loaded `detector` (a `SinkDetector`) to share one
    model across runs; otherwise `model` is loaded with `sinks` and `sink_init`.
    Live sources are batched up to `batch_size` frames, waiting at most
    `max_latency` seconds for a batch to fill; `threads` is `iterate`'s.
    Settings and the prompt are checked now; the source and the model are
    opened when iteration starts and released when it ends or stops early.

    Several sources (a list or tuple) share one detector and its batches;
    `prompt` is then one prompt for all or a mapping from each source (as
    given, or its name) to its own. Results of all sources come interleaved,
    each source's in order, named by `result.frame.source`; every source is
    smoothed on its own. A source that fails is logged (a warning of
    logger "streamsink.multiplex") and left out, the others go on; to watch
    each source's state while running, build a `streamsink.Multiplexer` and
    pass it to `streamsink.engine.iterate` as the CLI does.
    """
    check_settings(threshold=threshold, batch_size=batch_size, max_latency=max_latency)
    if not isinstance(source, (list, tuple)):
        from streamsink.sources import expand_inputs

        # A folder or glob of videos is one source per video; a prompt per source needs the multi-source path.
        if isinstance(prompt, Mapping) or expand_inputs([source]) != [source]:
            source = [source]
    if isinstance(source, (list, tuple)):
        from streamsink.multiplex import run_many

        return run_many(source, prompt, dict(
            model=model, sinks=sinks, sink_init=sink_init, device=device, threshold=threshold,
            batch_size=batch_size, smooth=smooth, smoother_options=smoother_options, detector=detector,
            max_latency=max_latency, threads=threads))
    classes = parse_classes(prompt)
    return _run(source, classes, model, sinks, sink_init, device, threshold, batch_size, smooth,
                smoother_options or {}, detector, max_latency, threads)


def _run(source, classes, model, sinks, sink_init, device, threshold, batch_size, smooth, smoother_options,
         detector, max_latency, threads):
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
            batch_size=batch_size,
            smoother=smoother,
            max_latency=max_latency,
            threads=threads,
        )
