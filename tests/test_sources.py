"""Sources: files of several containers, image folders, network reconnects, the live drop policy, bad input."""

from __future__ import annotations

import socket
import threading
import time
import weakref
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from clips import ClipServer, make_clip, pattern, read_video_pts

from streamsink.errors import SourceError, SourceNotFoundError, StreamsinkError
from streamsink.sources import LatestFrames, LiveSource, _redact, _url_name, open_source


def _reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("streamsink-")]


# ---------------------------------------------------------------- files


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("h264.mp4", {}),
        ("h264.mkv", {}),
        ("ffv1.mkv", {"codec": "ffv1"}),
        ("mjpeg.avi", {"codec": "mjpeg"}),
        ("h264.ts", {}),
        ("vfr.mp4", {"pts": [0, 40, 70, 150, 160, 300, 333, 400, 520, 600], "time_base": Fraction(1, 1000)}),
    ],
)
def test_file_frames_match_pyav(tmp_path, name, kwargs):
    frames = len(kwargs.get("pts", [])) or 12
    path = make_clip(tmp_path / name, frames=frames, width=96, height=64, **kwargs)
    expected = read_video_pts(path)
    with open_source(path) as source:
        assert not source.is_live and source.path == path and source.name == path.stem
        assert (source.width, source.height) == (96, 64)
        assert source.fps and source.fps > 0
        assert source.frame_count is not None and abs(source.frame_count - len(expected)) <= 2
        got = list(source)
    assert source.closed
    assert [f.index for f in got] == list(range(len(expected)))
    assert [f.pts for f in got] == pytest.approx(expected, abs=1e-9)
    for frame in got:
        assert frame.image.shape == (64, 96, 3) and frame.image.dtype == np.uint8
        assert frame.pts_ticks is not None and float(frame.pts_ticks * frame.time_base) == pytest.approx(frame.pts)
        assert frame.dropped == 0 and frame.source == path.stem
    # Close to the pattern in RGB order (BGR would be off by ~80 on average); only 4:2:0 chroma is lost.
    assert np.abs(got[5].image.astype(int) - pattern(5, 96, 64)).mean() < 12


def test_file_reports_audio(tmp_path):
    path = make_clip(tmp_path / "with_audio.mp4", frames=10, width=64, height=48, audio=True)
    with open_source(str(path)) as source:
        assert source.has_audio and source.spec == str(path)
        assert len(list(source)) == 10


def test_long_file_keeps_no_frames(tmp_path):
    path = make_clip(tmp_path / "long.mp4", frames=300, width=64, height=48)
    alive: list[weakref.ref] = []
    queued = []
    with open_source(path, buffer=3) as source:
        for frame in source:
            alive.append(weakref.ref(frame.image))
            queued.append(source._reader.qsize())
    assert len(alive) == 300
    assert max(queued) <= 3
    assert sum(ref() is not None for ref in alive) <= 1


def test_iterates_once_and_early_stop_closes(tmp_path):
    path = make_clip(tmp_path / "c.mp4", frames=20, width=64, height=48)
    source = open_source(path)
    for frame in source:
        if frame.index == 3:
            break
    assert source.closed and not _reader_threads()
    with pytest.raises(SourceError, match="closed"):
        iter(source)


# ---------------------------------------------------------------- image folders


def _write_png(path: Path, rgb: np.ndarray) -> None:
    import cv2

    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def test_image_folder_natural_order_and_resize(tmp_path):
    folder = tmp_path / "shots"
    folder.mkdir()
    for i in (10, 2, 1):
        _write_png(folder / f"img{i}.png", pattern(i, 64, 48))
    _write_png(folder / "img11.png", pattern(11, 80, 60))  # a different size: resized to 64x48
    (folder / "notes.txt").write_text("not an image")
    _write_png(folder / ".hidden.png", pattern(0, 64, 48))
    with open_source(folder, fps=10) as source:
        assert (source.width, source.height, source.frame_count, source.name) == (64, 48, 4, "shots")
        assert source.time_base == Fraction(1, 10) and not source.is_live and source.path is None
        frames = list(source)
    assert [f.index for f in frames] == [0, 1, 2, 3]
    assert [f.pts for f in frames] == pytest.approx([0.0, 0.1, 0.2, 0.3])
    assert [f.pts_ticks for f in frames] == [0, 1, 2, 3]
    for frame, i in zip(frames[:3], (1, 2, 10)):
        np.testing.assert_array_equal(frame.image, pattern(i, 64, 48))  # RGB, lossless, natural order
    assert frames[3].image.shape == (48, 64, 3)


