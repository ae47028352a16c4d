"""The `streamsink` command: `process` for recorded footage, `watch` for live sources.

Both are thin layers over the engine. Heavy imports (torch, transformers, PyAV,
OpenCV) happen inside the subcommands so `streamsink --help` is instant.
Errors are one plain line on stderr; exit codes: 0 done, 1 unexpected failure,
2 bad usage or bad input, 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from streamsink.errors import StreamsinkError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Bad command-line usage: printed as one line, exit 2."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the fix, not a usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    from streamsink.engine import DEFAULT_MODEL

    parser = OneLineParser(prog="streamsink", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"streamsink {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    commands.required = True

    def add_common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--prompt", "-p", required=True, action="append", help='classes to find, comma-separated: "dog,tractor"; with several sources give it once for all or once per source, in order')
        sub.add_argument("--model", "-m", default=DEFAULT_MODEL, help=f"hub id or local checkpoint directory (default {DEFAULT_MODEL})")
        sub.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
        sub.add_argument("--batch-size", type=int, default=4, help="frames per forward pass (default 4)")
        sub.add_argument("--threshold", type=float, default=0.3, help="minimum class score, 0..1 (default 0.3)")
        sub.add_argument("--sinks", type=int, default=16, help="attention-sink tokens appended to the prompt; 0 = stock model (default 16)")
        sub.add_argument("--sink-init", choices=("mean", "random", "brackets"), default="mean", help="how sink embeddings are set (default mean)")
        sub.add_argument("--no-smooth", action="store_true", help="show raw per-frame detections, no temporal smoothing")
        sub.add_argument("--raw", action="store_true", help="add the raw detections to each JSONL line as 'raw'")
        sub.add_argument("--dtype", choices=("auto", "fp32", "fp16", "bf16"), default="auto", help="auto: fp16 on CUDA, fp32 on CPU")
        sub.add_argument("--threads", type=int, help="CPU: torch threads for the forward pass (default: leave decode/encode a core; 0 = torch's own)")
        sub.add_argument("--compile", action="store_true", help="run the forward pass through torch.compile (falls back if it fails)")
        sub.add_argument("--cuda-graphs", action="store_true", help="CUDA: capture the forward pass as a CUDA graph at the fixed batch and size")

    process = commands.add_parser("process", help="annotate recorded footage: video files, folders or globs of videos or images")
    process.add_argument("inputs", nargs="*", metavar="INPUT", help="video file, folder or glob of videos (one input each), or folder or glob of images (one image sequence)")
    add_common(process)
    process.add_argument("-o", "--output", help="annotated video (default out/<input name>.mp4); with several inputs a folder (default out/) that gets <name>.mp4 and <name>.jsonl for each")
    process.add_argument("--jsonl", help="per-frame JSONL, or - for stdout (default: beside the video)")
    process.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS", help="spread whole files over a Ray cluster at ADDRESS (without one: a local Ray instance); needs streamsink[ray]")
    process.add_argument("--workers", type=int, help="--ray: detector replicas (default: one per GPU, or per CPU without GPUs)")
    process.add_argument("--overwrite", action="store_true", help="--ray: redo files whose outputs are already complete (default: skip them)")

    watch = commands.add_parser("watch", help="live view of cameras or streams")
    watch.add_argument("sources", nargs="+", metavar="SOURCE", help="camera0, /dev/video0, an index, rtsp:// or http(s):// URL, or a file; several share one detector")
    add_common(watch)
    watch.add_argument("-o", "--output", help="also record the annotated video here; with several sources a folder that gets <name>.mp4 for each")
    watch.add_argument("--jsonl", help="also write per-frame JSONL here, or - for stdout; with several sources - or a folder")
    watch.add_argument("--headless", action="store_true", help="no window even if a display exists")
    watch.add_argument("--buffer", type=int, default=2, help="live frames buffered before the oldest is dropped (default 2)")
    watch.add_argument("--retries", type=int, default=5, help="network streams: reconnect attempts in a row before giving up (default 5)")
    watch.add_argument("--max-latency", type=float, default=0.0, metavar="MS", help="wait up to MS for a batch of live frames to fill (default 0: take what is waiting)")

    explain = commands.add_parser("explain", help="picture of where the first fusion layer's attention goes, without and with sinks")
    explain.add_argument("image", help="an image file, or a video file (its first frame is used)")
    explain.add_argument("--prompt", "-p", required=True, help='classes, comma-separated: "dog,tractor"')
    explain.add_argument("--model", "-m", default=DEFAULT_MODEL, help=f"hub id or local checkpoint directory (default {DEFAULT_MODEL})")
    explain.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    explain.add_argument("--sinks", type=int, default=16, help="sinks in the right-hand panel (default 16)")
    explain.add_argument("--sink-init", choices=("mean", "random", "brackets"), default="mean")
    explain.add_argument("-o", "--output", default="attention.png", help="PNG to write (default attention.png)")

    from streamsink.evaluate import DEFAULT_METHODS

    evaluate = commands.add_parser("eval", help="abstention benchmark: false positives on images without the prompted class")
    evaluate.add_argument("--model", "-m", default=DEFAULT_MODEL, help=f"hub id or local checkpoint directory (default {DEFAULT_MODEL})")
    evaluate.add_argument("--dataset", default="shapes", help="'shapes' (the built-in world) or a COCO-format annotation file")
    evaluate.add_argument("--images-dir", help="COCO: folder of the images (default: beside the annotation file)")
    evaluate.add_argument("--limit", type=int, help="COCO: evaluate the first N images only")
    evaluate.add_argument("--seed", type=int, default=1, help="shapes: seed of the draw; any unused seed is a fresh held-out set (default 1)")
    evaluate.add_argument("--images", type=int, default=100, help="shapes: independent images (default 100)")
    evaluate.add_argument("--clips", type=int, default=2, help="shapes: clips for the smoother rows, 0 for none (default 2)")
    evaluate.add_argument("--clip-frames", type=int, default=50, help="shapes: frames per clip (default 50)")
    evaluate.add_argument("--methods", default=DEFAULT_METHODS, help=f"comma-separated (default {DEFAULT_METHODS})")
    evaluate.add_argument("--threshold", type=float, default=0.3, help="operating threshold for the clip rows (default 0.3)")
    evaluate.add_argument("--min-score", type=float, default=0.01, help="lowest score kept for the curves (default 0.01)")
    evaluate.add_argument("--batch-size", type=int, default=8)
    evaluate.add_argument("--device", default="auto")
    evaluate.add_argument("--json", help="write the figures here as JSON")
    evaluate.add_argument("--plot", help="write AP50 against FPR_bg, one curve per method, as PNG")
    return parser


def _version() -> str:
    from streamsink import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except UsageError as error:
        return _fail(str(error), EXIT_USAGE)
    except (StreamsinkError, ValueError) as error:
        return _fail(str(error), EXIT_USAGE)
    except KeyboardInterrupt:
        print("streamsink: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SystemExit as exit_:  # --help and --version
        return int(exit_.code or 0)
    except Exception as error:
        if os.environ.get("STREAMSINK_DEBUG"):
            raise
        return _fail(f"unexpected {type(error).__name__}: {error} (set STREAMSINK_DEBUG=1 for a traceback)", EXIT_FAILURE)


def _fail(message: str, code: int) -> int:
    message = " ".join(str(message).split()) or "failed"
    print(f"streamsink: error: {message}", file=sys.stderr)
    return code


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


def _check_common(args: argparse.Namespace, *, check_device: bool = True) -> None:
    """Validate every cheap setting before opening sources or loading a model.

    `check_device`: whether this machine's devices matter (not for a remote Ray cluster).
    """
    from streamsink.detector.prompt import parse_classes
    from streamsink.engine import check_settings

    for prompt in args.prompt:
        parse_classes(prompt)
    check_settings(threshold=args.threshold, batch_size=args.batch_size, max_latency=_max_latency(args))
    if args.sinks < 0:
        raise UsageError(f"--sinks must be >= 0, got {args.sinks}")
    if args.threads is not None and args.threads < 0:
        raise UsageError(f"--threads must be >= 0, got {args.threads}")
    if check_device:
        from streamsink.detector.model import resolve_device

        resolve_device(args.device)


def _prompts(args: argparse.Namespace, names: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Each source's classes: one --prompt for all, or one per source in the order given."""
    from streamsink.detector.prompt import parse_classes

    if len(args.prompt) == 1:
        return dict.fromkeys(names, parse_classes(args.prompt[0]))
    if len(args.prompt) != len(names):
        raise UsageError(f"give --prompt once for all sources or once per source: got {len(args.prompt)} for {len(names)} source(s)")
    return {name: parse_classes(prompt) for name, prompt in zip(names, args.prompt)}


