"""What a source spec names, parsed once: `open_source` opens it, `describe_source` names it unopened.

A spec is a video file, a folder or glob of images, a camera ("camera0",
"/dev/video0", 0, "0") or a URL. Runs over several sources name their outputs
and route their frames by name before any source is open (opening a camera
or stream can take seconds, and names must not depend on which opens first),
so both must read a spec by the same rules: these.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from streamsink.errors import SourceNotFoundError
from streamsink.sources.naming import _glob_name, _natural_key, _url_name

NETWORK_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_SUFFIXES = frozenset({
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".mts", ".m2ts", ".flv", ".wmv", ".mpg", ".mpeg",
    ".3gp", ".ogv",
})

_CAMERA = re.compile(r"(?:camera|/dev/video)?(\d+)")


@dataclass(frozen=True)
class SourceSpec:
    """One spec, read: what kind of source it is, its text and the name its source will have.

    kind: "camera", "stream", "folder", "file", "glob" (of images), "missing"
        (no such path) or "unsupported" (a URL of a scheme no source reads).
    text: the spec as a string (a file:// prefix taken off).
    number: the camera's number.
    """

    kind: str
    text: str
    name: str
    live: bool
    number: int | None = None


def parse_source(spec: str | int | os.PathLike) -> SourceSpec:
    """Read a spec without opening anything; a spec of the wrong type or empty is a ValueError."""
    if isinstance(spec, bool) or not isinstance(spec, (str, int, os.PathLike)):
        raise ValueError(f"source must be a path, URL, camera name or camera number, got {spec!r}")
    if isinstance(spec, int):
        if spec < 0:
            raise ValueError(f"camera number must be >= 0, got {spec}")
        return SourceSpec("camera", str(spec), f"camera{spec}", True, spec)
    text = os.fspath(spec)
    if not isinstance(text, str):
        text = os.fsdecode(text)
    if not text.strip():
        raise ValueError("source must not be empty")
    if isinstance(spec, str):
        if "://" in text:
            scheme, rest = text.split("://", 1)
            if scheme.lower() in NETWORK_SCHEMES:
                return SourceSpec("stream", text, _url_name(text), True)
            if scheme.lower() != "file":
                return SourceSpec("unsupported", text, Path(rest).stem or "stream", False)
            text = rest
        match = _CAMERA.fullmatch(text.strip())
        if match and (text.strip().startswith("/dev/video") or not Path(text).exists()):
            number = int(match.group(1))
            return SourceSpec("camera", text, f"camera{number}", True, number)
    path = Path(text).expanduser()
    if path.is_dir():
        return SourceSpec("folder", text, path.resolve().name or "images", False)
    if path.exists():
        return SourceSpec("file", text, path.stem or path.name, False)
    if any(c in text for c in "*?["):
        return SourceSpec("glob", text, _glob_name(text), False)
    return SourceSpec("missing", text, path.stem or path.name, False)


def describe_source(spec: str | int | os.PathLike) -> tuple[str, bool]:
    """The name `open_source(spec)` gives its source, and whether it is live, without opening it."""
    parsed = parse_source(spec)
    return parsed.name, parsed.live


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


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".") and path.is_file()


def _is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES and not path.name.startswith(".") and path.is_file()
