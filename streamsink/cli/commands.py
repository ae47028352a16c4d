"""The subcommands: `process`, `watch`, `explain`, `eval`.

`process` and `watch` build one `RunSettings` from the command line, decide
where each source's outputs go, and hand the rest to the run path
(`streamsink.api.detect_sources`) and the annotate loop
(`streamsink.annotate.annotate`); one source is the case N = 1 of several,
with its own progress bar and its errors raised as they are. Heavy imports
happen inside the commands, so `streamsink --help` is instant.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from streamsink.cli.console import (
    ArchiveProgress,
    FileProgress,
    LiveStatus,
    NoDisplay,
    SourcesProgress,
    StopFlag,
    finish_many,
    print_archive_report,
    print_summary,
    show_log,
    stderr_console,
)
from streamsink.cli.live import check_prompts_with, events_for, live_view, serve_address
from streamsink.cli.parser import EXIT_INTERRUPTED, EXIT_OK, UsageError, settings_from_args
from streamsink.settings import NO_PROFILE, RunSettings


def _load(settings: RunSettings, console, sinks: int | None = None):
    from streamsink.api import load_detector

    with console.status(f"loading {settings.model} ..."):
        detector = load_detector(settings, sinks=sinks, quiet=True)
    backend = getattr(detector, "backend", None)  # any detector object will do; a SinkDetector says what runs it
    if backend is not None:
        shown = f"{backend}, {detector.precision}" if backend == "openvino" else backend
        console.print(f"detector: {shown} on {detector.device}", style="dim", markup=False)
    if backend == "openvino":
        _show_conversions()
    return detector


def _show_conversions() -> None:
    """Print OpenVINO's "converting" line: the first frame of a new size waits seconds to minutes for it."""
    show_log()
    logging.getLogger("streamsink.detector.openvino").setLevel(logging.INFO)


def _check(args: argparse.Namespace, *, local: bool = True) -> RunSettings:
    """Every cheap check before a source is opened or a model loaded; the run's settings.

    `local`: whether this machine's devices matter (not for a remote Ray cluster).
    """
    from streamsink.detector.prompt import parse_classes

    for prompt in args.prompt:
        parse_classes(prompt)
    settings = settings_from_args(args)
    if getattr(args, "mqtt", None) is not None:
        from streamsink.writers.mqtt import parse_mqtt_url

        try:
            parse_mqtt_url(args.mqtt)
        except ValueError as error:
            raise UsageError(str(error)) from None
    if local:
        from streamsink.detector.device import resolve_backend, resolve_device

        resolve_backend(settings.backend, resolve_device(settings.device))
    return settings


