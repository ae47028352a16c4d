"""The command line's words: the parser, and how its options become one `RunSettings`.

Options that change how sources are detected are `RunSettings` fields under
the same name (`--batch-size` is `batch_size`), so `settings_from_args` picks
up a new field without being edited; the other options say where outputs go
(`OUTPUT_OPTIONS`). A test walks the parser and holds every option to one of
the two.
"""

from __future__ import annotations

import argparse

from streamsink.settings import BACKENDS, DEFAULT_MODEL, RunSettings, SettingsError

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
    from streamsink.cli import __doc__ as cli_doc

    parser = OneLineParser(prog="streamsink", description=cli_doc.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"streamsink {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    commands.required = True

    def add_common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--prompt", "-p", required=True, action="append", help='classes to find, comma-separated: "dog,tractor"; with several sources give it once for all or once per source, in order')
        sub.add_argument("--model", "-m", default=DEFAULT_MODEL, help=f"hub id or local checkpoint directory (default {DEFAULT_MODEL})")
        sub.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
        sub.add_argument("--batch-size", type=int, default=4, help="frames per forward pass (default 4)")
        sub.add_argument("--threshold", type=float, default=0.3, help="minimum class score, 0..1 (default 0.3)")
        add_class_thresholds(sub)
        sub.add_argument("--sinks", type=int, default=16, help="attention-sink tokens appended to the prompt; 0 = stock model (default 16)")
        sub.add_argument("--sink-init", choices=("mean", "random", "brackets"), default="mean", help="how sink embeddings are set (default mean)")
        sub.add_argument("--no-smooth", action="store_true", help="show raw per-frame detections, no temporal smoothing")
        sub.add_argument("--raw", action="store_true", help="add the raw detections to each JSONL line as 'raw'")
        sub.add_argument("--dtype", choices=("auto", "fp32", "fp16", "bf16"), default="auto", help="auto: fp16 on CUDA, fp32 on CPU")
        add_backend(sub)
        sub.add_argument("--threads", type=int, help="CPU: threads of the forward pass, torch's or OpenVINO's (default: a small torch model leaves decode/encode a core, OpenVINO and big models take every core; 0 = the library's own)")
        sub.add_argument("--compile", action="store_true", help="run the forward pass through torch.compile (falls back if it fails)")
        sub.add_argument("--cuda-graphs", action="store_true", help="CUDA: capture the forward pass as a CUDA graph at the fixed batch and size")
        add_profile(sub)
        sub.add_argument("--mqtt", metavar="URL", help="publish states and their changes: mqtt://[user:pass@]host[:port]/prefix (retained prefix/<source>/<class>, events at prefix/events)")

    def add_class_thresholds(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--class-thresholds", type=class_thresholds, default={}, metavar="CLASS=T,...",
                         help='a threshold of their own for some classes: "triangle=0.4,star=0.35" (default: the profile\'s)')

    def add_backend(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--backend", choices=BACKENDS, default="auto", help="what runs the per-frame graph: auto (OpenVINO on a CPU where it is installed), torch, or openvino (CPU; streamsink[openvino])")

    def add_profile(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--profile", metavar="FILE", help="threshold and sinks from 'streamsink calibrate' (default: the model folder's profile.json if it has one; 'none' for no profile); flags given explicitly win")

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
    watch.add_argument("--headless", action="store_true", help="no window even if a display exists (and no page unless --serve)")
    watch.add_argument("--serve", nargs="?", const="8080", metavar="[HOST:]PORT", help="serve the live view as a web page (bare: 127.0.0.1:8080); an address off loopback needs --token")
    watch.add_argument("--token", help="--serve: every request must carry it (?token= or Authorization: Bearer); required off loopback")
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
    evaluate.add_argument("--clips", type=int, default=3, help="shapes: clips for the smoother and state rows, 0 for none (default 3)")
    evaluate.add_argument("--clip-frames", type=int, default=150, help="shapes: frames per clip (default 150, 6 s)")
    evaluate.add_argument("--methods", default=DEFAULT_METHODS, help=f"comma-separated (default {DEFAULT_METHODS})")
    evaluate.add_argument("--threshold", type=float, default=0.3, help="display threshold of the state rows (default 0.3, or the profile's)")
    add_class_thresholds(evaluate)
    evaluate.add_argument("--min-score", type=float, default=0.01, help="lowest score kept for the curves (default 0.01)")
    evaluate.add_argument("--batch-size", type=int, default=8)
    evaluate.add_argument("--device", default="auto")
    add_backend(evaluate)
    evaluate.add_argument("--json", help="write the figures here as JSON")
    evaluate.add_argument("--plot", help="write AP50 against FPR_bg, one curve per method, as PNG")
    evaluate.add_argument("--states-plot", metavar="PNG", help="write per-class timelines of truth and states for the first clip")
    add_profile(evaluate)

    commands.add_parser("gst-path", help="print the folder for GST_PLUGIN_PATH that makes the 'streamsink' GStreamer element available")

    calibrate = commands.add_parser("calibrate", help="pick threshold and sinks for a false-alarm budget on a labelled set; writes a profile")
    calibrate.add_argument("--model", "-m", default=DEFAULT_MODEL, help=f"hub id or local checkpoint directory (default {DEFAULT_MODEL})")
    calibrate.add_argument("--dataset", default="shapes", help="'shapes' (clips of the built-in world) or a COCO-format annotation file (its images)")
    calibrate.add_argument("--images-dir", help="COCO: folder of the images (default: beside the annotation file)")
    calibrate.add_argument("--limit", type=int, default=64, help="COCO: calibrate on the first N images (default 64)")
    calibrate.add_argument("--seed", type=int, default=2, help="shapes: seed of the draw (default 2)")
    calibrate.add_argument("--clips", type=int, default=24, help="shapes: clips (default 24: fewer fit the budget to their own draw)")
    calibrate.add_argument("--clip-frames", type=int, default=150, help="shapes: frames per clip (default 150)")
    calibrate.add_argument("--max-false-alarms", type=float, required=True, metavar="RATE", help="budget on the false-'present' rate, e.g. 0.02")
    calibrate.add_argument("--sinks", default="0,4,8,16,24", help="sink counts to try, comma-separated (default 0,4,8,16,24)")
    calibrate.add_argument("--device", default="auto")
    add_backend(calibrate)
    calibrate.add_argument("--batch-size", type=int, default=8)
    calibrate.add_argument("--one-threshold", action="store_true", help="one display threshold for every class (default: also try a threshold per class and keep it where it misses fewer)")
    calibrate.add_argument("-o", "--output", help="profile to write (default: profile.json in a local model's folder, else ./profile.json)")
    return parser


def _version() -> str:
    from streamsink import __version__

    return __version__



# What `process`/`watch` options that are not RunSettings fields decide, and how a caller of
# `streamsink.run` or `process_archive` gets the same (the test of the parser holds every option to this).
OUTPUT_OPTIONS = {
    "prompt": "run(source, prompt) / process_archive(prompt=)",
    "inputs": "run(source) / process_archive(inputs)",
    "sources": "run(source)",
    "no_smooth": "RunSettings.smooth (inverted)",
    "raw": "Result.raw / process_archive(raw=)",
    "output": "the caller writes / process_archive(outdir)",
    "jsonl": "streamsink.frame_record / OUTDIR/<name>.jsonl",
    "headless": "streamsink.Window, or not",
    "serve": "streamsink.serve.WebServer(LiveBoard(...), host, port)",
    "token": "streamsink.serve.WebServer(token=)",
    "mqtt": "streamsink.writers.mqtt.MqttPublisher(url).on_result(result)",
    "ray": "process_archive(address=)",
    "workers": "process_archive(workers=)",
    "overwrite": "process_archive(overwrite=)",
}


def class_thresholds(text: str) -> dict[str, float]:
    """`--class-thresholds "triangle=0.4, star=0.35"` as {"triangle": 0.4, "star": 0.35}."""
    out: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, equals, value = item.partition("=")
        try:
            if not equals or not name.strip():
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected CLASS=THRESHOLD items separated by commas, got {item!r}") from None
    return out


# Options given in other units on the command line than in RunSettings.
_FROM_FLAG = {"max_latency": lambda ms: ms / 1000.0}  # milliseconds on the command line, seconds in a run


def settings_from_args(args: argparse.Namespace) -> RunSettings:
    """The RunSettings of a `process`/`watch` command line, validated (a bad value is a `SettingsError`)."""
    values = {}
    for name in RunSettings.field_names():
        if hasattr(args, name):
            value = getattr(args, name)
            values[name] = _FROM_FLAG[name](value) if name in _FROM_FLAG else value
    if hasattr(args, "no_smooth"):
        values["smooth"] = not args.no_smooth
    return RunSettings(**values).validate()


def flag_message(error: SettingsError) -> str:
    """A settings error in the command line's words when it has a flag of that name: "--sinks must be >= 0, got -1"."""
    flag = f"--{error.name.replace('_', '-')}"
    if error.words == error.name and flag in _flags():
        return f"{flag} {error.rule}"
    return str(error)


def _flags() -> set[str]:
    flags: set[str] = set()
    for action in build_parser()._actions:
        for sub in getattr(action, "choices", None) or {}:
            if isinstance(action.choices[sub], argparse.ArgumentParser):
                flags.update(f for a in action.choices[sub]._actions for f in a.option_strings)
    return flags
