"""What an archive run reports: one `FileResult` per input, and the `ArchiveReport` saved as OUTDIR/summary.json."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from streamsink.errors import WriterError, one_line
from streamsink.types import FileStatus

DONE, FAILED, SKIPPED, PENDING = FileStatus.DONE, FileStatus.FAILED, FileStatus.SKIPPED, FileStatus.PENDING
SUMMARY_NAME = "summary.json"


@dataclass(frozen=True, slots=True)
class FileResult:
    """What became of one input file.

    status: "done" (written now), "skipped" (complete outputs were already
        there), "failed" (error says why), or "pending" (the run was
        interrupted before it).
    frames: frames annotated (for a skipped file: lines of its JSONL).
    presence: class -> seconds shown as "present"; each frame lasts until the
        next one's timestamp, the last one the mean frame step.
    elapsed: seconds its replica spent on it (0 for skipped files).
    attempts: tries that raised, plus the successful one.
    """

    name: str
    input: str
    status: FileStatus | str
    frames: int = 0
    presence: dict[str, float] = field(default_factory=dict)
    elapsed: float = 0.0
    error: str | None = None
    video: str | None = None
    jsonl: str | None = None
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class ArchiveReport:
    """The outcome of `process_archive`, one `FileResult` per input in input order; saved as OUTDIR/summary.json."""

    files: tuple[FileResult, ...]
    outdir: str
    classes: tuple[str, ...]
    workers: int = 0
    replacements: int = 0
    elapsed: float = 0.0
    interrupted: bool = False

    def _with(self, status: str) -> tuple[FileResult, ...]:
        return tuple(f for f in self.files if f.status == status)

    @property
    def done(self) -> tuple[FileResult, ...]:
        return self._with(DONE)

    @property
    def failed(self) -> tuple[FileResult, ...]:
        return self._with(FAILED)

    @property
    def skipped(self) -> tuple[FileResult, ...]:
        return self._with(SKIPPED)

    @property
    def frames(self) -> int:
        """Frames annotated by this run (skipped files not counted)."""
        return sum(f.frames for f in self.done)

    @property
    def fps(self) -> float:
        """Frames per second of this run over the whole archive, model loading included."""
        return self.frames / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def presence(self) -> dict[str, float]:
        """Class -> seconds present, summed over every complete file (done and skipped)."""
        total = dict.fromkeys(self.classes, 0.0)
        for result in self.files:
            if result.status in (DONE, SKIPPED):
                for label, seconds in result.presence.items():
                    total[label] = total.get(label, 0.0) + seconds
        return {label: round(seconds, 6) for label, seconds in total.items()}

    def to_json(self) -> dict[str, Any]:
        return {
            "outdir": self.outdir,
            "classes": list(self.classes),
            "interrupted": self.interrupted,
            "workers": self.workers,
            "worker_replacements": self.replacements,
            "elapsed": round(self.elapsed, 3),
            "totals": {
                "files": len(self.files),
                "done": len(self.done),
                "failed": len(self.failed),
                "skipped": len(self.skipped),
                "pending": len(self._with(PENDING)),
                "frames": self.frames,
                "fps": round(self.fps, 3),
                "presence": self.presence,
            },
            "files": [asdict(f) for f in self.files],
        }

    def write(self, path: str | Path) -> Path:
        """Write the JSON atomically (a reader never sees half a summary)."""
        path = Path(path)
        partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.part")
        try:
            partial.write_text(json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            os.replace(partial, path)
        except OSError as error:
            partial.unlink(missing_ok=True)
            raise WriterError(f"cannot write {path}: {one_line(error)}") from None
        return path
