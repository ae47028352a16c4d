"""The live web page of `watch --serve`: a `LiveBoard` the run writes to, a `WebServer` that shows it."""

from streamsink.serve.app import DEFAULT_HOST, DEFAULT_PORT, ServeError, WebServer, is_loopback, parse_address
from streamsink.serve.board import LiveBoard

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "LiveBoard", "ServeError", "WebServer", "is_loopback", "parse_address"]
