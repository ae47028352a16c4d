"""Benchmark 10: live latency of `streamsink watch`, capture to JSONL line, with and without recording.

25 fps live streams on loopback (the demo clip looped, MPEG-TS over HTTP)
feed `streamsink watch --headless --jsonl` with the demo model, one source and
four, without and with `-o` recording. Latency is each JSONL line's own
`latency_ms` (capture to the line written), over the lines after the first
`--settle` seconds. The detector's per-frame time is its forward pass and
scoring on one frame of the clip, measured in this process beforehand with
the thread count `watch` uses; the target is p95 <= 3x that in every case.

    python benchmarks/bench_latency.py [--seconds 30] [--settle 8] [--backend torch]
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

DEMO_MODEL = common.ROOT / "samples" / "models" / "shapes-gdino"
DEMO_CLIP = common.ROOT / "samples" / "clips" / "shapes_demo.mp4"
PROMPT = "circle,square,triangle,star,dog"


def per_frame_ms(frames: list, backend: str, rounds: int = 30) -> float:
    """The detector's forward pass + scoring on one frame, median of `rounds`, with watch's thread count."""
    import torch

    from streamsink.api import load_detector
    from streamsink.engine import default_threads
    from streamsink.settings import RunSettings
    from streamsink.stages import is_heavy

    detector = load_detector(RunSettings(model=str(DEMO_MODEL), backend=backend).validate())
    previous = torch.get_num_threads()
    torch.set_num_threads(default_threads(heavy=is_heavy(detector)))
    try:
        times = []
        for i in range(rounds + 3):
            started = time.perf_counter()
            detector.detect([frames[i % len(frames)]], PROMPT.split(","), threshold=0.2)
            times.append(time.perf_counter() - started)
    finally:
        torch.set_num_threads(previous)
    return statistics.median(times[3:]) * 1000


def one_case(urls: list[str], record: bool, seconds: float, settle: float, backend: str, folder: Path) -> dict:
    out = folder / "out"
    args = [sys.executable, "-m", "streamsink", "watch", *urls, "-p", PROMPT, "-m", str(DEMO_MODEL), "--headless",
            "--backend", backend, "--jsonl", str(out / "live.jsonl") if len(urls) == 1 else str(out)]
    if record:
        args += ["-o", str(out / "live.mp4") if len(urls) == 1 else str(out)]
    with open(folder / "watch.log", "w") as log:
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 120
    while not any(path.stat().st_size for path in out.glob("*.jsonl")):  # the first line: the model has loaded
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError((folder / "watch.log").read_text()[-2000:])
        time.sleep(0.2)
    started = time.monotonic()
    time.sleep(settle + seconds)
    process.send_signal(signal.SIGINT)
    process.wait(60)
    latencies, detected = [], 0
    for path in out.glob("*.jsonl"):
        records = [json.loads(line) for line in path.read_text().splitlines()]
        first = records[0]["pts"] if records else 0.0
        kept = [r for r in records if r["pts"] - first >= settle]
        latencies += [r["latency_ms"] for r in kept]
        detected += len(kept)
        path.unlink()
    for path in out.glob("*.mp4"):
        path.unlink()
    latencies.sort()
    return {"p50": statistics.median(latencies), "p95": latencies[int(0.95 * (len(latencies) - 1))],
            "fps": detected / (time.monotonic() - started - settle)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--settle", type=float, default=8.0)
    parser.add_argument("--backend", default="torch")
    args = parser.parse_args(argv)

    import av

    from streamsink.testing.streams import LiveStream

    with av.open(str(DEMO_CLIP)) as container:
        frames = [frame.to_ndarray(format="rgb24") for _, frame in zip(range(250), container.decode(video=0))]
    forward = per_frame_ms(frames, args.backend)
    print(f"  detector per-frame time (forward + scoring, 1 frame, alone): {forward:.1f} ms", flush=True)
    streams = [LiveStream(frames[i * 10:] + frames[:i * 10], 25) for i in range(4)]
    rows = []
    try:
        for stream in streams:
            stream.__enter__()
        for count in (1, 4):
            for record in (False, True):
                with tempfile.TemporaryDirectory() as tmp:
                    result = one_case([s.url for s in streams[:count]], record, args.seconds, args.settle,
                                      args.backend, Path(tmp))
                rows.append((count, record, result))
                print(f"  {count} source(s), {'-o recording' if record else 'no recording'}: p50 {result['p50']:.0f} ms,"
                      f" p95 {result['p95']:.0f} ms, {result['fps']:.1f} frames/s detected", flush=True)
    finally:
        for stream in streams:
            stream.close()
    print(f"\nbenchmark 10: watch latency, capture to JSONL line, 25 fps live streams, demo model ({args.backend}), "
          f"{args.seconds:.0f} s per case")
    print(f"  {'case':28}{'p50 ms':>9}{'p95 ms':>9}{'p95 / per-frame':>17}{'detected/s':>12}")
    for count, record, result in rows:
        case = f"{count} source{'s' if count > 1 else ''}, {'-o' if record else 'no -o'}"
        print(f"  {case:28}{result['p50']:9.0f}{result['p95']:9.0f}{result['p95'] / forward:17.1f}{result['fps']:12.1f}")
    print(f"  per-frame time {forward:.1f} ms; target p95 <= {3 * forward:.0f} ms (3x)")


if __name__ == "__main__":
    main()