def test_image_glob(tmp_path):
    for i in (3, 20, 100):
        _write_png(tmp_path / f"f{i}.png", pattern(i, 32, 24))
    _write_png(tmp_path / "other.bmp", pattern(0, 32, 24))
    with open_source(str(tmp_path / "f*.png")) as source:
        assert source.frame_count == 3 and source.fps == 25.0
        frames = list(source)
    for frame, i in zip(frames, (3, 20, 100)):
        np.testing.assert_array_equal(frame.image, pattern(i, 32, 24))
    assert frames[2].pts == pytest.approx(2 / 25)


# ---------------------------------------------------------------- network


def test_network_stream_reconnects_with_monotonic_pts(tmp_path, monkeypatch):
    import streamsink.sources.live as sources

    monkeypatch.setattr(sources, "RECONNECT_DELAY", 0.05)
    data = make_clip(tmp_path / "live.ts", frames=40, width=64, height=48).read_bytes()
    with ClipServer(data) as server:
        source = open_source(server.url("/cam/live.ts"), timeout=2, retries=3)
        assert source.is_live and source.name == "127.0.0.1_cam_live" and source.path is None
        assert (source.width, source.height) == (64, 48)
        got = []
        deadline = time.monotonic() + 15
        for frame in source:
            got.append(frame)
            if (source.reconnects >= 2 and len(got) >= 50) or time.monotonic() > deadline:
                break
        assert source.closed
    assert source.reconnects >= 2, "the cut-off first request and the end of each full one both reconnect"
    indices = [f.index for f in got]
    pts = [f.pts for f in got]
    assert all(b > a for a, b in zip(indices, indices[1:]))
    assert all(b > a for a, b in zip(pts, pts[1:]))
    assert pts[-1] > 40 / 25, "pts continue after the clip's own last timestamp"
    assert all(f.image.shape == (48, 64, 3) for f in got)
    time.sleep(0.05)
    assert not _reader_threads()


def test_network_stream_with_duration_ends(tmp_path):
    data = make_clip(tmp_path / "vod.mkv", frames=20, width=64, height=48).read_bytes()
    with ClipServer(data, cut_first=False) as server:
        with open_source(server.url("/vod.mkv"), buffer=64, timeout=2, retries=1) as source:
            frames = list(source)
    assert len(frames) == 20 and source.reconnects == 0
    assert [f.pts for f in frames] == pytest.approx(read_video_pts(tmp_path / "vod.mkv"))


def test_unreachable_url_fails_after_retries(monkeypatch):
    import streamsink.sources.live as sources

    monkeypatch.setattr(sources, "RECONNECT_DELAY", 0.05)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://user:secret@127.0.0.1:{port}/cam.ts"
    start = time.monotonic()
    with pytest.raises(SourceError) as caught:
        open_source(url, timeout=1, retries=2)
    message = str(caught.value)
    assert time.monotonic() - start < 5
    assert message.startswith(f"cannot open http://user:***@127.0.0.1:{port}/cam.ts: ")
    assert message.endswith("after 3 attempts") and "secret" not in message and "\n" not in message
    assert not _reader_threads()


@pytest.mark.parametrize(
    "url, name, shown",
    [
        ("rtsp://u:p@cam.local:554/live/ch1.sdp", "cam.local_live_ch1", "rtsp://u:***@cam.local:554/live/ch1.sdp"),
        ("udp://239.0.0.1:1234", "239.0.0.1_1234", "udp://239.0.0.1:1234"),
        ("https://example.com/a b/c.m3u8?x=1", "example.com_a_b_c", "https://example.com/a b/c.m3u8?x=1"),
    ],
)
def test_url_names(url, name, shown):
    assert _url_name(url) == name
    assert _redact(url) == shown


# ---------------------------------------------------------------- live policy


def test_latest_frames_drops_oldest():
    latest: LatestFrames[int] = LatestFrames(2)
    for i in range(5):
        assert latest.put(i)
    assert (len(latest), latest.dropped, latest.high_water) == (2, 3, 2)
    assert latest.get() == 3 and latest.get() == 4
    with pytest.raises(TimeoutError):
        latest.get(timeout=0.01)
    latest.put(5)
    latest.finish(SourceError("gone"))
    assert not latest.put(6)
    assert latest.get() == 5, "items kept before the end still come out"
    with pytest.raises(SourceError, match="gone"):
        latest.get()
    assert latest.get() is None


