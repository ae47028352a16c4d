"""Benchmark 1: `streamsink process` against the frame-by-frame transformers loop, same model and footage.

Both write an annotated mp4 of every frame with the same Renderer and
encoder settings; each run is a fresh interpreter, the two alternate
(A B A B ...) so background load hits both alike, and the ratio of medians is
reported. The newcomer's loop uses torch's default threads, as a newcomer would.

    python benchmarks/bench_e2e.py [--kind bench-tiny] [--frames 100] [--rounds 3] [--extra "--batch-size 4"] [--warm]
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", default="bench-tiny", choices=common.KINDS)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="the newcomer loop's device (streamsink's: in --extra)")
    parser.add_argument("--newcomer-threads", type=int, action="append", default=None,
                        help="torch threads of the newcomer loop, 0 = torch's default; repeat for several "
                             "(the fastest counts). Default: 0")
    parser.add_argument("--extra", action="append", default=None,
                        help="streamsink process arguments of one contender; repeat for several")
    parser.add_argument("--warm", action="store_true",
                        help="run every contender once, untimed, first: OpenVINO's graphs are then in its disk "
                             "cache, as on every run after a model's first")
    args = parser.parse_args(argv)
    model = str(common.checkpoint(args.kind))
    video = str(common.footage(args.frames))
    extras = args.extra or [""]
    out = Path(tempfile.mkdtemp(prefix="streamsink-e2e-"))
    newcomer = ["newcomer", model, video, str(out / "newcomer.mp4"), "--device", args.device]
    contenders = {}
    for n in args.newcomer_threads or [0]:
        name = "newcomer" if n == 0 else f"newcomer, {n} threads"
        contenders[name] = lambda n=n: common.run_child([*newcomer, *(["--threads", str(n)] if n else [])])
    for extra in extras:
        name = f"streamsink {extra}".strip()
        contenders[name] = (lambda e=extra: common.run_child(
            ["streamsink", model, video, str(out / "streamsink.mp4"), *shlex.split(e)]))
    last: dict[str, dict] = {}

    def timed(name: str) -> float:
        last[name] = contenders[name]()
        return last[name]["seconds"]

    if args.warm:
        for name, contender in contenders.items():
            if not name.startswith("newcomer"):
                contender()
    runs = common.interleave({name: (lambda n=name: timed(n)) for name in contenders}, args.rounds)
    loops = {name: common.median(times) for name, times in runs.items() if name.startswith("newcomer")}
    best = min(loops, key=loops.get)
    steps = last[best]
    print(f"# benchmark 1: end to end, {args.kind}, {args.frames} frames 768x576, {args.rounds} rounds")
    print(f"# {common.machine()}")
    for name, mid in loops.items():
        print(f"{name} loop: {mid:.2f} s ({mid / args.frames * 1e3:.1f} ms/frame)  "
              f"(runs: {', '.join(f'{t:.2f}' for t in runs[name])})")
    base = loops[best]
    print(f"{best} (the faster) per frame: "
          + ", ".join(f"{k} {v / args.frames * 1e3:.1f} ms" for k, v in steps["steps"].items())
          + f" (model {steps['steps']['model'] / sum(steps['steps'].values()):.0%})")
    result = {"kind": args.kind, "frames": args.frames, "newcomer_s": runs[best], "contenders": {}}
    for name, times in runs.items():
        if name.startswith("newcomer"):
            continue
        mid = common.median(times)
        print(f"{name}: {mid:.2f} s ({mid / args.frames * 1e3:.1f} ms/frame)  speed-up x{base / mid:.2f}  "
              f"against the {best} loop (runs: {', '.join(f'{t:.2f}' for t in times)})")
        result["contenders"][name] = times
    return result


if __name__ == "__main__":
    main()
