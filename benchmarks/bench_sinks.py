"""Benchmark 3: sink overhead: the same detector with 0, 16 and 64 attention sinks.

Sinks lengthen the text the image attends to (fusion layers, decoder
cross-attention, scoring). Batches of 768x576 frames through
`SinkDetector.detect`, the three settings alternating in one process, ratio
of medians against sinks=0.

    python benchmarks/bench_sinks.py [--kind bench-tiny] [--batch 4] [--rounds 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

SINKS = (0, 16, 64)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", default="bench-tiny", choices=common.KINDS)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    import numpy as np

    from streamsink.detector import SinkDetector
    from streamsink.sources import open_source

    with open_source(str(common.footage(100))) as source:
        frames = [frame.image for _, frame in zip(range(args.batch), source)]
    base = SinkDetector.from_pretrained(common.checkpoint(args.kind), sinks=0, device=args.device)
    if base.device.type == "cpu":
        import torch

        from streamsink.engine import default_threads

        torch.set_num_threads(default_threads())  # what the engine runs the forward pass with
    detectors = {n: base if n == 0 else base.with_sinks(n) for n in SINKS}

    def timed(detector) -> float:
        start = time.perf_counter()
        detector.detect(frames, common.PROMPT)
        if detector.device.type == "cuda":
            import torch

            torch.cuda.synchronize()
        return (time.perf_counter() - start) / len(frames)

    for detector in detectors.values():
        timed(detector)  # warm-up: text encoding, allocator, kernels
    runs = common.interleave({n: (lambda d=d: timed(d)) for n, d in detectors.items()}, args.rounds)
    print(f"# benchmark 3: sink overhead, {args.kind}, batches of {args.batch} 768x576 frames, {args.rounds} rounds, "
          f"{args.device}")
    print(f"# {common.machine()}")
    zero = common.median(runs[0])
    for n, times in runs.items():
        tokens = detectors[n].layout(common.PROMPT).num_tokens
        print(f"sinks={n:>2} ({tokens:>3} text tokens): {np.median(times) * 1e3:8.1f} ms/frame  "
              f"x{np.median(times) / zero:.2f} of sinks=0")
    return {"kind": args.kind, **{str(k): v for k, v in runs.items()}}


if __name__ == "__main__":
    main()
