"""Benchmark 8: the OpenVINO backend against torch, forward pass and scoring, side by side in one process.

For each model and input size: one batch of footage frames, prepared once
(resize and normalise are the same for both), then `infer` + `finish` (the
forward pass of the per-frame graph, scoring, boxes to numpy) timed for
torch eager, OpenVINO f32 (a batch spread over streams, one request per
frame), OpenVINO f32 with the batch as one request, and, where the CPU has
bf16, OpenVINO bf16, the contenders alternating (A B C A B C ...), ratio of
medians against torch.
Both backends run with the same thread count. Before timing, every
OpenVINO contender's detections are compared with torch's on those frames
(same count, IoU >= 0.98, scores within 0.02) and the verdict printed.

--ap adds the cost of bf16 in the demo model's AP50 on shapes-world images
(seed 777001, never trained on), torch f32 against OpenVINO f32 and bf16.

    python benchmarks/bench_openvino.py [--models demo,bench-tiny,gdino-swin-t] [--sizes 320,800] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

DEMO = common.ROOT / "samples" / "models" / "shapes-gdino"
DEMO_PROMPT = "circle,square,triangle,star,heart,cross"


def checkpoint_of(name: str) -> Path:
    return DEMO if name == "demo" else common.checkpoint(name)


def detectors(name: str, image_size: int | None, precisions: list[str], *, one_request: bool = False):
    """torch, then one OpenVINO detector per precision, sharing one loaded model (`one_request`: also
    OpenVINO f32 running a batch as one request on all threads, the path before session 12)."""
    from streamsink.detector import SinkDetector

    options = {"sinks": 24, "sink_init": "brackets"} if name == "demo" else {"sinks": 16}
    base = SinkDetector.from_pretrained(checkpoint_of(name), device="cpu", backend="torch", image_size=image_size,
                                        **options)
    out = {"torch": base}
    for precision in precisions:
        dtype = "bf16" if precision == "bf16" else "fp32"
        other = SinkDetector(base.model, base.processor, device="cpu", backend="openvino", dtype=dtype,
                             image_size=image_size, **options)
        out[f"openvino {precision}"] = other
    if one_request:
        whole = SinkDetector(base.model, base.processor, device="cpu", backend="openvino", image_size=image_size,
                             **options)
        if whole.backend == "openvino":
            whole._runner.openvino.streams = 1
            out["openvino f32, one request per batch"] = whole
    return out


def forward_times(name: str, image_size: int | None, frames, batch: int, rounds: int, precisions: list[str]) -> dict:
    from streamsink.testing.agreement import frames_disagreeing

    prompt = DEMO_PROMPT if name == "demo" else common.PROMPT
    contenders = detectors(name, image_size, precisions, one_request=True)
    prepared = contenders["torch"].prepare(frames[:batch])
    shape = tuple(prepared.groups[0][1].shape[-2:])
    threshold = 0.1 if name == "demo" else common.THRESHOLD
    found = {}
    for label, detector in contenders.items():
        start = time.perf_counter()
        found[label] = detector.finish(detector.infer(prepared, prompt, threshold=threshold))
        print(f"  {label}: first call {time.perf_counter() - start:.1f} s (conversion, compilation or warm-up)",
              flush=True)

    def timed(detector) -> float:
        start = time.perf_counter()
        detector.finish(detector.infer(prepared, prompt, threshold=threshold))
        return (time.perf_counter() - start) / batch

    runs = common.interleave({label: (lambda d=d: timed(d)) for label, d in contenders.items()}, rounds)
    base = common.median(runs["torch"])
    boxes = sum(len(d.scores) for d in found["torch"])
    print(f"{name} {shape[0]}x{shape[1]}, batch {batch}: torch {base * 1e3:.1f} ms/frame ({boxes} boxes)")
    result = {"input": shape, "torch_ms": base * 1e3}
    for label in contenders:
        if label == "torch":
            continue
        mid = common.median(runs[label])
        verdict = frames_disagreeing(found["torch"], found[label])
        agree = "same detections" if not verdict else f"differ on {len(verdict)} frame(s): {next(iter(verdict.values()))}"
        print(f"  {label}: {mid * 1e3:.1f} ms/frame  x{base / mid:.2f}  ({agree})  "
              f"(runs: {', '.join(f'{t * 1e3:.0f}' for t in runs[label])})")
        result[label] = {"ms": mid * 1e3, "speedup": base / mid, "same": not verdict}
    return result


def ap_cost(precisions: list[str]) -> None:
    """AP50 of the demo model on 100 fresh shapes-world images, per backend and precision."""
    from streamsink.evaluate import Method, evaluate, shapes_dataset

    dataset = shapes_dataset(777001, images=100, clips=0)
    method = Method("sinks", sinks=24, sink_init="brackets")
    for label, detector in detectors("demo", None, precisions).items():
        evaluation = evaluate(detector, dataset, [method], threshold=0.3)
        figures = evaluation.figures[method.name]
        print(f"demo model AP50, {label}: {figures['ap50']:.3f}")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="demo,bench-tiny,gdino-swin-t")
    parser.add_argument("--sizes", default="320,800", help="shortest edges for the full-size model (default 320,800)")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads of both backends (default: all cores)")
    parser.add_argument("--ap", action="store_true", help="also the demo model's AP50 per backend and precision")
    args = parser.parse_args(argv)
    import torch

    from streamsink.detector.openvino import cpu_has_bf16
    from streamsink.sources import open_source

    torch.set_num_threads(args.threads)  # OpenVINO compiles with torch's thread count: the same for both
    precisions = ["f32", "bf16"] if cpu_has_bf16() else ["f32"]
    with open_source(str(common.footage(100))) as source:
        frames = [frame.image for _, frame in zip(range(args.batch), source)]
    print(f"# benchmark 8: OpenVINO against torch, forward pass + scoring, {args.threads} threads, "
          f"batches of {args.batch} 768x576 frames, {args.rounds} rounds")
    print(f"# {common.machine()}{'' if 'bf16' in precisions else ' (no bf16 on this CPU)'}")
    results = {}
    for name in args.models.split(","):
        sizes = [int(s) for s in args.sizes.split(",")] if name.startswith(("gdino", "llmdet")) else [None]
        for size in sizes:
            results[f"{name}@{size or 'native'}"] = forward_times(name, size, frames, args.batch, args.rounds,
                                                                  precisions)
    if args.ap:
        ap_cost(precisions)
    return results


if __name__ == "__main__":
    main()