def _max_latency(args: argparse.Namespace) -> float:
    """`--max-latency` is in milliseconds on the command line, seconds in the engine."""
    return getattr(args, "max_latency", 0.0) / 1000.0


def _load_detector(args: argparse.Namespace, console, sinks: int | None = None):
    from huggingface_hub.utils import logging as hub_logging
    from transformers.utils import logging as transformers_logging

    from streamsink.detector import SinkDetector

    # The user sees one status line and, on failure, one error line; not download
    # progress bars or the hub client's retry chatter.
    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    hub_logging.set_verbosity_error()
    with console.status(f"loading {args.model} ..."):
        return SinkDetector.from_pretrained(
            args.model,
            sinks=args.sinks if sinks is None else sinks,
            sink_init=args.sink_init,
            device=args.device,
            dtype=None if getattr(args, "dtype", "auto") == "auto" else args.dtype,
            compile=getattr(args, "compile", False),
            cuda_graphs=getattr(args, "cuda_graphs", False),
        )


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def default_outputs(name: str, output: str | None, jsonl: str | None) -> tuple[Path, str]:
    """`out/<name>.mp4` and a JSONL beside the video unless the user chose; -o naming a folder gets <name>.mp4 in it."""
    if output and (Path(output).is_dir() or output.endswith(("/", os.sep))):
        video = Path(output) / f"{name}.mp4"
    else:
        video = Path(output) if output else Path("out") / f"{name}.mp4"
    return video, jsonl if jsonl else str(video.with_suffix(".jsonl"))


