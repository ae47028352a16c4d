"""One error family, so callers can catch streamsink's own failures in one place.

Each error also inherits the builtin it refines, so `except FileNotFoundError`
keeps working for people who never heard of streamsink. Messages are one plain
line: the CLI prints them as they are.
"""

from __future__ import annotations


class StreamsinkError(Exception):
    """Base of every error streamsink raises on purpose."""


class SourceNotFoundError(StreamsinkError, FileNotFoundError):
    """A file, folder, glob or camera that does not exist."""


class SourceError(StreamsinkError, OSError):
    """A source that exists but cannot be read: not a video, unreachable stream, broken camera."""


class ModelNotFoundError(StreamsinkError, FileNotFoundError):
    """A model id or directory that cannot be loaded (for example offline with no cached weights)."""


class UnsupportedModelError(StreamsinkError, ValueError):
    """A checkpoint whose architecture streamsink cannot run."""


class PromptError(StreamsinkError, ValueError):
    """A prompt with no usable class, or one longer than the model can read."""


class WriterError(StreamsinkError, OSError):
    """An output that cannot be created or written."""


def one_line(error: BaseException, *, ffmpeg_detail: bool = False) -> str:
    """An error's own words on one line.

    By default an OS-level error gives its `strerror`, which leaves out the
    file name or URL FFmpeg appends (so a password in a URL never reaches a
    message). `ffmpeg_detail` keeps PyAV's whole text, where FFmpeg's own log
    line says why an encoder or muxer refused.
    """
    if ffmpeg_detail and type(error).__module__.startswith("av."):
        text = str(error)
    else:
        text = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return " ".join(str(text).split())
