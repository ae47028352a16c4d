"""A live stream on loopback for tests and benchmarks: an endless MPEG-TS over HTTP at a real frame rate.

Each client gets the given frames, looped, encoded as they are sent and paced
by the wall clock, as an HTTP camera sends them: a reader that falls behind
finds the frames waiting in its socket, one that keeps up gets them at `fps`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np


class _Socket:
    """The file PyAV's muxer writes to: the client's socket, raising once it has gone."""

    def __init__(self, wfile) -> None:
        self._wfile = wfile

    def write(self, data: bytes) -> int:
        self._wfile.write(data)
        return len(data)

    def flush(self) -> None:
        self._wfile.flush()


class LiveStream:
    """Serves `frames` (RGB uint8, all one size) in a loop at `fps` to every client of `url`, until closed.

    Use as `with LiveStream(frames) as stream: ... stream.url ...`.
    """

    def __init__(self, frames: Sequence[np.ndarray], fps: float = 25.0, *, gop: int = 12) -> None:
        if not frames:
            raise ValueError("LiveStream needs at least one frame")
        self.frames = [np.ascontiguousarray(frame) for frame in frames]
        self.fps = float(fps)
        self.clients = 0
        self._closed = threading.Event()
        stream = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "video/mp2t")
                self.end_headers()
                stream.clients += 1
                try:
                    stream._send(_Socket(self.wfile), gop)
                except Exception:  # the client went away (PyAV wraps the broken pipe in its own error)
                    pass
                self.close_connection = True

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True, name="streamsink-test-stream")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/live.ts"

    def _send(self, out: _Socket, gop: int) -> None:
        import av

        height, width = self.frames[0].shape[:2]
        with av.open(out, "w", format="mpegts") as container:
            video = container.add_stream("mpeg2video", rate=round(self.fps))
            video.width, video.height, video.pix_fmt = width, height, "yuv420p"
            video.gop_size, video.max_b_frames, video.bit_rate = gop, 0, 4_000_000
            start = time.monotonic()
            index = 0
            while not self._closed.is_set():
                wait = start + index / self.fps - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                frame = av.VideoFrame.from_ndarray(self.frames[index % len(self.frames)], format="rgb24")
                frame.pts = index
                for packet in video.encode(frame):
                    container.mux(packet)
                out.flush()
                index += 1

    def __enter__(self) -> LiveStream:
        self._thread.start()
        return self

    def close(self) -> None:
        self._closed.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __exit__(self, *exc: object) -> None:
        self.close()
