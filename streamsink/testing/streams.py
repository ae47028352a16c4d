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


class WatchRun:
    """`streamsink watch ...` in a child process, for tests and benchmarks of live runs.

    Starts the command, waits until the model has loaded (and, with `--serve`,
    for its "live view: URL" line), and on leaving the `with` asks it to stop
    as Ctrl-C does and waits for it. `get(path)` reads the page's API;
    `exit_code` and `stderr` are there once it has stopped.
    """

    def __init__(self, args: Sequence[str], *, log: str, startup: float = 180.0, env: dict | None = None) -> None:
        self.args = [str(a) for a in args]
        self.serves = "--serve" in self.args
        self.log = log
        self.startup = startup
        self.env = env
        self.url = ""
        self.exit_code: int | None = None
        self._process = None

    @property
    def pid(self) -> int:
        return self._process.pid

    def __enter__(self) -> WatchRun:
        import re
        import subprocess
        import sys

        with open(self.log, "w") as err:
            self._process = subprocess.Popen([sys.executable, "-m", "streamsink", "watch", *self.args],
                                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                             env=self.env)
        deadline = time.monotonic() + self.startup
        while time.monotonic() < deadline:
            found = re.search(r"live view: (http://\S+)", self.stderr)
            if (found or not self.serves) and "detector:" in self.stderr:
                self.url = found.group(1) if found else ""
                return self
            if self._process.poll() is not None:
                break
            time.sleep(0.2)
        self.__exit__()
        raise RuntimeError(f"watch did not start serving: {self.stderr[-2000:]}")

    @property
    def stderr(self) -> str:
        with open(self.log) as err:
            return err.read()

    def get(self, path: str, timeout: float = 10.0) -> bytes:
        import urllib.request

        with urllib.request.urlopen(self.url.rstrip("/") + path, timeout=timeout) as response:
            return response.read()

    def state(self) -> dict:
        import json

        return json.loads(self.get("/api/state"))

    def stop(self, timeout: float = 60.0) -> int:
        import signal
        import subprocess

        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self.exit_code = self._process.returncode
        return self.exit_code

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self.stop()
