"""What the user sees while a command runs and after: progress, live status rows, closing summaries.

rich lives here and nowhere else in the package. Each display has the
annotate loop's `on_result(result, fps, latency_ms)` (False asks to stop),
and is a context manager that owns its rich widget.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

from streamsink.cli.parser import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from streamsink.types import SourceStatus, State


class _Stderr(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is when a record comes: rich's live display and tests swap it."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def show_log(level: int = logging.WARNING) -> None:
    """Print streamsink's warnings (a stream reconnecting, a broker away) on stderr, one line each.

    The library only logs (a NullHandler keeps it quiet for library users); the command line shows them.
    Named loggers can be opened wider (OpenVINO's "converting" lines are INFO).
    """
    log = logging.getLogger("streamsink")
    if not any(isinstance(handler, _Stderr) for handler in log.handlers):
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("streamsink: %(levelname_lower)s: %(message)s"))
        handler.addFilter(_lower_level)
        log.addHandler(handler)
    if log.level == logging.NOTSET or log.level > level:
        log.setLevel(level)


def _lower_level(record: logging.LogRecord) -> bool:
    record.levelname_lower = "note" if record.levelno < logging.WARNING else record.levelname.lower()
    return True


def stderr_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


class StopFlag:
    """Ctrl-C asks the loop to stop after the frame in hand, so writers close cleanly.

    A second Ctrl-C interrupts at once (the `finally` blocks still close files).
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def __enter__(self) -> StopFlag:
        if _in_main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


class FileProgress:
    """`process` of one source: a bar of its frames, with the rate."""

    def __init__(self, console, name: str, total: int | None) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[fps]:.1f} fps"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._name, self._total = name, total

    def __enter__(self) -> FileProgress:
        self._progress.__enter__()
        self._task = self._progress.add_task(self._name, total=self._total, fps=0.0)
        return self

    def __exit__(self, *exc) -> None:
        self._progress.__exit__(*exc)

    def on_result(self, result, fps: float, latency_ms: float | None) -> bool:
        self._progress.update(self._task, advance=1, fps=fps)
        return True


class SourcesProgress:
    """`process` of several sources: a bar of sources ended, with frames and the overall rate."""

    def __init__(self, console, mux, summaries) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from streamsink.annotate import RateMeter

        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("sources  {task.fields[frames]} frames  {task.fields[fps]:.1f} fps"), TimeElapsedColumn(),
            console=console,
        )
        self._mux, self._summaries, self._overall = mux, summaries, RateMeter()

    def __enter__(self) -> SourcesProgress:
        self._progress.__enter__()
        self._task = self._progress.add_task(f"{len(self._mux.names)} sources", total=len(self._mux.names),
                                             frames=0, fps=0.0)
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self._progress.update(self._task, completed=sum(s.finished for s in self._mux.states.values()))
        self._progress.__exit__(*exc)

    def on_result(self, result, fps: float, latency_ms: float | None) -> bool:
        total_fps = self._overall.tick()
        states, summaries = self._mux.states, self._summaries
        ended = sum(state.finished and summaries[n].frames >= state.frames for n, state in states.items())
        self._progress.update(self._task, completed=ended, frames=sum(s.frames for s in summaries.values()),
                              fps=total_fps)
        return True


class ArchiveProgress:
    """`process --ray`: a bar of files finished (skipped ones included), with frames annotated."""

    def __init__(self, console, total: int) -> None:
        from rich import progress as bar

        self._progress = bar.Progress(
            bar.TextColumn("[bold]archive"), bar.BarColumn(), bar.MofNCompleteColumn(),
            bar.TextColumn("files  {task.fields[frames]} frames"), bar.TimeElapsedColumn(), bar.TimeRemainingColumn(),
            console=console,
        )
        self._total = total

    def __enter__(self) -> ArchiveProgress:
        self._progress.__enter__()
        self._task = self._progress.add_task("archive", total=self._total, frames=0)
        return self

    def __exit__(self, *exc) -> None:
        self._progress.__exit__(*exc)

    def update(self, done: int, total: int, frames: int) -> None:
        """`process_archive`'s progress callback."""
        self._progress.update(self._task, completed=done, total=total, frames=frames)


class NoDisplay:
    """`watch` with windows: the windows are the display."""

    def __enter__(self) -> NoDisplay:
        return self

    def __exit__(self, *exc) -> None:
        pass

    def on_result(self, result, fps: float, latency_ms: float | None) -> bool:
        return True


