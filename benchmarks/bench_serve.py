"""Benchmark 9: the live page costs the run nothing: `watch --serve` with and without three viewers.

A 25 fps live stream on loopback (the demo clip, looped, MPEG-TS over HTTP)
feeds `streamsink watch --serve` with the demo model. Each round starts a fresh
run, lets it settle, then samples its `/api/state` twice a second for the
measured seconds. In the "viewers" rounds three viewers watch meanwhile,
each as the page does: the next frame is asked for (`/api/snapshot?after=`)
as soon as the last one has arrived, and the state is polled twice a second.
Rounds alternate (none, viewers, none, viewers ...) in one process.

The viewers run in a child process at the lowest CPU priority (nice 19): on
this one machine they share the cores with the run, and what is measured is
the run's cost of serving them, not the browsers' cost of decoding.

Detector fps is frames detected per second over the window (frame index
advance minus the frames the source dropped to keep up); latency is the
run's own capture-to-shown figure. Ratios near 1.00 mean the page is free.

    python benchmarks/bench_serve.py [--seconds 30] [--rounds 2] [--viewers 3] [--backend torch]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

DEMO_MODEL = common.ROOT / "samples" / "models" / "shapes-gdino"
DEMO_CLIP = common.ROOT / "samples" / "clips" / "shapes_demo.mp4"
PROMPT = "circle,square,triangle,star,dog"


class Viewer(threading.Thread):
    """What the page does: the newest frame as soon as the last one arrived, and the state at 2 Hz."""

    def __init__(self, url: str, name: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.url, self.name_, self.stop = url, name, stop
        self.frames = 0

    def run(self) -> None:
        seq, next_state = 0, 0.0
        while not self.stop.is_set():
            try:
                with urllib.request.urlopen(f"{self.url}api/snapshot/{self.name_}.jpg?after={seq}", timeout=10) as r:
                    r.read()
                    seq = int(r.headers["X-Seq"])
                    self.frames += 1
                if time.monotonic() >= next_state:
                    urllib.request.urlopen(f"{self.url}api/state", timeout=10).read()
                    next_state = time.monotonic() + 0.5
            except OSError:
                time.sleep(0.1)


def watch_as_viewers(url: str, name: str, count: int, settle: float, seconds: float) -> None:
    """The child: `count` viewers for settle + seconds; prints the frames a second each was shown."""
    stop = threading.Event()
    watchers = [Viewer(url, name, stop) for _ in range(count)]
    for watcher in watchers:
        watcher.start()
    time.sleep(settle)
    before = [w.frames for w in watchers]
    time.sleep(seconds)
    stop.set()
    print(json.dumps({"fps": statistics.mean((w.frames - b) / seconds for w, b in zip(watchers, before))}))


def one_round(stream_url: str, viewers: int, seconds: float, settle: float, backend: str, log: str) -> dict:
    import subprocess

    from streamsink.testing.streams import WatchRun

    args = [stream_url, "-p", PROMPT, "-m", DEMO_MODEL, "--headless", "--serve", "127.0.0.1:0", "--backend", backend]
    with WatchRun(args, log=log) as run:
        name = ""
        while not name:
            name = next(iter(run.state()["sources"]), "")
        child = None
        if viewers:
            child = subprocess.Popen(["nice", "-n", "19", sys.executable, __file__, "--as-viewers", run.url, name,
                                      "--viewers", str(viewers), "--settle", str(settle), "--seconds", str(seconds)],
                                     stdout=subprocess.PIPE, text=True)
        time.sleep(settle)
        samples = []
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            source = json.loads(run.get("/api/state"))["sources"][name]
            samples.append((time.monotonic(), source["frame"], source["dropped"], source["latency_ms"]))
            time.sleep(0.5)
        shown = json.loads(child.communicate(timeout=60)[0])["fps"] if child is not None else 0.0
    (t0, f0, d0, _), (t1, f1, d1, _) = samples[0], samples[-1]
    latencies = [s[3] for s in samples if s[3] is not None]
    return {
        "fps": ((f1 - f0) - (d1 - d0)) / (t1 - t0),
        "latency_p50": statistics.median(latencies),
        "latency_p95": sorted(latencies)[int(0.95 * (len(latencies) - 1))],
        "viewer_fps": shown,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--settle", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--viewers", type=int, default=3)
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--as-viewers", nargs=2, metavar=("URL", "SOURCE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.as_viewers:
        return watch_as_viewers(*args.as_viewers, args.viewers, args.settle, args.seconds)

    import av

    from streamsink.testing.streams import LiveStream

    with av.open(str(DEMO_CLIP)) as container:
        frames = [frame.to_ndarray(format="rgb24") for _, frame in zip(range(250), container.decode(video=0))]
    results: dict[int, list[dict]] = {0: [], args.viewers: []}
    with LiveStream(frames, 25) as stream, tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for viewers in (0, args.viewers):
                result = one_round(stream.url, viewers, args.seconds, args.settle, args.backend, f"{tmp}/watch.log")
                results[viewers].append(result)
                print(f"  round {round_ + 1}, {viewers} viewers: {result['fps']:.1f} fps detected, latency p50 "
                      f"{result['latency_p50']:.0f} ms p95 {result['latency_p95']:.0f} ms, "
                      f"each viewer shown {result['viewer_fps']:.1f} fps", flush=True)

    def mean(viewers: int, key: str) -> float:
        return statistics.mean(r[key] for r in results[viewers])

    none, some = 0, args.viewers
    print(f"\nbenchmark 9: watch --serve, 25 fps live stream, demo model ({args.backend}), "
          f"{args.rounds} alternating rounds of {args.seconds:.0f} s")
    print(f"  {'':18}{'no viewer':>12}{f'{some} viewers':>12}{'ratio':>8}")
    for key, words in (("fps", "detector fps"), ("latency_p50", "latency p50 ms"), ("latency_p95", "latency p95 ms")):
        a, b = mean(none, key), mean(some, key)
        print(f"  {words:18}{a:12.1f}{b:12.1f}{b / a:8.2f}")
    print(f"  each viewer was shown {mean(some, 'viewer_fps'):.1f} fps")


if __name__ == "__main__":
    main()
