"""Shared fixtures: tiny checkpoints and generated clips, built once per session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


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
