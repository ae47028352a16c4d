"""Many sources, one detector: frames of every source share the same forward passes.

DeepStream's nvstreammux and Roboflow's InferencePipeline batch a list of
cameras into one inference; here each source is read by a thread of its own
into one bounded queue, so batches fill from whichever sources have frames and
a slow, stalled or dead source holds up nobody else. Every frame is tagged with
its source's name (`Frame.source`, unique in the run), and what belongs to a
source stays its own: its prompt, its smoother, its writers, its live drop
policy (kept in the source's own buffer) and its reconnects.

Files are opened a few at a time (`max_open_files`), so a folder of a thousand
videos does not hold a thousand decoders; live sources all run at once. A
source that cannot be opened, or fails midway, is marked failed with a
one-line reason and the run goes on with the others.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streamsink.channels import Channel, Stopped
from streamsink.engine import DetectStages
from streamsink.errors import one_line
from streamsink.sources import Source, describe_source, open_source, unique_names
from streamsink.types import Detections, Frame

logger = logging.getLogger(__name__)

WAITING, RUNNING, DONE, FAILED = "waiting", "running", "done", "failed"


@dataclass
class SourceState:
    """How one source of a multiplexed run is doing: for status lines, summaries and closing its writers.

    status: "waiting" (not opened yet), "running", "done" or "failed" (`error` says why).
    frames: frames handed to the detector so far; final once the status is done or failed.
    """

    name: str
    spec: str | int
    live: bool
    status: str = WAITING
    frames: int = 0
    error: str | None = None
    source: Source | None = None

    @property
    def finished(self) -> bool:
        return self.status in (DONE, FAILED)

    @property
    def dropped(self) -> int:
        return self.source.dropped if self.source is not None else 0

    @property
    def reconnects(self) -> int:
        return self.source.reconnects if self.source is not None else 0


_SOURCE_END = object()


class Multiplexer:
    """Frames of several sources as one stream, each tagged with its source's unique name.

    Iterate it once (the engine does); `states` tells how each source is
    doing meanwhile. Names are fixed before anything opens: the name
    `open_source` would give (file stem, "camera0", stream host and path ...),
    made unique in input order (clip, clip-2). `close()` (also on leaving the
    `with` or when the iteration stops early) stops every reader and closes
    every source.
    """

    def __init__(
        self,
        specs: Sequence[str | int],
        *,
        buffer: int = 2,
        retries: int = 5,
        timeout: float = 5.0,
        max_open_files: int = 4,
        opener: Callable[[str | int], Source] | None = None,
    ) -> None:
        if not specs:
            raise ValueError("no sources given")
        if max_open_files < 1:
            raise ValueError(f"max_open_files must be >= 1, got {max_open_files}")
        described = [describe_source(spec) for spec in specs]
        names = unique_names([name for name, _ in described])
        self.states: dict[str, SourceState] = {
            name: SourceState(name, spec, live) for name, spec, (_, live) in zip(names, specs, described)
        }
        self.is_live = any(state.live for state in self.states.values())
        self._open = opener or functools.partial(open_source, buffer=buffer, retries=retries, timeout=timeout)
        self._max_open_files = max_open_files
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._files_waiting = [state for state in self.states.values() if not state.live]
        # About one waiting frame per live source (older ones are dropped in the source's own buffer
        # while its reader waits here), two per open file so decoding runs ahead.
        live = len(self.states) - len(self._files_waiting)
        self._channel = Channel(live + 2 * min(max_open_files, len(self._files_waiting)), self._stop)
        self._threads: list[threading.Thread] = []
        self._iterated = False

    @property
    def names(self) -> list[str]:
        return list(self.states)

    def __iter__(self) -> Iterator[Frame]:
        if self._iterated:
            raise RuntimeError("a Multiplexer can be iterated only once")
        self._iterated = True
        return self._frames()

    def _frames(self) -> Iterator[Frame]:
        self._start()
        running = len(self._threads)
        try:
            while running:
                try:
                    item = self._channel.get()
                except Stopped:
                    return
                if item is _SOURCE_END:
                    running -= 1
                else:
                    yield item
        finally:
            self.close()

    def _start(self) -> None:
        if self._stop.is_set():
            return  # closed before iterating: open nothing
        live = [state for state in self.states.values() if state.live]
        for state in live:
            self._threads.append(threading.Thread(target=self._read_live, args=(state,), daemon=True,
                                                  name=f"streamsink-mux-{state.name}"))
        for i in range(min(self._max_open_files, len(self._files_waiting))):
            self._threads.append(threading.Thread(target=self._read_files, daemon=True, name=f"streamsink-mux-files{i}"))
        for thread in self._threads:
            thread.start()

    def _read_live(self, state: SourceState) -> None:
        try:
            self._read(state)
        finally:
            self._channel.put(_SOURCE_END)

    def _read_files(self) -> None:
        try:
            while not self._stop.is_set():
                with self._lock:
                    if not self._files_waiting:
                        return
                    state = self._files_waiting.pop(0)
                self._read(state)
        finally:
            self._channel.put(_SOURCE_END)

    def _read(self, state: SourceState) -> None:
        """Open one source and pass its frames on; a failure ends this source only."""
        try:
            source = self._open(state.spec)
        except Exception as error:
            self._fail(state, error)
            return
        with self._lock:
            if self._stop.is_set():
                source.close()
                return
            state.source = source
            state.status = RUNNING
        try:
            for frame in source:
                if frame.source != state.name:
                    frame = dataclasses.replace(frame, source=state.name)
                state.frames += 1
                if not self._channel.put(frame):
                    return
            state.status = DONE
        except Exception as error:
            self._fail(state, error)
        finally:
            source.close()

    def _fail(self, state: SourceState, error: BaseException) -> None:
        if self._stop.is_set():
            return  # closing the run ends readers with errors of their own; not the source's fault
        state.error = one_line(error)
        state.status = FAILED
        logger.warning("%s failed: %s", state.name, state.error)

    def close(self) -> None:
        """Stop every reader and close every source; safe from any thread, more than once."""
        self._stop.set()
        with self._lock:
            opened = [state.source for state in self.states.values() if state.source is not None]
        # Closing wakes a reader blocked on a camera or a stream; each close may wait for its reader
        # thread, so they run side by side and everything shares one deadline.
        closers = [threading.Thread(target=source.close, daemon=True) for source in opened]
        for closer in closers:
            closer.start()
        deadline = time.monotonic() + 10
        current = threading.current_thread()
        for thread in [*closers, *self._threads]:
            if thread is not current:
                thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> Multiplexer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class RoutedDetect:
    """The engine's detect stages for frames of several sources, each source with its own prompt.

    A batch may hold frames of any sources; it is split by prompt and each
    part is its own forward pass (a pass takes one prompt), so sources that
    share a prompt share passes. Results come back in the batch's order.
    """

    def __init__(self, detector: Any, prompts: Mapping[str, tuple[str, ...]], threshold: float) -> None:
        self._prompts = dict(prompts)
        self._stages = {classes: DetectStages(detector, classes, threshold) for classes in dict.fromkeys(prompts.values())}
        first = next(iter(self._stages.values()))
        self.device = first.device
        self.heavy = first.heavy

    def _split(self, batch: list[Frame]) -> dict[tuple[str, ...], list[int]]:
        groups: dict[tuple[str, ...], list[int]] = {}
        for i, frame in enumerate(batch):
            groups.setdefault(self._prompts[frame.source], []).append(i)
        return groups

    def prepare(self, batch: list[Frame]) -> tuple[int, list]:
        parts = []
        for classes, indices in self._split(batch).items():
            stages = self._stages[classes]
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


def prompts_per_source(
    names: Sequence[str], specs: Sequence[str | int], prompt: Any, given: Sequence[str | int] | None = None
) -> dict[str, tuple[str, ...]]:
    """Each source's classes: one prompt for all, or a mapping from source to prompt.

    A mapping's key is a source as given (a folder or glob of videos passes
    its prompt to every video in it), its expanded path, or its name.
    `given[i]` is the input that `specs[i]` came from (default: itself).
    """
    from streamsink.detector.prompt import parse_classes

    if not isinstance(prompt, Mapping):
        classes = parse_classes(prompt)
        return dict.fromkeys(names, classes)
    given = list(specs) if given is None else list(given)
    by_key = {str(key): value for key, value in prompt.items()}
    prompts = {}
    for name, spec, origin in zip(names, specs, given):
        key = next((k for k in (name, str(spec), str(origin)) if k in by_key), None)
        if key is None:
            raise ValueError(f"no prompt for source {spec!r}")
        prompts[name] = parse_classes(by_key[key])
    unknown = set(by_key) - {str(s) for s in (*specs, *given)} - set(names)
    if unknown:
        raise ValueError(f"prompt given for unknown source(s): {', '.join(sorted(unknown))}")
    return prompts


def run_many(sources: Sequence[str | int], prompt: Any, settings: Mapping[str, Any]) -> Iterator[Any]:
    """`streamsink.run` over several sources; checks now, opens and loads when iterated."""
    from streamsink.sources import expand_inputs

    specs, given = [], []
    for source in sources:
        expanded = expand_inputs([source])
        specs += expanded
        given += [source] * len(expanded)
    mux = Multiplexer(specs)
    prompts = prompts_per_source(mux.names, specs, prompt, given)
    return _run_many(mux, prompts, dict(settings))


def _run_many(mux: Multiplexer, prompts: dict[str, tuple[str, ...]], settings: dict[str, Any]) -> Iterator[Any]:
    from streamsink.engine import iterate

    with mux:
        detector = settings["detector"]
        if detector is None:
            from streamsink.detector import SinkDetector

            detector = SinkDetector.from_pretrained(settings["model"], sinks=settings["sinks"],
                                                    sink_init=settings["sink_init"], device=settings["device"])
        smoothers = per_source_smoothers(prompts, settings["smoother_options"]) if settings["smooth"] else None
        yield from iterate(
            mux,
            RoutedDetect(detector, prompts, settings["threshold"]),
            batch_size=settings["batch_size"],
            smoother_for=(lambda frame: smoothers[frame.source]) if smoothers else None,
            max_latency=settings["max_latency"],
            threads=settings["threads"],
        )


def per_source_smoothers(prompts: Mapping[str, tuple[str, ...]], options: Mapping[str, Any] | None = None) -> dict:
    """One TemporalSmoother per source, for that source's classes."""
    from streamsink.smoother import TemporalSmoother

    return {name: TemporalSmoother(classes, **(options or {})) for name, classes in prompts.items()}
