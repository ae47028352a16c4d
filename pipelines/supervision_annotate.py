"""Recipe: streamsink's detections and states drawn with supervision's annotators.

streamsink finds and smooths; supervision (pip install supervision) draws, counts in zones, tracks. Each
result's `detections.to_supervision()` is a `supervision.Detections` with the class names in
`data["class_name"]`, so any supervision annotator, zone or tracker works on it.

    python pipelines/supervision_annotate.py footage.mp4 --prompt "dog,tractor" -o annotated.mp4 [--model DIR]
"""

from __future__ import annotations

import argparse

import streamsink


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source")
    parser.add_argument("--prompt", "-p", required=True)
    parser.add_argument("--model", "-m", default=streamsink.DEFAULT_MODEL)
    parser.add_argument("-o", "--output", default="annotated.mp4")
    args = parser.parse_args(argv)

    import supervision as sv

    boxes, labels = sv.BoxAnnotator(), sv.LabelAnnotator()
    frames = 0
    with streamsink.open_source(args.source) as source, streamsink.VideoWriter.like(source, args.output) as video:
        for result in streamsink.run(args.source, args.prompt, model=args.model):
            found = result.detections.to_supervision()
            names = [f"{name} {score:.2f}" for name, score in zip(found.data["class_name"], found.confidence)]
            image = boxes.annotate(result.frame.image.copy(), found)
            image = labels.annotate(image, found, labels=names)
            video.write(result.frame, image)
            frames += 1
            present = [label for label, state in result.states.items() if state == streamsink.State.PRESENT]
            if result.index % 25 == 0:
                print(f"frame {result.index}: present {', '.join(present) or 'nothing'}")
    print(f"wrote {args.output} ({frames} frames)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