def test_latest_frames_close_wakes_consumer():
    latest: LatestFrames[int] = LatestFrames(1)
    result = []
    consumer = threading.Thread(target=lambda: result.append(latest.get()))
    consumer.start()
    time.sleep(0.05)
    latest.close()
    consumer.join(1)
    assert result == [None] and not latest.put(1)
    with pytest.raises(ValueError, match="capacity must be an int >= 1, got 0"):
        LatestFrames(0)


def test_latest_frames_with_fast_producer_and_slow_consumer():
    latest: LatestFrames[int] = LatestFrames(3)
    total = 3000

    def produce():
        for i in range(total):
            latest.put(i)
            if i % 100 == 0:
                time.sleep(0.001)
        latest.finish()

    producer = threading.Thread(target=produce)
    producer.start()
    taken = []
    while (item := latest.get(timeout=5)) is not None:
        taken.append(item)
        time.sleep(0.002)
    producer.join()
    assert all(b > a for a, b in zip(taken, taken[1:]))
    assert taken[-1] == total - 1, "the newest item always reaches the consumer"
    assert len(taken) + latest.dropped == total and latest.dropped > 0
    assert latest.high_water <= 3


class FakeCamera(LiveSource):
    """A live source producing tiny frames at about `rate` per second."""

    def __init__(self, rate: float = 200.0, buffer: int = 2) -> None:
        super().__init__("fake", "fake", buffer=buffer)
        self.rate = rate
        self.width = self.height = 8
        self.emitted = 0
        self._start()

    def _read(self) -> None:
        t0 = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if not self._emit(np.full((8, 8, 3), self.emitted % 256, np.uint8), now - t0, captured_at=now):
                return
            self.emitted += 1
            time.sleep(1 / self.rate)


def test_live_source_serves_fresh_frames_to_a_slow_consumer():
    before = threading.active_count()
    ages, got = [], []
    with FakeCamera(rate=200, buffer=2) as camera:
        time.sleep(0.05)
        for frame in camera:
            ages.append(time.monotonic() - frame.captured_at)
            got.append(frame)
            if len(got) == 12:
                break
            time.sleep(0.05)  # a consumer 10x slower than the camera
        assert camera._latest.high_water <= 2
    # A queue that kept every frame would be ~0.5 s behind by now.
    assert max(ages[2:]) < 0.15, ages
    assert camera.dropped > 50
    indices = [f.index for f in got]
    assert all(b > a for a, b in zip(indices, indices[1:])) and indices[-1] - indices[0] > 50
    dropped = [f.dropped for f in got]
    assert dropped == sorted(dropped) and dropped[-1] > 0
    assert all(f.index >= f.dropped for f in got)
    deadline = time.monotonic() + 1
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == before


def test_live_source_stops_when_iteration_breaks():
    before = threading.active_count()
    camera = FakeCamera()
    for frame in camera:
        if frame.index >= 3:
            break
    deadline = time.monotonic() + 1
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == before and camera.closed


def test_live_error_reaches_consumer():
    class Broken(LiveSource):
        def __init__(self):
            super().__init__("broken", "broken", buffer=2)
            self._start()

        def _read(self):
            self._emit(np.zeros((4, 4, 3), np.uint8), 0.0)
            raise RuntimeError("device unplugged")

    with Broken() as source:
        frames = []
        with pytest.raises(SourceError, match="broken: device unplugged"):
            for frame in source:
                frames.append(frame)
    assert len(frames) == 1


# ---------------------------------------------------------------- bad input


