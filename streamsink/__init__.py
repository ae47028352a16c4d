"""streamsink: open-vocabulary video detection that says when the thing you named is not there.

The public API is loaded lazily, so `import streamsink` costs almost nothing
and imports neither torch nor OpenCV until a name that needs them is used.
"""

from __future__ import annotations

import importlib
import logging

from streamsink.errors import (
    ModelNotFoundError,
    PromptError,
    SourceError,
    SourceNotFoundError,
    StreamsinkError,
    UnsupportedModelError,
    WriterError,
)

__version__ = "0.1.0"

_EXPORTS = {
    "run": "streamsink.api",
    "detect_sources": "streamsink.api",
    "RunSettings": "streamsink.settings",
    "DEFAULT_MODEL": "streamsink.settings",
    "Result": "streamsink.types",
    "Frame": "streamsink.types",
    "Detections": "streamsink.types",
    "State": "streamsink.types",
    "SinkDetector": "streamsink.detector",
    "TemporalSmoother": "streamsink.smoother",
    "Renderer": "streamsink.render",
    "open_source": "streamsink.sources",
    "VideoWriter": "streamsink.writers",
    "JsonlWriter": "streamsink.writers",
    "Window": "streamsink.writers",
    "frame_record": "streamsink.writers",
    "state_changes": "streamsink.events",
    "Multiplexer": "streamsink.multiplex",
}

__all__ = [
    *_EXPORTS,
    "StreamsinkError",
    "SourceNotFoundError",
    "SourceError",
    "ModelNotFoundError",
    "UnsupportedModelError",
    "PromptError",
    "WriterError",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'streamsink' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
