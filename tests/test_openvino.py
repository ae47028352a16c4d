"""The OpenVINO backend gives torch's detections, drops sink winners, caches graphs on disk and falls back."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("openvino", reason="needs streamsink[openvino] (pip install 'openvino>=2026.4,<2026.5')")

from streamsink.detector import SinkDetector  # noqa: E402
from streamsink.detector.openvino import OpenVINOForward, model_key  # noqa: E402
from streamsink.testing.agreement import disagreement, frames_disagreeing  # noqa: E402

DEMO = Path(__file__).resolve().parent.parent / "samples" / "models" / "shapes-gdino"


@pytest.fixture(autouse=True)
def auto_means_openvino(monkeypatch):
    """The suite pins "auto" to torch (conftest.py); here it means what it means for users."""
    monkeypatch.delenv("STREAMSINK_AUTO_BACKEND", raising=False)


def _pair(path, **options):
    torch_side = SinkDetector.from_pretrained(path, device="cpu", backend="torch", **options)
    openvino_side = SinkDetector(torch_side.model, torch_side.processor, device="cpu", backend="openvino", **options)
    assert openvino_side.backend == "openvino" and torch_side.backend == "torch"
    return torch_side, openvino_side


def _random_frames(n, height=120, width=160, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(n)]


@pytest.fixture(scope="module")
def demo_pair():
    return _pair(DEMO, sinks=24, sink_init="brackets")


def test_demo_model_same_detections_on_shapes_frames(demo_pair):
    from streamsink.shapes import CLASSES, make_clip

    torch_side, openvino_side = demo_pair
    frames = make_clip(11, frames=48).frames[::4]  # 320x240, objects entering, leaving, overlapping
    prompt = list(CLASSES)
    expected = torch_side.detect(frames, prompt, threshold=0.1)
    got = openvino_side.detect(frames, prompt, threshold=0.1)
    assert sum(len(d.scores) for d in expected) >= 8, "the clip should give the demo model things to find"
    assert frames_disagreeing(expected, got) == {}
    # Another batch size compiles from the same converted graph and still agrees.
    singles = [openvino_side.detect([frame], prompt, threshold=0.1)[0] for frame in frames[:3]]
    assert frames_disagreeing(expected[:3], singles) == {}
    assert openvino_side._runner.openvino.conversions == 1


@pytest.mark.parametrize("family", ["tiny_checkpoint", "tiny_mm_checkpoint"])
def test_random_checkpoints_of_both_families_agree(request, family):
    torch_side, openvino_side = _pair(request.getfixturevalue(family), sinks=16)  # the sink test reuses its graph
    frames = _random_frames(2)
    expected = torch_side.detect(frames, "dog,red car", threshold=0.05)
    got = openvino_side.detect(frames, "dog,red car", threshold=0.05)
    assert sum(len(d.scores) for d in expected) > 0
    assert frames_disagreeing(expected, got) == {}


def test_sink_winners_are_dropped_on_the_openvino_path(tiny_checkpoint):
    torch_side, openvino_side = _pair(tiny_checkpoint, sinks=16)
    frames = _random_frames(1, seed=3)
    text = openvino_side.encode_prompt("dog,red car")
    pixels = openvino_side.preprocess(frames)
    raw = openvino_side._runner(pixels, text)
    with torch.inference_mode():
        assert raw.spatial_shapes == torch_side._runner(pixels, text).spatial_shapes  # recorded by the trace
    probs = raw.logits[0, :, : text.layout.num_tokens].sigmoid()
    scores, best = (probs @ text.phrase_map.T).max(-1)
    won_by_sinks = int(((best >= 2) & (scores > 0.05)).sum())
    kept = int(((best < 2) & (scores > 0.05)).sum())
    assert won_by_sinks > 0, "with 16 sinks on random weights some queries go to sinks"
    (found,) = openvino_side.detect(frames, "dog,red car", threshold=0.05)
    assert len(found.scores) == kept
    assert disagreement(torch_side.detect(frames, "dog,red car", threshold=0.05)[0], found) is None


def test_graphs_are_cached_on_disk_and_invalidated_by_new_weights(tiny_checkpoint, tmp_path, caplog):
    torch_side = SinkDetector.from_pretrained(tiny_checkpoint, sinks=2, device="cpu", backend="torch")
    text = torch_side.encode_prompt("dog")
    pixels = torch_side.preprocess(_random_frames(1))
    first = OpenVINOForward(torch_side.model, cache_dir=tmp_path)
    with caplog.at_level(logging.INFO, logger="streamsink.detector.openvino"):
        out = first(pixels, text)
    assert first.conversions == 1
    assert [r.getMessage() for r in caplog.records if "converting" in r.getMessage()]  # the wait is announced
    assert len(list((tmp_path / first.key).glob("*.xml"))) == 1
    again = OpenVINOForward(torch_side.model, cache_dir=tmp_path)  # a new run: no conversion, same numbers
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="streamsink.detector.openvino"):
        np.testing.assert_allclose(again(pixels, text).pred_boxes, out.pred_boxes, atol=1e-6)
    assert again.conversions == 0 and not caplog.records
    with torch.no_grad():
        torch_side.model.bbox_embed[-1].layers[-1].bias.add_(0.5)  # the checkpoint changed
    changed = OpenVINOForward(torch_side.model, cache_dir=tmp_path)
    assert changed.key != first.key and changed.key == model_key(torch_side.model)
    assert not (tmp_path / changed.key).exists()  # its graphs are converted anew, never read from the old key


def test_a_batch_spread_over_streams_gives_the_one_request_numbers(tiny_checkpoint, tmp_path):
    """Several frames run as one request each over parallel streams (throughput mode); a lone frame, or
    streams=1, runs one request for the batch. Both give the same outputs, frames in order."""
    torch_side = SinkDetector.from_pretrained(tiny_checkpoint, sinks=2, device="cpu", backend="torch")
    text = torch_side.encode_prompt("dog . cat")
    pixels = torch_side.preprocess(_random_frames(3, seed=4))
    spread = OpenVINOForward(torch_side.model, threads=2, cache_dir=tmp_path)
    whole = OpenVINOForward(torch_side.model, threads=2, streams=1, cache_dir=tmp_path)
    got, expected = spread(pixels, text), whole(pixels, text)
    assert list(spread._queues) == [(2, *pixels.shape[-2:], text.features.shape[1])] and not spread._requests
    assert not whole._queues and len(whole._requests) == 1
    np.testing.assert_allclose(got.logits, expected.logits, atol=1e-4)
    np.testing.assert_allclose(got.pred_boxes, expected.pred_boxes, atol=1e-5)
    assert got.spatial_shapes == expected.spatial_shapes
    np.testing.assert_allclose(spread(pixels[1:2], text).pred_boxes, expected.pred_boxes[1:2], atol=1e-5)
    assert len(spread._requests) == 1, "a lone frame runs on one request with every thread"
    with pytest.raises(ValueError, match="streams must be an integer >= 1"):
        OpenVINOForward(torch_side.model, streams=0)


def test_conversion_failure_falls_back_to_torch_with_one_line(tiny_checkpoint, monkeypatch, caplog):
    import openvino

    def broken(*args, **kwargs):
        raise RuntimeError("No conversion rule found for operations: aten::made_up\nmore detail")

    monkeypatch.setattr(openvino, "convert_model", broken)
    torch_side, openvino_side = _pair(tiny_checkpoint, sinks=2)
    frames = _random_frames(2)
    with caplog.at_level(logging.WARNING):
        got = openvino_side.detect(frames, "dog", threshold=0.05)
        openvino_side.detect(frames, "dog", threshold=0.05)
    assert openvino_side.backend == "torch"
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert "could not convert" in warnings[0] and "aten::made_up" in warnings[0] and "running on torch" in warnings[0]
    assert frames_disagreeing(torch_side.detect(frames, "dog", threshold=0.05), got) == {}


def test_auto_is_openvino_on_cpu_and_explicit_choices_are_checked(tiny_checkpoint, monkeypatch):
    from streamsink.detector import openvino as backend

    detector = SinkDetector.from_pretrained(tiny_checkpoint, sinks=0, device="cpu")
    assert detector.backend == "openvino"
    with pytest.raises(ValueError, match="fp32 or bf16"):
        SinkDetector(detector.model, detector.processor, device="cpu", backend="openvino", dtype="fp16")
    monkeypatch.setattr(backend, "installed", lambda: False)
    assert SinkDetector(detector.model, detector.processor, device="cpu").backend == "torch"
    with pytest.raises(ValueError, match=r"streamsink\[openvino\]"):
        SinkDetector(detector.model, detector.processor, device="cpu", backend="openvino")


def test_bf16_is_refused_on_a_cpu_without_it(tiny_checkpoint, monkeypatch):
    from streamsink.detector import openvino as backend

    monkeypatch.setattr(backend, "cpu_has_bf16", lambda: False)
    model = SinkDetector.from_pretrained(tiny_checkpoint, sinks=0, device="cpu", backend="torch")
    with pytest.raises(ValueError, match="no bf16"):
        SinkDetector(model.model, model.processor, device="cpu", backend="openvino", dtype="bf16")


def test_cli_backend_openvino_without_openvino_is_a_usage_error(tiny_checkpoint, sample_clip, tmp_path, capsys,
                                                              monkeypatch):
    from streamsink.cli import main
    from streamsink.detector import openvino as backend

    monkeypatch.setattr(backend, "installed", lambda: False)
    code = main(["process", str(sample_clip), "--prompt", "dog", "--model", str(tiny_checkpoint),
                 "--backend", "openvino", "-o", str(tmp_path / "out.mp4")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "OpenVINO is not installed" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out.mp4").exists()


def test_process_by_default_runs_openvino_with_torchs_detections(tmp_path, capsys):
    import json

    import cv2

    from streamsink.cli import main
    from streamsink.shapes import CLASSES, make_clip
    from streamsink.types import Detections

    folder = tmp_path / "frames"
    folder.mkdir()
    for k, frame in enumerate(make_clip(11, frames=12).frames):
        cv2.imwrite(str(folder / f"{k:03d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    found = {}
    for backend in ("auto", "torch"):
        out = tmp_path / backend
        code = main(["process", str(folder), "--prompt", ",".join(CLASSES), "--model", str(DEMO), "--raw",
                     "--backend", backend, "-o", str(out / "clip.mp4"), "--jsonl", str(out / "clip.jsonl")])
        assert code == 0
        expected = "detector: openvino, f32 on cpu" if backend == "auto" else "detector: torch on cpu"
        assert expected in capsys.readouterr().err
        lines = [json.loads(line) for line in (out / "clip.jsonl").read_text().splitlines()]
        found[backend] = [Detections(np.array([d["box"] for d in line["raw"]], np.float32).reshape(-1, 4),
                                     np.array([d["score"] for d in line["raw"]], np.float32),
                                     np.array([CLASSES.index(d["label"]) for d in line["raw"]], np.int64), CLASSES)
                          for line in lines]
    assert len(found["auto"]) == 12 and sum(len(d.scores) for d in found["torch"]) > 0
    assert frames_disagreeing(found["torch"], found["auto"]) == {}


def test_backend_settings_are_checked_before_anything_loads():
    from streamsink.settings import RunSettings, SettingsError

    with pytest.raises(SettingsError, match="backend must be one of auto, torch, openvino"):
        RunSettings(backend="tensorrt", profile="none").validate()
    with pytest.raises(SettingsError, match="fp16 does not run on the OpenVINO backend"):
        RunSettings(backend="openvino", dtype="fp16", profile="none").validate()
    assert RunSettings(backend="openvino", dtype="bf16", profile="none").validate().backend == "openvino"