def cmd_process(args: argparse.Namespace) -> int:
    from streamsink.sources import expand_inputs, open_source

    inputs = list(args.inputs)
    if args.ray is not None and _is_input(args.ray):  # `--ray clips/`: the folder is an input, not an address
        inputs.insert(0, args.ray)
        args.ray = "local"
    if args.ray is None and (args.workers is not None or args.overwrite):
        raise UsageError("--workers and --overwrite go with --ray")
    _check_common(args, check_device=args.ray in (None, "local"))
    if not inputs:
        raise UsageError("process needs at least one INPUT: a video, a folder or a glob (see 'streamsink process --help')")
    specs = expand_inputs(inputs)
    if args.ray is not None:
        return _process_archive(args, specs)
    if specs != inputs or len(specs) > 1:
        return _process_many(args, specs)
    console = _stderr_console()
    with open_source(specs[0]) as source:
        if source.is_live:
            raise UsageError(f"{specs[0]} is a live source; use 'streamsink watch {specs[0]}'")
        classes = _prompts(args, [source.name])[source.name]
        video_path, jsonl_path = default_outputs(source.name, args.output, args.jsonl)
        _refuse_overwriting_input(source.path, video_path, jsonl_path)
        detector = _load_detector(args, console)
        summary = _annotate(args, source, detector, classes, video_path, jsonl_path, console)
    _print_summary(console, summary)
    return EXIT_INTERRUPTED if summary.interrupted else EXIT_OK


def _is_input(value: str) -> bool:
    from streamsink.sources import VIDEO_SUFFIXES

    return Path(value).exists() or any(c in value for c in "*?[") or Path(value).suffix.lower() in VIDEO_SUFFIXES


