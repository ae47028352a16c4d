"""What every benchmark shares: footage, checkpoints, the newcomer's loop, and side-by-side timing.

Checkpoints are built offline from configs with random weights (the hub is not
reachable here). Random weights cost the same compute as trained ones; only
the boxes are meaningless. Everything built is cached under
$STREAMSINK_BENCH_CACHE (default /tmp/streamsink-bench).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("STREAMSINK_BENCH_CACHE", "/tmp/streamsink-bench"))
PROMPT = "dog,tractor"
STOCK_TEXT = "dog. tractor."
THRESHOLD = 0.3

# The CPU reference checkpoint: a ResNet/BERT Grounding DINO small enough that its forward pass is
# about 60% of the newcomer's per-frame loop on 768x576 footage on a 2-core machine (see RESULTS.md).
BENCH_TINY = {"family": "grounding-dino", "image_size": 192, "d_model": 32, "layers": 2, "queries": 50}
KINDS = ("tiny", "bench-tiny", "gdino-swin-t", "llmdet-t")

sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "samples"))


def footage(frames: int = 100, width: int = 768, height: int = 576, seed: int = 17) -> Path:
    """A shapes-world H.264 clip (25 fps), built once and cached."""
    path = CACHE / f"footage_{width}x{height}_{frames}_{seed}.mp4"
    if not path.exists():
        import make_samples
        import shapes

        path.parent.mkdir(parents=True, exist_ok=True)
        clip = shapes.make_clip(seed, frames=frames, width=width, height=height)
        tmp = path.with_suffix(".part.mp4")
        make_samples.write_clip(clip, tmp)
        tmp.rename(path)
    return path


def big_vocab(size: int = 30522) -> dict[str, int]:
    """A bert-base-sized vocabulary: the tiny word-piece one padded with unused ids, special ids kept."""
    from streamsink.testing.checkpoints import tiny_vocab

    vocab = tiny_vocab()
    taken = set(vocab.values())
    for i in range(size):
        if i not in taken:
            vocab[f"[unused{i}]"] = i
    return vocab


def full_config(kind: str):
    """Grounding DINO Swin-T or LLMDet-T (MM-Grounding-DINO, same Swin-T), from configs."""
    from transformers import BertConfig, GroundingDinoConfig, MMGroundingDinoConfig, SwinConfig

    backbone = SwinConfig(
        embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=7,
        out_features=["stage2", "stage3", "stage4"],
    )
    text = BertConfig()  # bert-base-uncased: 12 layers, 768 wide, 30522 ids
    config_class = GroundingDinoConfig if kind == "gdino-swin-t" else MMGroundingDinoConfig
    return config_class(backbone_config=backbone, text_config=text, d_model=256, encoder_layers=6,
                        decoder_layers=6, num_queries=900, num_feature_levels=4)


def checkpoint(kind: str) -> Path:
    """Build (once) and return the checkpoint directory of `kind` (one of KINDS)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    path = CACHE / f"ckpt-{kind}"
    if (path / "config.json").exists():
        return path
    from streamsink.testing.checkpoints import build_tiny_checkpoint

    if kind == "tiny":
        return build_tiny_checkpoint(path)
    if kind == "bench-tiny":
        settings = dict(BENCH_TINY)
        return build_tiny_checkpoint(path, settings.pop("family"), **settings)
    import torch
    from transformers import (
        BertTokenizerFast,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessorPil,
        GroundingDinoProcessor,
        MMGroundingDinoForObjectDetection,
    )

    torch.manual_seed(0)
    model_class = GroundingDinoForObjectDetection if kind == "gdino-swin-t" else MMGroundingDinoForObjectDetection
    model = model_class(full_config(kind)).eval()
    tokenizer = BertTokenizerFast(vocab=big_vocab(), do_lower_case=True, model_max_length=256)
    image_processor = GroundingDinoImageProcessorPil(size={"shortest_edge": 800, "longest_edge": 1333})
    GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(path)
    model.save_pretrained(path)
    return path


def newcomer_loop(model_dir: str | Path, video_in: str | Path, video_out: str | Path, *,
                  limit: int | None = None, timings: dict[str, float] | None = None, device: str = "cpu") -> int:
    """The frame-by-frame transformers loop a newcomer writes: PyAV in, processor, model, post-process, draw, PyAV out.

    Same Renderer and VideoWriter settings as `streamsink process`. `timings`
    (when given) accumulates seconds per step. Returns the number of frames.
    """
    import av
    import numpy as np
    import torch
    from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

    from streamsink.render import Renderer
    from streamsink.types import Detections, Frame
    from streamsink.writers import VideoWriter

    clock = time.perf_counter
    steps = timings if timings is not None else {}
    processor = AutoProcessor.from_pretrained(model_dir)
    model = AutoModelForZeroShotObjectDetection.from_pretrained(model_dir).to(device).eval()
    labels = tuple(c.strip() for c in PROMPT.split(","))
    renderer = Renderer()
    count = 0
    with av.open(str(video_in)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_type = "AUTO"
        writer = VideoWriter(video_out, width=stream.width, height=stream.height,
                             fps=float(stream.average_rate), time_base=stream.time_base)
        with writer:
            t = clock()
            for packet_frame in container.decode(stream):
                image = packet_frame.to_ndarray(format="rgb24")
                t = _lap(steps, "decode", t)
                inputs = processor(images=image, text=STOCK_TEXT, return_tensors="pt").to(device)
                t = _lap(steps, "processor", t)
                with torch.no_grad():
                    outputs = model(**inputs)
                t = _lap(steps, "model", t)
                (found,) = processor.post_process_grounded_object_detection(
                    outputs, inputs["input_ids"], threshold=THRESHOLD, text_threshold=THRESHOLD,
                    target_sizes=[image.shape[:2]],
                )
                names = found["text_labels"]
                ids = [labels.index(n) if n in labels else 0 for n in names]
                detections = Detections(found["boxes"].cpu().numpy().reshape(-1, 4), found["scores"].cpu().numpy(),
                                        np.asarray(ids, dtype=np.int64), labels)
                t = _lap(steps, "postprocess", t)
                drawn = renderer.draw(image, detections)
                t = _lap(steps, "draw", t)
                frame = Frame(image, count, float(packet_frame.time), "", packet_frame.pts, packet_frame.time_base)
                writer.write(frame, drawn)
                t = _lap(steps, "encode", t)
                count += 1
                if limit is not None and count >= limit:
                    break
    return count


def _lap(steps: dict[str, float], name: str, start: float) -> float:
    now = time.perf_counter()
    steps[name] = steps.get(name, 0.0) + now - start
    return now


def run_child(args: Sequence[str], timeout: float = 1800) -> dict:
    """Run `benchmarks/child.py args` in a fresh interpreter and return the JSON it prints last."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "child.py"), *args], env=env,
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"child {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def interleave(contenders: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Time each contender `rounds` times, alternating A B A B, so background load hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, run in contenders.items():
            times[name].append(run())
    return times


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def machine() -> str:
    """One line on where and under which load the figures were taken."""
    import platform

    import torch

    load = os.getloadavg()
    return (f"{platform.node()} {os.cpu_count()} CPUs, torch {torch.__version__}, "
            f"load {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")


def time_base_of(fps: int) -> Fraction:
    return Fraction(1, fps)
