"""What `watch` (and, for MQTT, `process`) adds to a run: the live web page and presence events.

Each is an observer of the annotate loop (`on_result`) opened around the run:
`live_view` serves the page while the block runs, `events_for` publishes over MQTT.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from typing import Any

from streamsink.cli.parser import UsageError


_AUTO_SERVE = "auto"  # the desktop case: the default address, or any free port when it is taken


def serve_address(args: argparse.Namespace, windows: bool) -> tuple[str, int] | str | None:
    """Where `watch` serves its page: --serve's address (checked: off loopback needs --token), the
    desktop case's automatic one (a display but an OpenCV without a GUI), or None."""
    from streamsink.serve import is_loopback, parse_address
    from streamsink.writers import Window

    if args.serve is None:
        if args.token is not None:
            raise UsageError("--token goes with --serve")
        if not args.headless and not windows and Window.has_display():
            return _AUTO_SERVE
        return None
    try:
        host, port = parse_address(args.serve)
    except ValueError as error:
        raise UsageError(f"{error} (sources go before --serve)") from None
    if not is_loopback(host) and not args.token:
        raise UsageError(f"--serve {args.serve} can be reached from other machines; give --token TOKEN, which every "
                         "request must then carry")
    return host, port


@contextmanager
def live_view(address: tuple[str, int] | str | None, token: str | None, prompts: Mapping[str, tuple[str, ...]],
               states: Callable[[], Any], console) -> Iterator[Any]:
    """The live page for a `watch` run, served while the block runs; yields its board (None without a page)."""
    if address is None:
        yield None
        return
    from streamsink.serve import DEFAULT_HOST, DEFAULT_PORT, LiveBoard, ServeError, WebServer
    from streamsink.stages import LivePrompts

    board = LiveBoard(LivePrompts(prompts), states)
    if address == _AUTO_SERVE:
        console.print("this OpenCV has no GUI (opencv-python-headless), so there is no window: serving the live "
                      "view instead (--headless for neither)", markup=False)
        try:
            server = WebServer(board, DEFAULT_HOST, DEFAULT_PORT).start()
        except ServeError:
            server = WebServer(board, DEFAULT_HOST, 0).start()  # 8080 is taken: any free port
    else:
        server = WebServer(board, *address, token=token).start()
    console.print(f"live view: {server.url}" + ("  (add ?token=TOKEN)" if token else ""), markup=False)
    try:
        yield board
    finally:
        server.stop()


def check_prompts_with(board: Any, detector: Any) -> None:
    """Prompts typed into the page are checked as the detector will take them (length) before they apply."""
    if board is not None:
        board.prompts.check = getattr(detector, "layout", None)


def events_for(args: argparse.Namespace) -> Any:
    """The --mqtt publisher, started when entered (an absent broker is a warning and a retry), or a no-op."""
    if getattr(args, "mqtt", None) is None:
        return nullcontext()
    from streamsink.writers.mqtt import MqttPublisher

    return MqttPublisher(args.mqtt)
