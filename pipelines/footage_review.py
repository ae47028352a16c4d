"""Footage review: a folder of recordings -> per-file JSONL + one CSV of when each class was present.

    python pipelines/footage_review.py recordings/ --prompt "dog,tractor" -o review/

The CSV has one row per stretch of presence: file, class, start and end (seconds
from the file's own timestamps) and the number of frames. One model is loaded
and shared by every file. Uses only streamsink's public API.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import streamsink

VIDEO_SUFFIXES = {".mp4", ".mkv", ".avi", ".mov", ".webm", ".ts", ".m4v"}


def presence_intervals(results):
    """Yield (label, start_pts, end_pts, frames) for every run of "present" frames, per class."""
    runs: dict[str, list] = {}
    for result in results:
        for label, state in result.states.items():
            run = runs.get(label)
            if state == "present":
                if run is None:
                    runs[label] = [result.pts, result.pts, 1]
                else:
                    run[1], run[2] = result.pts, run[2] + 1
            elif run is not None:
                yield label, *runs.pop(label)
    for label, run in runs.items():
        yield label, *run


def review(folder: Path, prompt: str, model: str, out: Path, **options) -> Path:
    """Process every video in `folder`; return the CSV path."""
    videos = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    if not videos:
        raise streamsink.SourceNotFoundError(f"no videos in {folder}")
    out.mkdir(parents=True, exist_ok=True)
    detector = streamsink.SinkDetector.from_pretrained(model, **options)
    csv_path = out / "presence.csv"
    with open(csv_path, "w", newline="") as handle:
        table = csv.writer(handle)
        table.writerow(["file", "class", "start_s", "end_s", "frames"])
        for video in videos:
            with streamsink.JsonlWriter(out / f"{video.stem}.jsonl") as jsonl:

                def recorded(results):
                    for result in results:
                        jsonl.write(streamsink.frame_record(result.frame, result.detections, result.states))
                        yield result

                for label, start, end, frames in presence_intervals(recorded(streamsink.run(str(video), prompt, detector=detector))):
                    table.writerow([video.name, label, f"{start:.3f}", f"{end:.3f}", frames])
    return csv_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--model", default=streamsink.DEFAULT_MODEL)
    parser.add_argument("-o", "--out", type=Path, default=Path("review"))
    parser.add_argument("--sinks", type=int, default=16)
    args = parser.parse_args(argv)
    try:
        csv_path = review(args.folder, args.prompt, args.model, args.out, sinks=args.sinks)
    except (streamsink.StreamsinkError, ValueError) as error:
        print(f"footage_review: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {csv_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
