"""streamsink as a GStreamer element: `export GST_PLUGIN_PATH=$(streamsink gst-path)`.

GStreamer's Python plugin loader (Debian: gstreamer1.0-python3-plugin-loader)
runs the system Python and imports every `python/*.py` under GST_PLUGIN_PATH.
`plugin_path()` writes one such file into the user's cache: a few lines that
put this environment's import paths (its site-packages, this package) first
and import the element (`streamsink.gst.element`), so the element finds
torch and the rest from any shell. Nothing here imports GStreamer.
"""

from __future__ import annotations

import sys
from pathlib import Path

PLUGIN_MODULE = "streamsink_gst"  # not "streamsink": the loader imports it by name, and it would shadow the package

_STUB = '''"""GStreamer's Python loader finds the streamsink element here (written by `streamsink gst-path`)."""
import sys

_PATHS = {paths!r}
_VERSION = {version!r}
if tuple(sys.version_info[:2]) != _VERSION:
    raise ImportError("streamsink's environment is Python %d.%d, GStreamer's is %d.%d: run `streamsink gst-path` "
                      "from an environment of GStreamer's Python version" % (_VERSION + tuple(sys.version_info[:2])))
for _path in reversed(_PATHS):
    if _path not in sys.path:
        sys.path.insert(0, _path)
from streamsink.gst.element import __gstelementfactory__  # noqa: E402,F401
'''


def plugin_path(folder: Path | None = None) -> Path:
    """Write the loader's file for this environment and return the folder to put in GST_PLUGIN_PATH."""
    from streamsink.settings import cache_folder

    folder = Path(folder) if folder is not None else cache_folder() / "gst"
    package_root = str(Path(__file__).resolve().parents[2])
    paths = [package_root] + [p for p in sys.path if p and Path(p).is_dir() and "site-packages" in p]
    text = _STUB.format(paths=paths, version=tuple(sys.version_info[:2]))
    target = folder / "python" / f"{PLUGIN_MODULE}.py"
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists() or target.read_text() != text:
        temporary = target.with_suffix(".part")
        temporary.write_text(text)
        temporary.replace(target)
    return folder
