"""Benchmark 4: live latency: frame-in to frame-out at the source's rate, and drops.

A replayed clip plays the part of a camera: a reader thread offers its frames
at 25 fps into streamsink's live buffer (newest 2 kept, oldest dropped), the
engine detects, smooths and draws, the caller encodes. Latency is from the
moment a frame was offered to the moment its annotated picture was encoded.
Contenders: one frame per forward pass, and dynamic batching (up to 4 frames, with a
50 ms budget or taking only frames already waiting). Alternating, in one process.

    python benchmarks/bench_live.py [--kind bench-tiny] [--seconds 8] [--rounds 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from streamsink.sources import LiveSource  # noqa: E402


class ReplaySource(LiveSource):
    """Decoded frames offered at `fps` in real time, as a camera would."""

    def __init__(self, images: list, fps: float, buffer: int = 2) -> None:
        super().__init__("replay", "replay", buffer=buffer)
        self._images = images
        self.fps = fps
        self.height, self.width = images[0].shape[:2]
        self._start()

    def _read(self) -> None:
        start = time.monotonic()
        for i, image in enumerate(self._images):
            wait = start + i / self.fps - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                return
            if not self._emit(image, i / self.fps):
                return


def play(detector, images: list, fps: float, batch_size: int, max_latency: float, out: Path) -> dict:
    import numpy as np

    from streamsink.engine import iterate, make_detect
    from streamsink.render import Renderer
    from streamsink.smoother import TemporalSmoother
    from streamsink.writers import VideoWriter

    classes = tuple(common.PROMPT.split(","))
    renderer = Renderer()
    latencies = []
    source = ReplaySource(images, fps)
    started = time.monotonic()
    with source, VideoWriter(out, width=source.width, height=source.height, fps=fps) as writer:
        results = iterate(source, make_detect(detector, classes, common.THRESHOLD), batch_size=batch_size,
                          smoother=TemporalSmoother(classes), max_latency=max_latency,
                          render=lambda r: renderer.draw(r.frame.image, r.detections, r.states))
        for result in results:
            writer.write(result.frame, result.image)
            latencies.append(time.monotonic() - result.frame.captured_at)
        dropped = source.dropped
    elapsed = time.monotonic() - started
    ms = np.asarray(latencies) * 1e3
    return {"frames": len(latencies), "dropped": dropped, "fps": len(latencies) / elapsed,
            "p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)), "max": float(ms.max())}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", default="bench-tiny", choices=common.KINDS)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    from streamsink.detector import SinkDetector
    from streamsink.sources import open_source

    with open_source(str(common.footage(100))) as source:
        clip = [frame.image for frame in source]
    count = int(args.seconds * args.fps)
    images = [clip[i % len(clip)] for i in range(count)]
    detector = SinkDetector.from_pretrained(common.checkpoint(args.kind), sinks=16, device=args.device)
    detector.detect(images[:4], common.PROMPT)  # warm-up
    out = Path(tempfile.mkdtemp(prefix="streamsink-live-")) / "live.mp4"
    contenders = {"batch 1": (1, 0.0), "dynamic batch <=4, 50 ms budget": (4, 0.05),
                  "dynamic batch <=4, no wait": (4, 0.0)}
    runs: dict[str, list[dict]] = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, (size, budget) in contenders.items():
            runs[name].append(play(detector, images, args.fps, size, budget, out))
    print(f"# benchmark 4: live latency, {args.kind}, {count} frames offered at {args.fps:g} fps, {args.device}, "
          f"{args.rounds} rounds")
    print(f"# {common.machine()}")
    for name, rounds in runs.items():
        for r in rounds:
            print(f"{name}: {r['frames']} frames out, {r['dropped']} dropped ({r['dropped'] / count:.0%}), "
                  f"{r['fps']:.1f} fps out; latency p50 {r['p50']:.0f} ms, p95 {r['p95']:.0f} ms, max {r['max']:.0f} ms")
    return {"kind": args.kind, **runs}


if __name__ == "__main__":
    main()
