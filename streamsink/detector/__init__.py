"""The detector stage: Grounding DINO with attention sinks.

Attributes load lazily so `import streamsink` never imports torch. The
attention picture is `streamsink.detector.explain.explain`; it is not
re-exported here because the submodule of the same name would shadow it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streamsink.detector.explain import ExplainResult
    from streamsink.detector.model import SinkDetector

__all__ = ["SinkDetector", "ExplainResult"]

_LAZY = {"SinkDetector": "model", "ExplainResult": "explain"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f"streamsink.detector.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'streamsink.detector' has no attribute {name!r}")
