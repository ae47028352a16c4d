"""The package stands alone: built as a wheel and installed outside the source tree, `eval --dataset shapes` runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def _run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, **kwargs)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The wheel, built from a copy of what it is made of (so no build files land in the repository), installed into a folder."""
    pytest.importorskip("setuptools")
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "streamsink", src / "streamsink", ignore=shutil.ignore_patterns("__pycache__"))
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", str(work / "dist"), str(src)])
    (wheel,) = (work / "dist").glob("streamsink-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "streamsink/shapes/__init__.py" in names
    assert not [n for n in names if n.startswith(("samples/", "tests/"))]
    site = work / "site"
    _run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(site), str(wheel)])
    return site


def test_eval_shapes_from_a_wheel_installed_outside_the_source_tree(installed, tiny_checkpoint, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(installed), "HF_HUB_OFFLINE": "1"}
    where = _run([sys.executable, "-c", "import streamsink; print(streamsink.__file__)"], cwd=tmp_path, env=env)
    assert Path(where.stdout.strip()).is_relative_to(installed), "the installed copy runs, not the source tree"
    done = _run([sys.executable, "-m", "streamsink", "eval", "--dataset", "shapes", "--model", str(tiny_checkpoint),
                 "--images", "2", "--clips", "1", "--clip-frames", "3", "--methods", "stock", "--batch-size", "2",
                 "--json", str(tmp_path / "eval.json")], cwd=tmp_path, env=env)
    assert (tmp_path / "eval.json").is_file(), done.stderr
    assert "stock" in done.stdout