def _prompts(args: argparse.Namespace, names: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Each source's classes: one --prompt for all, or one per source in the order given."""
    from streamsink.detector.prompt import parse_classes

    if len(args.prompt) == 1:
        return dict.fromkeys(names, parse_classes(args.prompt[0]))
    if len(args.prompt) != len(names):
        raise UsageError(f"give --prompt once for all sources or once per source: got {len(args.prompt)} for {len(names)} source(s)")
    return {name: parse_classes(prompt) for name, prompt in zip(names, args.prompt)}


def _annotate(settings: RunSettings, frames, prompts: Mapping[str, tuple[str, ...]], targets: Mapping[str, Any],
              display, *, source_of: Callable[[str], Any], ended: Callable[[str], int | None] | None = None,
              live: bool = False, raw: bool = False, detector: Any = None, summaries: dict | None = None,
              board: Any = None, events: Any = None) -> dict:
    """Detect, draw, write and count every source's frames; the summaries, one per source.

    board: the live page's `LiveBoard`; its prompts are the run's (changeable while it goes on).
    events: the `MqttPublisher` of --mqtt.
    """
    from streamsink.annotate import Outputs, Summary, annotate, engine_render
    from streamsink.api import detect_sources
    from streamsink.render import Renderer

    summaries = summaries if summaries is not None else {name: Summary(prompts[name]) for name in prompts}
    renderer = Renderer()
    with ExitStack() as stack, StopFlag() as stop:
        outputs = stack.enter_context(Outputs(targets, source_of, raw=raw, ended=ended))
        stack.enter_context(display)
        # Recorded footage is drawn in the engine's finish stage, overlapping encoding here;
        # live frames are drawn in the loop, where their fps and latency are known.
        render = engine_render(renderer) if not live and any(t.video is not None for t in targets.values()) else None
        if board is not None:
            prompts = board.prompts
        observers = [each for each in (events, board, display) if each is not None]

        def on_result(result, fps: float, latency_ms: float | None) -> bool:
            return all([observer.on_result(result, fps, latency_ms) for observer in observers])

        results = detect_sources(frames, prompts, settings, detector=detector, render=render)
        annotate(results, outputs, summaries, live=live, renderer=renderer, on_result=on_result,
                 should_stop=lambda: stop.requested)
    return summaries


def default_outputs(name: str, output: str | None, jsonl: str | None) -> tuple[Path, str]:
    """`out/<name>.mp4` and a JSONL beside the video unless the user chose; -o naming a folder gets <name>.mp4 in it."""
    if output and (Path(output).is_dir() or output.endswith(("/", os.sep))):
        video = Path(output) / f"{name}.mp4"
    else:
        video = Path(output) if output else Path("out") / f"{name}.mp4"
    return video, jsonl if jsonl else str(video.with_suffix(".jsonl"))


def cmd_process(args: argparse.Namespace, *, detector: Any = None) -> int:
    """`detector`: an already loaded one (benchmarks pass a null detector); otherwise the settings load it."""
    from streamsink.annotate import Target
    from streamsink.sources import expand_inputs, open_source

    inputs = list(args.inputs)
    if args.ray is not None and _is_input(args.ray):  # `--ray clips/`: the folder is an input, not an address
        inputs.insert(0, args.ray)
        args.ray = "local"
    if args.ray is None and (args.workers is not None or args.overwrite):
        raise UsageError("--workers and --overwrite go with --ray")
    settings = _check(args, local=args.ray in (None, "local"))
    if not inputs:
        raise UsageError("process needs at least one INPUT: a video, a folder or a glob (see 'streamsink process --help')")
    specs = expand_inputs(inputs)
    if args.ray is not None:
        return _process_archive(args, settings, specs)
    if specs != inputs or len(specs) > 1:
        return _process_many(args, settings, specs, detector)
    console = stderr_console()
    with open_source(specs[0], buffer=settings.buffer, retries=settings.retries) as source:
        if source.is_live:
            raise UsageError(f"{specs[0]} is a live source; use 'streamsink watch {specs[0]}'")
        classes = _prompts(args, [source.name])[source.name]
        video_path, jsonl_path = default_outputs(source.name, args.output, args.jsonl)
        _refuse_overwriting_input(source.path, video_path, jsonl_path)
        if detector is None:
            detector = _load(settings, console)
        with events_for(args) as events:
            summaries = _annotate(settings, source, {source.name: classes}, {source.name: Target(video_path, jsonl_path)},
                                  FileProgress(console, source.name, source.frame_count), source_of=lambda _: source,
                                  raw=args.raw, detector=detector, events=events)
    summary = summaries[source.name]
    print_summary(console, summary)
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


def _targets(names: Sequence[str], videos: Mapping[str, Any], jsonls: Mapping[str, Any], windows: bool = False) -> dict:
    from streamsink.annotate import Target

    return {name: Target(videos[name], jsonls[name], windows) for name in names}


def _process_many(args: argparse.Namespace, settings: RunSettings, specs: Sequence[str | int], detector: Any) -> int:
    from streamsink.annotate import Summary
    from streamsink.multiplex import Multiplexer

    mux = Multiplexer(specs, buffer=settings.buffer, retries=settings.retries)
    live = [state.spec for state in mux.states.values() if state.live]
    if live:
        raise UsageError(f"{live[0]} is a live source; use 'streamsink watch'")
    prompts = _prompts(args, mux.names)
    videos, jsonls = _outputs_many(mux.names, args.output, args.jsonl, record=True)
    for state in mux.states.values():  # every output against every input: clip.mov's out/clip.mp4 may be an input
        _refuse_overwriting_input(Path(str(state.spec)), *videos.values(), *jsonls.values())
    console = stderr_console()
    summaries = {name: Summary(prompts[name]) for name in mux.names}
    with mux, events_for(args) as events:
        if detector is None:
            detector = _load(settings, console)
        _annotate(settings, mux, prompts, _targets(mux.names, videos, jsonls), SourcesProgress(console, mux, summaries),
                  source_of=lambda name: mux.states[name].source, ended=_ended(mux), raw=args.raw, detector=detector,
                  summaries=summaries, events=events)
    return finish_many(console, mux, summaries)


def _ended(mux) -> Callable[[str], int | None]:
    """A multiplexed source's final frame count once it has ended (done or failed), None while it runs."""
    return lambda name: mux.states[name].frames if mux.states[name].finished else None


def _process_archive(args: argparse.Namespace, settings: RunSettings, specs: Sequence[str | int]) -> int:
    """`process --ray`: whole files spread over Ray actors (streamsink.archive), with the same settings."""
    from streamsink.archive import process_archive

    if len(args.prompt) != 1:
        raise UsageError("--ray takes one --prompt for all files")
    if args.mqtt is not None:
        raise UsageError("--mqtt does not go with --ray (each file's JSONL has its states); run without --ray")
    if args.jsonl is not None:
        raise UsageError("--ray writes <name>.jsonl beside each video in the -o folder; --jsonl does not apply")
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    _outputs_many([], args.output, None, record=True)  # checks that -o names a folder
    outdir = Path(args.output) if args.output else Path("out")
    console = stderr_console()
    with ArchiveProgress(console, len(specs)) as progress:
        report = _call_archive(process_archive,
            specs, outdir, prompt=args.prompt[0], settings=settings, raw=args.raw,
            address=None if args.ray == "local" else args.ray, workers=args.workers, overwrite=args.overwrite,
            progress=progress.update,
        )
    return print_archive_report(console, report, outdir)


def _refuse_overwriting_input(source_path: Path | None, *outputs) -> None:
    """Writing an output over the input would destroy it while it is still being read."""
    if source_path is None:
        return
    for output in outputs:
        if output is not None and str(output) != "-" and Path(output).resolve() == Path(source_path).resolve():
            raise UsageError(f"output {output} is the input file; choose another path with -o / --jsonl")


def _call_archive(process_archive, *args, **kwargs):
    """process_archive, with an unreachable cluster as a one-line usage error."""
    try:
        return process_archive(*args, **kwargs)
    except ConnectionError as error:
        address = kwargs.get("address") or "the local instance"
        raise UsageError(f"cannot reach the Ray cluster at {address}: {error}") from None


def cmd_watch(args: argparse.Namespace) -> int:
    from streamsink.annotate import Target
    from streamsink.multiplex import RUNNING, SourceState
    from streamsink.sources import open_source
    from streamsink.writers import Window

    settings = _check(args)
    console = stderr_console()
    windows = not args.headless and Window.available()
    address = serve_address(args, windows)
    if len(args.sources) > 1:
        return _watch_many(args, settings, console, windows, address)
    with open_source(args.sources[0], buffer=settings.buffer, retries=settings.retries) as source, ExitStack() as page:
        classes = _prompts(args, [source.name])[source.name]
        state = SourceState(source.name, args.sources[0], source.is_live, RUNNING, source=source)
        board = page.enter_context(live_view(address, args.token, {source.name: classes}, lambda: [state], console))
        events = page.enter_context(events_for(args))
        detector = _load(settings, console)
        check_prompts_with(board, detector)
        target = Target(Path(args.output) if args.output else None, args.jsonl, windows)
        display = NoDisplay() if windows else LiveStatus(console, source_of=lambda _: source)
        summaries = _annotate(settings, source, {source.name: classes}, {source.name: target}, display,
                              source_of=lambda _: source, live=True, raw=args.raw, detector=detector, board=board,
                              events=events)
    summary = summaries[source.name]
    print_summary(console, summary)
    return EXIT_INTERRUPTED if summary.interrupted else EXIT_OK


def _watch_many(args: argparse.Namespace, settings: RunSettings, console, windows: bool, address: Any) -> int:
    """`watch` over several sources: one detector, a status row (or window) per source.

    Sources open in the background, so one that is down at the start is
    reported and retried like one that drops later, and never holds up the rest.
    """
    from streamsink.annotate import Summary
    from streamsink.multiplex import Multiplexer

    mux = Multiplexer(args.sources, buffer=settings.buffer, retries=settings.retries)
    prompts = _prompts(args, mux.names)
    videos, jsonls = _outputs_many(mux.names, args.output, args.jsonl, record=False)
    summaries = {name: Summary(prompts[name]) for name in mux.names}
    display = NoDisplay() if windows else LiveStatus(console, source_of=lambda name: mux.states[name],
                                                     states=lambda: list(mux.states.values()), on_quit=mux.close)
    with mux, live_view(address, args.token, prompts, lambda: list(mux.states.values()), console) as board, \
            events_for(args) as events:
        detector = _load(settings, console)
        check_prompts_with(board, detector)
        _annotate(settings, mux, prompts, _targets(mux.names, videos, jsonls, windows), display,
                  source_of=lambda name: mux.states[name].source, ended=_ended(mux), live=True, raw=args.raw,
                  detector=detector, summaries=summaries, board=board, events=events)
    return finish_many(console, mux, summaries)


def cmd_explain(args: argparse.Namespace) -> int:
    from streamsink.detector.explain import explain
    from streamsink.detector.prompt import parse_classes

    parse_classes(args.prompt)
    if args.sinks < 1:
        raise UsageError(f"--sinks must be >= 1 for explain (it compares against a prompt with sinks), got {args.sinks}")
    image = _first_image(args.image)
    console = stderr_console()
    # the picture reads attention weights, which only the torch forward returns
    settings = RunSettings(model=args.model, device=args.device, sink_init=args.sink_init, backend="torch").validate()
    detector = _load(settings, console, sinks=0)
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

    from streamsink.evaluate import (Method, coco_dataset, evaluate, parse_methods, plot, plot_states, shapes_dataset,
                                     state_table, table)

    methods = parse_methods(args.methods)
    settings = RunSettings(model=args.model, device=args.device, threshold=args.threshold, batch_size=args.batch_size,
                           class_thresholds=args.class_thresholds, sinks=0, profile=args.profile,
                           backend=args.backend).validate()
    lowest = min([settings.threshold, *settings.class_thresholds.values()])
    if not 0.0 <= args.min_score <= lowest:
        raise UsageError(f"--min-score must be in [0, the lowest threshold {lowest:g}], got {args.min_score}")
    console = stderr_console()
    if settings.profile not in (None, NO_PROFILE):
        from streamsink.profile import load_profile

        chosen = load_profile(settings.profile)
        name = f"sinks-{chosen.sink_init}-{chosen.sinks}" if chosen.sinks else "stock"
        if name not in [m.name for m in methods]:
            methods.append(Method(name, sinks=chosen.sinks, sink_init=chosen.sink_init))
        own = "".join(f", {label} {value:g}" for label, value in settings.class_thresholds.items())
        console.print(f"profile {settings.profile}: threshold {settings.threshold:g}{own}, method {name}")
    if args.dataset == "shapes":
        dataset = shapes_dataset(args.seed, images=args.images, clips=args.clips, clip_frames=args.clip_frames)
    else:
        dataset = coco_dataset(args.dataset, args.images_dir, limit=args.limit)
    detector = _load(settings, console)
    with console.status("evaluating ...") as status:
        result = evaluate(
            detector, dataset, methods, threshold=settings.threshold, min_score=args.min_score,
            class_thresholds=settings.class_thresholds, batch_size=args.batch_size,
            progress=lambda name: status.update(f"evaluating {name} on {dataset.name} ..."),
        )
    from rich.console import Console

    out = Console(highlight=False, width=max(Console().width, 110))
    out.print(table(result))
    if result.states:
        out.print(state_table(result))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result.to_json(), indent=2) + "\n")
        console.print(f"wrote {args.json}")
    if args.plot:
        console.print(f"wrote {plot(result, args.plot)}")
    if args.states_plot:
        if not result.timeline:
            raise UsageError("--states-plot needs clips (--clips >= 1 with --dataset shapes)")
        console.print(f"wrote {plot_states(result, args.states_plot)}")
    return EXIT_OK


