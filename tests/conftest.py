"""Shared fixtures: tiny checkpoints and generated clips, built once per session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def streamsink_cache(tmp_path_factory) -> Path:
    """OpenVINO's converted graphs go to a folder of this session, not the user's cache (child processes too)."""
    folder = tmp_path_factory.mktemp("cache")
    previous = os.environ.get("STREAMSINK_CACHE")
    os.environ["STREAMSINK_CACHE"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("STREAMSINK_CACHE", None)
    else:
        os.environ["STREAMSINK_CACHE"] = previous


@pytest.fixture(autouse=True)
def torch_unless_asked(request, monkeypatch):
    """backend "auto" runs torch in this process, except in test_openvino.py.

    On a CPU "auto" is OpenVINO, which converts and compiles a graph for every
    frame size, prompt length and batch size a test meets: seconds each, for
    tests about everything else. test_openvino.py checks OpenVINO against
    torch, the default path included; a command run as a child process keeps "auto".
    """
    if request.node.path.name != "test_openvino.py":
        from streamsink.detector import device

        monkeypatch.setattr(device, "auto_backend", lambda _device: "torch")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A random Grounding DINO checkpoint (boxes meaningless, code paths real)."""
    from streamsink.testing.checkpoints import build_tiny_checkpoint

    return build_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "gdino", "grounding-dino")


@pytest.fixture(scope="session")
def tiny_mm_checkpoint(tmp_path_factory) -> Path:
    """A random MM-Grounding-DINO checkpoint (the family LLMDet uses)."""
    from streamsink.testing.checkpoints import build_tiny_checkpoint

    return build_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "mmgdino", "mm-grounding-dino")


@pytest.fixture(scope="session")
def sample_clip(tmp_path_factory) -> Path:
    """A 12-frame H.264 mp4 at 25 fps, 160x120."""
    from clips import make_clip

    return make_clip(tmp_path_factory.mktemp("clips") / "sample.mp4")
