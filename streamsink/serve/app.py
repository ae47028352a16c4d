"""The web server of `watch --serve`: the live page, its JSON API and the frames, on aiohttp.

It runs its own event loop in a thread of its own, so the run never waits
for it: handlers read the `LiveBoard` and JPEG encoding runs in one worker
thread, at most once per frame. A viewer that reads slowly (or not at all)
holds one frame in its socket buffer and gets the newest one when it
catches up; it costs the run neither latency nor memory.

    GET  /                              the page
    GET  /api/state                     every source's states, figures, timeline, recent changes
    GET  /api/snapshot/<source>.jpg     the newest annotated frame (?after=SEQ waits for a newer one)
    GET  /api/stream/<source>.mjpg      the annotated video as MJPEG (VLC, Home Assistant's MJPEG camera)
    POST /api/prompt                    {"prompt": "car,cat", "source": "<name>"}: new classes from the next batch

Safe by default: the CLI binds loopback unless told otherwise and needs a
token for any other address; with a token every request carries it
(`?token=` or `Authorization: Bearer`). Nothing of the file system is served.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hmac
import importlib.resources
import ipaddress
import json
import logging
import threading
from typing import Any

from streamsink.errors import PromptError, StreamsinkError
from streamsink.serve.board import LiveBoard

logger = logging.getLogger(__name__)

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8080
MAX_BODY = 16 * 1024  # a prompt change is a few dozen bytes; anything bigger is refused with 413
MAX_STREAMS = 16  # open MJPEG viewers; more get 503
SNAPSHOT_WAIT = 5.0  # longest a ?after= request waits for a newer frame


class ServeError(StreamsinkError, OSError):
    """The page cannot be served (the address is taken or not this machine's)."""


def parse_address(text: str) -> tuple[str, int]:
    """"8080", "0.0.0.0:8080", "[::1]:8080" -> (host, port); a bare port binds loopback. ValueError otherwise."""
    host, sep, port = text.rpartition(":") if ":" in text else ("", "", text)
    host = host.strip("[]") if sep else DEFAULT_HOST
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--serve takes [HOST:]PORT such as 8080 or 0.0.0.0:8080, got {text!r}")
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _page() -> bytes:
    return importlib.resources.files("streamsink.serve").joinpath("page.html").read_bytes()


class WebServer:
    """Serves `board` at http://host:port/ from a background thread; `start()`, then `stop()` (or `with`).

    token: required on every request when given. max_width: frames are
    downscaled to this width for the browser. stream_fps: the most frames a
    second one MJPEG viewer gets.
    """

    def __init__(self, board: LiveBoard, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *,
                 token: str | None = None, max_width: int = 960, stream_fps: float = 15.0) -> None:
        self.board = board
        self.host, self.port = host, port
        self.token = token
        self.max_width = max_width
        self.stream_period = 1.0 / stream_fps
        self.streams = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: Any = None
        self._thread: threading.Thread | None = None
        self._closing: asyncio.Event | None = None
        self._new_frame: dict[str, asyncio.Event] = {}  # set (and replaced) when a source's next frame arrives
        self._encoder = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="streamsink-serve-jpeg")
        self._page = _page()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self) -> WebServer:
        """Bind and serve; returns once the port is open. A taken port is a one-line `ServeError`."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = self._loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(self._bind())
            except BaseException as error:
                failure.append(error)
                self._loop = None  # nothing to stop
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, name="streamsink-serve", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            error = failure[0]
            reason = getattr(error, "strerror", None) or str(error)
            raise ServeError(f"cannot serve the live view at {self.host}:{self.port}: {reason}") from None
        return self

    async def _bind(self) -> None:
        from aiohttp import web

        @web.middleware
        async def guard(request: Any, handler: Any) -> Any:
            return await self._guard(request, handler)

        app = web.Application(client_max_size=MAX_BODY, middlewares=[guard])
        app.router.add_get("/", self._index)
        app.router.add_get("/api/state", self._state)
        app.router.add_get("/api/snapshot/{source}.jpg", self._snapshot)
        app.router.add_get("/api/stream/{source}.mjpg", self._stream)
        app.router.add_post("/api/prompt", self._prompt)
        self._closing = asyncio.Event()
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, shutdown_timeout=1.0)
        try:
            await site.start()
        except BaseException:
            await self._runner.cleanup()
            raise
        self.port = site._server.sockets[0].getsockname()[1]  # the port chosen when 0 was asked
        self.board.on_publish = self._notify  # only a server that listens is woken by new frames

    def stop(self) -> None:
        """Close every connection (viewers included) and the port; safe to call twice."""
        loop, self._loop = self._loop, None
        if loop is None:
            return
        self.board.on_publish = None
        loop.call_soon_threadsafe(self._closing.set)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._encoder.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> WebServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- requests ---------------------------------------------------------------------------------

    def _authorised(self, request: Any) -> bool:
        if self.token is None:
            return True
        given = request.query.get("token", "")
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            given = header[len("Bearer "):]
        return hmac.compare_digest(given.encode(), self.token.encode())

    async def _guard(self, request: Any, handler: Any) -> Any:
        from aiohttp import web

        if not self._authorised(request):
            return web.json_response({"error": "a token is required: ?token= or Authorization: Bearer"}, status=401)
        response = await handler(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    async def _index(self, request: Any) -> Any:
        from aiohttp import web

        return web.Response(body=self._page, content_type="text/html", charset="utf-8",
                            headers={"Content-Security-Policy": "default-src 'self'; img-src 'self' blob:; "
                                     "style-src 'unsafe-inline'; script-src 'unsafe-inline'; frame-ancestors 'none'"})

    async def _state(self, request: Any) -> Any:
        from aiohttp import web

        return web.json_response(self.board.state())

    def _source(self, request: Any) -> str:
        from aiohttp import web

        name = request.match_info["source"]
        if name not in self.board.names:
            raise web.HTTPNotFound(text=json.dumps({"error": f"no source named {name!r}"}),
                                   content_type="application/json")
        return name

    async def _frame(self, name: str) -> tuple[int, int, bytes] | None:
        return await asyncio.get_running_loop().run_in_executor(self._encoder, self.board.jpeg, name, self.max_width)

    def _notify(self, name: str) -> None:
        """From the run's thread: tell the loop that `name` has a new frame (never raises into the run)."""
        loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._wake, name)
            except RuntimeError:  # the loop closed meanwhile
                pass

    def _wake(self, name: str) -> None:
        """In the loop: a new frame of `name` wakes everyone waiting for one."""
        event = self._new_frame.pop(name, None)
        if event is not None:
            event.set()

    async def _newer_than(self, name: str, seq: int, timeout: float) -> bool:
        """Wait until `name` has a frame newer than `seq` (True), or `timeout` s or closing (False)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.board.seq(name) <= seq:
            remaining = deadline - loop.time()
            if remaining <= 0 or self._closing.is_set():
                return False
            event = self._new_frame.setdefault(name, asyncio.Event())
            try:
                await asyncio.wait_for(event.wait(), min(remaining, 0.5))  # 0.5: notice closing
            except asyncio.TimeoutError:
                pass
        return True

    async def _snapshot(self, request: Any) -> Any:
        from aiohttp import web

        name = self._source(request)
        after = request.query.get("after", "")
        if after.isdigit():  # wait for a frame newer than the one the page has; the page paces itself by this
            await self._newer_than(name, int(after), SNAPSHOT_WAIT)
        frame = await self._frame(name)
        if frame is None:
            return web.json_response({"error": f"{name} has no frame yet"}, status=503)
        seq, index, data = frame
        return web.Response(body=data, content_type="image/jpeg", headers={"X-Seq": str(seq), "X-Frame": str(index)})

    async def _stream(self, request: Any) -> Any:
        from aiohttp import web

        name = self._source(request)
        if self.streams >= MAX_STREAMS:
            return web.json_response({"error": f"at most {MAX_STREAMS} video viewers at once"}, status=503)
        response = web.StreamResponse(headers={"Content-Type": "multipart/x-mixed-replace; boundary=frame"})
        self.streams += 1
        try:
            await response.prepare(request)
            sent = 0
            while not self._closing.is_set():
                if not await self._newer_than(name, sent, SNAPSHOT_WAIT):
                    continue
                frame = await self._frame(name)
                if frame is not None:
                    sent, _, data = frame
                    head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n".encode()
                    await response.write(head + data + b"\r\n")  # waits while this viewer's socket is full
                await asyncio.sleep(self.stream_period)
        except ConnectionError:
            pass  # the viewer went away
        finally:
            self.streams -= 1
        return response

    async def _prompt(self, request: Any) -> Any:
        from aiohttp import web

        if request.content_type != "application/json":  # also keeps plain cross-site form posts out
            return web.json_response({"error": "send the prompt as JSON (Content-Type: application/json)"}, status=415)
        try:
            body = await request.json()
        except web.HTTPRequestEntityTooLarge:
            raise
        except (ValueError, UnicodeDecodeError):
            return web.json_response({"error": "the body is not JSON"}, status=400)
        if not isinstance(body, dict) or not isinstance(body.get("prompt"), str):
            return web.json_response({"error": 'expected {"prompt": "car,cat"} (and "source" with several)'},
                                     status=400)
        names = self.board.names
        name = body.get("source", names[0] if len(names) == 1 else None)
        if not isinstance(name, str):
            return web.json_response({"error": f'"source" is required with several sources: one of {", ".join(names)}'},
                                     status=400)
        if name not in names:
            return web.json_response({"error": f"no source named {name!r}"}, status=404)
        try:
            classes = await asyncio.get_running_loop().run_in_executor(None, self.board.change_prompt, name,
                                                                       body["prompt"])
        except PromptError as error:
            return web.json_response({"error": str(error)}, status=400)
        logger.info("%s: prompt changed to %s", name, ",".join(classes))
        return web.json_response({"source": name, "prompt": ",".join(classes), "classes": list(classes)})
