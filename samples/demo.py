"""`make demo`: run streamsink on the bundled sample clip and say where the results went.

Until the trained demo model ships in samples/models/, this builds a tiny
checkpoint with RANDOM weights: the pipeline is real end to end, but its boxes
are meaningless. The script says so loudly.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / "samples" / "clips" / "shapes_demo.mp4"
PROMPT = "circle,square,triangle,dog"
OUT = ROOT / "out"


def demo_model() -> tuple[Path, bool]:
    """The trained demo model if it ships, else a tiny random checkpoint (built once)."""
    trained = sorted((ROOT / "samples" / "models").glob("*/config.json"))
    if trained:
        return trained[0].parent, True
    from streamsink.testing.checkpoints import build_tiny_checkpoint

    path = OUT / "models" / "tiny-random-grounding-dino"
    if not (path / "config.json").exists():
        build_tiny_checkpoint(path, "grounding-dino")
    return path, False


def main() -> int:
    from streamsink.cli import main as streamsink

    model, trained = demo_model()
    if not trained:
        print(
            "NOTE: no trained demo model ships yet, so this demo uses a tiny checkpoint with RANDOM weights.\n"
            "      Decoding, batching, attention sinks, smoothing, drawing and writing are all real;\n"
            "      the boxes are meaningless. Pass --model with a real Grounding DINO checkpoint for real boxes.",
            file=sys.stderr,
        )
    video, jsonl = OUT / "shapes_demo.mp4", OUT / "shapes_demo.jsonl"
    args = ["process", str(CLIP), "--prompt", PROMPT, "--model", str(model), "-o", str(video), "--jsonl", str(jsonl)]
    print("$ streamsink " + " ".join(args), file=sys.stderr)
    code = streamsink(args)
    if code == 0:
        print(f"\nannotated video: {video}\nper-frame JSONL: {jsonl}", file=sys.stderr)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
