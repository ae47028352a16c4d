"""Benchmark 5: memory over a long stream: resident memory of `streamsink process`, sampled as it runs.

A leak shows as growth after the warm-up; flat memory is the bounded queues
doing their job. RSS is sampled every 0.25 s from /proc/self/statm by a
thread beside the run.

    python benchmarks/bench_memory.py [--kind bench-tiny] [--frames 600]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", default="bench-tiny", choices=common.KINDS)
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--extra", default="", help="more `streamsink process` arguments")
    args = parser.parse_args(argv)
    import shlex

    import av  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401

    import streamsink.cli as cli

    video = str(common.footage(args.frames))
    model = str(common.checkpoint(args.kind))
    out = Path(tempfile.mkdtemp(prefix="streamsink-memory-")) / "long.mp4"
    samples: list[tuple[float, float]] = []
    done = threading.Event()

    def sample() -> None:
        start = time.monotonic()
        while not done.is_set():
            samples.append((time.monotonic() - start, rss_mb()))
            done.wait(0.25)

    before = rss_mb()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stderr, sys.stderr = sys.stderr, open(os.devnull, "w")
    try:
        code = cli.main(["process", video, "-p", common.PROMPT, "-m", model, "-o", str(out), *shlex.split(args.extra)])
    finally:
        sys.stderr = stderr
        done.set()
        sampler.join()
    if code != 0:
        raise SystemExit(f"streamsink process exited {code}")
    total = samples[-1][0]
    values = [mb for _, mb in samples]
    quarter = [mb for t, mb in samples if t <= total * 0.25]
    last = [mb for t, mb in samples if t >= total * 0.75]
    print(f"# benchmark 5: memory, {args.kind}, {args.frames} frames 768x576 through `streamsink process`")
    print(f"# {common.machine()}")
    print(f"RSS with torch+transformers imported: {before:.0f} MB; first quarter max {max(quarter):.0f} MB; last quarter max {max(last):.0f} MB; "
          f"peak {max(values):.0f} MB; growth first->last quarter {max(last) - max(quarter):+.0f} MB over {total:.0f} s")
    return {"kind": args.kind, "samples": samples}


if __name__ == "__main__":
    main()
