"""Names of sources: what a run calls each one (file stem, "camera0", stream host and path), made unique."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit


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


def _password(url: str) -> str | None:
    """The URL's password, to keep out of anything printed; None without one."""
    try:
        return urlsplit(url).password or None
    except ValueError:
        return None


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
