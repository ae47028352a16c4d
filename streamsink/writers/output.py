"""What every file writer shares: checking an output before work starts, and one-line reasons."""

from __future__ import annotations

from pathlib import Path

from streamsink.errors import WriterError, one_line


def _prepare_output(path: Path) -> None:
    """Create parent folders and check the file can be written, before any work is done."""
    if path.is_dir():
        raise WriterError(f"cannot write {path}: it is a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise WriterError(f"cannot create folder {path.parent} for {path.name}: {_reason(error)}") from None
    try:
        with open(path, "wb"):
            pass
    except OSError as error:
        raise WriterError(f"cannot write {path}: {_reason(error)}") from None


def _reason(error: BaseException) -> str:
    """Encoder and muxer failures keep FFmpeg's own words: they say why."""
    return one_line(error, ffmpeg_detail=True)
