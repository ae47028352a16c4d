"""`Source`: frames from one input, a context manager iterated once, that releases what it opened."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

from streamsink.errors import SourceError
from streamsink.types import Frame

DEFAULT_IMAGE_FPS = 25.0


class Source:
    """Frames from one input: a context manager, iterated once.

    Leaving the `with`, calling `close()` or stopping the iteration early
    (break, generator close) stops any reader thread and releases the file,
    camera or connection.
    """

    is_live: bool = False

    def __init__(self, spec: str, name: str) -> None:
        self.spec = spec
        self.name = name
        self.fps: float | None = None
        self.width: int | None = None
        self.height: int | None = None
        self.time_base: Fraction | None = None
        self.path: Path | None = None
        self.has_audio = False
        self.frame_count: int | None = None
        self.reconnects = 0
        self._closed = False
        self._iterated = False
        self._close_lock = threading.Lock()

    @property
    def dropped(self) -> int:
        """Frames skipped because the consumer fell behind (live sources only)."""
        return 0

    @property
    def closed(self) -> bool:
        return self._closed

    def __iter__(self) -> Iterator[Frame]:
        if self._closed:
            raise SourceError(f"{self.name} is closed")
        if self._iterated:
            raise SourceError(f"{self.name} can be iterated only once; open it again")
        self._iterated = True
        return self._iterate()

    def _iterate(self) -> Iterator[Frame]:
        try:
            yield from self._frames()
        finally:
            self.close()

    def _frames(self) -> Iterator[Frame]:
        raise NotImplementedError

    def _release(self) -> None:
        """Stop threads and free what the source opened; called once."""

    def close(self) -> None:
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._release()

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        size = f"{self.width}x{self.height}" if self.width else "?"
        return f"<{type(self).__name__} {self.name!r} {size} fps={self.fps} live={self.is_live}>"
