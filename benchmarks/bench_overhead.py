"""Benchmark 2: pipeline overhead: `streamsink process` with a detector that finds nothing, instantly,
against decode + encode alone (PyAV in, the same VideoWriter out).

What is left is what streamsink adds around the model: threads and queues,
the status strip drawn on every frame, smoothing and the JSONL. Fresh
interpreters, alternating, ratio of medians.

    python benchmarks/bench_overhead.py [--frames 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    video = str(common.footage(args.frames))
    out = Path(tempfile.mkdtemp(prefix="streamsink-overhead-"))
    runs = common.interleave({
        "decode+encode": lambda: common.run_child(["copy", video, str(out / "copy.mp4")])["seconds"],
        "streamsink, null detector": lambda: common.run_child(["null", video, str(out / "null.mp4")])["seconds"],
    }, args.rounds)
    base = common.median(runs["decode+encode"])
    null = common.median(runs["streamsink, null detector"])
    print(f"# benchmark 2: pipeline overhead, {args.frames} frames 768x576, {args.rounds} rounds")
    print(f"# {common.machine()}")
    print(f"decode+encode alone: {base:.2f} s ({base / args.frames * 1e3:.1f} ms/frame)")
    print(f"streamsink, null detector: {null:.2f} s ({null / args.frames * 1e3:.1f} ms/frame)  "
          f"x{null / base:.2f} of decode+encode, +{(null - base) / args.frames * 1e3:.1f} ms/frame")
    return {"frames": args.frames, **runs}


if __name__ == "__main__":
    main()
