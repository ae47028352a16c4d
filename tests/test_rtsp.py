"""Cameras as they really are: a real RTSP server (GStreamer's gst-rtsp-server) on loopback."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time

import pytest

from clips import read_video_pts
from servers import RtspServer, free_port
from streamsink.cli import main
from streamsink.errors import SourceError
from streamsink.sources import open_source
from streamsink.testing.streams import WatchRun


def _frames(source, count: int, timeout: float = 30.0) -> list:
    got, deadline = [], time.monotonic() + timeout
    for frame in source:
        got.append(frame)
        if len(got) >= count or time.monotonic() > deadline:
            break
    return got


@pytest.mark.parametrize("mount", ["/tcp", "/udp", "/live"])
def test_tcp_and_udp_transports(mount):
    with RtspServer() as server, open_source(server.url(mount), retries=1) as source:
        frames = _frames(source, 10)
        assert len(frames) == 10 and (source.width, source.height) == (320, 240)
        pts = [f.pts for f in frames]
        assert pts == sorted(pts) and len(set(pts)) == len(pts)
        assert source._transport == ("udp" if mount == "/udp" else "tcp"), "TCP first, UDP when only that is offered"


def test_run_on_an_rtsp_camera(tiny_checkpoint):
    import streamsink

    with RtspServer() as server:
        results = streamsink.run(server.url(), "dog,cat", model=str(tiny_checkpoint), retries=1)
        taken = [r for _, r in zip(range(15), results)]
        results.close()
    assert [set(r.states) for r in taken] == [{"dog", "cat"}] * 15
    assert all(r.frame.captured_at > 0 for r in taken)


def test_joining_a_stream_mid_gop():
    """A second viewer joins the shared stream 1.3 s into a 2 s GOP: its first frame is a whole picture."""
    with RtspServer(gop=50) as server, open_source(server.url()) as first:
        _frames(first, 5)
        time.sleep(1.3)
        with open_source(server.url(), retries=1) as second:
            frames = _frames(second, 5)
    assert len(frames) == 5
    picture = frames[0].image
    assert picture.max() > 200 and picture.std() > 10, "the ball on its background, not a grey concealment frame"
    assert [f.pts for f in frames] == sorted(f.pts for f in frames)


def test_the_server_goes_away_and_comes_back(tmp_path, tiny_checkpoint):
    """watch reconnects with backoff; timestamps stay monotonic, the recording plays across the gap and the
    frames the outage cost are reported apart from the frames dropped to keep up."""
    port = free_port()
    server = RtspServer(port=port).start()
    video, jsonl = tmp_path / "rec.mp4", tmp_path / "rec.jsonl"
    try:
        with WatchRun([server.url(), "-p", "dog", "-m", tiny_checkpoint, "--headless", "-o", video, "--jsonl", jsonl,
                       "--retries", "10"], log=str(tmp_path / "watch.log")) as run:
            _wait_for_lines(jsonl, 20)
            server.stop()
            time.sleep(3)
            server = RtspServer(port=port).start()
            before = len(jsonl.read_text().splitlines())
            _wait_for_lines(jsonl, before + 40, timeout=60)
        assert run.exit_code == 130, run.stderr[-2000:]
    finally:
        server.stop()
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert all(r["latency_ms"] > 0 for r in records), "every live line says how late it was written"
    pts = [r["pts"] for r in records]
    assert all(b > a for a, b in zip(pts, pts[1:])), "timestamps stay monotonic across the reconnect"
    assert max(b - a for a, b in zip(pts, pts[1:])) >= 2.5, "the outage shows as a gap in time"
    lost = records[-1].get("lost", 0)
    assert 25 <= lost <= 200, f"about 3 s of 25 fps lost in the outage, reported {lost}"
    assert "reconnect" in run.stderr and f"lost ~{lost} frames" in run.stderr
    assert len(read_video_pts(video)) == len(records), "the recording is playable and whole"


def _wait_for_lines(path, count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} JSONL lines after {timeout} s")


def test_a_server_that_accepts_and_then_says_nothing():
    """At the open: the timeout ends each attempt and the retries give up with one line."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    accepted = []
    threading.Thread(target=lambda: accepted.append(silent.accept()), daemon=True).start()
    started = time.monotonic()
    with pytest.raises(SourceError, match="cannot open rtsp://127.0.0.1:.* after 2 attempts"):
        open_source(f"rtsp://127.0.0.1:{silent.getsockname()[1]}/cam", timeout=1.0, retries=1)
    assert time.monotonic() - started < 10
    silent.close()


def test_a_stream_that_stalls_is_noticed_and_reconnected(caplog):
    """Mid-stream: the server keeps the connection and sends nothing at all; the stall is seen within the timeout."""
    caplog.set_level(logging.WARNING, logger="streamsink.sources")
    with RtspServer() as server, open_source(server.url(), timeout=2.0, retries=20) as source:
        frames = iter(source)
        _frames(frames, 60)  # past the burst the server sends a new viewer: frames now come at 25 fps
        server.freeze()
        stalled = time.time()
        threading.Timer(6.0, server.thaw).start()
        after = _frames(frames, 60, timeout=60)
        assert len(after) == 60
        noticed = [r for r in caplog.records if "reconnecting" in r.getMessage()]
        assert noticed, "the stall was reported"
        assert noticed[0].created - stalled < 2.0 + 1.5, "noticed within the 2 s timeout"
        assert source.reconnects >= 1


def test_credentials_in_the_url_are_never_printed(tmp_path, tiny_checkpoint, capsys):
    jsonl = tmp_path / "cam.jsonl"
    with RtspServer(user="viewer", password="hunter2") as server:
        url = server.url("/secure", credentials="viewer:hunter2")
        with WatchRun([url, "-p", "dog", "-m", tiny_checkpoint, "--headless", "--jsonl", jsonl, "--retries", "1"],
                      log=str(tmp_path / "watch.log")) as run:
            _wait_for_lines(jsonl, 10)
        assert run.exit_code == 130, run.stderr[-2000:]
        assert "hunter2" not in run.stderr and "hunter2" not in jsonl.read_text()
        code = main(["watch", server.url("/secure", credentials="viewer:wrongpass"), "-p", "dog", "-m",
                     str(tiny_checkpoint), "--headless", "--retries", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "wrongpass" not in err and "viewer:***@" in err and "401" in err
    assert len(err.strip().splitlines()) == 1 or all("wrongpass" not in line for line in err.splitlines())
