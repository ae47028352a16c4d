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
from streamsink.errors import one_line
from streamsink.sources import Source, describe_source, open_source, unique_names
from streamsink.types import Frame, SourceStatus

logger = logging.getLogger(__name__)

WAITING, RUNNING, DONE, FAILED = SourceStatus.WAITING, SourceStatus.RUNNING, SourceStatus.DONE, SourceStatus.FAILED


@dataclass
class SourceState:
    """How one source of a multiplexed run is doing: for status lines, summaries and closing its writers.

    status: "waiting" (not opened yet), "running", "done" or "failed" (`error` says why).
    frames: frames handed to the detector so far; final once the status is done or failed.
    """

    name: str
    spec: str | int
    live: bool
    status: SourceStatus = WAITING
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
        self.buffer = buffer  # per live source, as each source's own
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

    def is_live_frame(self, frame: Frame) -> bool:
        """Whether `frame` is a live source's, which the engine may drop for a newer one (a file's never)."""
        state = self.states.get(frame.source)
        return state is not None and state.live

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
