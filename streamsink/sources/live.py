"""Live sources: cameras (OpenCV) and network streams (PyAV), newest frames kept, reconnecting.

A reader thread keeps only the newest `buffer` frames (`LatestFrames`), so a
slow consumer skips frames instead of falling further and further behind the
world; every drop is counted (`Frame.dropped`).
"""

from __future__ import annotations

import errno
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np

from streamsink.errors import SourceError, SourceNotFoundError, StreamsinkError, one_line
from streamsink.sources.base import DEFAULT_IMAGE_FPS, Source
from streamsink.sources.files import _to_rgb
from streamsink.sources.naming import _password, _redact, _url_name
from streamsink.types import Frame

log = logging.getLogger("streamsink.sources")

# Network reconnects wait RECONNECT_DELAY, doubling after every failed attempt up to the cap.
RECONNECT_DELAY = 0.5
RECONNECT_DELAY_MAX = 8.0

T = TypeVar("T")


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
        self.lost = 0  # frames missed during outages (streams that reconnect)
        self.buffer = buffer  # newest frames kept before the oldest is dropped; the engine's inbox keeps as many
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
            failure = SourceError(f"{self.name}: {self._reason(error)}")
            failure.__cause__ = error
            self._latest.finish(failure)
        else:
            self._latest.finish()
        finally:
            self._cleanup()

    def _read(self) -> None:
        raise NotImplementedError

    def _reason(self, error: BaseException) -> str:
        """An error as one line for logs and messages."""
        return one_line(error)

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
        return self._latest.put((image, index, pts, pts_ticks, time_base, stamp, self.lost))

    def _frames(self) -> Iterator[Frame]:
        while True:
            item = self._latest.get()
            if item is None:
                return
            image, index, pts, ticks, time_base, captured_at, lost = item
            yield Frame(image, index, pts, self.name, ticks, time_base, self._latest.dropped, captured_at, lost)

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
        self.missed = 0  # frames the last new segment's gap spanned (an outage), beyond the one step
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
            if self._rebase:
                self.missed = max(0, round(gap / step) - 1)
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
        self._transport = "tcp"  # RTSP: "udp" once the server turned TCP down
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

    def _options(self, transport: str = "tcp") -> dict[str, str]:
        microseconds = str(int(self._timeout * 1_000_000))
        options = {"rw_timeout": microseconds}
        if self._scheme in ("rtsp", "rtsps"):
            options.update(rtsp_transport=transport, timeout=microseconds)
        elif self._scheme in ("http", "https", "tcp", "udp"):
            options["timeout"] = microseconds
        return options

    def _reason(self, error: BaseException) -> str:
        """An error's one line, with the URL's password replaced (FFmpeg's messages quote the URL)."""
        reason = one_line(error).replace(self._url, self._shown)
        password = _password(self._url)
        return reason.replace(password, "***") if password else reason

    def _open_once(self) -> tuple[Any, Iterator[Any], Any]:
        """Open the stream; RTSP over TCP (interleaved: no lost packets, through firewalls), and over UDP when
        the server offers only that (it refuses the TCP transport at once: "Protocol not supported")."""
        try:
            return self._open_with(self._transport)
        except OSError as error:
            if self._scheme not in ("rtsp", "rtsps") or self._transport != "tcp" or error.errno != errno.EPROTONOSUPPORT:
                raise
        self._transport = "udp"
        log.info("%s: the server offers no RTSP over TCP; using UDP", self._shown)
        return self._open_with("udp")

    def _open_with(self, transport: str) -> tuple[Any, Iterator[Any], Any]:
        import av

        # FFmpeg's RTSP demuxer answers a read timeout by handing out the packets it holds for reordering and
        # waits again; only the second timeout is an error. Half the timeout each: a stall shows after one.
        read_timeout = self._timeout / 2 if self._scheme in ("rtsp", "rtsps") else self._timeout
        container = av.open(self._url, options=self._options(transport), timeout=(self._timeout, read_timeout))
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
                reason = self._reason(error)
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
        self.lost += self._timeline.missed
        self._timeline.missed = 0
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
                reason = self._reason(error)
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
