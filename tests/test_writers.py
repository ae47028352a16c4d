"""Writers: timestamps, audio and interruption survive the video round trip; JSONL is line-safe."""

from __future__ import annotations

import json
import logging
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from clips import make_clip, pattern, read_video_pts, stream_kinds

from streamsink.errors import SourceError, SourceNotFoundError, StreamsinkError, WriterError
from streamsink.types import Detections, Frame
from streamsink.writers import JsonlWriter, VideoWriter, Window, frame_record

VFR_PTS = [0, 40, 80, 200, 210, 300, 333, 500, 520, 700]


def read_frames(path: Path) -> list[Frame]:
    """Every video frame of `path` as the frame reader would deliver it, with exact ticks."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [
            Frame(
                f.to_ndarray(format="rgb24"),
                i,
                float(f.pts * f.time_base),
                source=str(path),
                pts_ticks=f.pts,
                time_base=f.time_base,
            )
            for i, f in enumerate(container.decode(stream))
        ]


def decode_rgb(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def audio_span(path: Path) -> tuple[float, float] | None:
    """(start, end) seconds of the decoded audio, or None without audio."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return None
        frames = list(container.decode(audio=0))
        first, last = frames[0], frames[-1]
        return float(first.pts * first.time_base), float(last.pts * last.time_base) + last.samples / last.sample_rate


def write_all(path: Path, frames: list[Frame], **kwargs) -> Path:
    with VideoWriter(path, width=frames[0].width, height=frames[0].height, **kwargs) as writer:
        for frame in frames:
            writer.write(frame)
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("writer-inputs")
    return {
        "mp4": make_clip(folder / "h264.mp4"),
        "mkv": make_clip(folder / "h264.mkv"),
        "avi": make_clip(folder / "mjpeg.avi", codec="mjpeg"),
        "vfr": make_clip(folder / "vfr.mp4", frames=len(VFR_PTS), pts=VFR_PTS, time_base=Fraction(1, 1000)),
        "audio": make_clip(folder / "audio.mp4", frames=25, audio=True),
    }


@pytest.mark.parametrize("out_ext", ["mp4", "mkv"])
@pytest.mark.parametrize("kind", ["mp4", "mkv", "avi", "vfr"])
def test_round_trip_keeps_every_timestamp(inputs, tmp_path, kind, out_ext):
    frames = read_frames(inputs[kind])
    out = write_all(tmp_path / f"out.{out_ext}", frames)
    assert read_video_pts(out) == read_video_pts(inputs[kind])
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (frames[0].width, frames[0].height)
        assert stream.codec_context.name == "h264"


def test_vfr_survives(inputs, tmp_path):
    out = write_all(tmp_path / "vfr.mp4", read_frames(inputs["vfr"]))
    assert read_video_pts(out) == [t / 1000 for t in VFR_PTS]


def test_pixels_match_and_red_stays_red(tmp_path):
    images = [pattern(i) for i in range(6)]
    for image in images:
        image[20:60, 30:90] = (255, 0, 0)
    frames = [Frame(image, i, i / 25) for i, image in enumerate(images)]
    out = write_all(tmp_path / "red.mp4", frames, fps=25)
    decoded = decode_rgb(out)
    assert len(decoded) == len(images)
    for before, after in zip(images, decoded):
        assert np.abs(before.astype(int) - after.astype(int)).mean() < 6
        red = after[25:55, 35:85].reshape(-1, 3).mean(0)
        assert red[0] > 220 and red[1] < 40 and red[2] < 40


def test_annotated_image_replaces_frame_image(tmp_path):
    frame = Frame(np.zeros((64, 64, 3), np.uint8), 0, 0.0)
    white = np.full((64, 64, 3), 255, np.uint8)
    with VideoWriter(tmp_path / "a.mkv", width=64, height=64) as writer:
        writer.write(frame, white)
    assert decode_rgb(tmp_path / "a.mkv")[0].mean() > 240


def test_seconds_only_and_odd_size(tmp_path):
    """Image folders: no ticks, odd sides; padded by one pixel, times kept to the millisecond."""
    times = [0.0, 0.1, 0.25, 0.3333, 1.0]
    frames = [Frame(pattern(i, 161, 121), i, t) for i, t in enumerate(times)]
    out = write_all(tmp_path / "odd.mp4", frames)
    assert read_video_pts(out) == pytest.approx(times, abs=1e-4)
    decoded = decode_rgb(out)
    assert decoded[0].shape == (122, 162, 3)
    assert np.abs(decoded[2][:121, :161].astype(int) - frames[2].image.astype(int)).mean() < 6


