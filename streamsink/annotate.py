"""The one annotate loop: results in; drawn video, JSONL and a summary per source out.

`streamsink process`, `streamsink watch` and the archive's replicas all run
`annotate`; they differ only in what they pass: where each source's outputs
go, whether frames are live (drawn here with fps and latency) or recorded
(drawn in the engine's finish stage, overlapping encoding), and what the
console shows (`on_result`). A source's writers open with its first result
and close once it has ended and its last frame is written, so a folder of a
thousand videos never holds them all open.

Presence is counted one way, by timestamps (`Presence`), so the summary of
`process` and the report of `process --ray` agree, also on variable frame
rate video.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamsink.types import Result, State

# Timestamps as the JSONL carries them, so presence from results and from a JSONL read back agree to the digit.
PTS_DIGITS = 6


class Presence:
    """Seconds each class is shown "present": a frame lasts until the next one's timestamp.

    The last frame lasts the mean step of the others (1/fps for a one-frame
    source), so a constant-rate clip gives frames x step, and a variable-rate
    one the time each state was really on screen.
    """

    def __init__(self, classes: Sequence[str]) -> None:
        self.seconds = dict.fromkeys(classes, 0.0)
        self.frames_present = dict.fromkeys(classes, 0)
        self.frames = 0
        self._first: float | None = None
        self._last: tuple[float, list[str]] | None = None

    def add(self, pts: float, states: Mapping[str, str]) -> None:
        pts = round(float(pts), PTS_DIGITS)
        present = [str(label) for label, state in states.items() if state == State.PRESENT]
        for label in present:
            self.frames_present[label] = self.frames_present.get(label, 0) + 1
        if self._last is not None:
            self._count(self._last[1], pts - self._last[0])
        else:
            self._first = pts
        self._last = (pts, present)
        self.frames += 1

    def _count(self, labels: list[str], seconds: float) -> None:
        for label in labels:
            self.seconds[label] = self.seconds.get(label, 0.0) + max(seconds, 0.0)

    def result(self, fps: float | None = None) -> dict[str, float]:
        """Per-class seconds, rounded to microseconds."""
        seconds = dict(self.seconds)
        if self._last is not None and self._first is not None:
            if self.frames > 1:
                step = (self._last[0] - self._first) / (self.frames - 1)
            else:
                step = 1.0 / fps if fps else 0.0
            for label in self._last[1]:
                seconds[label] = seconds.get(label, 0.0) + max(step, 0.0)
        return {label: round(value, 6) for label, value in seconds.items()}


class Summary:
    """What a run did with one source, for the closing lines and the archive's report."""

    def __init__(self, classes: tuple[str, ...]) -> None:
        self.started = time.monotonic()
        self.presence = Presence(classes)
        self.first_pts: float | None = None
        self.last_pts: float | None = None
        self.dropped = 0
        self.dropped_at_start = 0
        self.lost = 0
        self.interrupted = False
        self.outputs: list[str] = []
        self.fps_of_source: float | None = None

    @property
    def frames(self) -> int:
        return self.presence.frames

    def add(self, result: Result) -> None:
        if self.first_pts is None:
            # Live frames dropped while the model loaded are not the detector falling behind; said apart.
            self.dropped_at_start = result.frame.dropped
            self.first_pts = result.pts
        self.dropped = result.frame.dropped  # the count the status line and the JSONL show
        self.lost = result.frame.lost
        self.last_pts = result.pts
        self.presence.add(result.pts, result.states)

    @property
    def fps(self) -> float:
        return self.frames / max(time.monotonic() - self.started, 1e-9)

    def seconds_present(self) -> dict[str, float]:
        return self.presence.result(self.fps_of_source)


class RateMeter:
    """Frames per second over the last `span` frames.

    Frames leave the detector in bursts of a batch, so a rate from the last
    interval alone swings wildly; a window over many frames reads steadily.
    """

    def __init__(self, span: int = 50) -> None:
        self.ticks: deque[float] = deque(maxlen=span)

    def tick(self) -> float:
        self.ticks.append(time.monotonic())
        if len(self.ticks) < 2:
            return 0.0
        return (len(self.ticks) - 1) / max(self.ticks[-1] - self.ticks[0], 1e-9)


@dataclass(frozen=True)
class Target:
    """Where one source's outputs go: a video path, a JSONL path or "-" (stdout), a window; each optional."""

    video: Path | None = None
    jsonl: str | None = None
    window: bool = False


