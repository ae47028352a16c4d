"""Generate small test clips with PyAV, so tests need no files from outside.

Each frame carries its index as a pattern (a bright bar whose x position moves
with the index), so a test can tell frames apart after lossy coding.
"""

from __future__ import annotations

import socket
import threading
import time
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import numpy as np


def pattern(index: int, width: int = 160, height: int = 120) -> np.ndarray:
    """An RGB frame whose content depends on `index`: gradient background plus a moving bar."""
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([(x * 255 // max(width - 1, 1)), (y * 255 // max(height - 1, 1)), np.full_like(x, 64)], -1)
    image = image.astype(np.uint8)
    bar = (index * 7) % max(width - 8, 1)
    image[:, bar : bar + 8] = 255
    return image


def make_clip(
    path: str | Path,
    *,
    frames: int = 12,
    codec: str = "libx264",
    fps: int = 25,
    width: int = 160,
    height: int = 120,
    pts: list[int] | None = None,
    time_base: Fraction | None = None,
    audio: bool = False,
    pix_fmt: str | None = None,
) -> Path:
    """Write a clip and return its path; `pts` (in `time_base` ticks) makes variable frame rate."""
    path = Path(path)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = pix_fmt or ("yuvj420p" if codec == "mjpeg" else "yuv420p")
        if time_base is not None:
            stream.time_base = time_base
            stream.codec_context.time_base = time_base
        if codec == "libx264":
            stream.options = {"preset": "ultrafast", "bf": "0"}
        audio_stream = None
        if audio:
            audio_stream = container.add_stream("aac", rate=48000)
            audio_stream.layout = "mono"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(pattern(i, width, height), format="rgb24")
            if pts is not None:
                frame.pts = pts[i]
                frame.time_base = time_base or Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if audio_stream is not None:
            _write_tone(container, audio_stream, seconds=frames / fps)
    return path


def _write_tone(container, stream, seconds: float) -> None:
    """A 440 Hz mono tone as long as the video."""
    rate = 48000
    total = int(seconds * rate)
    t = np.arange(total) / rate
    samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    chunk = 1024
    for start in range(0, total, chunk):
        piece = samples[start : start + chunk]
        frame = av.AudioFrame.from_ndarray(piece[None, :], format="fltp", layout="mono")
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def read_video_pts(path: str | Path) -> list[float]:
    """Presentation times in seconds of every decoded video frame, in order."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [float(f.pts * f.time_base) for f in container.decode(stream)]


def stream_kinds(path: str | Path) -> list[str]:
    with av.open(str(path)) as container:
        return [s.type for s in container.streams]


class ClipServer:
    """Serves one clip over HTTP on 127.0.0.1; the first request is cut off halfway."""

    def __init__(self, data: bytes, cut_first: bool = True) -> None:
        self.requests = 0
        server_self = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server_self.requests += 1
                cut = cut_first and server_self.requests == 1
                self.send_response(200)
                self.send_header("Content-Type", "video/mp2t")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                body = data[: len(data) // 2] if cut else data
                try:
                    for start in range(0, len(body), 8192):
                        self.wfile.write(body[start : start + 8192])
                        time.sleep(0.01)
                    if cut:
                        self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> ClipServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"