def test_other_size_is_scaled(tmp_path, caplog):
    frames = [Frame(pattern(i, 80, 60), i, i / 10) for i in range(3)]
    with caplog.at_level(logging.WARNING, logger="streamsink.writers"):
        with VideoWriter(tmp_path / "s.mkv", width=160, height=120) as writer:
            for frame in frames:
                writer.write(frame)
    assert decode_rgb(tmp_path / "s.mkv")[0].shape == (120, 160, 3)
    assert sum("scaled" in r.message for r in caplog.records) == 1


def test_non_increasing_pts_bumped_once_logged(tmp_path, caplog):
    ticks = [0, 40, 40, 30, 80]
    image = pattern(0)
    frames = [Frame(image, i, t / 1000, pts_ticks=t, time_base=Fraction(1, 1000)) for i, t in enumerate(ticks)]
    with caplog.at_level(logging.WARNING, logger="streamsink.writers"):
        write_all(tmp_path / "bump.mkv", frames)
    assert read_video_pts(tmp_path / "bump.mkv") == [0.0, 0.04, 0.041, 0.042, 0.08]
    assert sum("does not increase" in r.message for r in caplog.records) == 1


@pytest.mark.parametrize("out_ext", ["mp4", "mkv"])
def test_audio_passthrough(inputs, tmp_path, out_ext):
    source = inputs["audio"]
    out = write_all(tmp_path / f"a.{out_ext}", read_frames(source), audio_from=source)
    assert stream_kinds(out) == ["video", "audio"]
    with av.open(str(out)) as container:
        assert container.streams.audio[0].codec_context.name == "aac"
    start, end = audio_span(out)
    assert start == pytest.approx(0.0, abs=0.03)
    assert end == pytest.approx(1.0, abs=0.05)
    assert read_video_pts(out) == read_video_pts(source)


def test_audio_transcoded_when_container_refuses_codec(tmp_path):
    """PCM audio in Matroska cannot be copied into mp4: it becomes AAC of the same length."""
    source = tmp_path / "pcm.mkv"
    with av.open(str(source), "w") as container:
        video = container.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 160, 120, "yuv420p"
        video.options = {"preset": "ultrafast"}
        audio = container.add_stream("pcm_s16le", rate=16000)
        audio.layout = "mono"
        for i in range(10):
            container.mux(video.encode(av.VideoFrame.from_ndarray(pattern(i), format="rgb24")))
        container.mux(video.encode())
        samples = (np.sin(np.arange(6400) / 5) * 9000).astype(np.int16)
        for start in range(0, 6400, 800):
            frame = av.AudioFrame.from_ndarray(samples[None, start : start + 800], format="s16", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = 16000, start, Fraction(1, 16000)
            container.mux(audio.encode(frame))
        container.mux(audio.encode())
    out = write_all(tmp_path / "t.mp4", read_frames(source), audio_from=source)
    with av.open(str(out)) as container:
        assert container.streams.audio[0].codec_context.name == "aac"
    assert audio_span(out)[1] == pytest.approx(0.4, abs=0.05)


def test_no_audio_in_source_adds_none(inputs, tmp_path):
    out = write_all(tmp_path / "n.mp4", read_frames(inputs["mp4"]), audio_from=inputs["mp4"])
    assert stream_kinds(out) == ["video"]


@pytest.mark.parametrize("out_ext", ["mp4", "mkv"])
def test_interrupted_run_leaves_playable_file(inputs, tmp_path, out_ext):
    source = inputs["audio"]
    frames = read_frames(source)
    out = tmp_path / f"cut.{out_ext}"
    with pytest.raises(KeyboardInterrupt):
        with VideoWriter(out, width=160, height=120, audio_from=source) as writer:
            for frame in frames[:12]:
                writer.write(frame)
            raise KeyboardInterrupt
    assert len(decode_rgb(out)) == 12
    assert read_video_pts(out) == read_video_pts(source)[:12]
    assert audio_span(out)[1] == pytest.approx(0.48, abs=0.05)


def test_close_twice_zero_frames_and_write_after_close(tmp_path):
    empty = tmp_path / "empty.mp4"
    writer = VideoWriter(empty, width=32, height=32)
    writer.close()
    writer.close()
    assert not empty.exists()
    with pytest.raises(WriterError):
        writer.write(Frame(np.zeros((32, 32, 3), np.uint8), 0, 0.0))


def test_creates_parent_folders(tmp_path):
    out = tmp_path / "a" / "b" / "c.mkv"
    write_all(out, [Frame(pattern(0), 0, 0.0)])
    assert len(read_video_pts(out)) == 1


@pytest.mark.parametrize("name", ["file.txt/out.mp4", "out.notaformat", "folder"])
def test_bad_output_path_raises_writer_error(tmp_path, name):
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "folder").mkdir()
    with pytest.raises(WriterError) as info:
        VideoWriter(tmp_path / name, width=32, height=32)
    assert isinstance(info.value, StreamsinkError) and isinstance(info.value, OSError)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out.notaformat").exists()
    with pytest.raises(WriterError):
        JsonlWriter(tmp_path / name if name != "out.notaformat" else tmp_path / "file.txt" / "x.jsonl")


