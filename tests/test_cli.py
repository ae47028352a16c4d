"""The command line: exit codes, one-line errors, end-to-end runs, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import pytest

from clips import make_clip, read_video_pts, stream_kinds
from streamsink.cli import main


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_help_is_instant_and_imports_nothing_heavy():
    code = "import sys, streamsink.cli; streamsink.cli.build_parser(); print(sorted(m for m in ('torch','transformers','av','cv2') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_import_streamsink_is_cheap():
    code = "import sys, streamsink; print(sorted(m for m in ('torch','transformers','av','cv2','numpy','rich') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.fixture()
def text_file(tmp_path) -> Path:
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n")
    return path


BAD_INPUTS = {
    "missing file": (["process", "{tmp}/nope.mp4", "--prompt", "dog"], "nope.mp4"),
    "not a video": (["process", "{text}", "--prompt", "dog"], "not a video"),
    "empty folder": (["process", "{tmp}/empty", "--prompt", "dog"], "empty"),
    "glob matching nothing": (["process", "{tmp}/*.png", "--prompt", "dog"], ".png"),
    "empty prompt": (["process", "{clip}", "--prompt", " , ,"], "prompt"),
    "missing model": (["process", "{clip}", "--prompt", "dog", "--model", "{tmp}/no-model"], "no-model"),
    "batch size zero": (["process", "{clip}", "--prompt", "dog", "--batch-size", "0"], "batch size must be >= 1, got 0"),
    "threshold out of range": (["process", "{clip}", "--prompt", "dog", "--threshold", "1.5"], "threshold must be in [0, 1]"),
    "class threshold out of range": (["process", "{clip}", "--prompt", "dog", "--class-thresholds", "dog=2"],
                                     "threshold of 'dog' must be in [0, 1]"),
    "class thresholds malformed": (["process", "{clip}", "--prompt", "dog", "--class-thresholds", "dog:0.4"],
                                   "expected CLASS=THRESHOLD items"),
    "negative sinks": (["process", "{clip}", "--prompt", "dog", "--sinks", "-1"], "--sinks must be >= 0"),
    "unknown sink init": (["process", "{clip}", "--prompt", "dog", "--sink-init", "zeros"], "invalid choice"),
    "no prompt": (["process", "{clip}"], "--prompt"),
    "unknown command": (["frobnicate"], "invalid choice"),
    "absent camera": (["watch", "camera7", "--prompt", "dog", "--headless"], "camera7"),
    "absent device path": (["watch", "/dev/video9", "--prompt", "dog", "--headless"], "video9"),
    "unreachable stream": (["watch", "http://127.0.0.1:9/live.ts", "--prompt", "dog", "--headless", "--retries", "1"], "127.0.0.1:9"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_exits_2_with_one_line(case, tmp_path, text_file, sample_clip, capsys, tiny_checkpoint):
    args, needle = BAD_INPUTS[case]
    (tmp_path / "empty").mkdir()
    fill = {"tmp": str(tmp_path), "text": str(text_file), "clip": str(sample_clip)}
    args = [a.format(**fill) for a in args]
    if "--model" not in args and args[0] != "frobnicate":
        args += ["--model", str(tiny_checkpoint)]
    code, out, err = run_cli(args, capsys)
    assert code == 2, err
    # A stream's retries are announced as they happen ("streamsink: warning: ... retrying"); the error is one line.
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("streamsink: warning: ")]
    assert len(lines) == 1, err
    assert lines[0].startswith("streamsink: error: ")
    assert needle in lines[0]
    assert "Traceback" not in err


def test_offline_default_model_says_how_to_pass_model(sample_clip, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    code, _, err = run_cli(["process", sample_clip, "--prompt", "dog", "-o", tmp_path / "o.mp4"], capsys)
    assert code == 2
    assert "--model" in err and len(err.strip().splitlines()) == 1


def test_process_end_to_end(tmp_path, tiny_checkpoint, capsys):
    clip = make_clip(tmp_path / "in.mp4", frames=10, audio=True)
    out = tmp_path / "result" / "annotated.mp4"
    jsonl = tmp_path / "result" / "annotated.jsonl"
    code, _, err = run_cli(
        ["process", clip, "--prompt", "dog,tractor", "--model", tiny_checkpoint, "-o", out, "--jsonl", jsonl, "--threshold", "0.0", "--raw"],
        capsys,
    )
    assert code == 0, err
    assert read_video_pts(out) == read_video_pts(clip)
    assert stream_kinds(out) == ["video", "audio"]
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(10))
    assert [r["pts"] for r in records] == pytest.approx(read_video_pts(clip))
    for record in records:
        assert set(record["states"]) == {"dog", "tractor"}
        assert set(record["states"].values()) <= {"present", "absent"}
        assert "raw" in record
        for det in record["detections"]:
            assert det["label"] in ("dog", "tractor")
            assert len(det["box"]) == 4 and 0.0 <= det["score"] <= 1.0
    assert "wrote" in err


@pytest.mark.parametrize("smooth", [[], ["--no-smooth"]])
def test_a_class_threshold_holds_that_class_alone_to_it(tmp_path, tiny_checkpoint, sample_clip, capsys, smooth):
    """A random checkpoint scores both classes everywhere: at threshold 0 with tractor held to 1.0, the
    dogs stay and no tractor is ever shown, raw or after the temporal stage."""
    jsonl = tmp_path / "out.jsonl"
    code, _, err = run_cli(["process", sample_clip, "--prompt", "dog,tractor", "--model", tiny_checkpoint, "-o",
                            tmp_path / "out.mp4", "--jsonl", jsonl, "--threshold", "0.0",
                            "--class-thresholds", "tractor=1.0", "--raw", *smooth], capsys)
    assert code == 0, err
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    shown = [d["label"] for r in records for d in r["detections"]]
    assert "dog" in shown and "tractor" not in shown
    assert all(r["states"]["tractor"] == "absent" for r in records)
    if smooth:  # raw: what the detector kept is what was shown
        assert all(d["label"] == "dog" for r in records for d in r["raw"])


def test_process_jsonl_to_stdout_default_video_path(tmp_path, tiny_checkpoint, sample_clip, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(["process", sample_clip, "--prompt", "dog", "--model", tiny_checkpoint, "--jsonl", "-", "--no-smooth"], capsys)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 12 and all(json.loads(line)["frame"] == i for i, line in enumerate(lines))
    assert (tmp_path / "out" / f"{Path(sample_clip).stem}.mp4").exists()


def test_ctrl_c_leaves_playable_video_and_complete_jsonl(tmp_path, tiny_checkpoint):
    clip = make_clip(tmp_path / "long.mp4", frames=400, width=320, height=240)
    out, jsonl = tmp_path / "cut.mp4", tmp_path / "cut.jsonl"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "streamsink", "process", str(clip), "--prompt", "dog", "--model", str(tiny_checkpoint),
         "-o", str(out), "--jsonl", str(jsonl), "--batch-size", "1"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env, text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if jsonl.exists() and len(jsonl.read_text().splitlines()) >= 5:
            break
        time.sleep(0.05)
    assert process.poll() is None, "finished before it could be interrupted"
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    lines = jsonl.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert 5 <= len(records) < 400
    assert [r["frame"] for r in records] == list(range(len(records)))
    with av.open(str(out)) as container:
        decoded = sum(1 for _ in container.decode(video=0))
    assert decoded == len(records)
    assert "Traceback" not in err


FORMATS = {
    "mp4/h264": ("in.mp4", {}),
    "mkv/h264": ("in.mkv", {}),
    "avi/mjpeg": ("in.avi", {"codec": "mjpeg"}),
    "variable frame rate": ("vfr.mkv", {"pts": [0, 40, 80, 200, 210, 300, 400, 401, 450, 600], "time_base": Fraction(1, 1000)}),
}


@pytest.mark.parametrize("case", list(FORMATS), ids=list(FORMATS))
def test_process_keeps_every_frame_and_its_timestamp(case, tmp_path, tiny_checkpoint, capsys):
    name, kwargs = FORMATS[case]
    clip = make_clip(tmp_path / name, frames=10, **kwargs)
    out = tmp_path / "out.mp4"
    code, _, err = run_cli(["process", clip, "--prompt", "dog", "--model", tiny_checkpoint, "-o", out], capsys)
    assert code == 0, err
    assert read_video_pts(out) == pytest.approx(read_video_pts(clip), abs=1e-9)
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (160, 120) and stream.codec_context.name == "h264"


def test_process_image_folder(tmp_path, tiny_checkpoint, capsys):
    import cv2

    from clips import pattern

    folder = tmp_path / "shots"
    folder.mkdir()
    for i in (1, 2, 10):
        cv2.imwrite(str(folder / f"img{i}.png"), pattern(i)[..., ::-1])
    jsonl = tmp_path / "shots.jsonl"
    code, _, err = run_cli(["process", folder, "--prompt", "dog", "--model", tiny_checkpoint, "-o", tmp_path / "shots.mp4", "--jsonl", jsonl], capsys)
    assert code == 0, err
    assert [json.loads(line)["frame"] for line in jsonl.read_text().splitlines()] == [0, 1, 2]
    assert len(read_video_pts(tmp_path / "shots.mp4")) == 3


def test_watch_headless_on_a_network_stream(tmp_path, tiny_checkpoint, capsys):
    from clips import ClipServer

    data = make_clip(tmp_path / "cam.mkv", frames=20).read_bytes()
    jsonl = tmp_path / "live.jsonl"
    with ClipServer(data, cut_first=False) as server:
        code, _, err = run_cli(
            ["watch", server.url("/cam.mkv"), "--prompt", "dog,tractor", "--model", tiny_checkpoint, "--headless",
             "--buffer", "64", "-o", tmp_path / "live.mp4", "--jsonl", jsonl],
            capsys,
        )
    assert code == 0, err
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(20))
    assert all(set(r["states"]) == {"dog", "tractor"} for r in records)
    assert len(read_video_pts(tmp_path / "live.mp4")) == 20
    assert "done: 20 frames" in err


def test_process_refuses_to_overwrite_its_input(tmp_path, tiny_checkpoint, capsys):
    clip = make_clip(tmp_path / "clip.mp4", frames=4)
    before = clip.read_bytes()
    code, _, err = run_cli(["process", clip, "--prompt", "dog", "--model", tiny_checkpoint, "-o", clip], capsys)
    assert code == 2 and "is the input file" in err
    assert clip.read_bytes() == before


@pytest.mark.parametrize("device", ["foo", "cuda:99" if __import__("torch").cuda.is_available() else "cuda"])
def test_bad_device_is_a_usage_error_before_loading(device, sample_clip, tmp_path, capsys):
    code, _, err = run_cli(["process", sample_clip, "--prompt", "dog", "--device", device, "--model", tmp_path / "never-loaded"], capsys)
    assert code == 2 and "device" in err and "never-loaded" not in err
    assert len(err.strip().splitlines()) == 1
