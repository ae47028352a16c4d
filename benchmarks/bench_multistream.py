"""Many sources: one `streamsink process` over N files (one detector, shared batches) against N processes at once.

For each N in --sources, the same N clips (different shapes-world seeds)
go through one command (`streamsink process f1 ... fN -o DIR`: one model,
frames of all files in the same batches) and through N `streamsink process
fi` commands started together (N models, each file on its own). Both write an
annotated mp4 and a JSONL per file; wall time from launch to the last exit,
model loading included, is what a user waits. Contenders alternate (A B A B)
so background load hits both alike.

    python benchmarks/bench_multistream.py [--kind bench-tiny] [--sources 1 2 4 8] [--frames 50] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402


def _launch(args: list[str]) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(common.ROOT), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return subprocess.Popen([sys.executable, "-m", "streamsink", "process", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        _, err = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"streamsink process failed ({process.returncode}): {err[-2000:]}")


def one_command(clips: list[Path], model: str, out: Path, extra: list[str]) -> float:
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    _wait([_launch([*map(str, clips), "-p", common.PROMPT, "-m", model, "-o", f"{out}{os.sep}", *extra])])
    return time.perf_counter() - start


def separate_processes(clips: list[Path], model: str, out: Path, extra: list[str]) -> float:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    start = time.perf_counter()
    _wait([_launch([str(clip), "-p", common.PROMPT, "-m", model, "-o", str(out / f"{clip.stem}.mp4"), *extra])
           for clip in clips])
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", default="bench-tiny", choices=common.KINDS)
    parser.add_argument("--sources", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--frames", type=int, default=50, help="frames per clip (768x576, 25 fps)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    model = str(common.checkpoint(args.kind))
    clips = [common.footage(args.frames, seed=100 + i) for i in range(max(args.sources))]
    extra = ["--device", args.device]
    work = Path(tempfile.mkdtemp(prefix="streamsink-multi-"))
    print(f"# multi-stream: {args.kind}, N clips of {args.frames} frames 768x576, {args.rounds} rounds, "
          f"wall time incl. model loading")
    print(f"# {common.machine()}")
    result = {}
    for n in args.sources:
        chosen = clips[:n]
        runs = common.interleave({
            "one command": lambda chosen=chosen: one_command(chosen, model, work / "one", extra),
            "separate processes": lambda chosen=chosen: separate_processes(chosen, model, work / "separate", extra),
        }, args.rounds)
        frames = n * args.frames
        one, separate = common.median(runs["one command"]), common.median(runs["separate processes"])
        print(f"N={n}: one command {frames / one:6.1f} fps ({one:.1f} s)  |  {n} processes {frames / separate:6.1f} fps "
              f"({separate:.1f} s)  |  one command x{separate / one:.2f}")
        result[n] = runs
    shutil.rmtree(work, ignore_errors=True)
    return result


if __name__ == "__main__":
    main()
