"""Benchmark: a footage archive on Ray against the same files one after another in this process.

Both sides run the same per-file code (`streamsink.archive.ArchiveWorker`:
the engine, drawing, mp4 and JSONL of `streamsink process`) with the same
checkpoint on the same shapes-world clips. One after another: one model,
loaded once here (after an untimed warm-up load that pays the imports),
files in turn with the engine's default threads. Archive:
`process_archive` on a local Ray instance (started once, before timing), one
replica per CPU, each with its share of the cores; its time includes starting
the replicas and loading their models. The two alternate (A B A B ...) so
background load hits both alike; medians and their ratio are printed, end to
end and once the model is loaded ("steady": the busiest replica's time on files).

    python benchmarks/bench_archive.py [--kind bench-tiny] [--clips 8] [--frames 60] [--rounds 2] [--workers N]
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402


def sequential(model: str, clips: list[Path], out: Path) -> dict:
    """Files one after another in this process, one model loaded once."""
    from streamsink import RunSettings
    from streamsink.archive import ArchiveWorker, Job, ReplicaSettings
    from streamsink.archive.outputs import names_of
    from streamsink.detector.prompt import parse_classes

    started = time.perf_counter()
    settings = RunSettings(model=model, device="cpu", threshold=common.THRESHOLD, batch_size=4)
    worker = ArchiveWorker(ReplicaSettings(settings, parse_classes(common.PROMPT), cpus=float(os.cpu_count() or 1)))
    worker.ready()
    loaded = time.perf_counter()
    frames = 0
    out.mkdir(parents=True, exist_ok=True)
    for index, (clip, name) in enumerate(zip(clips, names_of([str(c) for c in clips]))):
        result = worker.process(Job(index, name, str(clip), str(out), f"{index:012x}"))
        if result.status != "done":
            raise RuntimeError(f"{clip}: {result.error}")
        frames += result.frames
    end = time.perf_counter()
    return {"seconds": end - started, "steady": end - loaded, "frames": frames}


def archive(model: str, clips: list[Path], out: Path, workers: int | None) -> dict:
    """The same files through `process_archive` on the Ray instance already running."""
    from streamsink.archive import process_archive

    replica_of: dict[str, str] = {}
    started = time.perf_counter()
    report = process_archive([str(c) for c in clips], out, prompt=common.PROMPT, model=model, device="cpu",
                             threshold=common.THRESHOLD, workers=workers,
                             on_submit=lambda name, actor: replica_of.__setitem__(name, actor._actor_id.hex()))
    seconds = time.perf_counter() - started
    if report.failed:
        raise RuntimeError(f"{report.failed[0].input}: {report.failed[0].error}")
    busy: dict[str, float] = {}
    for result in report.done:
        busy[replica_of[result.name]] = busy.get(replica_of[result.name], 0.0) + result.elapsed
    return {"seconds": seconds, "steady": max(busy.values()), "frames": report.frames, "workers": report.workers}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", default="bench-tiny", choices=common.KINDS)
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--frames", type=int, default=60, help="frames per clip")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, help="replicas (default: one per CPU)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import ray

    model = str(common.checkpoint(args.kind))
    clips = [common.footage(args.frames, args.width, args.height, seed=100 + i) for i in range(args.clips)]
    scratch = Path(tempfile.mkdtemp(prefix="streamsink-archive-"))
    t = time.perf_counter()
    from transformers.utils import logging as transformers_logging

    from streamsink.detector import SinkDetector

    transformers_logging.disable_progress_bar()
    SinkDetector.from_pretrained(model, device="cpu")  # imports and a cold model load, out of the sequential timing
    warm_up = time.perf_counter() - t
    t = time.perf_counter()
    ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, logging_level=logging.WARNING)
    ray_start = time.perf_counter() - t
    last: dict[str, dict] = {}
    serial = itertools.count()

    def timed(name: str, run) -> float:
        last.setdefault(name + " runs", []).append(run(scratch / f"{name}-{next(serial)}"))
        return last[name + " runs"][-1]["seconds"]

    try:
        runs = common.interleave({
            "sequential": lambda: timed("sequential", lambda out: sequential(model, clips, out)),
            "archive": lambda: timed("archive", lambda out: archive(model, clips, out, args.workers)),
        }, args.rounds)
    finally:
        ray.shutdown()
        shutil.rmtree(scratch, ignore_errors=True)
    frames = last["sequential runs"][0]["frames"]
    workers = last["archive runs"][0]["workers"]
    print(f"# benchmark: footage archive on Ray, {args.kind}, {args.clips} clips x {args.frames} frames "
          f"{args.width}x{args.height}, {args.rounds} rounds")
    print(f"# {common.machine()}")
    figures = {}
    for name, label in (("sequential", "one after another, this process"),
                        ("archive", f"archive, {workers} replicas on local Ray")):
        total = common.median(runs[name])
        steady = common.median([r["steady"] for r in last[name + " runs"]])
        figures[name] = (total, steady)
        print(f"{label}: {frames} frames in {total:.2f} s = {frames / total:.1f} frames/s end to end, "
              f"{frames / steady:.1f} frames/s once loaded  (runs: {', '.join(f'{s:.2f}' for s in runs[name])})")
    (seq_total, seq_steady), (arc_total, arc_steady) = figures["sequential"], figures["archive"]
    print(f"archive / one after another: x{seq_total / arc_total:.2f} end to end, x{seq_steady / arc_steady:.2f} "
          f"once loaded")
    print(f"not counted: ray.init {ray_start:.1f} s; this process's imports and first model load {warm_up:.1f} s "
          "(each replica pays its own, inside the archive's time)")
    return {"kind": args.kind, "clips": args.clips, "frames": frames, "workers": workers, "ray_init_s": ray_start,
            "sequential_s": runs["sequential"], "archive_s": runs["archive"]}


if __name__ == "__main__":
    main()
