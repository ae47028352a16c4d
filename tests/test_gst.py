"""The `streamsink` GStreamer element, in real pipelines run by GStreamer's Python plugin loader."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import streamsink.testing
from clips import make_clip
from streamsink.cli import main

PROBE = Path(streamsink.testing.__file__).parent / "gst_probe.py"
SYSTEM_PYTHON = "/usr/bin/python3"
LOADER = "gstreamer1.0-python3-plugin-loader"


def roi(box: list[float], width: int, height: int) -> list[int]:
    """x, y, w, h of a box clipped to the frame, as the element's ROI metas carry it (written again here, not
    imported: the element's module needs GStreamer's Python)."""
    x1, y1 = min(max(round(box[0]), 0), width - 1), min(max(round(box[1]), 0), height - 1)
    x2, y2 = min(max(round(box[2]), 0), width), min(max(round(box[3]), 0), height)
    return [x1, y1, max(1, x2 - x1), max(1, y2 - y1)]


def _gstreamer() -> None:
    if not Path(SYSTEM_PYTHON).exists():
        pytest.skip(f"needs GStreamer's Python bindings: apt-get install python3-gst-1.0 {LOADER}")
    inspect = shutil.which("gst-inspect-1.0")
    probe = subprocess.run([inspect, "python"], capture_output=True, text=True) if inspect else None
    if probe is None or probe.returncode != 0:
        pytest.skip(f"needs GStreamer and its Python plugin loader: apt-get install gstreamer1.0-tools {LOADER} "
                    "python3-gst-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good")


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory) -> dict:
    """What a user has after `export GST_PLUGIN_PATH=$(streamsink gst-path)`: that variable, nothing else of ours."""
    _gstreamer()
    folder = subprocess.run([sys.executable, "-m", "streamsink", "gst-path"], capture_output=True, text=True,
                            env={**os.environ, "STREAMSINK_CACHE": str(tmp_path_factory.mktemp("cache"))},
                            check=True).stdout.strip()
    registry = tmp_path_factory.mktemp("registry") / "registry.bin"
    return {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"), "GST_PLUGIN_PATH": folder,
            "GST_REGISTRY": str(registry), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def run_pipeline(description: str, env: dict, *changes: str) -> dict:
    done = subprocess.run([SYSTEM_PYTHON, str(PROBE), description, *changes], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _element(clip: Path, props: str) -> str:
    return (f"filesrc location={clip} ! decodebin ! videoconvert ! video/x-raw,format=RGB ! "
            f"streamsink name=ss {props} backend=torch ! fakesink name=out sync=false")


def test_gst_path_is_all_a_user_needs(plugin_env):
    inspected = subprocess.run(["gst-inspect-1.0", "streamsink"], capture_output=True, text=True, env=plugin_env,
                               timeout=120)
    assert inspected.returncode == 0, inspected.stderr[-2000:]
    for name in ("prompt", "model", "sinks", "sink-init", "threshold", "device", "backend", "smooth", "profile", "draw",
                 "interval"):
        assert name in inspected.stdout
    assert "RGBx" in inspected.stdout and "BGRx" in inspected.stdout


def test_the_element_says_what_process_writes(tmp_path, tiny_checkpoint, plugin_env):
    # Lossless RGB frames, so GStreamer's decoder and PyAV's hand over the same pixels (a YUV clip differs by
    # a level here and there between the two converters, which moves a random model's weakest boxes).
    clip = make_clip(tmp_path / "clip.mov", frames=12, codec="png", pix_fmt="rgb24")
    jsonl = tmp_path / "clip.jsonl"
    assert main(["process", str(clip), "-p", "dog,cat", "-m", str(tiny_checkpoint), "--threshold", "0.05",
                 "--backend", "torch", "-o", str(tmp_path / "out.mp4"), "--jsonl", str(jsonl)]) == 0
    written = [json.loads(line) for line in jsonl.read_text().splitlines()]
    seen = run_pipeline(_element(clip, f'prompt="dog,cat" model={tiny_checkpoint} threshold=0.05'), plugin_env)
    assert seen["error"] is None
    messages = seen["messages"]
    assert [m["frame"] for m in messages] == [r["frame"] for r in written] == list(range(12))
    assert [m["pts"] for m in messages] == pytest.approx([r["pts"] for r in written], abs=1e-3)
    assert any(r["detections"] for r in written), "the comparison sees boxes"
    for ours, theirs in zip(messages, written):
        assert ours["states"] == theirs["states"]
        assert [d["label"] for d in ours["detections"]] == [d["label"] for d in theirs["detections"]]
        for a, b in zip(ours["detections"], theirs["detections"]):
            assert a["score"] == pytest.approx(b["score"], abs=0.02)
            assert a["box"] == pytest.approx(b["box"], abs=2.0)
    for message, rois in zip(messages, seen["rois"]):  # one ROI meta per shown box, its type the label
        expected = [[d["label"], *roi(d["box"], 160, 120)] for d in message["detections"]]
        assert [r[0] for r in rois] == [e[0] for e in expected]
        for got, want in zip(rois, expected):  # the message's boxes are rounded to 0.01 px, the metas to 1 px
            assert got[1:] == pytest.approx(want[1:], abs=1)
    assert seen["pts"] == pytest.approx([r["pts"] for r in written], abs=1e-3), "timestamps kept, order kept"


def test_interval_prompt_change_and_draw(tmp_path, tiny_checkpoint, plugin_env):
    clip = make_clip(tmp_path / "clip.mp4", frames=12)
    common = f"model={tiny_checkpoint} threshold=0.05"
    every_third = run_pipeline(_element(clip, f'prompt="dog,cat" {common} interval=3'), plugin_env)
    messages = every_third["messages"]
    assert len(messages) == 12 and all(set(m["states"]) == {"dog", "cat"} for m in messages)
    for i, message in enumerate(messages):  # frames between carry the last detected frame's boxes and states
        carried = messages[i - i % 3]
        assert (message["detections"], message["states"]) == (carried["detections"], carried["states"])

    changed = run_pipeline(_element(clip, f'prompt="dog,cat" {common}'), plugin_env, "--set=prompt=car@4")
    keys = [set(m["states"]) for m in changed["messages"]]
    assert keys[0] == {"dog", "cat"} and keys[-1] == {"car"}
    switch = keys.index({"car"})
    assert 4 <= switch <= 7 and all(k == {"car"} for k in keys[switch:]), "the next frames use the new prompt"

    plain = run_pipeline(f"filesrc location={clip} ! decodebin ! videoconvert ! video/x-raw,format=RGB ! "
                         "identity name=ss ! fakesink name=out sync=false", plugin_env)
    untouched = run_pipeline(_element(clip, f'prompt="dog,cat" {common}'), plugin_env)
    drawn = run_pipeline(_element(clip, f'prompt="dog,cat" {common} draw=true'), plugin_env)
    assert untouched["checksums"] == plain["checksums"], "without draw the frames pass unchanged"
    assert all(a != b for a, b in zip(drawn["checksums"], plain["checksums"])), "with draw every frame is drawn on"


def test_draw_puts_the_renderers_pixels_in_the_frame(tmp_path, tiny_checkpoint, plugin_env):
    """The drawn frame, read back from the pipeline, is what streamsink's renderer draws for that message."""
    import av

    from streamsink.render import Renderer
    from streamsink.types import Detections

    clip = make_clip(tmp_path / "clip.mp4", frames=3)
    out = tmp_path / "drawn.rgb"
    seen = run_pipeline(f"filesrc location={clip} ! decodebin ! videoconvert ! video/x-raw,format=RGB ! streamsink "
                        f'name=ss prompt="dog,cat" model={tiny_checkpoint} threshold=0.05 draw=true backend=torch ! tee name=t ! '
                        f"queue ! filesink location={out} t. ! queue ! fakesink name=out sync=false", plugin_env)
    with av.open(str(clip)) as container:
        width, height = container.streams.video[0].width, container.streams.video[0].height
    plain = run_pipeline(f"filesrc location={clip} ! decodebin ! videoconvert ! video/x-raw,format=RGB ! identity "
                         f"name=ss ! tee name=t ! queue ! filesink location={tmp_path / 'plain.rgb'} t. ! queue ! "
                         "fakesink name=out sync=false", plugin_env)
    assert plain["error"] is None and seen["error"] is None
    drawn = np.frombuffer(out.read_bytes(), np.uint8).reshape(-1, height, width, 3)
    frames = np.frombuffer((tmp_path / "plain.rgb").read_bytes(), np.uint8).reshape(-1, height, width, 3)
    renderer = Renderer()
    for image, got, message in zip(frames, drawn, seen["messages"]):
        records = message["detections"]
        labels = ("dog", "cat")
        detections = Detections(np.array([r["box"] for r in records], np.float32).reshape(-1, 4),
                                np.array([r["score"] for r in records], np.float32),
                                np.array([labels.index(r["label"]) for r in records], np.int64), labels)
        expected = renderer.draw(image, detections, message["states"])
        assert np.mean(np.abs(expected.astype(int) - got.astype(int)) > 40) < 0.01  # boxes rounded to 0.01 px


def test_a_missing_model_is_an_error_on_the_bus(tmp_path, plugin_env):
    clip = make_clip(tmp_path / "clip.mp4", frames=4)
    seen = run_pipeline(_element(clip, f'prompt="dog" model={tmp_path / "nothing"}'), plugin_env)
    assert seen["error"] is not None and "does not exist" in seen["error"] and "\n" not in seen["error"]
    assert seen["messages"] == []


def test_an_empty_prompt_is_an_error_on_the_bus(tmp_path, tiny_checkpoint, plugin_env):
    clip = make_clip(tmp_path / "clip.mp4", frames=4)
    seen = run_pipeline(_element(clip, f'prompt=" , " model={tiny_checkpoint}'), plugin_env)
    assert seen["error"] is not None and "prompt names no class" in seen["error"]
