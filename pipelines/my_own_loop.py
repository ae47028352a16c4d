"""The stages composed by hand, for people with a loop of their own.

    python pipelines/my_own_loop.py clip.mp4 --prompt "dog,tractor" --model CHECKPOINT -o annotated.mp4

Read frames, detect in batches, smooth, draw, write: each stage is one object
with one verb, and nothing here is private API.
"""

from __future__ import annotations

import argparse
from itertools import islice

import streamsink


def annotate(source: str, prompt: str, model: str, output: str, batch_size: int = 4) -> int:
    """Return the number of frames written."""
    classes = [name.strip() for name in prompt.split(",") if name.strip()]
    detector = streamsink.SinkDetector.from_pretrained(model, sinks=16)
    smoother = streamsink.TemporalSmoother(classes)
    renderer = streamsink.Renderer()
    written = 0
    with streamsink.open_source(source) as frames:
        with streamsink.VideoWriter(output, width=frames.width, height=frames.height, fps=frames.fps, time_base=frames.time_base) as video:
            frames_iter = iter(frames)
            while batch := list(islice(frames_iter, batch_size)):
                for frame, raw in zip(batch, detector.detect([f.image for f in batch], classes)):
                    shown = smoother.update(raw)
                    video.write(frame, renderer.draw(frame.image, shown, smoother.states))
                    written += 1
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source")
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--model", default=streamsink.DEFAULT_MODEL)
    parser.add_argument("-o", "--output", default="annotated.mp4")
    args = parser.parse_args(argv)
    print(f"wrote {annotate(args.source, args.prompt, args.model, args.output)} frames to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