class Outputs:
    """Each source's writers, opened on its first result and closed when it ends.

    source_of(name): the opened `Source` (for the video's size, rate,
    timestamps and audio). ended(name): the frame count of a source that has
    ended, None while it runs; without it, writers close when the run ends.
    """

    def __init__(
        self,
        targets: Mapping[str, Target],
        source_of: Callable[[str], Any],
        *,
        raw: bool = False,
        ended: Callable[[str], int | None] | None = None,
    ) -> None:
        self.targets = dict(targets)
        self._source_of = source_of
        self._raw = raw
        self._ended = ended
        self._stack = ExitStack()
        self._open: dict[str, tuple[ExitStack, Any, Any, Any]] = {}
        self._labels: dict[str, tuple[str, ...]] = {}
        self._stdout = None

    def __enter__(self) -> Outputs:
        if any(target.jsonl == "-" for target in self.targets.values()):
            from streamsink.writers import JsonlWriter

            self._stdout = self._stack.enter_context(JsonlWriter("-"))  # one writer: lines of all sources interleave whole
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def is_open(self, name: str) -> bool:
        return name in self._open

    def _open_for(self, name: str, summary: Summary) -> tuple[ExitStack, Any, Any, Any]:
        from streamsink.writers import JsonlWriter, VideoWriter, Window

        target, own = self.targets[name], ExitStack()
        self._stack.callback(own.close)
        summary.fps_of_source = getattr(self._source_of(name), "fps", None)  # the last frame's length in a 1-frame source
        video = jsonl = window = None
        if target.video is not None:
            video = own.enter_context(VideoWriter.like(self._source_of(name), target.video))
            summary.outputs.append(str(target.video))
        if target.jsonl == "-":
            jsonl = self._stdout
            if len(self.targets) == 1:  # with several sources stdout holds them all; no one source wrote it
                summary.outputs.append("stdout")
        elif target.jsonl is not None:
            jsonl = own.enter_context(JsonlWriter(target.jsonl))
            summary.outputs.append(target.jsonl)
        if target.window:
            window = Window(f"streamsink: {name}")
            own.callback(window.close)
        return own, video, jsonl, window

    def wants_picture(self, name: str) -> bool:
        """Whether source `name`'s outputs need the drawn frame (a video or a window)."""
        target = self.targets[name]
        return target.video is not None or target.window

    def write(self, result: Result, summary: Summary, *, live: bool = False) -> bool:
        """Write one result (drawn in `result.image` when `wants_picture`) to its source's outputs;
        False when its window was closed (the user quit).

        The first JSONL line after a source's prompt changed carries a "prompt" key with the new classes;
        a live frame's line carries "latency_ms", from its capture to the moment the line is written.
        """
        from streamsink.writers import frame_record

        name = result.frame.source
        if name not in self._open:
            self._open[name] = self._open_for(name, summary)
            self._labels[name] = result.detections.labels
        _, video, jsonl, window = self._open[name]
        keep_going = True
        if video is not None:
            video.write(result.frame, result.image)
        if window is not None and not window.show(result.image):
            keep_going = False
        if jsonl is not None:
            extra: dict[str, Any] = {}
            if result.detections.labels != self._labels[name]:
                extra["prompt"] = ",".join(result.detections.labels)
            if live and result.frame.captured_at:
                extra["latency_ms"] = round((time.monotonic() - result.frame.captured_at) * 1000, 1)
            jsonl.write(frame_record(result.frame, result.detections, result.states,
                                     raw=result.raw if self._raw else None, extra=extra))
        self._labels[name] = result.detections.labels
        return keep_going

    def close_ended(self, summaries: Mapping[str, Summary]) -> None:
        """Close the writers of every source that has ended and whose last frame is written."""
        if self._ended is None:
            return
        for name in list(self._open):
            frames = self._ended(name)
            if frames is not None and summaries[name].frames >= frames:
                self._open.pop(name)[0].close()


def annotate(
    results: Iterable[Result],
    outputs: Outputs,
    summaries: Mapping[str, Summary],
    *,
    live: bool = False,
    renderer: Any = None,
    on_result: Callable[[Result, float, float | None], bool] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> bool:
    """Write every result to its source's outputs and count it; True when the loop stopped early.

    on_result(result, fps, latency_ms): the console's turn after each result
        (progress, status rows, a pause in tests); False asks to stop.
    should_stop(): checked after each result (Ctrl-C); a stop it asks for
        marks every summary interrupted. Results are closed either way, which
        stops the engine and releases the sources.
    """
    if renderer is None:
        from streamsink.render import Renderer

        renderer = Renderer()
    meters = {name: RateMeter() for name in summaries}
    try:
        for result in results:
            name = result.frame.source
            summaries[name].add(result)
            fps = meters[name].tick()
            latency_ms = (time.monotonic() - result.frame.captured_at) * 1000 if live and result.frame.captured_at else None

            if result.image is None and outputs.wants_picture(name):
                image = renderer.draw(result.frame.image, result.detections, result.states, fps=fps if live else None,
                                      dropped=result.frame.dropped if live else None, latency_ms=latency_ms)
                result = dataclasses.replace(result, image=image)
            keep_going = outputs.write(result, summaries[name], live=live)
            outputs.close_ended(summaries)
            if on_result is not None and on_result(result, fps, latency_ms) is False:
                keep_going = False
            interrupted = should_stop is not None and should_stop()
            if interrupted or not keep_going:
                for summary in summaries.values():
                    summary.interrupted = interrupted
                return True
        outputs.close_ended(summaries)
        return False
    finally:
        close = getattr(results, "close", None)
        if close is not None:
            close()


def engine_render(renderer: Any) -> Callable[[Result], Any]:
    """The drawing of recorded footage, for the engine's finish stage (no live figures)."""
    return lambda r: renderer.draw(r.frame.image, r.detections, r.states)
