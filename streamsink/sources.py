"""Sources: turn a file, "camera0", a URL or a folder of images into `Frame`s.

Two policies. Files and image folders are read completely and in order: a
slow consumer makes reading wait and nothing is lost. Cameras and network
streams are live: a reader thread keeps only the newest `buffer` frames, so a
slow consumer skips frames instead of falling further and further behind the
world. Every source is probed when it is opened, so a bad input fails in
`open_source` before any work starts.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

import numpy as np

from streamsink.channels import ReadAhead
from streamsink.errors import SourceError, SourceNotFoundError, StreamsinkError, one_line
from streamsink.types import Frame

log = logging.getLogger(__name__)

NETWORK_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_SUFFIXES = frozenset({
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".mts", ".m2ts", ".flv", ".wmv", ".mpg", ".mpeg",
    ".3gp", ".ogv",
})
DEFAULT_IMAGE_FPS = 25.0
# Network reconnects wait RECONNECT_DELAY, doubling after every failed attempt up to the cap.
RECONNECT_DELAY = 0.5
RECONNECT_DELAY_MAX = 8.0

_CAMERA = re.compile(r"(?:camera|/dev/video)?(\d+)")
T = TypeVar("T")


def open_source(
    spec: str | int | os.PathLike,
    *,
    buffer: int = 2,
    fps: float | None = None,
    timeout: float = 5.0,
    retries: int = 5,
) -> Source:
    """Open whatever `spec` names and probe it, so a bad input fails here.

    spec: a video file, a folder of images or a glob ("shots/*.png"), a camera
        ("camera0", "/dev/video0", 0, "0") or a URL (rtsp, rtsps, rtmp, http,
        https, udp, tcp, srt).
    buffer: frames decoded ahead (files, folders) or kept (live sources; when
        the consumer falls behind the oldest is dropped).
    fps: frame rate of an image folder (default 25), the rate asked of a
        camera, and the fallback for streams without timestamps.
    timeout: seconds a network open or read may stall before it counts as failed.
    retries: network attempts after the first one fails, consecutively,
        before giving up (the initial connection retries too).
    """
    if isinstance(buffer, bool) or not isinstance(buffer, int) or buffer < 1:
        raise ValueError(f"buffer must be an int >= 1, got {buffer!r}")
    if fps is not None and not (isinstance(fps, (int, float)) and 0 < fps < float("inf")):
        raise ValueError(f"fps must be > 0, got {fps!r}")
    if not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be an int >= 0, got {retries!r}")

    if isinstance(spec, bool) or not isinstance(spec, (str, int, os.PathLike)):
        raise ValueError(f"source must be a path, URL, camera name or camera number, got {spec!r}")
    if isinstance(spec, int):
        if spec < 0:
            raise ValueError(f"camera number must be >= 0, got {spec}")
        return CameraSource(spec, str(spec), buffer=buffer, fps=fps, retries=retries)

    text = os.fspath(spec)
    if not isinstance(text, str):
        text = os.fsdecode(text)
    if not text.strip():
        raise ValueError("source must not be empty")
    if isinstance(spec, str):
        if "://" in text:
            scheme = text.split("://", 1)[0].lower()
            if scheme in NETWORK_SCHEMES:
                return StreamSource(text, buffer=buffer, fps=fps, timeout=timeout, retries=retries)
            if scheme != "file":
                schemes = ", ".join(NETWORK_SCHEMES)
                raise SourceError(f"unsupported URL scheme {scheme}:// in {_redact(text)} (use {schemes})")
            text = text.split("://", 1)[1]
        match = _CAMERA.fullmatch(text.strip())
        if match and (text.strip().startswith("/dev/video") or not Path(text).exists()):
            return CameraSource(int(match.group(1)), text, buffer=buffer, fps=fps, retries=retries)

    path = Path(text).expanduser()
    if path.is_dir():
        files = [p for p in path.iterdir() if _is_image(p)]
        if not files:
            raise SourceNotFoundError(f"no images in folder {text} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
        return ImageFolderSource(sorted(files, key=_natural_key), text, path.resolve().name, buffer=buffer, fps=fps)
    if path.exists():
        return FileSource(path, text, buffer=buffer, fps=fps)
    if any(c in text for c in "*?["):
        import glob

        files = [Path(p) for p in glob.glob(os.path.expanduser(text), recursive=True) if _is_image(Path(p))]
        if not files:
            raise SourceNotFoundError(f"no images match {text}")
        return ImageFolderSource(sorted(files, key=_natural_key), text, _glob_name(text), buffer=buffer, fps=fps)
    raise SourceNotFoundError(f"no such file: {text}")


def expand_inputs(specs: Sequence[str | int | os.PathLike]) -> list[str | int]:
    """The sources a list of inputs names, in order.

    A folder or glob holding video files stands for each of those videos
    (natural order; a folder is not searched below its top level, a glob with
    `**` is). Anything else is one source as `open_source` reads it: a video,
    a folder or glob of images (one image sequence), a camera, a URL.
    A folder or glob with neither videos nor images raises SourceNotFoundError.
    """
    expanded: list[str | int] = []
    for spec in specs:
        if isinstance(spec, int) and not isinstance(spec, bool):
            expanded.append(spec)
            continue
        text = os.fspath(spec) if isinstance(spec, os.PathLike) else spec
        if not isinstance(text, str) or "://" in text:
            expanded.append(text)
            continue
        path = Path(text).expanduser()
        if path.is_dir():
            candidates = list(path.iterdir())
        elif not path.exists() and any(c in text for c in "*?["):
            import glob

            candidates = [Path(p) for p in glob.glob(os.path.expanduser(text), recursive=True)]
        else:
            expanded.append(text)
            continue
        videos = sorted((p for p in candidates if _is_video(p)), key=_natural_key)
        if videos:
            expanded.extend(str(p) for p in videos)
        elif any(_is_image(p) for p in candidates):
            expanded.append(text)
        else:
            kinds = ", ".join(sorted(VIDEO_SUFFIXES | IMAGE_SUFFIXES))
            raise SourceNotFoundError(f"no videos or images in {text} (looked for {kinds})")
    return expanded


def describe_source(spec: str | int | os.PathLike) -> tuple[str, bool]:
    """The name `open_source(spec)` gives its source, and whether it is live, without opening it.

    Runs over several sources name their outputs and route their frames by
    these names before any source is open (opening a camera or stream can
    take seconds, and names must not depend on which opens first).
    """
    if isinstance(spec, int) and not isinstance(spec, bool):
        return f"camera{spec}", True
    text = os.fspath(spec) if isinstance(spec, os.PathLike) else str(spec)
    if not isinstance(text, str):
        text = os.fsdecode(text)
    if "://" in text:
        scheme, rest = text.split("://", 1)
        if scheme.lower() in NETWORK_SCHEMES:
            return _url_name(text), True
        text = rest
    match = _CAMERA.fullmatch(text.strip())
    if match and (text.strip().startswith("/dev/video") or not Path(text).exists()):
        return f"camera{int(match.group(1))}", True
    path = Path(text).expanduser()
    if path.is_dir():
        return path.resolve().name or "images", False
    if not path.exists() and any(c in text for c in "*?["):
        return _glob_name(text), False
    return path.stem or path.name, False


def unique_names(names: Sequence[str]) -> list[str]:
    """The names with repeats made unique: clip, clip -> clip, clip-2 (the first keeps its name).

    A suffix never takes a name that another input already has.
    """
    given = set(names)
    used: set[str] = set()
    unique = []
    for name in names:
        candidate, n = name, 2
        while candidate in used or (candidate != name and candidate in given):
            candidate, n = f"{name}-{n}", n + 1
        used.add(candidate)
        unique.append(candidate)
    return unique


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


class LatestFrames(Generic[T]):
    """A small buffer that keeps only the newest items.

    A live producer must never wait for its consumer, or latency grows without
    bound; so `put` never blocks and, when the buffer is full, drops the
    oldest item and counts it in `dropped`.
    """

    def __init__(self, capacity: int) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity must be an int >= 1, got {capacity!r}")
        self.capacity = capacity
        self.dropped = 0
        self.high_water = 0
        self._items: deque[T] = deque()
        self._cond = threading.Condition()
        self._finished = False
        self._closed = False
        self._error: BaseException | None = None

    def put(self, item: T) -> bool:
        """Add the newest item; False once closed or finished (the producer should stop)."""
        with self._cond:
            if self._closed or self._finished:
                return False
            if len(self._items) >= self.capacity:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self.high_water = max(self.high_water, len(self._items))
            self._cond.notify()
            return True

    def get(self, timeout: float | None = None) -> T | None:
        """The oldest item kept, waiting for one; None at the end.

        After the producer finished, the remaining items come out first, then
        its error (if it gave one) is raised, then None. Raises TimeoutError
        if nothing came within `timeout` seconds.
        """
        with self._cond:
            if not self._cond.wait_for(lambda: self._items or self._finished or self._closed, timeout):
                raise TimeoutError(f"no frame within {timeout} s")
            if self._items:
                return self._items.popleft()
            if self._error is not None and not self._closed:
                error, self._error = self._error, None
                raise error
            return None

    def finish(self, error: BaseException | None = None) -> None:
        """The producer is done; `error` (if any) reaches the consumer after the last item."""
        with self._cond:
            self._finished = True
            self._error = error
            self._cond.notify_all()

    def close(self) -> None:
        """The consumer is done: drop what is kept and wake everyone."""
        with self._cond:
            self._closed = True
            self._items.clear()
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)


class LiveSource(Source):
    """Base of cameras and streams: a reader thread feeds a `LatestFrames`.

    Subclasses implement `_read` (call `_emit` per frame until it returns
    False or `_stop` is set) and `_cleanup` (runs in the reader thread when it
    ends); they start the thread with `_start` once probing succeeded.
    """

    is_live = True
    _join_timeout = 2.0

    def __init__(self, spec: str, name: str, *, buffer: int = 2) -> None:
        super().__init__(spec, name)
        self._latest: LatestFrames[tuple] = LatestFrames(buffer)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_index = 0

    @property
    def dropped(self) -> int:
        return self._latest.dropped

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"streamsink-live-{self.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._read()
        except StreamsinkError as error:
            self._latest.finish(error)
        except Exception as error:
            failure = SourceError(f"{self.name}: {one_line(error)}")
            failure.__cause__ = error
            self._latest.finish(failure)
        else:
            self._latest.finish()
        finally:
            self._cleanup()

    def _read(self) -> None:
        raise NotImplementedError

    def _cleanup(self) -> None:
        """Release the device or connection; runs in the reader thread."""

    def _emit(
        self,
        image: np.ndarray,
        pts: float,
        pts_ticks: int | None = None,
        time_base: Fraction | None = None,
        captured_at: float | None = None,
    ) -> bool:
        """Offer one frame; indices count dropped frames too. False when the consumer closed."""
        index = self._next_index
        self._next_index += 1
        stamp = time.monotonic() if captured_at is None else captured_at
        return self._latest.put((image, index, pts, pts_ticks, time_base, stamp))

    def _frames(self) -> Iterator[Frame]:
        while True:
            item = self._latest.get()
            if item is None:
                return
            image, index, pts, ticks, time_base, captured_at = item
            yield Frame(image, index, pts, self.name, ticks, time_base, self._latest.dropped, captured_at)

    def _release(self) -> None:
        self._stop.set()
        self._latest.close()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self._join_timeout)
            if thread.is_alive():
                log.warning("%s: reader still blocked after close; it stops at its next read", self.name)


class CameraSource(LiveSource):
    """A V4L2 webcam through OpenCV; pts are seconds since the first capture."""

    def __init__(self, number: int, spec: str, *, buffer: int = 2, fps: float | None = None, retries: int = 5) -> None:
        super().__init__(spec, f"camera{number}", buffer=buffer)
        linux = sys.platform.startswith("linux")
        device = Path(f"/dev/video{number}")
        if linux and not device.exists():
            raise SourceNotFoundError(f"camera{number} not found (no {device})")
        import cv2

        capture = cv2.VideoCapture(number, cv2.CAP_V4L2 if linux else cv2.CAP_ANY)
        try:
            if not capture.isOpened():
                where = f" ({device})" if linux else ""
                raise SourceError(f"cannot open camera{number}{where}: busy or not a capture device")
            capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
            if fps:
                capture.set(cv2.CAP_PROP_FPS, float(fps))
            ok, bgr = capture.read()
            if not ok or bgr is None:
                raise SourceError(f"camera{number} opened but delivered no frame")
        except BaseException:
            capture.release()
            raise
        self._capture = capture
        self._retries = retries
        first = _to_rgb(bgr)
        self.height, self.width = first.shape[:2]
        self.fps = float(capture.get(cv2.CAP_PROP_FPS)) or (float(fps) if fps else None)
        self._t0 = time.monotonic()
        self._emit(first, 0.0, captured_at=self._t0)
        self._start()

    def _read(self) -> None:
        failures = 0
        while not self._stop.is_set():
            ok, bgr = self._capture.read()
            now = time.monotonic()
            if not ok or bgr is None:
                failures += 1
                if failures > max(self._retries, 1):
                    raise SourceError(f"{self.name} stopped delivering frames after {failures} failed reads")
                self._stop.wait(0.1)
                continue
            failures = 0
            if not self._emit(_to_rgb(bgr), now - self._t0, captured_at=now):
                return

    def _cleanup(self) -> None:
        self._capture.release()


class _Timeline:
    """Keeps stream timestamps strictly increasing across reconnects and jumps back.

    A new connection restarts its clock (often at 0); its frames are shifted
    to continue after the last delivered frame, by the wall time that passed.
    """

    def __init__(self) -> None:
        self.offset = Fraction(0)
        self.last: Fraction | None = None
        self.last_at = 0.0
        self._rebase = False

    def new_segment(self) -> None:
        self._rebase = True

    def place(self, raw: Fraction | None, now: float, step: Fraction, time_base: Fraction | None) -> Fraction:
        pts = None if raw is None else raw + self.offset
        if self.last is None:
            pts = Fraction(0) if pts is None else pts
        elif self._rebase or pts is None or pts <= self.last:
            quantum = time_base or Fraction(1, 1_000_000)
            gap = max(step, round(Fraction(max(now - self.last_at, 0.0)) / quantum) * quantum)
            pts = self.last + gap
            if raw is not None:
                self.offset = pts - raw
        self._rebase = False
        self.last, self.last_at = pts, now
        return pts


class StreamSource(LiveSource):
    """A network stream through PyAV, with timeouts and reconnects.

    Decoding uses slice threads only: frame threads would add one frame of
    latency per thread, which is what a live source must not do.
    """

    def __init__(
        self, url: str, *, buffer: int = 2, fps: float | None = None, timeout: float = 5.0, retries: int = 5
    ) -> None:
        super().__init__(url, _url_name(url), buffer=buffer)
        self._url = url
        self._shown = _redact(url)
        self._scheme = url.split("://", 1)[0].lower()
        self._timeout = float(timeout)
        self._retries = retries
        self._join_timeout = self._timeout + 1.0
        self._timeline = _Timeline()
        self.fps = float(fps) if fps else None
        self._last_raw: Fraction | None = None
        connection = self._connect()
        if connection is None:
            raise SourceError(f"{self._shown} was closed while opening")
        container, decoded, first = connection
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        if rate:
            self.fps = float(rate)
        self.width, self.height = first.width, first.height
        self.time_base = stream.time_base
        self.has_audio = bool(container.streams.audio)
        self._container = container
        self._decoded = decoded
        self._deliver(first)
        self._start()

    def _options(self) -> dict[str, str]:
        microseconds = str(int(self._timeout * 1_000_000))
        options = {"rw_timeout": microseconds}
        if self._scheme in ("rtsp", "rtsps"):
            options.update(rtsp_transport="tcp", timeout=microseconds)
        elif self._scheme in ("http", "https", "tcp", "udp"):
            options["timeout"] = microseconds
        return options

    def _open_once(self) -> tuple[Any, Iterator[Any], Any]:
        import av

        container = av.open(self._url, options=self._options(), timeout=(self._timeout, self._timeout))
        try:
            if not container.streams.video:
                raise _NoVideo()
            stream = container.streams.video[0]
            stream.codec_context.thread_type = "SLICE"
            decoded = container.decode(stream)
            try:
                first = next(decoded)
            except StopIteration:
                raise EOFError("stream ended before its first frame") from None
        except BaseException:
            container.close()
            raise
        return container, decoded, first

    def _connect(self) -> tuple[Any, Iterator[Any], Any] | None:
        """Open with retries and exponential backoff; None if closed meanwhile."""
        import av

        failures = 0
        while True:
            try:
                return self._open_once()
            except _NoVideo:
                raise SourceError(f"no video stream in {self._shown}") from None
            except (av.FFmpegError, OSError, EOFError, ValueError) as error:
                failures += 1
                reason = one_line(error)
                if failures > self._retries:
                    raise SourceError(f"cannot open {self._shown}: {reason} after {failures} attempts") from None
                delay = min(RECONNECT_DELAY * 2 ** (failures - 1), RECONNECT_DELAY_MAX)
                log.warning("%s: %s; retrying in %.1f s (attempt %d of %d)", self._shown, reason, delay,
                            failures + 1, self._retries + 1)
                if self._stop.wait(delay):
                    return None

    def _deliver(self, frame: Any) -> bool:
        now = time.monotonic()
        image = np.ascontiguousarray(frame.to_ndarray(format="rgb24"))
        time_base = frame.time_base
        ticks = frame.pts if frame.pts is not None else frame.dts
        raw = ticks * time_base if ticks is not None and time_base else None
        step = 1 / Fraction(self.fps or DEFAULT_IMAGE_FPS).limit_denominator(1001)
        pts = self._timeline.place(raw, now, step, time_base)
        self._last_raw = raw
        exact = pts / time_base if time_base else None
        pts_ticks = int(exact) if exact is not None and exact.denominator == 1 else None
        return self._emit(image, float(pts), pts_ticks, time_base if pts_ticks is not None else None, now)

    def _read(self) -> None:
        import av

        container, decoded = self._container, self._decoded
        self._container = self._decoded = None
        while not self._stop.is_set():
            reason = None
            try:
                for frame in decoded:
                    if self._stop.is_set() or not self._deliver(frame):
                        return
            except (av.FFmpegError, OSError, EOFError, ValueError) as error:
                reason = one_line(error)
            finally:
                end = _media_end(container)
                container.close()
            if self._stop.is_set():
                return
            if reason is None and end is not None and self._last_raw is not None and self._last_raw >= end:
                log.info("%s: end of stream", self._shown)
                return
            log.warning("%s: %s; reconnecting", self._shown, reason or "stream ended")
            connection = self._connect()
            if connection is None:
                return
            container, decoded, first = connection
            self.reconnects += 1
            self._timeline.new_segment()
            if not self._deliver(first):
                container.close()
                return

    def _cleanup(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


class _NoVideo(Exception):
    pass


def _media_end(container: Any) -> Fraction | None:
    """Timestamp (seconds) of the last frame of a stream with a known length, else None.

    Live streams have no duration; a clean end of one means the connection
    went away, while a stream with a duration that reached it is finished.
    """
    try:
        duration = container.duration
        if not duration:
            return None
        stream = container.streams.video[0]
        start = Fraction(container.start_time or 0, 1_000_000)
        rate = stream.average_rate or stream.guessed_rate or DEFAULT_IMAGE_FPS
        return start + Fraction(duration, 1_000_000) - 2 / Fraction(rate)
    except Exception:
        return None


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


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".") and path.is_file()


def _is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES and not path.name.startswith(".") and path.is_file()


def _natural_key(path: Path) -> list:
    """Sort key that puts img2 before img10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path).lower())]


def _glob_name(pattern: str) -> str:
    """The last folder before the first wildcard: "shots/*.png" -> "shots"."""
    plain = []
    for part in Path(pattern).parts[:-1]:
        if any(c in part for c in "*?["):
            break
        plain.append(part)
    name = Path(*plain).resolve().name if plain else Path.cwd().name
    return name or "images"


def _redact(url: str) -> str:
    """The URL with any password replaced, fit for logs and error messages."""
    scheme, sep, rest = url.partition("://")
    netloc, slash, tail = rest.partition("/")
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            netloc = f"{userinfo.split(':', 1)[0]}:***@{host}"
    return f"{scheme}{sep}{netloc}{slash}{tail}"


def _url_name(url: str) -> str:
    """A short file-name-safe name: "rtsp://u:p@cam.local:554/live/ch1.sdp" -> "cam.local_live_ch1"."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return "stream"
    segments = [s for s in parts.path.split("/") if s]
    if segments:
        segments[-1] = Path(segments[-1]).stem or segments[-1]
    elif port:
        segments = [str(port)]
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", "_".join([host, *segments])).strip("._-")
    return name[:80] or "stream"
