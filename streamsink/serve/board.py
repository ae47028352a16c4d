"""The live board: what the web page shows, written by the annotate loop and read by the server.

The annotate loop only hands over references (`publish` costs a dict update
per class), so a page with no viewer costs the run nothing. Drawing and JPEG
encoding happen on the server's side, when a viewer asks, once per frame
however many viewers ask (`jpeg` caches the newest encoding), and never
queue: a viewer always gets the newest frame, so a slow one sees fewer frames
instead of older ones, and nothing piles up in memory.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from streamsink.events import StateChanges
from streamsink.stages import LivePrompts
from streamsink.types import Result, SourceStatus, State

HISTORY_SECONDS = 300.0  # how far back the page's timeline goes
RECENT_CHANGES = 20  # state changes kept per source for the page's list


@dataclass
class _Newest:
    """The newest result of a source and the live figures it was shown with."""

    seq: int
    result: Result
    fps: float
    latency_ms: float | None


@dataclass
class _SourceBoard:
    name: str
    classes: tuple[str, ...]
    newest: _Newest | None = None
    started: float | None = None  # wall-clock time of the first frame
    # label -> [start, end] wall-clock seconds of each stretch the class was present; end None while it lasts.
    timeline: dict[str, list[list[float | None]]] = field(default_factory=dict)
    changes: deque = field(default_factory=lambda: deque(maxlen=RECENT_CHANGES))
    jpeg: tuple[int, int, bytes] | None = None  # (seq, max_width, bytes) of the last encoding


class LiveBoard:
    """Each source's newest frame, figures, states, timeline and recent changes, safe across threads.

    prompts: the run's `LivePrompts`, which `change_prompt` changes.
    states: the sources' `SourceState`s now (status, reconnects, error), as the
        multiplexer keeps them.
    """

    def __init__(self, prompts: LivePrompts, states: Callable[[], Iterable[Any]], *, renderer: Any = None,
                 history: float = HISTORY_SECONDS, clock: Callable[[], float] = time.time) -> None:
        self.prompts = prompts
        self._states = states
        self._renderer = renderer
        self._history = history
        self._clock = clock
        self._lock = threading.Lock()
        self._encode_lock = threading.Lock()
        self._changes = StateChanges()
        self._sources = {name: _SourceBoard(name, classes) for name, classes in prompts.items()}
        self.on_publish: Callable[[str], None] | None = None  # the server's wake-up for viewers waiting on a frame

    @property
    def names(self) -> list[str]:
        return list(self._sources)

    def on_result(self, result: Result, fps: float, latency_ms: float | None) -> bool:
        """The annotate loop's hook (see `annotate`): publish and go on."""
        self.publish(result, fps, latency_ms)
        return True

    def publish(self, result: Result, fps: float, latency_ms: float | None) -> None:
        """Make `result` its source's newest frame and follow its states."""
        now = self._clock()
        with self._lock:
            board = self._sources[result.frame.source]
            labels = result.detections.labels
            if labels and labels != board.classes:
                self._restart(board, labels, now)
            events = self._changes.update(result)
            for event in events:
                board.changes.appendleft({**event, "time": round(now, 3)})
            for label, state in result.states.items():
                stretches = board.timeline.setdefault(label, [])
                open_now = bool(stretches) and stretches[-1][1] is None
                if state == State.PRESENT and not open_now:
                    stretches.append([now, None])
                elif state != State.PRESENT and open_now:
                    stretches[-1][1] = now
                while stretches and stretches[0][1] is not None and stretches[0][1] < now - self._history:
                    stretches.pop(0)
            if board.started is None:
                board.started = now
            seq = board.newest.seq + 1 if board.newest is not None else 1
            board.newest = _Newest(seq, result, fps, latency_ms)
        on_publish = self.on_publish
        if on_publish is not None:
            on_publish(board.name)

    def _restart(self, board: _SourceBoard, labels: tuple[str, ...], now: float) -> None:
        """A new prompt reached this source: its timeline starts over with the new classes."""
        board.classes = labels
        board.timeline = {}
        board.changes.appendleft({"source": board.name, "prompt": ",".join(labels), "time": round(now, 3)})

    def change_prompt(self, name: str, prompt: str) -> tuple[str, ...]:
        """Ask for a new prompt on source `name` (next batch on); KeyError / PromptError as `LivePrompts.change`."""
        return self.prompts.change(name, prompt)

    def seq(self, name: str) -> int:
        """A number that grows with every new frame of `name` (0 before the first)."""
        newest = self._sources[name].newest
        return newest.seq if newest is not None else 0

    def state(self) -> dict:
        """The `/api/state` document: {"now", "history_s", "sources": {name: {...}}}."""
        now = self._clock()
        status = {getattr(s, "name", None): s for s in self._states()}
        sources = {}
        with self._lock:
            for name, board in self._sources.items():
                sources[name] = self._source_state(board, status.get(name), now)
        return {"now": round(now, 3), "history_s": self._history, "sources": sources}

    def _source_state(self, board: _SourceBoard, source: Any, now: float) -> dict:
        newest = board.newest
        result = newest.result if newest is not None else None
        states = {label: str(result.states.get(label, State.ABSENT)) if result else None for label in board.classes}
        status = getattr(source, "status", SourceStatus.RUNNING if result else SourceStatus.WAITING)
        return {
            "status": str(status),
            "error": getattr(source, "error", None),
            "prompt": ",".join(self.prompts[board.name]),
            "classes": list(board.classes),
            "states": states,
            "fps": round(newest.fps, 2) if newest else None,
            "latency_ms": round(newest.latency_ms, 1) if newest and newest.latency_ms is not None else None,
            "dropped": int(result.frame.dropped) if result else 0,
            "lost": int(result.frame.lost) if result else 0,
            "reconnects": int(getattr(source, "reconnects", 0)),
            "frame": int(result.index) if result else None,
            "started": round(board.started, 3) if board.started is not None else None,
            "pts": round(float(result.pts), 3) if result else None,
            "detections": result.detections.to_records() if result else [],
            "timeline": {label: [[round(start, 3), None if end is None else round(end, 3)] for start, end in stretches]
                         for label, stretches in board.timeline.items() if label in board.classes},
            "changes": list(board.changes),
        }

    def jpeg(self, name: str, max_width: int = 960, quality: int = 80) -> tuple[int, int, bytes] | None:
        """(seq, frame index, JPEG bytes) of `name`'s newest frame, drawn and at most `max_width` wide;
        None before its first frame. One encoding per frame serves every viewer."""
        newest = self._sources[name].newest
        if newest is None:
            return None
        with self._encode_lock:
            board = self._sources[name]
            if board.jpeg is not None and board.jpeg[0] == newest.seq and board.jpeg[1] == max_width:
                return newest.seq, newest.result.index, board.jpeg[2]
            data = _encode(self._drawn(newest), max_width, quality)
            board.jpeg = (newest.seq, max_width, data)
            return newest.seq, newest.result.index, data

    def _drawn(self, newest: _Newest) -> Any:
        result = newest.result
        if result.image is not None:
            return result.image
        if self._renderer is None:
            from streamsink.render import Renderer

            self._renderer = Renderer()
        return self._renderer.draw(result.frame.image, result.detections, result.states, fps=newest.fps,
                                   dropped=result.frame.dropped, latency_ms=newest.latency_ms)


def _encode(image_rgb: Any, max_width: int, quality: int) -> bytes:
    import cv2

    height, width = image_rgb.shape[:2]
    if width > max_width:
        image_rgb = cv2.resize(image_rgb, (max_width, max(1, round(height * max_width / width))),
                               interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return data.tobytes()
