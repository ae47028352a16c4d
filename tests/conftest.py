"""Shared fixtures: tiny checkpoints and generated clips, built once per session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# backend "auto" is torch in this suite and in every process it starts (Ray workers too): on a CPU it
# would be OpenVINO, which converts a graph per frame size and prompt length, seconds each, for tests
# about other things. tests/test_openvino.py lifts it and checks OpenVINO, the default path included.
os.environ["STREAMSINK_AUTO_BACKEND"] = "torch"


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