def _outputs_many(names: Sequence[str], output: str | None, jsonl: str | None, *, record: bool) -> tuple[dict, dict]:
    """Per-source video and JSONL paths of a run over several sources: OUTDIR/<name>.mp4 and .jsonl.

    `record`: write videos by default (process) or only when -o names a folder (watch).
    JSONL goes to stdout (`-`, each line names its source), into a folder, or (process) beside the videos.
    """
    from streamsink.sources import VIDEO_SUFFIXES

    if output is not None and Path(output).suffix.lower() in VIDEO_SUFFIXES:
        raise UsageError(f"with several sources -o names a folder, got the video file {output}")
    if jsonl not in (None, "-") and Path(jsonl).suffix.lower() == ".jsonl":
        raise UsageError(f"with several sources --jsonl is - (stdout) or a folder, got the file {jsonl}")
    folder = Path(output) if output else (Path("out") if record else None)
    videos = {name: folder / f"{name}.mp4" if folder is not None else None for name in names}
    if jsonl == "-":
        jsonls = dict.fromkeys(names, "-")
    elif jsonl is not None:
        jsonls = {name: str(Path(jsonl) / f"{name}.jsonl") for name in names}
    else:  # beside the videos for process; watch writes JSONL only when asked, as with one source
        jsonls = {name: str(folder / f"{name}.jsonl") if folder is not None and record else None for name in names}
    return videos, jsonls


def _process_many(args: argparse.Namespace, specs: Sequence[str | int]) -> int:
    from streamsink.multiplex import Multiplexer

    mux = Multiplexer(specs)
    live = [state.spec for state in mux.states.values() if state.live]
    if live:
        raise UsageError(f"{live[0]} is a live source; use 'streamsink watch'")
    prompts = _prompts(args, mux.names)
    videos, jsonls = _outputs_many(mux.names, args.output, args.jsonl, record=True)
    for state in mux.states.values():  # every output against every input: clip.mov's out/clip.mp4 may be an input
        _refuse_overwriting_input(Path(str(state.spec)), *videos.values(), *jsonls.values())
    console = _stderr_console()
    with mux:
        detector = _load_detector(args, console)
        summaries = _annotate_many(args, mux, detector, prompts, videos, jsonls, console)
    return _finish_many(console, mux, summaries)