def _bad_inputs(tmp: Path) -> dict[str, tuple[object, type, str]]:
    (tmp / "notes.mp4").write_text("this is not a video\n")
    clip = make_clip(tmp / "full.mp4", frames=10, width=64, height=48).read_bytes()
    (tmp / "truncated.mp4").write_bytes(clip[: len(clip) // 2])
    (tmp / "empty").mkdir()
    (tmp / "only_text").mkdir()
    (tmp / "only_text" / "a.txt").write_text("x")
    _write_wav(tmp / "tone.wav")
    return {
        "missing": (tmp / "nope.mp4", SourceNotFoundError, f"no such file: {tmp / 'nope.mp4'}"),
        "text": (tmp / "notes.mp4", SourceError, f"not a video: {tmp / 'notes.mp4'} ("),
        "truncated": (tmp / "truncated.mp4", SourceError, f"not a video: {tmp / 'truncated.mp4'} ("),
        "audio only": (tmp / "tone.wav", SourceError, f"no video stream in {tmp / 'tone.wav'}"),
        "empty folder": (tmp / "empty", SourceNotFoundError, f"no images in folder {tmp / 'empty'}"),
        "folder of text": (tmp / "only_text", SourceNotFoundError, "no images in folder"),
        "glob": (str(tmp / "shots" / "*.png"), SourceNotFoundError, f"no images match {tmp / 'shots' / '*.png'}"),
        "camera7": ("camera7", SourceNotFoundError, "camera7 not found (no /dev/video7)"),
        "/dev/video9": ("/dev/video9", SourceNotFoundError, "camera9 not found (no /dev/video9)"),
        "int 7": (7, SourceNotFoundError, "camera7 not found (no /dev/video7)"),
        "digits": ("7", SourceNotFoundError, "camera7 not found (no /dev/video7)"),
        "scheme": ("ftp://host/x.mp4", SourceError, "unsupported URL scheme ftp://"),
        "buffer": (("x.mp4", {"buffer": 0}), ValueError, "buffer must be an int >= 1, got 0"),
        "fps": (("x.mp4", {"fps": -1}), ValueError, "fps must be > 0, got -1"),
        "timeout": (("x.mp4", {"timeout": 0}), ValueError, "timeout must be > 0 seconds, got 0"),
        "retries": (("x.mp4", {"retries": -1}), ValueError, "retries must be an int >= 0, got -1"),
        "negative camera": (-1, ValueError, "camera number must be >= 0, got -1"),
        "wrong type": (3.5, ValueError, "source must be a path, URL, camera name or camera number, got 3.5"),
    }


def _write_wav(path: Path) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory) -> dict[str, tuple[object, type, str]]:
    return _bad_inputs(tmp_path_factory.mktemp("bad"))


BAD = [
    "missing", "text", "truncated", "audio only", "empty folder", "folder of text", "glob",
    "camera7", "/dev/video9", "int 7", "digits", "scheme", "buffer", "fps", "timeout", "retries",
    "negative camera", "wrong type",
]


@pytest.mark.parametrize("case", BAD)
def test_bad_input(bad_inputs, case):
    spec, error, message = bad_inputs[case]
    if case in ("camera7", "/dev/video9", "int 7", "digits") and Path(message.split("no ")[1][:-1]).exists():
        pytest.skip("this machine has that camera")
    spec, kwargs = spec if isinstance(spec, tuple) else (spec, {})
    start = time.monotonic()
    with pytest.raises(error) as caught:
        open_source(spec, **kwargs)
    text = str(caught.value)
    assert text.startswith(message), text
    assert "\n" not in text and time.monotonic() - start < 2
    if error is not ValueError:
        assert isinstance(caught.value, StreamsinkError)
    assert not _reader_threads()


def test_a_folder_named_like_a_number_is_a_folder_not_a_camera(tmp_path, monkeypatch):
    folder = tmp_path / "2024"
    folder.mkdir()
    _write_png(folder / "a.png", pattern(0))
    monkeypatch.chdir(tmp_path)
    with open_source("2024") as source:
        assert not source.is_live and len(list(source)) == 1


def test_one_parse_of_a_spec_names_and_opens_alike(tmp_path, sample_clip):
    """`describe_source` (names before opening) and `open_source` read a spec by the same parse."""
    import cv2

    from clips import pattern
    from streamsink.sources import SourceSpec, describe_source, parse_source

    shots = tmp_path / "shots"
    shots.mkdir()
    for i in (1, 2):
        cv2.imwrite(str(shots / f"img{i}.png"), pattern(i)[..., ::-1])
    for spec in (str(sample_clip), f"file://{sample_clip}", str(shots), str(shots / "*.png")):
        with open_source(spec) as source:
            assert describe_source(spec) == (source.name, source.is_live), spec
    assert parse_source("camera3") == SourceSpec("camera", "camera3", "camera3", True, 3)
    assert parse_source(0) == SourceSpec("camera", "0", "camera0", True, 0)
    assert parse_source("rtsp://u:p@cam.local:554/live/ch1.sdp").name == "cam.local_live_ch1"
    assert parse_source("ftp://host/clip.mp4").kind == "unsupported"
    assert parse_source(str(tmp_path / "nope.mp4")) == SourceSpec("missing", str(tmp_path / "nope.mp4"), "nope", False)
    with pytest.raises(SourceError, match="unsupported URL scheme ftp://"):
        open_source("ftp://host/clip.mp4")
