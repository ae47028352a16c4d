"""The temporal stage's cost per frame, at the start of a long stream and 100k frames in.

A stream like a camera's: a handful of objects that come and go (some named two
ways, each with weak duplicate queries on it), flickers anywhere, six classes.
Prints the median CPU time per frame of the first and the last 2,000 frames, and their ratio (flat is about 1.0), so the
figure is read side by side in one run whatever else the machine is doing.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from streamsink.smoother import TemporalSmoother
from streamsink.types import Detections

LABELS = ("circle", "square", "triangle", "star", "cross", "ring")


def stream(frames: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for t in range(frames):
        boxes, cls, scores = [], [], []
        for k in range(4):  # four objects, each away a quarter of the time, seen on 80% of frames
            if (t // 500 + k) % 4 and rng.random() < 0.8:
                x = 100 + 300 * k + 40 * np.sin(t / 50 + k)
                boxes.append([x, 100, x + 80, 260] + rng.normal(0, 2, 4))
                cls.append(k if rng.random() < 0.7 else (k + 1) % len(LABELS))
                scores.append(rng.uniform(0.3, 0.9))
                for _ in range(3):  # weak duplicate queries on it (they back it: the discount and head start)
                    boxes.append([x, 100, x + 80, 260] + rng.normal(0, 4, 4))
                    cls.append(int(rng.integers(0, len(LABELS))))
                    scores.append(rng.uniform(0.1, 0.3))
        for _ in range(rng.integers(0, 4)):  # flickers
            x, y = rng.uniform(0, 1800, 2)
            boxes.append([x, y, x + 40, y + 40])
            cls.append(int(rng.integers(0, len(LABELS))))
            scores.append(rng.uniform(0.25, 0.6))
        yield Detections(np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(scores, np.float32),
                         np.asarray(cls, np.int64), LABELS)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--block", type=int, default=2_000)
    parser.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                        help="a TemporalSmoother option other than its default, e.g. unbacked=1 (repeatable)")
    args = parser.parse_args(argv)
    options = {name: json.loads(value) for name, _, value in (o.partition("=") for o in args.option)}  # 2 or 0.7
    smoother = TemporalSmoother(LABELS, **options)
    times = np.empty(args.frames)
    most = 0
    for i, frame in enumerate(stream(args.frames)):
        start = time.process_time()
        smoother.update(frame)
        times[i] = time.process_time() - start
        most = max(most, len(smoother.scored()))
    early, late = np.median(times[: args.block]) * 1e3, np.median(times[-args.block :]) * 1e3
    name = f"temporal stage {options}" if options else "temporal stage"
    print(f"{name}, {len(LABELS)} classes, {args.frames} frames: {early:.3f} ms/frame at the start, "
          f"{late:.3f} ms/frame at the end (x{late / early:.2f}); at most {most} live objects "
          f"(bound {smoother.max_boxes}); mean {times.mean() * 1e3:.3f} ms/frame")


if __name__ == "__main__":
    main()