def cmd_calibrate(args: argparse.Namespace) -> int:
    from streamsink.calibrate import calibrate
    from streamsink.evaluate import coco_dataset, shapes_dataset
    from streamsink.profile import PROFILE_NAME

    try:
        sink_counts = sorted({int(n) for n in args.sinks.split(",") if n.strip()})
    except ValueError:
        raise UsageError(f"--sinks must be comma-separated counts such as 0,4,16, got {args.sinks!r}") from None
    if not sink_counts or min(sink_counts) < 0 or max(sink_counts) > 24:
        raise UsageError(f"--sinks counts must lie in 0..24, got {args.sinks!r}")
    if not 0.0 <= args.max_false_alarms <= 1.0:
        raise UsageError(f"--max-false-alarms must be a rate in [0, 1], got {args.max_false_alarms}")
    settings = RunSettings(model=args.model, device=args.device, batch_size=args.batch_size, sinks=0,
                           profile=NO_PROFILE, backend=args.backend).validate()
    if args.dataset == "shapes":
        if args.clips < 1 or args.clip_frames < 1:
            raise UsageError(f"--clips and --clip-frames must be >= 1, got {args.clips} and {args.clip_frames}")
        dataset = shapes_dataset(args.seed, images=0, clips=args.clips, clip_frames=args.clip_frames)
    else:
        dataset = coco_dataset(args.dataset, args.images_dir, limit=args.limit)
    local = Path(args.model) / "config.json"
    output = Path(args.output) if args.output else (Path(args.model) / PROFILE_NAME if local.is_file() else Path(PROFILE_NAME))
    console = stderr_console()
    detector = _load(settings, console)
    with console.status("calibrating ...") as status:
        result = calibrate(detector, dataset, model=args.model, max_false_alarms=args.max_false_alarms,
                           sink_counts=sink_counts, batch_size=args.batch_size, per_class=not args.one_threshold,
                           progress=lambda name: status.update(f"measuring {name} on {dataset.name} ..."))
    for line in result.report():
        console.print(line, highlight=False, soft_wrap=True)
    console.print(f"wrote {result.profile.save(output)}")
    return EXIT_OK


def cmd_gst_path(args: argparse.Namespace) -> int:
    """`export GST_PLUGIN_PATH=$(streamsink gst-path)`: the folder of GStreamer's Python loader file for this environment."""
    from streamsink.gst import plugin_path

    print(plugin_path())
    return EXIT_OK


COMMANDS = {"process": cmd_process, "watch": cmd_watch, "explain": cmd_explain, "eval": cmd_eval,
            "calibrate": cmd_calibrate, "gst-path": cmd_gst_path}
