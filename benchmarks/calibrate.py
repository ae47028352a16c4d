"""Pick the CPU reference checkpoint: the newcomer loop's per-step times for candidate tiny configs.

The reference (common.BENCH_TINY) is the config whose forward pass is about
60% of the loop on 768x576 footage. Each candidate runs in a fresh interpreter.

    python benchmarks/calibrate.py [--frames 40] ['{"image_size": 320, "d_model": 64, "layers": 3, "queries": 100}' ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

CODE = """
import json, sys, tempfile
sys.path.insert(0, {bench!r})
import common, torch
if {threads}:
    torch.set_num_threads({threads})
from streamsink.testing.checkpoints import build_tiny_checkpoint
settings = json.loads({settings!r})
family = settings.pop("family", "grounding-dino")
path = build_tiny_checkpoint(tempfile.mkdtemp() + "/ckpt", family, **settings)
steps = {{}}
n = common.newcomer_loop(path, {video!r}, tempfile.mkdtemp() + "/out.mp4", limit={frames}, timings=steps)
print(json.dumps({{k: v / n * 1e3 for k, v in steps.items()}}))
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--threads", type=int, default=0, help="torch threads of the loop (0: torch's default)")
    parser.add_argument("configs", nargs="*", default=[json.dumps(common.BENCH_TINY)])
    args = parser.parse_args(argv)
    video = str(common.footage(100))
    print(f"# {common.machine()}")
    for settings in args.configs:
        code = CODE.format(bench=str(Path(__file__).resolve().parent), settings=settings, video=video, frames=args.frames,
                           threads=args.threads)
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tempfile.gettempdir(),
                              env={**__import__("os").environ, "PYTHONPATH": str(common.ROOT)})
        if done.returncode:
            print(settings, "failed:", done.stderr[-500:])
            continue
        steps = json.loads(done.stdout.strip().splitlines()[-1])
        total = sum(steps.values())
        print(f"{settings}: {total:.1f} ms/frame, model {steps['model']:.1f} ms ({steps['model'] / total:.0%}); "
              + ", ".join(f"{k} {v:.1f}" for k, v in steps.items() if k != "model"))


if __name__ == "__main__":
    main()
