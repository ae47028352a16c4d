"""One timed run in a fresh interpreter; prints one JSON line. Used by the benchmark scripts.

    child.py newcomer   MODEL VIDEO OUT [--threads N] [--device D]
    child.py streamsink MODEL VIDEO OUT [--engine-threads N] [extra `streamsink process` arguments]
    child.py copy       VIDEO OUT            decode + encode alone
    child.py null       VIDEO OUT            `streamsink process` with a detector that finds nothing, instantly

Heavy imports happen before the clock starts, for every contender alike; the
clock covers loading the model, every frame, and closing the files.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import av  # noqa: E402,F401
import cv2  # noqa: E402,F401
import torch  # noqa: E402
import transformers  # noqa: E402,F401
from transformers import (  # noqa: E402,F401  transformers imports these lazily, on first use
    AutoConfig,
    AutoModelForZeroShotObjectDetection,
    AutoProcessor,
    GroundingDinoForObjectDetection,
    MMGroundingDinoForObjectDetection,
)
from transformers.utils import logging as transformers_logging  # noqa: E402

import common  # noqa: E402
import streamsink.cli as cli  # noqa: E402
import streamsink.detector.model  # noqa: E402,F401
import streamsink.render  # noqa: E402,F401
import streamsink.smoother  # noqa: E402,F401
import streamsink.writers  # noqa: E402,F401
from streamsink.types import Detections  # noqa: E402

transformers_logging.set_verbosity_error()
transformers_logging.disable_progress_bar()
logging.getLogger("streamsink").setLevel(logging.ERROR)


class NullDetector:
    """Finds nothing, instantly: what is left is the pipeline's own cost."""

    device = None

    def detect(self, frames, classes, *, threshold: float = 0.3):
        return [Detections.empty(tuple(classes)) for _ in frames]


def copy(video: str, out: str) -> int:
    from streamsink.sources import open_source
    from streamsink.writers import VideoWriter

    count = 0
    with open_source(video) as source, VideoWriter(out, width=source.width, height=source.height, fps=source.fps,
                                                    time_base=source.time_base) as writer:
        for frame in source:
            writer.write(frame)
            count += 1
    return count


def main(argv: list[str]) -> dict:
    mode, rest = argv[0], argv[1:]
    devnull = open(os.devnull, "w")
    start = time.perf_counter()
    steps: dict[str, float] = {}
    if mode == "newcomer":
        model, video, out = rest[:3]
        if "--threads" in rest:
            torch.set_num_threads(int(rest[rest.index("--threads") + 1]))
        device = rest[rest.index("--device") + 1] if "--device" in rest else "cpu"
        frames = common.newcomer_loop(model, video, out, timings=steps, device=device)
    elif mode == "streamsink":
        model, video, out = rest[:3]
        rest = list(rest)
        if "--engine-threads" in rest:  # the CLI's own --threads (kept as a word of its own for old scripts)
            rest[rest.index("--engine-threads")] = "--threads"
        stderr, sys.stderr = sys.stderr, devnull
        try:
            code = cli.main(["process", video, "-p", common.PROMPT, "-m", model, "-o", out, *rest[3:]])
        finally:
            sys.stderr = stderr
        if code != 0:
            raise SystemExit(f"streamsink process exited {code}")
        frames = None
    elif mode == "copy":
        frames = copy(*rest[:2])
    elif mode == "null":
        video, out = rest[:2]
        from streamsink.cli.commands import cmd_process

        args = cli.build_parser().parse_args(["process", video, "-p", common.PROMPT, "-m", "unused", "-o", out, *rest[2:]])
        stderr, sys.stderr = sys.stderr, devnull
        try:
            code = cmd_process(args, detector=NullDetector())
        finally:
            sys.stderr = stderr
        if code != 0:
            raise SystemExit(f"streamsink process exited {code}")
        frames = None
    else:
        raise SystemExit(f"unknown mode {mode}")
    seconds = time.perf_counter() - start
    return {"mode": mode, "seconds": seconds, "frames": frames, "steps": steps, "threads": torch.get_num_threads()}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
