"""Every recipe in pipelines/ runs on the sample footage, through the public API only."""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from clips import read_video_pts

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "clips" / "shapes_short.mp4"
# The shipped demo model finds the sample's triangle and ring, so the recipes have events to report;
# the random tiny checkpoint at the recipes' default threshold may find nothing, and an empty list proves nothing.
DEMO_MODEL = ROOT / "samples" / "models" / "shapes-gdino"
needs_demo_model = pytest.mark.skipif(not (DEMO_MODEL / "config.json").exists(), reason=f"no demo model at {DEMO_MODEL}")


def recipe(name: str):
    spec = importlib.util.spec_from_file_location(f"pipelines_{name}", ROOT / "pipelines" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_recipes_use_only_the_public_api():
    import streamsink

    for path in (ROOT / "pipelines").glob("*.py"):
        text = path.read_text()
        for line in text.splitlines():
            stripped = line.strip()
            if stripped.startswith(("import streamsink", "from streamsink")):
                assert stripped == "import streamsink", f"{path.name}: {stripped}"
        for name in public_uses(text):
            assert name in streamsink.__all__, f"{path.name} uses streamsink.{name}, not public"


def public_uses(text: str) -> set[str]:
    """Every name used as `streamsink.<name>`, also the first part of a dotted use such as `streamsink.engine.iterate`."""
    import re

    return set(re.findall(r"(?<![\w.])streamsink\.([A-Za-z_]\w*)", text))


def test_public_use_check_sees_dotted_and_called_uses():
    assert public_uses("x = streamsink.engine.iterate(a)\nstreamsink.run(b)\nimport streamsink") == {"engine", "run"}
    assert public_uses("from my.streamsink.things import x; streamsink_x.y") == set()


@needs_demo_model
def test_footage_review(tmp_path, capsys):
    folder = tmp_path / "recordings"
    folder.mkdir()
    shutil.copy(SAMPLE, folder / "a.mp4")
    shutil.copy(SAMPLE, folder / "b.mp4")
    (folder / "notes.txt").write_text("not a video")
    out = tmp_path / "review"
    code = recipe("footage_review").main([str(folder), "--prompt", "triangle,ring,dog", "--model", str(DEMO_MODEL), "-o", str(out)])
    assert code == 0
    assert "presence.csv" in capsys.readouterr().out
    rows = list(csv.DictReader(open(out / "presence.csv")))
    for stem in ("a", "b"):
        records = [json.loads(line) for line in (out / f"{stem}.jsonl").read_text().splitlines()]
        assert len(records) == len(read_video_pts(folder / f"{stem}.mp4"))
        for label in ("triangle", "ring", "dog"):
            present = sum(r["states"][label] == "present" for r in records)
            in_csv = sum(int(row["frames"]) for row in rows if row["file"] == f"{stem}.mp4" and row["class"] == label)
            assert in_csv == present, (stem, label)
    assert rows, "the sample's shapes are found: the CSV has rows to check"
    for row in rows:
        assert float(row["start_s"]) <= float(row["end_s"])


def test_footage_review_empty_folder_is_a_clear_error(tmp_path, tiny_checkpoint, capsys):
    code = recipe("footage_review").main([str(tmp_path), "--prompt", "dog", "--model", str(tiny_checkpoint)])
    assert code == 2
    assert "no videos" in capsys.readouterr().err


class FakeResult:
    def __init__(self, index: int, states: dict[str, str], source: str = "cam") -> None:
        self.index, self.pts, self.states = index, index / 25, states
        self.frame = type("FakeFrame", (), {"source": source})()


def test_state_changes_reports_each_transition_once_per_source():
    import streamsink

    states = ["absent", "absent", "present", "present", "absent"]
    results = [FakeResult(i, {"dog": s, "cat": "absent"}) for i, s in enumerate(states)]
    events = list(streamsink.state_changes(results))
    assert [(e["class"], e["state"], e["frame"]) for e in events] == [("dog", "present", 2), ("dog", "absent", 4)]
    mixed = [FakeResult(0, {"dog": "absent"}, "a"), FakeResult(0, {"dog": "present"}, "b"),
             FakeResult(1, {"dog": "present"}, "b"), FakeResult(1, {"dog": "present"}, "a")]
    events = list(streamsink.state_changes(mixed))
    assert [(e["source"], e["state"], e["frame"]) for e in events] == [("a", "present", 1)], \
        "each source has its own baseline: b's first frame raises nothing"


@pytest.fixture()
def collector():
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/events", received
    server.shutdown()
    server.server_close()


@needs_demo_model
def test_live_alerts_prints_and_posts_the_same_events(collector, capsys):
    url, received = collector
    code = recipe("live_alerts").main([str(SAMPLE), "--prompt", "triangle,ring", "--model", str(DEMO_MODEL), "--post", url])
    assert code == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert printed == received
    assert any(e["state"] == "present" for e in printed), "a shape's arrival is an event: the lists are not empty"
    for event in printed:
        assert event["class"] in ("triangle", "ring") and event["state"] in ("present", "absent")


def test_my_own_loop(tmp_path, tiny_checkpoint):
    out = tmp_path / "mine.mp4"
    written = recipe("my_own_loop").annotate(str(SAMPLE), "triangle,ring", str(tiny_checkpoint), str(out), batch_size=4)
    assert written == len(read_video_pts(SAMPLE)) == 75
    assert read_video_pts(out) == pytest.approx(read_video_pts(SAMPLE))


@needs_demo_model
def test_camera_fleet_on_ray_collects_events_of_every_source(tmp_path):
    pytest.importorskip("ray")
    for name in ("gate", "yard"):
        shutil.copy(SAMPLE, tmp_path / f"{name}.mp4")
    listing = tmp_path / "cams.txt"
    listing.write_text(f"# two cameras (recorded here)\n{tmp_path / 'gate.mp4'}\n\n{tmp_path / 'yard.mp4'}  # again\n")
    fleet = recipe("camera_fleet_ray")
    sources = fleet.fleet_sources([str(listing)])
    assert sources == [str(tmp_path / "gate.mp4"), str(tmp_path / "yard.mp4")]
    events: list[dict] = []
    summary = fleet.run_fleet(sources, "triangle,ring", str(DEMO_MODEL), per_worker=1, on_event=events.append)
    assert {name: entry["frames"] for name, entry in summary.items()} == {"gate": 75, "yard": 75}
    import streamsink

    alone = list(streamsink.state_changes(streamsink.run([sources[0]], "triangle,ring", model=str(DEMO_MODEL))))
    assert alone, "the sample's shapes raise events"
    for name in ("gate", "yard"):
        got = [{k: v for k, v in e.items() if k not in ("source", "worker")} for e in events if e["source"] == name]
        assert got == [{k: v for k, v in e.items() if k != "source"} for e in alone], name
