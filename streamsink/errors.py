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
