"""Recorded sources: a video file (PyAV) and a folder or glob of still images, read completely and in order.

A slow consumer makes reading wait and nothing is lost; decoding runs a few
frames ahead in a thread of its own (`ReadAhead`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from streamsink.channels import ReadAhead
from streamsink.errors import SourceError, one_line
from streamsink.sources.base import DEFAULT_IMAGE_FPS, Source
from streamsink.types import Frame

log = logging.getLogger("streamsink.sources")


class FileSource(Source):
    """A video file read with PyAV: every frame, in order, with the stream's own timestamps."""

    def __init__(self, path: Path, spec: str, *, buffer: int = 2, fps: float | None = None) -> None:
        import av

        super().__init__(spec, path.stem or path.name)
        self.path = path
        self._buffer = buffer
        self._reader: ReadAhead | None = None
        try:
            container = av.open(str(path))
        except PermissionError:
            raise SourceError(f"cannot read {spec}: permission denied") from None
        except IsADirectoryError:
            raise SourceError(f"not a video: {spec} (a directory)") from None
        except (av.FFmpegError, OSError, ValueError) as error:
            raise SourceError(f"not a video: {spec} ({one_line(error)})") from None
        try:
            if not container.streams.video:
                kinds = ", ".join(sorted({s.type for s in container.streams})) or "none"
                raise SourceError(f"no video stream in {spec} (streams: {kinds})")
            stream = container.streams.video[0]
            stream.codec_context.thread_type = "AUTO"
            decoded = container.decode(stream)
            try:
                first = next(decoded)
            except StopIteration:
                raise SourceError(f"not a video: {spec} (no decodable video frame)") from None
            except (av.FFmpegError, OSError, ValueError) as error:
                raise SourceError(f"not a video: {spec} ({one_line(error)})") from None
        except BaseException:
            container.close()
            raise
        self._container = container
        self._decoded = decoded
        self._first = first
        self.time_base = stream.time_base
        self.width, self.height = first.width, first.height
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        self.fps = float(rate) if rate else fps
        self.has_audio = bool(container.streams.audio)
        self.frame_count = stream.frames or _estimate_frames(stream, container, self.fps)

    def _frames(self) -> Iterator[Frame]:
        self._reader = ReadAhead(self._decode, self._buffer, self.name)
        yield from self._reader

    def _decode(self) -> Iterator[Frame]:
        import av

        first, self._first = self._first, None
        yield self._to_frame(first, 0)
        index = 1
        try:
            for index, frame in enumerate(self._decoded, start=1):
                yield self._to_frame(frame, index)
        except av.FFmpegError as error:
            raise SourceError(f"{self.spec}: decoding failed after {index} frames ({one_line(error)})") from error

    def _to_frame(self, frame: Any, index: int) -> Frame:
        image = np.ascontiguousarray(frame.to_ndarray(format="rgb24"))
        time_base = frame.time_base or self.time_base
        ticks = frame.pts if frame.pts is not None else frame.dts
        if ticks is not None and time_base:
            pts = float(ticks * time_base)
        else:
            ticks, pts = None, index / (self.fps or DEFAULT_IMAGE_FPS)
        return Frame(image, index, pts, self.name, ticks, time_base, 0, time.monotonic())

    def _release(self) -> None:
        if self._reader is not None and not self._reader.stop():
            log.warning("%s: decoder thread did not stop; leaving the file open", self.name)
            return
        self._first = None
        self._container.close()


class ImageFolderSource(Source):
    """Still images in natural order (img2 before img10) played as a video at `fps`."""

    def __init__(
        self, files: list[Path], spec: str, name: str, *, buffer: int = 2, fps: float | None = None
    ) -> None:
        super().__init__(spec, name or "images")
        self._buffer = buffer
        self._reader: ReadAhead | None = None
        self.fps = float(fps) if fps else DEFAULT_IMAGE_FPS
        self.time_base = 1 / Fraction(self.fps).limit_denominator(1001)
        for start, path in enumerate(files):
            first = _read_image(path)
            if first is not None:
                break
            log.warning("skipping %s: not a readable image", path)
        else:
            raise SourceError(f"no readable image in {spec} ({len(files)} files tried)")
        self._files = files[start:]
        self._first: np.ndarray | None = first
        self.height, self.width = first.shape[:2]
        self.frame_count = len(self._files)

    def _frames(self) -> Iterator[Frame]:
        self._reader = ReadAhead(self._read_all, self._buffer, self.name)
        yield from self._reader

    def _read_all(self) -> Iterator[Frame]:
        import cv2

        size = (self.width, self.height)
        warned = False
        index = 0
        for path in self._files:
            if index == 0:
                image, self._first = self._first, None
            else:
                image = _read_image(path)
            if image is None:
                log.warning("skipping %s: not a readable image", path)
                continue
            if image.shape[1::-1] != size:
                if not warned:
                    log.warning(
                        "%s: resizing images to the first image's %dx%d (first differing: %s, %dx%d)",
                        self.name, size[0], size[1], path.name, image.shape[1], image.shape[0],
                    )
                    warned = True
                image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            pts = float(index * self.time_base)
            yield Frame(image, index, pts, self.name, index, self.time_base, 0, time.monotonic())
            index += 1

    def _release(self) -> None:
        self._first = None
        if self._reader is not None and not self._reader.stop():
            log.warning("%s: reader thread did not stop", self.name)


def _estimate_frames(stream: Any, container: Any, fps: float | None) -> int | None:
    if not fps:
        return None
    if stream.duration and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration:
        seconds = container.duration / 1_000_000
    else:
        return None
    return max(1, round(seconds * fps))


def _read_image(path: Path) -> np.ndarray | None:
    """RGB uint8, or None if the file is not a readable image (EXIF rotation applied)."""
    import cv2

    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError:
        return None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    return None if image is None else _to_rgb(image)


def _to_rgb(image: np.ndarray) -> np.ndarray:
    import cv2

    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
