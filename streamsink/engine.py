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
one overlap. Files keep every frame, in order. Live frames are kept fresh:
the engine's inbox holds only the newest `buffer` frames of each live source
(`NewestFrames`; a frame pushed out there is dropped, and `Frame.dropped`
counts it with the source's own drops), and a batch is gathered only when
fewer than `in_flight` batches are between the inbox and the caller, so
frames wait in the inbox, never in a queue behind the detector or behind a
slow caller (drawing, encoding). A live batch takes the frames already
waiting (up to `batch_size`, or until its first frame is `max_latency` s
old); on a CPU it is one frame, with one batch out, which keeps latency at
about two forward passes (benchmarks/RESULTS.md, 10). Every stage is a plain
function of the stage before, so the results are the same as running them
one after another.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from streamsink.channels import END, Channel, Failure, NewestFrames, Stopped
from streamsink.settings import DEFAULT_MAX_LATENCY, check_int, check_max_latency
from streamsink.stages import batches, live_batches, make_detect
from streamsink.types import Detections, Frame, Result, raw_states

__all__ = ["Result", "default_threads", "iterate", "make_detect", "raw_states"]

logger = logging.getLogger(__name__)


def default_threads(cpus: int | None = None, *, heavy: bool = False) -> int:
    """torch's intra-op threads for a CPU run.

    A small model leaves one core to decoding, drawing and encoding, which
    keep about a core busy; a forward pass that also wants that core makes
    every stage wait on the others. A heavy model takes every core.
    """
    cpus = cpus or os.cpu_count() or 1
    return cpus if heavy else max(1, cpus - 1)


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
    smoother_for: Callable[[Frame, Detections], Any] | None = None,
) -> Iterator[Result]:
    """Run `detect` on batches of `frames` in pipelined stages and yield one `Result` per frame, in order.

    detect: maps a batch of frames to one `Detections` per frame; when it
        also has `prepare`, `infer` and `finish` (see `DetectStages`) these
        run in separate stages, `in_flight` batches deep between infer and finish
        (live: at most `in_flight` batches between the inbox and the caller).
    smoother: anything with `update(Detections) -> Detections` and `states`.
    smoother_for: instead of `smoother`, `smoother_for(frame, raw)` is the smoother of each
        frame (one per source when frames of several sources are mixed, see multiplex; a new
        one when the source's prompt changed, which `raw.labels` shows).
    live: batch dynamically (full or `max_latency` s old); default: `frames.is_live`.
    render: `render(result) -> image`, run in the finish stage so drawing
        overlaps the caller's encoding; its image is `Result.image`.
    threads: torch's intra-op threads while a CPU detector runs (None: leave
        the cores of decoding and encoding free, see `default_threads`; 0:
        leave torch's setting alone). Restored when the run ends.

    Stopping the iteration early (break, `close()`, an exception in the
    caller) stops every stage and closes `frames` if it can be closed.
    """
    check_int("batch_size", batch_size, 1)
    check_max_latency(max_latency)
    if live is None:
        live = bool(getattr(frames, "is_live", False))
    staged = all(hasattr(detect, name) for name in ("prepare", "infer", "finish"))
    prepare = detect.prepare if staged else _identity
    infer = detect.infer if staged else detect
    finish = detect.finish if staged else _identity

    stop = threading.Event()
    # Live: the inbox keeps the newest frames of each live source; `credits` are the batches that may be
    # between it and the caller, one taken when a batch is gathered, given back when the caller has
    # had its last frame.
    if live:
        incoming = NewestFrames(stop, getattr(frames, "is_live_frame", None), batch_size,
                                keep=getattr(frames, "buffer", 1))
    else:
        incoming = Channel(batch_size, stop)
    # On a CPU the forward pass is the frame: a batch of n makes its first frame wait n passes and buys
    # little speed, and a second batch out only waits behind the first; so one frame, one batch out.
    on_cpu = _device_type(detect) == "cpu"
    live_batch = 1 if live and on_cpu else batch_size
    credits = threading.Semaphore(1 if on_cpu else in_flight) if live else None
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
            out.put(END)

        return threading.Thread(target=work, name=f"streamsink-{name}", daemon=True)

    def feed() -> None:
        for frame in frames:
            if not incoming.put(frame):
                return

    def may_gather() -> bool:
        while not stop.is_set():
            if credits.acquire(timeout=0.05):
                return True
        return False

    def batch_and_prepare() -> None:
        groups = live_batches(incoming, live_batch, max_latency, may_gather) if live else batches(frames, batch_size)
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
            for position, (frame, raw) in enumerate(zip(batch, found)):
                frame_smoother = smoother_for(frame, raw) if smoother_for is not None else smoother
                if frame_smoother is not None:
                    shown = frame_smoother.update(raw)
                    states = dict(frame_smoother.states)
                else:
                    shown, states = raw, raw_states(raw)
                result = Result(frame, raw, shown, states)
                if render is not None:
                    result = Result(frame, raw, shown, states, render(result))
                if not results.put((result, position == len(batch) - 1)):
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
        for result, last_of_batch in results:
            yield result
            if last_of_batch and credits is not None:
                credits.release()  # the caller is done with this batch: the next may be gathered
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


def _device_type(detect: Any) -> str | None:
    """"cpu", "cuda" ... of a detector's device; None when it does not say."""
    device = getattr(detect, "device", None)
    return None if device is None else getattr(device, "type", str(device))


def _set_threads(detect: Any, threads: int | None) -> int | None:
    """Set torch's thread count for a CPU detector; returns the setting to restore, or None."""
    if threads == 0 or _device_type(detect) != "cpu":
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
