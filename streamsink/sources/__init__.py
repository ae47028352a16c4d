"""Sources: turn a file, "camera0", a URL or a folder of images into `Frame`s.

Two policies. Files and image folders are read completely and in order: a
slow consumer makes reading wait and nothing is lost. Cameras and network
streams are live: a reader thread keeps only the newest `buffer` frames, so a
slow consumer skips frames instead of falling further and further behind the
world. Every source is probed when it is opened, so a bad input fails in
`open_source` before any work starts.

The package by job: `spec` (what a spec names, parsed once for opening and
for naming), `naming`, `base` (`Source`), `files` (video files, image
folders) and `live` (cameras, network streams).
"""

from __future__ import annotations

import os
from pathlib import Path

from streamsink.errors import SourceError, SourceNotFoundError
from streamsink.sources.base import DEFAULT_IMAGE_FPS, Source
from streamsink.sources.files import FileSource, ImageFolderSource
from streamsink.sources.live import RECONNECT_DELAY, RECONNECT_DELAY_MAX, CameraSource, LatestFrames, LiveSource, StreamSource
from streamsink.sources.naming import _redact, _url_name, unique_names  # noqa: F401  (_url_name: for tests)
from streamsink.sources.spec import (
    IMAGE_SUFFIXES,
    NETWORK_SCHEMES,
    VIDEO_SUFFIXES,
    SourceSpec,
    _is_image,
    _natural_key,
    describe_source,
    expand_inputs,
    parse_source,
)

__all__ = [
    "DEFAULT_IMAGE_FPS", "IMAGE_SUFFIXES", "NETWORK_SCHEMES", "RECONNECT_DELAY", "RECONNECT_DELAY_MAX",
    "VIDEO_SUFFIXES", "CameraSource", "FileSource", "ImageFolderSource", "LatestFrames", "LiveSource", "Source",
    "SourceSpec", "StreamSource", "describe_source", "expand_inputs", "open_source", "parse_source", "unique_names",
]


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

    parsed = parse_source(spec)
    text = parsed.text
    if parsed.kind == "camera":
        return CameraSource(parsed.number, text, buffer=buffer, fps=fps, retries=retries)
    if parsed.kind == "stream":
        return StreamSource(text, buffer=buffer, fps=fps, timeout=timeout, retries=retries)
    if parsed.kind == "unsupported":
        scheme = text.split("://", 1)[0].lower()
        raise SourceError(f"unsupported URL scheme {scheme}:// in {_redact(text)} (use {', '.join(NETWORK_SCHEMES)})")
    path = Path(text).expanduser()
    if parsed.kind == "folder":
        files = [p for p in path.iterdir() if _is_image(p)]
        if not files:
            raise SourceNotFoundError(f"no images in folder {text} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
        return ImageFolderSource(sorted(files, key=_natural_key), text, parsed.name, buffer=buffer, fps=fps)
    if parsed.kind == "file":
        return FileSource(path, text, buffer=buffer, fps=fps)
    if parsed.kind == "glob":
        import glob

        files = [Path(p) for p in glob.glob(os.path.expanduser(text), recursive=True) if _is_image(Path(p))]
        if not files:
            raise SourceNotFoundError(f"no images match {text}")
        return ImageFolderSource(sorted(files, key=_natural_key), text, parsed.name, buffer=buffer, fps=fps)
    raise SourceNotFoundError(f"no such file: {text}")
