"""The live page of `watch --serve`: its HTTP API, its safety, a real run behind it, and a real browser in front."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from clips import make_clip, pattern, read_video_pts
from streamsink.cli import main
from streamsink.errors import PromptError
from streamsink.serve import LiveBoard, ServeError, WebServer, parse_address
from streamsink.stages import LivePrompts
from streamsink.testing.streams import LiveStream, WatchRun
from streamsink.types import Detections, Frame, Result

ROOT = Path(__file__).resolve().parents[1]
DEMO_MODEL = ROOT / "samples" / "models" / "shapes-gdino"
DEMO_CLIP = ROOT / "samples" / "clips" / "shapes_demo.mp4"
PROMPT = "circle,square,triangle,star,dog"


def fake_result(index: int, present: tuple[str, ...] = ("dog",), labels: tuple[str, ...] = ("dog", "cat"),
                source: str = "cam") -> Result:
    frame = Frame(np.full((120, 160, 3), index % 250, np.uint8), index, index / 25, source=source,
                  captured_at=time.monotonic())
    found = [labels.index(label) for label in present]
    detections = Detections(np.tile(np.array([[10, 10, 60, 50]], np.float32), (len(found), 1)),
                            np.full(len(found), 0.9, np.float32), np.array(found, np.int64), labels)
    return Result(frame, detections, detections, {label: "present" if label in present else "absent" for label in labels})


def request(server: WebServer, method: str, path: str, body: bytes | None = None,
            headers: dict | None = None) -> tuple[int, dict, bytes]:
    connection = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def post_prompt(server: WebServer, body: object, content_type: str = "application/json") -> tuple[int, dict]:
    status, _, data = request(server, "POST", "/api/prompt", json.dumps(body).encode(), {"Content-Type": content_type})
    return status, json.loads(data)


@pytest.fixture()
def served():
    prompts = LivePrompts({"cam": ("dog", "cat")})
    board = LiveBoard(prompts, lambda: [])
    with WebServer(board, "127.0.0.1", 0) as server:
        yield board, server


def test_state_snapshot_and_timeline(served):
    import cv2

    board, server = served
    state = json.loads(request(server, "GET", "/api/state")[2])
    assert state["sources"]["cam"]["status"] == "waiting" and state["sources"]["cam"]["frame"] is None
    assert request(server, "GET", "/api/snapshot/cam.jpg")[0] == 503, "no frame yet is a 503, not a broken image"

    for i in range(3):
        board.publish(fake_result(i, present=("dog",)), fps=25.0, latency_ms=40.0)
    board.publish(fake_result(3, present=()), fps=25.0, latency_ms=41.0)
    cam = json.loads(request(server, "GET", "/api/state")[2])["sources"]["cam"]
    assert cam["states"] == {"dog": "absent", "cat": "absent"} and cam["frame"] == 3
    assert cam["fps"] == 25.0 and cam["latency_ms"] == 41.0 and cam["prompt"] == "dog,cat"
    assert len(cam["timeline"]["dog"]) == 1 and cam["timeline"]["dog"][0][1] is not None, "one closed stretch of dog"
    assert cam["timeline"]["cat"] == []
    assert [(c["class"], c["state"]) for c in cam["changes"]] == [("dog", "absent")]

    status, headers, data = request(server, "GET", "/api/snapshot/cam.jpg")
    assert status == 200 and headers["Content-Type"] == "image/jpeg" and headers["X-Frame"] == "3"
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (120, 160, 3)
    assert request(server, "GET", "/api/snapshot/nope.jpg")[0] == 404


def test_snapshot_after_waits_for_a_newer_frame(served):
    board, server = served
    board.publish(fake_result(0), 25.0, None)
    threading.Timer(0.3, lambda: board.publish(fake_result(1), 25.0, None)).start()
    started = time.monotonic()
    status, headers, _ = request(server, "GET", "/api/snapshot/cam.jpg?after=1")
    assert status == 200 and headers["X-Seq"] == "2" and headers["X-Frame"] == "1"
    assert time.monotonic() - started >= 0.25


def test_mjpeg_stream_sends_each_new_frame(served):
    board, server = served
    board.publish(fake_result(0), 25.0, None)
    connection = socket.create_connection((server.host, server.port), timeout=10)
    connection.sendall(b"GET /api/stream/cam.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")
    received = b""
    board.publish(fake_result(1), 25.0, None)
    deadline = time.monotonic() + 10
    while received.count(b"Content-Type: image/jpeg") < 2 and time.monotonic() < deadline:
        received += connection.recv(65536)
        board.publish(fake_result(2), 25.0, None)
    connection.close()
    assert b"multipart/x-mixed-replace" in received and received.count(b"Content-Type: image/jpeg") >= 2


def test_prompt_changes_and_bad_requests(served):
    board, server = served
    assert post_prompt(server, {"prompt": "car, cat"}) == (200, {"source": "cam", "prompt": "car,cat", "classes": ["car", "cat"]})
    assert board.prompts["cam"] == ("car", "cat")
    assert post_prompt(server, {"prompt": "x"}, "text/plain")[0] == 415, "a form post from another site is refused"
    status, _, _ = request(server, "POST", "/api/prompt", b"{not json", {"Content-Type": "application/json"})
    assert status == 400
    assert post_prompt(server, ["car"])[0] == 400
    assert post_prompt(server, {"prompt": " , "})[0] == 400
    assert post_prompt(server, {"prompt": "car", "source": "other"})[0] == 404
    assert request(server, "GET", "/api/prompt")[0] == 405, "prompt changes are POST only"
    big = json.dumps({"prompt": "a" * 100_000}).encode()
    assert request(server, "POST", "/api/prompt", big, {"Content-Type": "application/json"})[0] == 413
    assert board.prompts["cam"] == ("car", "cat"), "no bad request changed anything"

    def too_long(classes):
        raise PromptError("the prompt is too long")

    board.prompts.check = too_long
    assert post_prompt(server, {"prompt": "bus"}) == (400, {"error": "the prompt is too long"})
    assert board.prompts["cam"] == ("car", "cat")


def test_prompt_names_its_source_when_there_are_several():
    board = LiveBoard(LivePrompts({"a": ("dog",), "b": ("cat",)}), lambda: [])
    with WebServer(board, "127.0.0.1", 0) as server:
        status, body = post_prompt(server, {"prompt": "car"})
        assert status == 400 and "a, b" in body["error"]
        assert post_prompt(server, {"prompt": "car", "source": "b"})[0] == 200
        assert board.prompts["a"] == ("dog",) and board.prompts["b"] == ("car",)


def test_token_is_required_on_every_request():
    board = LiveBoard(LivePrompts({"cam": ("dog",)}), lambda: [])
    with WebServer(board, "127.0.0.1", 0, token="s3cret") as server:
        for path in ("/", "/api/state", "/api/snapshot/cam.jpg", "/api/stream/cam.mjpg"):
            assert request(server, "GET", path)[0] == 401, path
        assert request(server, "GET", "/api/state?token=wrong")[0] == 401
        assert request(server, "GET", "/api/state?token=s3cret")[0] == 200
        assert request(server, "GET", "/api/state", headers={"Authorization": "Bearer s3cret"})[0] == 200
        status, _ = post_prompt(server, {"prompt": "car"})
        assert status == 401 and board.prompts["cam"] == ("dog",)


@pytest.mark.parametrize("path", ["/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/page.html", "/static/page.html",
                                  "/api/snapshot/..%2F..%2Fetc%2Fpasswd.jpg", "/api/state/../../pyproject.toml"])
def test_no_file_of_the_machine_is_reachable(served, path):
    status, _, body = request(served[1], "GET", path)
    assert status in (404, 400) and b"root:" not in body and b"[project]" not in body


def test_a_taken_port_is_one_line():
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    board = LiveBoard(LivePrompts({"cam": ("dog",)}), lambda: [])
    with pytest.raises(ServeError, match=r"cannot serve the live view at 127\.0\.0\.1:\d+: .+") as caught:
        WebServer(board, "127.0.0.1", taken.getsockname()[1]).start()
    assert "\n" not in str(caught.value)
    taken.close()


@pytest.mark.parametrize("text, address", [("8080", ("127.0.0.1", 8080)), ("0.0.0.0:9000", ("0.0.0.0", 9000)),
                                           ("[::1]:8081", ("::1", 8081)), ("localhost:0", ("localhost", 0))])
def test_parse_address(text, address):
    assert parse_address(text) == address


@pytest.mark.parametrize("args, words", [
    (["--serve", "0.0.0.0:8080"], "--token"),
    (["--serve", "192.168.1.5:8080"], "--token"),
    (["--serve", "camera1"], "[HOST:]PORT"),
    (["--serve", "70000"], "[HOST:]PORT"),
    (["--token", "x"], "--token goes with --serve"),
])
def test_serve_usage_errors_exit_2(args, words, capsys):
    assert main(["watch", "camera0", "-p", "dog", "--headless", *args]) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1


def test_desktop_without_gui_serves_the_page(tmp_path, tiny_checkpoint, capsys, monkeypatch):
    from clips import ClipServer

    from streamsink.writers import Window

    monkeypatch.setattr(Window, "has_display", staticmethod(lambda: True))
    monkeypatch.setattr(Window, "has_gui", staticmethod(lambda: False))
    data = make_clip(tmp_path / "cam.mkv", frames=10).read_bytes()
    with ClipServer(data, cut_first=False) as server:
        code = main(["watch", server.url("/cam.mkv"), "-p", "dog", "-m", str(tiny_checkpoint), "--buffer", "64"])
        err = capsys.readouterr().err
        assert code == 0, err
        assert "no GUI" in err and "live view: http://127.0.0.1:" in err
        code = main(["watch", server.url("/cam.mkv"), "-p", "dog", "-m", str(tiny_checkpoint), "--headless"])
        assert code == 0 and "live view" not in capsys.readouterr().err, "--headless: neither window nor page"


def _wait(condition, timeout: float = 60.0, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out waiting")


def _pattern_frames(n: int = 50, shift: int = 0) -> list[np.ndarray]:
    return [pattern(i + shift, 160, 120) for i in range(n)]


def _garbage(server_url: str) -> None:
    """100 malformed or oversized requests of many kinds, each on its own connection."""
    host, port = server_url.split("//")[1].rstrip("/").split(":")
    kinds = [
        b"\x00\xff\x10garbage\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 100000 + b"\r\n\r\n",
        b"POST /api/prompt HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n{\"pro",
        b"POST /api/prompt HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 99999999\r\n\r\n{}",
        b"POST /api/prompt HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n[1, 2, 3] x",
        b"POST /api/prompt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\nzz\r\n",
        b"DELETE /api/state HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /api/snapshot/%ff%fe.jpg HTTP/1.1\r\nHost: x\r\n\r\n",
    ]
    for i in range(100):
        with socket.create_connection((host, int(port)), timeout=5) as connection:
            try:
                connection.sendall(kinds[i % len(kinds)])
                connection.shutdown(socket.SHUT_WR)
                while connection.recv(65536):
                    pass
            except OSError:
                pass


def test_watch_two_sources_page_api_prompt_change_and_outputs(tmp_path, tiny_checkpoint):
    jsonl_dir, video_dir = tmp_path / "jsonl", tmp_path / "video"
    with LiveStream(_pattern_frames(), 25) as one, LiveStream(_pattern_frames(shift=7), 25) as two:
        args = [one.url, two.url, "-p", "dog,cat", "-p", "bird", "-m", tiny_checkpoint, "--headless", "--serve",
                "127.0.0.1:0", "-o", video_dir, "--jsonl", jsonl_dir, "--threshold", "0.01"]
        with WatchRun(args, log=str(tmp_path / "watch.log")) as run:
            names = list(_wait(lambda: run.state()["sources"]))
            assert len(names) == 2
            _wait(lambda: all(s["frame"] is not None and s["frame"] > 5 for s in run.state()["sources"].values()))
            first = run.state()["sources"]
            assert first[names[0]]["classes"] == ["dog", "cat"] and first[names[1]]["classes"] == ["bird"]
            assert run.get(f"/api/snapshot/{names[1]}.jpg")[:2] == b"\xff\xd8"

            body = json.dumps({"prompt": "car,bus", "source": names[1]}).encode()
            import urllib.request

            asked = urllib.request.Request(run.url + "api/prompt", body, {"Content-Type": "application/json"})
            assert json.loads(urllib.request.urlopen(asked, timeout=10).read())["classes"] == ["car", "bus"]
            _wait(lambda: run.state()["sources"][names[1]]["classes"] == ["car", "bus"])

            _garbage(run.url)
            before = run.state()["sources"][names[0]]["frame"]
            _wait(lambda: run.state()["sources"][names[0]]["frame"] > before + 10)
            assert run.state()["sources"][names[0]]["status"] == "running"
        assert run.exit_code == 130, run.stderr[-2000:]

    for name in names:
        lines = (jsonl_dir / f"{name}.jsonl").read_text().splitlines()
        records = [json.loads(line) for line in lines]  # every line whole: the run stopped cleanly
        assert len(read_video_pts(video_dir / f"{name}.mp4")) == len(records)
    changed = [json.loads(line) for line in (jsonl_dir / f"{names[1]}.jsonl").read_text().splitlines()]
    marks = [i for i, r in enumerate(changed) if "prompt" in r]
    assert len(marks) == 1 and changed[marks[0]]["prompt"] == "car,bus"
    assert all(set(r["states"]) == {"bird"} for r in changed[:marks[0]])
    assert all(set(r["states"]) == {"car", "bus"} for r in changed[marks[0]:])
    assert not any("prompt" in json.loads(line) for line in (jsonl_dir / f"{names[0]}.jsonl").read_text().splitlines())


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the run's memory from /proc")
def test_a_viewer_that_never_reads_costs_the_run_nothing(tmp_path, tiny_checkpoint):
    """Over a minute with a viewer that opened the video and reads nothing: memory and latency stay flat."""
    big = [np.random.default_rng(i).integers(0, 255, (240, 320, 3), dtype=np.uint8) for i in range(25)]
    with LiveStream(big, 25) as stream:
        with WatchRun([stream.url, "-p", "dog", "-m", tiny_checkpoint, "--headless", "--serve", "127.0.0.1:0"],
                      log=str(tmp_path / "watch.log")) as run:
            name = list(_wait(lambda: run.state()["sources"]))[0]
            _wait(lambda: (run.state()["sources"][name]["frame"] or 0) > 25)
            stalled = socket.socket()
            stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            stalled.connect(("127.0.0.1", int(run.url.rsplit(":", 1)[1].strip("/"))))
            stalled.sendall(f"GET /api/stream/{name}.mjpg HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            samples = []
            started = time.monotonic()
            while time.monotonic() - started < 60:
                source = run.state()["sources"][name]
                samples.append((time.monotonic() - started, _rss_mb(run.pid), source["latency_ms"], source["frame"]))
                time.sleep(1.0)
            stalled.close()
    early = [s for s in samples if 5 <= s[0] < 20]
    late = [s for s in samples if s[0] >= 45]
    rss_growth = max(s[1] for s in late) - max(s[1] for s in early)
    latency_early = float(np.median([s[2] for s in early]))
    latency_late = float(np.median([s[2] for s in late]))
    assert rss_growth < 25, f"memory grew {rss_growth:.1f} MB in a minute with a stalled viewer"
    assert latency_late < latency_early * 1.5 + 50, f"latency {latency_early:.0f} -> {latency_late:.0f} ms"
    assert late[-1][3] > early[-1][3] + 100, "the run kept going"


def _chromium() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.skip("needs Chromium and its driver: apt-get install chromium chromium-driver")
    pytest.importorskip("selenium", reason="needs selenium (pip install selenium; streamsink[test] has it)")
    return browser, driver


def test_page_in_a_real_browser(tmp_path):
    """Chromium loads the page of a live run: the video updates, states and timeline show, a typed prompt applies."""
    import av
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    browser, driver_path = _chromium()
    with av.open(str(DEMO_CLIP)) as container:
        frames = [frame.to_ndarray(format="rgb24") for _, frame in zip(range(150), container.decode(video=0))]
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(flag)
    options.binary_location = browser
    with LiveStream(frames, 25) as stream:
        with WatchRun([stream.url, "-p", PROMPT, "-m", DEMO_MODEL, "--headless",
                       "--serve", "127.0.0.1:0"], log=str(tmp_path / "watch.log")) as run:
            page = webdriver.Chrome(service=Service(driver_path), options=options)
            try:
                page.get(run.url)
                img = _wait(lambda: page.find_elements(By.CSS_SELECTOR, ".card img"))[0]
                _wait(lambda: int(img.get_attribute("data-frames")) >= 3)
                shown = img.get_attribute("data-frame")
                # read in one call, once the browser holds a loaded image: while the next frame loads, Chromium
                # reports naturalWidth 0 for the element (checked in Chromium: 0 a microtask after src is set)
                width = _wait(lambda: page.execute_script(
                    "const img = arguments[0];"
                    "return img.complete && img.dataset.frame !== arguments[1] ? String(img.naturalWidth) : null;",
                    img, shown))
                assert width == "320", "the annotated frame is shown"

                def texts(selector: str) -> list[str]:  # in one call: the page redraws these twice a second
                    return page.execute_script(f"return [...document.querySelectorAll('{selector}')]"
                                               ".map((e) => e.textContent)")

                chips = lambda: texts(".card .state")  # noqa: E731
                _wait(lambda: len(chips()) == 5)
                assert all(text.endswith((": present", ": not here")) for text in chips())
                assert [label for label in texts(".timeline .row .label")] == PROMPT.split(",")
                _wait(lambda: texts(".timeline .stretch"), timeout=60)
                if os.environ.get("STREAMSINK_SCREENSHOT"):
                    time.sleep(40)  # some timeline to show
                    page.save_screenshot(os.environ["STREAMSINK_SCREENSHOT"])

                box = page.find_element(By.CSS_SELECTOR, ".prompt-input")
                box.clear()
                box.send_keys("circle,dog")
                page.find_element(By.CSS_SELECTOR, ".prompt-set").click()
                _wait(lambda: [text.split(":")[0] for text in chips()] == ["circle", "dog"])
                assert run.state()["sources"][list(run.state()["sources"])[0]]["classes"] == ["circle", "dog"]
            finally:
                page.quit()
        assert run.exit_code == 130, run.stderr[-2000:]
