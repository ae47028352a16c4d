"""Run the benchmarks (`make bench`): the CPU reference checkpoint, then the full-size architectures.

Full-size runs (Grounding DINO Swin-T, LLMDet-T; random weights, real
compute) use only a few frames on a CPU: one forward pass takes seconds
there. Pass --quick to skip them, --device cuda on a GPU (see gpu.sh).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_archive  # noqa: E402
import bench_e2e  # noqa: E402
import bench_gst  # noqa: E402
import bench_latency  # noqa: E402
import bench_live  # noqa: E402
import bench_memory  # noqa: E402
import bench_multistream  # noqa: E402
import bench_openvino  # noqa: E402
import bench_overhead  # noqa: E402
import bench_serve  # noqa: E402
import bench_sinks  # noqa: E402
import bench_smoother  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the reference tiny checkpoint only")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    cuda = args.device.startswith("cuda")
    device = ["--device", args.device]
    newcomer = [] if cuda else ["--newcomer-threads", "0", "--newcomer-threads", "1"]
    backends = [] if cuda else ["--warm", "--extra", "--device cpu --backend torch",
                                "--extra", "--device cpu --backend openvino"]
    bench_e2e.main(["--kind", "bench-tiny", "--frames", "100", "--rounds", "3", *device, *newcomer,
                    *(backends or ["--extra", f"--device {args.device}"])])
    if not cuda:
        bench_openvino.main(["--models", "demo,bench-tiny", "--rounds", "5"])
    bench_overhead.main(["--frames", "100", "--rounds", "3"])
    bench_sinks.main(["--kind", "bench-tiny", *device])
    bench_live.main(["--kind", "bench-tiny", *device])
    bench_memory.main(["--kind", "bench-tiny", "--frames", "600", "--extra", f"--device {args.device}"])
    bench_multistream.main(["--kind", "bench-tiny", *device])
    bench_archive.main([])
    bench_smoother.main([])
    bench_serve.main(["--backend", "torch" if not cuda else "auto"])
    bench_latency.main(["--backend", "torch" if not cuda else "auto"])
    if Path("/usr/bin/python3").exists() and shutil.which("gst-inspect-1.0"):
        bench_gst.main([])
    if args.quick:
        return
    if not cuda:
        bench_openvino.main(["--models", "gdino-swin-t", "--sizes", "320,800", "--rounds", "3"])
    frames, rounds = ("100", "2") if cuda else ("3", "1")
    for kind in ("gdino-swin-t", "llmdet-t"):
        batch = f"--device {args.device} --batch-size {4 if cuda else 1}"
        extras = ["--extra", batch] if cuda else ["--warm", "--extra", f"{batch} --backend torch",
                                                  "--extra", f"{batch} --backend openvino"]
        bench_e2e.main(["--kind", kind, "--frames", frames, "--rounds", rounds, *device, *newcomer, *extras])
        bench_sinks.main(["--kind", kind, "--batch", "4" if cuda else "1", "--rounds", "3" if cuda else "1", *device])
        bench_live.main(["--kind", kind, "--seconds", "8" if cuda else "2", "--rounds", "1", *device])
        bench_memory.main(["--kind", kind, "--frames", "300" if cuda else "3", "--extra", f"--device {args.device}"])


if __name__ == "__main__":
    main()