def test_unknown_format_leaves_existing_file_alone(tmp_path):
    existing = tmp_path / "notes.xyz"
    existing.write_text("keep")
    with pytest.raises(WriterError):
        VideoWriter(existing, width=32, height=32)
    assert existing.read_text() == "keep"


def test_bad_audio_source(tmp_path):
    with pytest.raises(SourceNotFoundError):
        VideoWriter(tmp_path / "a.mp4", width=32, height=32, audio_from=tmp_path / "missing.mp4")
    (tmp_path / "junk.mp4").write_bytes(b"not a video")
    with pytest.raises(SourceError):
        VideoWriter(tmp_path / "b.mp4", width=32, height=32, audio_from=tmp_path / "junk.mp4")
    assert not (tmp_path / "a.mp4").exists() and not (tmp_path / "b.mp4").exists()


@pytest.mark.parametrize(
    "kwargs",
    [dict(width=0, height=10), dict(width=10, height=10, fps=0), dict(width=10, height=10, crf=99)],
)
def test_bad_settings_raise_value_error(tmp_path, kwargs):
    with pytest.raises(ValueError):
        VideoWriter(tmp_path / "x.mp4", **kwargs)


def test_jsonl_lines_flushed_as_written(tmp_path):
    path = tmp_path / "out" / "r.jsonl"
    with JsonlWriter(path) as writer:
        writer.write({"frame": 0, "name": "ü"})
        assert json.loads(path.read_text(encoding="utf-8")) == {"frame": 0, "name": "ü"}
        writer.write({"frame": 1, "score": np.float32(0.5), "box": np.arange(2)})
        lines = path.read_text(encoding="utf-8").splitlines()
        assert [json.loads(line)["frame"] for line in lines] == [0, 1]
        assert json.loads(lines[1])["box"] == [0, 1]
    writer.close()


def test_jsonl_dash_writes_stdout_and_keeps_it_open(capsys):
    with JsonlWriter("-") as writer:
        writer.write({"frame": 3})
    assert not sys.stdout.closed
    assert json.loads(capsys.readouterr().out) == {"frame": 3}


def test_frame_record_schema():
    labels = ("cat", "dog")
    dets = Detections(np.array([[1.234, 2, 3, 4]]), np.array([0.91234]), np.array([1]), labels)
    frame = Frame(np.zeros((4, 4, 3), np.uint8), 7, 0.123456789, source="cam0", dropped=2)
    record = frame_record(frame, dets, {"cat": "absent", "dog": "present"}, raw=dets, extra={"latency_ms": 12.5})
    assert record == {
        "frame": 7,
        "pts": 0.123457,
        "detections": [{"label": "dog", "score": 0.9123, "box": [1.23, 2.0, 3.0, 4.0]}],
        "states": {"cat": "absent", "dog": "present"},
        "raw": [{"label": "dog", "score": 0.9123, "box": [1.23, 2.0, 3.0, 4.0]}],
        "source": "cam0",
        "dropped": 2,
        "latency_ms": 12.5,
    }
    json.dumps(record)
    plain = frame_record(Frame(np.zeros((4, 4, 3), np.uint8), 0, 0.0), Detections.empty(labels), {})
    assert plain == {"frame": 0, "pts": 0.0, "detections": [], "states": {}}


def test_window_unavailable_without_display(monkeypatch):
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("DISPLAY", raising=False)
    if sys.platform.startswith("linux"):
        assert Window.available() is False
    Window().close()


def test_window_unavailable_with_headless_opencv(monkeypatch):
    import cv2

    if getattr(cv2, "currentUIFramework", lambda: "")():
        pytest.skip("this OpenCV has a GUI backend")
    monkeypatch.setenv("DISPLAY", ":0")
    assert Window.available() is False
    with pytest.raises(WriterError):
        Window().show(np.zeros((8, 8, 3), np.uint8))


def test_window_available_survives_broken_cv2(monkeypatch):
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setitem(sys.modules, "cv2", None)
    assert Window.available() is False