class LiveStatus:
    """Headless `watch`: a status line per source (fps, latency, drops, per-class state); `q` + Enter or Ctrl-C stops.

    With `states` (a callable giving the multiplexer's source states) the rows
    of sources without frames (connecting, failed) refresh twice a second even
    while no frame arrives, and a quit then calls `on_quit`, which ends the run.
    """

    def __init__(self, console, source_of=None, states=None, on_quit=None) -> None:
        self.console = console
        self._source_of = source_of
        self.quit_requested = False
        self._live = None
        self._rows: dict[str, Any] = {}
        self._states = states
        self._on_quit = on_quit
        self._closed = False

    def __enter__(self) -> LiveStatus:
        import threading

        from rich.live import Live

        self._live = Live(console=self.console, refresh_per_second=4, transient=False)
        self._live.__enter__()
        if sys.stdin is not None and sys.stdin.isatty():
            threading.Thread(target=self._read_keys, daemon=True, name="streamsink-keys").start()
        if self._states is not None:
            threading.Thread(target=self._tick, daemon=True, name="streamsink-status").start()
        return self

    def __exit__(self, *exc) -> None:
        self._closed = True
        if self._live is not None:
            self._live.__exit__(*exc)

    def _tick(self) -> None:
        while not self._closed:
            time.sleep(0.5)
            if self._closed:
                return
            self.show_states(self._states())
            if self.quit_requested and self._on_quit is not None:
                on_quit, self._on_quit = self._on_quit, None
                on_quit()

    def _read_keys(self) -> None:
        for line in sys.stdin:
            if line.strip().lower() in ("q", "quit"):
                self.quit_requested = True
                return

    def update(self, result, fps: float, latency_ms: float | None, source) -> None:
        """The row of `source` (a Source or a multiplexed SourceState) after its latest result."""
        from rich.text import Text

        line = Text()
        line.append(f"{source.name}  frame {result.index}  {fps:5.1f} fps")
        if latency_ms is not None:
            line.append(f"  latency {latency_ms:4.0f} ms")
        line.append(f"  dropped {result.frame.dropped}")
        if result.frame.lost:
            line.append(f"  lost {result.frame.lost}")
        if getattr(source, "reconnects", 0):
            line.append(f"  reconnects {source.reconnects}")
        for label, state in result.states.items():
            line.append(f"  {label}: ")
            present = state == State.PRESENT
            line.append("present" if present else "not here", style="bold green" if present else "dim")
        self._rows[source.name] = line
        self._refresh()

    def on_result(self, result, fps: float, latency_ms: float | None) -> bool:
        self.update(result, fps, latency_ms, self._source_of(result.frame.source))
        if self._states is not None:
            self.show_states(self._states())
        return not self.quit_requested

    def show_states(self, states) -> None:
        """Rows for sources without results to show: still connecting, or failed (with why)."""
        from rich.text import Text

        for state in states:
            if state.status == SourceStatus.FAILED:
                self._rows[state.name] = Text(f"{state.name}  failed: {state.error}", style="red")
            elif state.status == SourceStatus.WAITING:
                self._rows[state.name] = Text(f"{state.name}  connecting ...", style="dim")
        self._refresh()

    def _refresh(self) -> None:
        from rich.console import Group

        self._live.update(Group(*self._rows.values()))


def print_summary(console, summary, indent: str = "") -> None:
    elapsed = time.monotonic() - summary.started
    head = "interrupted" if summary.interrupted else "done"
    console.print(f"{indent}{head}: {summary.frames} frames in {elapsed:.1f} s ({summary.fps:.1f} fps)")
    if summary.dropped:
        loading = f" ({summary.dropped_at_start} of them while the model loaded)" if summary.dropped_at_start else ""
        console.print(f"{indent}dropped {summary.dropped} live frames to keep up{loading}")
    if summary.lost:
        console.print(f"{indent}lost ~{summary.lost} frames while the stream was away")
    if summary.frames:
        seconds = summary.seconds_present()
        for label, count in summary.presence.frames_present.items():
            state = f"present in {count} frames (~{seconds[label]:.1f} s)" if count else "not found"
            console.print(f"{indent}  {label}: {state}")
    for output in summary.outputs:
        console.print(f"{indent}wrote {output}")


def finish_many(console, mux, summaries: dict) -> int:
    """Per-source summaries, then the exit code: 130 interrupted, 2 when a source failed, else 0."""
    for name, summary in summaries.items():
        state = mux.states[name]
        console.print(f"[bold]{name}[/bold]")
        if state.status == SourceStatus.FAILED:
            console.print(f"  failed after {state.frames} frames: {state.error}", markup=False)
        if state.reconnects:
            console.print(f"  reconnected {state.reconnects} times")
        if summary.frames:
            print_summary(console, summary, indent="  ")
    failed = [name for name, state in mux.states.items() if state.status == SourceStatus.FAILED]
    interrupted = any(summary.interrupted for summary in summaries.values())
    if failed:
        print(f"streamsink: error: {len(failed)} of {len(summaries)} sources failed: {', '.join(failed)}", file=sys.stderr)
    return EXIT_INTERRUPTED if interrupted else (EXIT_USAGE if failed else EXIT_OK)


def print_archive_report(console, report, outdir: Path) -> int:
    """The archive's closing lines; exit 2 when a file failed (the others are complete)."""
    head = "interrupted" if report.interrupted else "done"
    console.print(f"{head}: {len(report.done)} files annotated, {len(report.skipped)} already complete, "
                  f"{len(report.failed)} failed; {report.frames} frames in {report.elapsed:.1f} s "
                  f"({report.fps:.1f} fps) on {report.workers} workers")
    for label, seconds in report.presence.items():
        console.print(f"  {label}: present for ~{seconds:.1f} s in all")
    for failed in report.failed:
        console.print(f"  failed: {failed.input}: {failed.error}", markup=False)
    console.print(f"wrote {outdir / 'summary.json'}")
    if report.failed:
        names = ", ".join(f.name for f in report.failed)
        print(f"streamsink: error: {len(report.failed)} of {len(report.files)} files failed: {names}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_INTERRUPTED if report.interrupted else EXIT_OK


