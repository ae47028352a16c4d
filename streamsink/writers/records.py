"""JSONL: one record per frame, flushed as written, so a cut-off run leaves whole lines."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import IO, Any

import numpy as np

from streamsink.errors import WriterError
from streamsink.types import Detections, Frame
from streamsink.writers.output import _prepare_output, _reason


class JsonlWriter:
    """One JSON object per line, flushed as written, so a cut-off run leaves whole lines.

    `path` "-" writes to stdout, which is flushed but never closed.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = path
        self._file: IO[str] | None
        if str(path) == "-":
            self._file = sys.stdout
            self._owned = False
            return
        path = Path(path)
        _prepare_output(path)
        try:
            self._file = open(path, "w", encoding="utf-8")
        except OSError as error:
            raise WriterError(f"cannot write {path}: {_reason(error)}") from None
        self._owned = True

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def write(self, record: dict) -> None:
        if self._file is None:
            raise WriterError(f"cannot write {self.path}: writer is closed")
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=_plain)
        try:
            self._file.write(line + "\n")
            self._file.flush()
        except OSError as error:
            raise WriterError(f"cannot write {self.path}: {_reason(error)}") from None

    def close(self) -> None:
        file, self._file = self._file, None
        if file is not None and self._owned:
            file.close()


def frame_record(
    frame: Frame,
    detections: Detections,
    states: dict[str, str],
    *,
    raw: Detections | None = None,
    extra: dict | None = None,
) -> dict[str, Any]:
    """The JSONL record of one frame: plain Python values, floats rounded.

    {"frame", "pts", "detections", "states"} always; "raw" (detections before
    smoothing) when given, "source" when the frame names one, "dropped" when a
    live source dropped frames before this one to keep up, "lost" when a stream
    missed frames in an outage; `extra` keys are added last.
    """
    record: dict[str, Any] = {
        "frame": int(frame.index),
        "pts": round(float(frame.pts), 6),
        "detections": detections.to_records(),
        "states": {str(k): str(v) for k, v in states.items()},
    }
    if raw is not None:
        record["raw"] = raw.to_records()
    if frame.source:
        record["source"] = frame.source
    if frame.dropped > 0:
        record["dropped"] = int(frame.dropped)
    if frame.lost > 0:
        record["lost"] = int(frame.lost)
    if extra:
        record.update(extra)
    return record


def _plain(value: Any) -> Any:
    """Numpy scalars and arrays in a record become plain JSON numbers and lists."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