def _process_archive(args: argparse.Namespace, specs: Sequence[str | int]) -> int:
    """`process --ray`: whole files spread over Ray actors (streamsink.archive)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from streamsink.archive import process_archive

    if len(args.prompt) != 1:
        raise UsageError("--ray takes one --prompt for all files")
    if args.jsonl is not None:
        raise UsageError("--ray writes <name>.jsonl beside each video in the -o folder; --jsonl does not apply")
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    _outputs_many([], args.output, None, record=True)  # checks that -o names a folder
    outdir = Path(args.output) if args.output else Path("out")
    console = _stderr_console()
    with Progress(
        TextColumn("[bold]archive"), BarColumn(), MofNCompleteColumn(), TextColumn("files  {task.fields[frames]} frames"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console,
    ) as progress:
        task = progress.add_task("archive", total=len(specs), frames=0)
        report = _call_archive(process_archive,
            specs, outdir, prompt=args.prompt[0], model=args.model, sinks=args.sinks, sink_init=args.sink_init,
            device=args.device, dtype=args.dtype, threshold=args.threshold, batch_size=args.batch_size,
            smooth=not args.no_smooth, raw=args.raw, threads=args.threads, compile=args.compile,
            cuda_graphs=args.cuda_graphs, address=None if args.ray == "local" else args.ray, workers=args.workers,
            overwrite=args.overwrite,
            progress=lambda done, total, frames: progress.update(task, completed=done, total=total, frames=frames),
        )
    return _print_archive_report(console, report, outdir)


def _refuse_overwriting_input(source_path: Path | None, *outputs) -> None:
    """Writing an output over the input would destroy it while it is still being read."""
    if source_path is None:
        return
    for output in outputs:
        if output is not None and str(output) != "-" and Path(output).resolve() == Path(source_path).resolve():
            raise UsageError(f"output {output} is the input file; choose another path with -o / --jsonl")


class Summary:
    """What a run did, for the closing lines printed to the user."""

    def __init__(self, classes: tuple[str, ...]) -> None:
        self.frames = 0
        self.started = time.monotonic()
        self.present_frames = dict.fromkeys(classes, 0)
        self.first_pts: float | None = None
        self.last_pts: float | None = None
        self.dropped = 0
        self.dropped_at_start = 0
        self.interrupted = False
        self.outputs: list[str] = []

    def add(self, result) -> None:
        self.frames += 1
        if self.first_pts is None:
            # Live frames dropped while the model loaded are not the detector falling behind.
            self.dropped_at_start = result.frame.dropped
            self.first_pts = result.pts
        self.dropped = result.frame.dropped - self.dropped_at_start
        self.last_pts = result.pts
        for label, state in result.states.items():
            if state == "present":
                self.present_frames[label] += 1

    @property
    def fps(self) -> float:
        return self.frames / max(time.monotonic() - self.started, 1e-9)


def _annotate(args, source, detector, classes, video_path, jsonl_path, console, *, live: bool = False, window=None):
    """The shared loop of `process` and `watch`: detect, draw, write, report."""
    from contextlib import ExitStack

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from streamsink.engine import iterate, make_detect
    from streamsink.render import Renderer
    from streamsink.smoother import TemporalSmoother
    from streamsink.writers import JsonlWriter, VideoWriter, frame_record

    summary = Summary(classes)
    renderer = Renderer()
    smoother = None if args.no_smooth else TemporalSmoother(classes)
    detect = make_detect(detector, classes, args.threshold)
    fps_meter = RateMeter()
    quit_requested = False
    with ExitStack() as stack, StopFlag() as stop:
        video = None
        if video_path is not None:
            video = stack.enter_context(VideoWriter.like(source, video_path))
            summary.outputs.append(str(video_path))
        jsonl = None
        if jsonl_path is not None:
            jsonl = stack.enter_context(JsonlWriter(jsonl_path))
            summary.outputs.append("stdout" if jsonl_path == "-" else str(jsonl_path))
        progress = None
        if not live:
            progress = stack.enter_context(
                Progress(
                    TextColumn("[bold]{task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TextColumn("{task.fields[fps]:.1f} fps"),
                    TimeElapsedColumn(),
                    TimeRemainingColumn(),
                    console=console,
                    transient=False,
                )
            )
            task = progress.add_task(source.name, total=source.frame_count, fps=0.0)
        status = None
        if live and window is None:
            status = stack.enter_context(LiveStatus(console))
        # Recorded footage is drawn in the engine's finish stage, overlapping encoding here;
        # live frames are drawn here, where their fps and latency are known.
        draw_in_engine = not live and video is not None
        results = iterate(
            source,
            detect,
            batch_size=args.batch_size,
            smoother=smoother,
            max_latency=_max_latency(args),
            threads=args.threads,
            render=(lambda r: renderer.draw(r.frame.image, r.detections, r.states)) if draw_in_engine else None,
        )
        stack.callback(results.close)
        for result in results:
            summary.add(result)
            fps = fps_meter.tick()
            latency_ms = (time.monotonic() - result.frame.captured_at) * 1000 if live and result.frame.captured_at else None
            if video is not None or window is not None:
                image = result.image if result.image is not None else renderer.draw(
                    result.frame.image,
                    result.detections,
                    result.states,
                    fps=fps if live else None,
                    dropped=result.frame.dropped if live else None,
                    latency_ms=latency_ms,
                )
                if video is not None:
                    video.write(result.frame, image)
                if window is not None and not window.show(image):
                    quit_requested = True
            if jsonl is not None:
                jsonl.write(frame_record(result.frame, result.detections, result.states, raw=result.raw if args.raw else None))
            if progress is not None:
                progress.update(task, advance=1, fps=fps)
            if status is not None:
                status.update(result, fps, latency_ms, source)
            if stop.requested or quit_requested or (status is not None and status.quit_requested):
                summary.interrupted = stop.requested
                break
    return summary


def _call_archive(process_archive, *args, **kwargs):
    """process_archive, with an unreachable cluster as a one-line usage error."""
    try:
        return process_archive(*args, **kwargs)
    except ConnectionError as error:
        address = kwargs.get("address") or "the local instance"
        raise UsageError(f"cannot reach the Ray cluster at {address}: {error}") from None


def _print_archive_report(console, report, outdir: Path) -> int:
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


def _annotate_many(args, mux, detector, prompts, videos, jsonls, console, *, live: bool = False, windows: bool = False):
    """`_annotate` for several sources sharing one detector: each has its own smoother, writers and summary.

    A source's writers open with its first result and close once it has ended
    and its last frame is written, so a folder of many videos never holds
    them all open.
    """
    from contextlib import ExitStack

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from streamsink.engine import iterate
    from streamsink.multiplex import RoutedDetect, per_source_smoothers
    from streamsink.render import Renderer
    from streamsink.writers import JsonlWriter, VideoWriter, Window, frame_record

    summaries = {name: Summary(prompts[name]) for name in mux.names}
    renderer = Renderer()
    smoothers = None if args.no_smooth else per_source_smoothers(prompts)
    meters = {name: RateMeter() for name in mux.names}
    overall = RateMeter()
    open_outputs: dict[str, tuple[ExitStack, Any, Any, Any]] = {}
    quit_requested = False

    def open_outputs_of(name: str, stack: ExitStack) -> tuple[ExitStack, Any, Any, Any]:
        state, own = mux.states[name], ExitStack()
        stack.callback(own.close)
        video = jsonl = window = None
        if videos[name] is not None:
            video = own.enter_context(VideoWriter.like(state.source, videos[name]))
            summaries[name].outputs.append(str(videos[name]))
        if jsonls[name] == "-":
            jsonl = stdout
        elif jsonls[name] is not None:
            jsonl = own.enter_context(JsonlWriter(jsonls[name]))
            summaries[name].outputs.append(jsonls[name])
        if windows:
            window = Window(f"streamsink: {name}")
            own.callback(window.close)
        return own, video, jsonl, window

    def close_ended() -> None:
        for name in [n for n in open_outputs if mux.states[n].finished and summaries[n].frames >= mux.states[n].frames]:
            open_outputs.pop(name)[0].close()

    with ExitStack() as stack, StopFlag() as stop:
        stdout = stack.enter_context(JsonlWriter("-")) if "-" in jsonls.values() else None
        progress = status = None
        if live:
            if not windows:
                status = stack.enter_context(LiveStatus(console, states=lambda: list(mux.states.values()),
                                                        on_quit=mux.close))
        else:
            progress = stack.enter_context(Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("sources  {task.fields[frames]} frames  {task.fields[fps]:.1f} fps"), TimeElapsedColumn(),
                console=console,
            ))
            task = progress.add_task(f"{len(mux.names)} sources", total=len(mux.names), frames=0, fps=0.0)
        draw_in_engine = not live and any(path is not None for path in videos.values())
        results = iterate(
            mux,
            RoutedDetect(detector, prompts, args.threshold),
            batch_size=args.batch_size,
            smoother_for=(lambda frame: smoothers[frame.source]) if smoothers else None,
            max_latency=_max_latency(args),
            threads=args.threads,
            render=(lambda r: renderer.draw(r.frame.image, r.detections, r.states)) if draw_in_engine else None,
        )
        stack.callback(results.close)
        for result in results:
            name = result.frame.source
            summaries[name].add(result)
            fps, total_fps = meters[name].tick(), overall.tick()
            if name not in open_outputs:
                open_outputs[name] = open_outputs_of(name, stack)
            _, video, jsonl, window = open_outputs[name]
            latency_ms = (time.monotonic() - result.frame.captured_at) * 1000 if live and result.frame.captured_at else None
            if video is not None or window is not None:
                image = result.image if result.image is not None else renderer.draw(
                    result.frame.image, result.detections, result.states, fps=fps if live else None,
                    dropped=result.frame.dropped if live else None, latency_ms=latency_ms,
                )
                if video is not None:
                    video.write(result.frame, image)
                if window is not None and not window.show(image):
                    quit_requested = True
            if jsonl is not None:
                jsonl.write(frame_record(result.frame, result.detections, result.states, raw=result.raw if args.raw else None))
            close_ended()
            if progress is not None:
                ended = sum(state.finished and n not in open_outputs for n, state in mux.states.items())
                progress.update(task, completed=ended, frames=sum(s.frames for s in summaries.values()), fps=total_fps)
            if status is not None:
                status.update(result, fps, latency_ms, mux.states[name])
                status.show_states(mux.states.values())
            if stop.requested or quit_requested or (status is not None and status.quit_requested):
                for summary in summaries.values():
                    summary.interrupted = stop.requested
                break
        if progress is not None:
            close_ended()
            progress.update(task, completed=sum(state.finished for state in mux.states.values()))
    return summaries


def _finish_many(console, mux, summaries: dict) -> int:
    """Per-source summaries, then the exit code: 130 interrupted, 2 when a source failed, else 0."""
    for name, summary in summaries.items():
        state = mux.states[name]
        console.print(f"[bold]{name}[/bold]")
        if state.status == "failed":
            console.print(f"  failed after {state.frames} frames: {state.error}", markup=False)
        if state.reconnects:
            console.print(f"  reconnected {state.reconnects} times")
        if summary.frames:
            _print_summary(console, summary, indent="  ")
    failed = [name for name, state in mux.states.items() if state.status == "failed"]
    interrupted = any(summary.interrupted for summary in summaries.values())
    if failed:
        print(f"streamsink: error: {len(failed)} of {len(summaries)} sources failed: {', '.join(failed)}", file=sys.stderr)
    return EXIT_INTERRUPTED if interrupted else (EXIT_USAGE if failed else EXIT_OK)


class RateMeter:
    """Frames per second over the last `span` frames.

    Frames leave the detector in bursts of a batch, so a rate from the last
    interval alone swings wildly; a window over many frames reads steadily.
    """

    def __init__(self, span: int = 50) -> None:
        from collections import deque

        self.ticks: deque[float] = deque(maxlen=span)

    def tick(self) -> float:
        self.ticks.append(time.monotonic())
        if len(self.ticks) < 2:
            return 0.0
        return (len(self.ticks) - 1) / max(self.ticks[-1] - self.ticks[0], 1e-9)


class LiveStatus:
    """Headless `watch`: a status line per source (fps, latency, drops, per-class state); `q` + Enter or Ctrl-C stops.

    With `states` (a callable giving the multiplexer's source states) the rows
    of sources without frames (connecting, failed) refresh twice a second even
    while no frame arrives, and a quit then calls `on_quit`, which ends the run.
    """

    def __init__(self, console, states=None, on_quit=None) -> None:
        self.console = console
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
        if getattr(source, "reconnects", 0):
            line.append(f"  reconnects {source.reconnects}")
        for label, state in result.states.items():
            line.append(f"  {label}: ")
            line.append("present" if state == "present" else "not here", style="bold green" if state == "present" else "dim")
        self._rows[source.name] = line
        self._refresh()

    def show_states(self, states) -> None:
        """Rows for sources without results to show: still connecting, or failed (with why)."""
        from rich.text import Text

        for state in states:
            if state.status == "failed":
                self._rows[state.name] = Text(f"{state.name}  failed: {state.error}", style="red")
            elif state.status == "waiting":
                self._rows[state.name] = Text(f"{state.name}  connecting ...", style="dim")
        self._refresh()

    def _refresh(self) -> None:
        from rich.console import Group

        self._live.update(Group(*self._rows.values()))


def _print_summary(console, summary: Summary, indent: str = "") -> None:
    elapsed = time.monotonic() - summary.started
    head = "interrupted" if summary.interrupted else "done"
    console.print(f"{indent}{head}: {summary.frames} frames in {elapsed:.1f} s ({summary.fps:.1f} fps)")
    if summary.dropped:
        console.print(f"{indent}dropped {summary.dropped} live frames to keep up")
    if summary.frames:
        span = (summary.last_pts or 0.0) - (summary.first_pts or 0.0)
        per_frame = span / max(summary.frames - 1, 1)
        for label, count in summary.present_frames.items():
            state = f"present in {count} frames (~{count * per_frame:.1f} s)" if count else "not found"
            console.print(f"{indent}  {label}: {state}")
    for output in summary.outputs:
        console.print(f"{indent}wrote {output}")


def cmd_watch(args: argparse.Namespace) -> int:
    from streamsink.sources import open_source
    from streamsink.writers import Window

    _check_common(args)
    if args.buffer < 1:
        raise UsageError(f"--buffer must be >= 1, got {args.buffer}")
    if args.retries < 0:
        raise UsageError(f"--retries must be >= 0, got {args.retries}")
    console = _stderr_console()
    windows = not args.headless and Window.available()
    if len(args.sources) > 1:
        return _watch_many(args, console, windows)
    with open_source(args.sources[0], buffer=args.buffer, retries=args.retries) as source:
        classes = _prompts(args, [source.name])[source.name]
        detector = _load_detector(args, console)
        video_path = Path(args.output) if args.output else None
        window = Window(f"streamsink: {source.name}") if windows else None
        try:
            summary = _annotate(args, source, detector, classes, video_path, args.jsonl, console, live=True, window=window)
        finally:
            if window is not None:
                window.close()
    _print_summary(console, summary)
    return EXIT_INTERRUPTED if summary.interrupted else EXIT_OK


def _watch_many(args: argparse.Namespace, console, windows: bool) -> int:
    """`watch` over several sources: one detector, a status row (or window) per source.

    Sources open in the background, so one that is down at the start is
    reported and retried like one that drops later, and never holds up the rest.
    """
    from streamsink.multiplex import Multiplexer

    mux = Multiplexer(args.sources, buffer=args.buffer, retries=args.retries)
    prompts = _prompts(args, mux.names)
    videos, jsonls = _outputs_many(mux.names, args.output, args.jsonl, record=False)
    with mux:
        detector = _load_detector(args, console)
        summaries = _annotate_many(args, mux, detector, prompts, videos, jsonls, console, live=True, windows=windows)
    return _finish_many(console, mux, summaries)


def cmd_explain(args: argparse.Namespace) -> int:
    from streamsink.detector.explain import explain
    from streamsink.detector.prompt import parse_classes

    parse_classes(args.prompt)
    if args.sinks < 1:
        raise UsageError(f"--sinks must be >= 1 for explain (it compares against a prompt with sinks), got {args.sinks}")
    image = _first_image(args.image)
    console = _stderr_console()
    detector = _load_detector(args, console, sinks=0)
    result = explain(detector, image, args.prompt, sinks=args.sinks, sink_init=args.sink_init)
    result.save(args.output)
    console.print(f"first fusion layer: {result.sink_share:.1%} of image-to-text attention went to {args.sinks} sinks")
    for label, (without, with_sinks) in result.class_share.items():
        console.print(f"  {label}: {without:.1%} of attention without sinks, {with_sinks:.1%} with")
    console.print(f"wrote {args.output}")
    return EXIT_OK


def _first_image(spec: str):
    """An image file as it is; anything else `open_source` reads gives its first frame."""
    from streamsink.detector.explain import load_image
    from streamsink.sources import IMAGE_SUFFIXES, open_source

    if Path(spec).suffix.lower() in IMAGE_SUFFIXES:
        return load_image(spec)
    with open_source(spec) as source:
        for frame in source:
            return frame.image
    raise UsageError(f"{spec} has no frames")


def cmd_eval(args: argparse.Namespace) -> int:
    import json

    from streamsink.engine import check_settings
    from streamsink.evaluate import coco_dataset, evaluate, parse_methods, plot, shapes_dataset, table

    methods = parse_methods(args.methods)
    check_settings(threshold=args.threshold, batch_size=args.batch_size)
    if not 0.0 <= args.min_score <= args.threshold:
        raise UsageError(f"--min-score must be in [0, --threshold={args.threshold}], got {args.min_score}")
    console = _stderr_console()
    if args.dataset == "shapes":
        dataset = shapes_dataset(args.seed, images=args.images, clips=args.clips, clip_frames=args.clip_frames)
    else:
        dataset = coco_dataset(args.dataset, args.images_dir, limit=args.limit)
    args.sinks, args.sink_init = 0, "mean"
    detector = _load_detector(args, console)
    with console.status("evaluating ...") as status:
        result = evaluate(
            detector, dataset, methods, threshold=args.threshold, min_score=args.min_score, batch_size=args.batch_size,
            progress=lambda name: status.update(f"evaluating {name} on {dataset.name} ..."),
        )
    from rich.console import Console

    Console(highlight=False, width=max(Console().width, 110)).print(table(result))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result.to_json(), indent=2) + "\n")
        console.print(f"wrote {args.json}")
    if args.plot:
        console.print(f"wrote {plot(result, args.plot)}")
    return EXIT_OK


COMMANDS = {"process": cmd_process, "watch": cmd_watch, "explain": cmd_explain, "eval": cmd_eval}
