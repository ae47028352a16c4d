"""Benchmark 11: the `streamsink` GStreamer element against `streamsink process`, and interval 1 against 3.

The same clip (the demo clip's first 150 frames, re-encoded here) through
`filesrc ! decodebin ! videoconvert ! streamsink ! fakesink` (GStreamer's
Python loader, the system Python, the environment's torch) and through
`streamsink process` with the same model and settings. Both figures exclude
start-up (interpreter, torch, model): the element's from the first frame
leaving it to the last, `process`'s from its own closing line. Rounds
alternate in one run.

    python benchmarks/bench_gst.py [--frames 150] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

DEMO_MODEL = common.ROOT / "samples" / "models" / "shapes-gdino"
DEMO_CLIP = common.ROOT / "samples" / "clips" / "shapes_demo.mp4"
PROBE = common.ROOT / "streamsink" / "testing" / "gst_probe.py"
PROMPT = "circle,square,triangle,star,dog"


def cut(frames: int, out: Path) -> Path:
    import av

    with av.open(str(DEMO_CLIP)) as source, av.open(str(out), "w") as target:
        stream = target.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for _, frame in zip(range(frames), source.decode(video=0)):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24")):
                target.mux(packet)
        for packet in stream.encode():
            target.mux(packet)
    return out


def element_fps(clip: Path, interval: int, env: dict) -> float:
    description = (f"filesrc location={clip} ! decodebin ! videoconvert ! video/x-raw,format=RGB ! streamsink name=ss "
                   f'prompt="{PROMPT}" model={DEMO_MODEL} interval={interval} ! fakesink name=out sync=false')
    done = subprocess.run(["/usr/bin/python3", str(PROBE), description], capture_output=True, text=True, env=env,
                          check=True, timeout=600)
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    if seen["error"]:
        raise RuntimeError(seen["error"])
    return (len(seen["pts"]) - 1) / seen["elapsed"]


def process_fps(clip: Path, folder: Path) -> float:
    done = subprocess.run([sys.executable, "-m", "streamsink", "process", str(clip), "-p", PROMPT, "-m",
                           str(DEMO_MODEL), "--backend", "torch", "-o", str(folder / "out.mp4")],
                          capture_output=True, text=True, check=True, timeout=600)
    return float(re.search(r"\(([\d.]+) fps\)", done.stderr).group(1))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clip = cut(args.frames, folder / "clip.mp4")
        plugin = subprocess.run([sys.executable, "-m", "streamsink", "gst-path"], capture_output=True, text=True,
                                check=True, env={**os.environ, "STREAMSINK_CACHE": str(folder)}).stdout.strip()
        env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"), "GST_PLUGIN_PATH": plugin,
               "GST_REGISTRY": str(folder / "registry.bin"), "STREAMSINK_AUTO_BACKEND": "torch"}
        rows: dict[str, list[float]] = {"process": [], "element, interval 1": [], "element, interval 3": []}
        for round_ in range(args.rounds):
            rows["process"].append(process_fps(clip, folder))
            rows["element, interval 1"].append(element_fps(clip, 1, env))
            rows["element, interval 3"].append(element_fps(clip, 3, env))
            print(f"  round {round_ + 1}: " + ", ".join(f"{k} {v[-1]:.1f} fps" for k, v in rows.items()), flush=True)
    base = statistics.mean(rows["process"])
    print(f"\nbenchmark 11: the GStreamer element, {args.frames} frames 320x240, demo model (torch), {args.rounds} rounds")
    print(f"  {'':24}{'fps':>8}{'vs process':>12}")
    for name, values in rows.items():
        print(f"  {name:24}{statistics.mean(values):8.1f}{statistics.mean(values) / base:12.2f}")


if __name__ == "__main__":
    main()
