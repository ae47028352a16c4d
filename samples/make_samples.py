"""Write the committed sample clips and their ground truth from the shapes world.

    python samples/make_samples.py [--out samples/clips] [--seed 0] [--seconds 10] [--short-seconds 3]

Same arguments, same bytes: the scenes come from the seed, and x264 runs on one
thread (its output depends on the thread count) without B-frames (with them and
mbtree, this x264 gave different bytes from run to run).
"""

from __future__ import annotations

import argparse
import json
import sys
from fractions import Fraction
from pathlib import Path

import av

sys.path.insert(0, str(Path(__file__).resolve().parent))
import shapes  # noqa: E402

FPS = 25


def write_clip(clip: shapes.Clip, video_path: str | Path, *, crf: int = 23) -> Path:
    """Encode the clip as H.264 yuv420p mp4, reproducibly; frame i gets pts i in a 1/fps time base."""
    if clip.width % 2 or clip.height % 2:
        raise ValueError(f"yuv420p needs even dimensions, got {clip.width}x{clip.height}")
    video_path = Path(video_path)
    with av.open(str(video_path), "w") as container:
        stream = container.add_stream("libx264", rate=clip.fps)
        stream.width, stream.height, stream.pix_fmt = clip.width, clip.height, "yuv420p"
        stream.options = {"preset": "medium", "crf": str(crf), "threads": "1", "bf": "0"}
        for i, image in enumerate(clip.frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, clip.fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return video_path


def ground_truth(clip: shapes.Clip) -> dict:
    """The JSON form of a clip's ground truth (see samples/README.md)."""
    return {
        "fps": clip.fps,
        "width": clip.width,
        "height": clip.height,
        "classes": list(shapes.CLASSES),
        "present": list(clip.classes),
        "absent": list(clip.absent),
        "seed": clip.seed,
        "frames": [
            {"frame": i, "pts": round(i / clip.fps, 6), "objects": objects}
            for i, objects in enumerate(clip.annotations)
        ],
    }


def write_sample(name: str, clip: shapes.Clip, out: Path) -> tuple[Path, Path]:
    video = write_clip(clip, out / f"{name}.mp4")
    gt = out / f"{name}.json"
    gt.write_text(json.dumps(ground_truth(clip), separators=(",", ":")) + "\n")
    return video, gt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "clips")
    parser.add_argument(
        "--seed", type=int, default=17, help="17 gives a demo with three classes together, occlusion and distractors"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="length of shapes_demo.mp4")
    parser.add_argument("--short-seconds", type=float, default=3.0, help="length of shapes_short.mp4")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.short_seconds <= 0:
        raise SystemExit(f"durations must be > 0, got {args.seconds} and {args.short_seconds}")
    args.out.mkdir(parents=True, exist_ok=True)
    # The demo shows three classes (three stay absent throughout); the short clip shows two others.
    samples = {
        "shapes_demo": shapes.make_clip(
            args.seed, frames=max(1, round(args.seconds * FPS)), fps=FPS, classes=("circle", "star", "square")
        ),
        "shapes_short": shapes.make_clip(
            args.seed + 1, frames=max(1, round(args.short_seconds * FPS)), fps=FPS, classes=("triangle", "ring"),
            empty_fraction=0.25,
        ),
    }
    for name, clip in samples.items():
        video, gt = write_sample(name, clip, args.out)
        empty = sum(not a for a in clip.annotations)
        print(
            f"{video} {video.stat().st_size / 1024:.0f} KiB, {len(clip)} frames ({empty} empty), "
            f"present {', '.join(clip.classes)}; {gt.name} {gt.stat().st_size / 1024:.0f} KiB"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
