"""Many sources, one detector: batching across sources, per-source state, failures that stay local."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from clips import ClipServer, make_clip, read_video_pts
from test_cli import run_cli

from streamsink.engine import iterate
from streamsink.api import smoothers_for
from streamsink.multiplex import FAILED, Multiplexer, prompts_per_source
from streamsink.settings import RunSettings
from streamsink.stages import RoutedDetect
from streamsink.sources import describe_source, expand_inputs, open_source, unique_names
from streamsink.types import Detections, Frame

# ---------------------------------------------------------------- naming and expansion


def test_unique_names_keep_the_first_and_never_take_a_given_name():
    assert unique_names(["clip", "clip", "clip-2", "a", "clip"]) == ["clip", "clip-3", "clip-2", "a", "clip-4"]
    assert unique_names(["a", "b"]) == ["a", "b"]


def test_describe_source_gives_the_name_open_source_gives(tmp_path):
    clip = make_clip(tmp_path / "yard cam.mp4", frames=2)
    folder = tmp_path / "shots"
    folder.mkdir()
    import cv2

    cv2.imwrite(str(folder / "a.png"), np.zeros((8, 8, 3), np.uint8))
    for spec in (str(clip), str(folder), str(folder / "*.png")):
        with open_source(spec) as source:
            assert describe_source(spec) == (source.name, False)
    assert describe_source("camera3") == ("camera3", True)
    assert describe_source(2) == ("camera2", True)
    assert describe_source("rtsp://u:p@cam.local:554/live/ch1.sdp") == ("cam.local_live_ch1", True)


def test_expand_inputs_opens_folders_and_globs_of_videos(tmp_path):
    videos = tmp_path / "archive"
    videos.mkdir()
    for name in ("c10.mp4", "c2.mkv", "c1.mp4"):
        make_clip(videos / name, frames=2)
    (videos / "notes.txt").write_text("x")
    images = tmp_path / "shots"
    images.mkdir()
    (images / "a.png").write_bytes(b"")
    expected = [str(videos / n) for n in ("c1.mp4", "c2.mkv", "c10.mp4")]
    assert expand_inputs([str(videos)]) == expected
    assert expand_inputs([str(videos / "*.mp4"), "camera0", 3]) == [expected[0], expected[2], "camera0", 3]
    assert expand_inputs([str(images)]) == [str(images)], "a folder of images is one image sequence"
    with pytest.raises(FileNotFoundError, match="no videos or images"):
        expand_inputs([str(tmp_path / "nothing*.mp4")])


def test_prompts_per_source():
    names, specs = ["a", "b"], ["x/a.mp4", "b.mp4"]
    assert prompts_per_source(names, specs, "dog, cat") == {"a": ("dog", "cat"), "b": ("dog", "cat")}
    assert prompts_per_source(names, specs, {"x/a.mp4": "dog", "b": ["car"]}) == {"a": ("dog",), "b": ("car",)}
    with pytest.raises(ValueError, match="no prompt for source 'b.mp4'"):
        prompts_per_source(names, specs, {"a": "dog"})
    with pytest.raises(ValueError, match="unknown source"):
        prompts_per_source(names, specs, {"a": "dog", "b": "cat", "c": "cow"})


# ---------------------------------------------------------------- the multiplexer


class SlowSource:
    """A fake file source: `n` frames, `delay` seconds each; can fail after `fail_after` frames."""

    is_live = False

    def __init__(self, name: str, n: int, delay: float = 0.0, fail_after: int | None = None) -> None:
        self.name, self.n, self.delay, self.fail_after = name, n, delay, fail_after
        self.closed = False
        self.dropped = self.reconnects = 0

    def __iter__(self):
        for i in range(self.n):
            if self.fail_after is not None and i == self.fail_after:
                raise OSError(f"{self.name}: decoder gave up\nsecond line")
            if self.closed:
                return
            time.sleep(self.delay)
            yield Frame(np.full((4, 4, 3), i % 256, np.uint8), i, i / 25, self.name)

    def close(self) -> None:
        self.closed = True


def _mux(sources: dict[str, SlowSource], **kwargs) -> Multiplexer:
    return Multiplexer(list(sources), opener=lambda spec: sources[spec], **kwargs)


def test_every_frame_of_every_source_once_in_order_per_source():
    sources = {f"s{i}": SlowSource(f"s{i}", 10 + i) for i in range(5)}
    mux = _mux(sources, max_open_files=2)
    seen = defaultdict(list)
    for frame in mux:
        seen[frame.source].append(frame.index)
    assert {name: indices for name, indices in seen.items()} == {f"s{i}": list(range(10 + i)) for i in range(5)}
    assert all(state.status == "done" and state.frames == 10 + i for i, state in enumerate(mux.states.values()))
    assert all(source.closed for source in sources.values())


def test_a_stalled_source_does_not_hold_up_the_others():
    sources = {"slow": SlowSource("slow", 3, delay=1.0), "fast": SlowSource("fast", 40)}
    mux = _mux(sources)
    started = time.monotonic()
    fast_done_at = None
    count = 0
    for frame in mux:
        if frame.source == "fast":
            count += 1
            if count == 40:
                fast_done_at = time.monotonic() - started
    assert fast_done_at is not None and fast_done_at < 1.0, f"fast source waited for the slow one ({fast_done_at})"


def test_a_failing_source_is_reported_and_the_others_finish():
    sources = {"bad": SlowSource("bad", 10, fail_after=4), "good": SlowSource("good", 20)}
    mux = _mux(sources)
    frames = list(mux)
    assert sum(f.source == "good" for f in frames) == 20
    assert sum(f.source == "bad" for f in frames) == 4
    state = mux.states["bad"]
    assert state.status == FAILED and state.frames == 4
    assert state.error == "bad: decoder gave up second line", "one line"


def test_a_source_that_cannot_open_is_reported(tmp_path):
    clip = make_clip(tmp_path / "ok.mp4", frames=5)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 10)
    mux = Multiplexer([str(junk), str(clip)])
    assert [f.source for f in mux] == ["ok"] * 5
    assert mux.states["junk"].status == FAILED and "not a video" in mux.states["junk"].error


def test_stopping_early_closes_every_source_and_reader():
    sources = {f"s{i}": SlowSource(f"s{i}", 1000, delay=0.001) for i in range(3)}
    mux = _mux(sources)
    for i, _ in enumerate(mux):
        if i == 10:
            break
    mux.close()
    assert all(source.closed for source in sources.values())
    time.sleep(0.05)
    assert not [t for t in threading.enumerate() if t.name.startswith("streamsink-mux")]


def test_routed_detect_splits_a_batch_by_prompt():
    calls = []

    class Recorder:
        def detect(self, images, classes, threshold):
            calls.append((len(images), classes))
            return [Detections.empty(classes) for _ in images]

    routed = RoutedDetect(Recorder(), {"a": ("dog",), "b": ("car",), "c": ("dog",)}, 0.3)
    batch = [Frame(np.zeros((4, 4, 3), np.uint8), i, 0.0, name) for i, name in enumerate("abcab")]
    results = routed(batch)
    assert sorted(calls) == [(2, ("car",)), (3, ("dog",))], "one pass per prompt; sources with one prompt share it"
    assert [r.labels for r in results] == [("dog",), ("car",), ("dog",), ("dog",), ("car",)]


def test_detect_stages_hold_each_class_to_its_own_threshold():
    class Fixed:
        def detect(self, images, classes, threshold):
            keep = np.array([0.35, 0.45, 0.55]) > threshold
            return [Detections(np.tile([0, 0, 4, 4], (3, 1))[keep], np.array([0.35, 0.45, 0.55])[keep],
                               np.array([0, 1, 1])[keep], classes) for _ in images]

    asked = []
    routed = RoutedDetect(Fixed(), {"a": ("dog", "cat")}, lambda classes: asked.append(classes) or (0.3, 0.5))
    found = routed([Frame(np.zeros((4, 4, 3), np.uint8), 0, 0.0, "a")])[0]
    assert found.scores.tolist() == pytest.approx([0.35, 0.55]), "the dog at 0.35 passes 0.3, the cat at 0.45 not 0.5"
    assert asked == [("dog", "cat")], "the floors of a prompt are asked for once"


# ---------------------------------------------------------------- with a real (tiny, random) detector


def _separately(detector, clip: Path, classes, batch_size: int) -> list:
    from streamsink.stages import make_detect
    from streamsink.smoother import TemporalSmoother

    with open_source(str(clip)) as source:
        return list(iterate(source, make_detect(detector, classes, 0.05), batch_size=batch_size,
                            smoother=TemporalSmoother(classes)))


def test_batched_sources_give_the_detections_of_separate_runs(tmp_path, tiny_checkpoint):
    from streamsink.detector import SinkDetector

    detector = SinkDetector.from_pretrained(tiny_checkpoint, sinks=4, device="cpu")
    clips = [
        make_clip(tmp_path / "a.mp4", frames=9),
        make_clip(tmp_path / "b.mp4", frames=7, width=128, height=96),
        make_clip(tmp_path / "c.mkv", frames=8),
    ]
    prompts = {"a": ("dog", "tractor"), "b": ("dog", "tractor"), "c": ("cat",)}
    mux = Multiplexer([str(c) for c in clips])
    smoothers = smoothers_for(prompts, RunSettings())
    together = defaultdict(list)
    batch_sources = []

    class Spy(RoutedDetect):
        def prepare(self, batch):
            batch_sources.append({f.source for f in batch})
            return super().prepare(batch)

    for result in iterate(mux, Spy(detector, prompts, 0.05), batch_size=4, smoother_for=lambda f, raw: smoothers[f.source]):
        together[result.frame.source].append(result)
    assert any(len(sources) > 1 for sources in batch_sources), "frames of several sources shared a batch"
    found = 0
    for clip in clips:
        name = clip.stem
        alone = _separately(detector, clip, prompts[name], batch_size=3)
        mixed = together[name]
        assert [r.index for r in mixed] == [r.index for r in alone] == list(range(len(alone)))
        for ours, theirs in zip(mixed, alone):
            assert ours.raw.labels == theirs.raw.labels == prompts[name]
            for a, b in ((ours.raw, theirs.raw), (ours.detections, theirs.detections)):
                np.testing.assert_array_equal(a.class_id, b.class_id)
                np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)
                np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)
            assert ours.states == theirs.states
            found += len(ours.raw)
    assert found > 0, "the comparison saw boxes"


def test_run_takes_several_sources(tmp_path, tiny_checkpoint):
    import streamsink

    folder = tmp_path / "videos"
    folder.mkdir()
    make_clip(folder / "a.mp4", frames=5)
    make_clip(folder / "b.mp4", frames=6)
    counts = defaultdict(int)
    for result in streamsink.run(str(folder), "dog", model=str(tiny_checkpoint), sinks=2):
        counts[result.frame.source] += 1
        assert set(result.states) == {"dog"}
    assert dict(counts) == {"a": 5, "b": 6}
    got = {r.frame.source: r.detections.labels for r in streamsink.run(
        [str(folder / "a.mp4"), str(folder / "b.mp4")], {"a": "dog", "b": "cat,cow"}, model=str(tiny_checkpoint), sinks=0)}
    assert got == {"a": ("dog",), "b": ("cat", "cow")}
    alone = {r.frame.source: r.detections.labels for r in streamsink.run(
        str(folder / "a.mp4"), {str(folder / "a.mp4"): "cow"}, model=str(tiny_checkpoint), sinks=0)}
    assert alone == {"a": ("cow",)}, "a mapping with one source is that source's prompt"
    by_folder = {r.frame.source: r.detections.labels for r in streamsink.run(
        [str(folder)], {str(folder): "cat"}, model=str(tiny_checkpoint), sinks=0)}
    assert by_folder == {"a": ("cat",), "b": ("cat",)}, "a folder's prompt goes to every video in it"


# ---------------------------------------------------------------- the command line


def test_process_several_files_writes_one_video_and_jsonl_each(tmp_path, tiny_checkpoint, capsys):
    folder = tmp_path / "archive"
    folder.mkdir()
    make_clip(folder / "yard.mp4", frames=6)
    make_clip(folder / "gate.mkv", frames=4, width=128, height=96)
    other = tmp_path / "elsewhere"
    other.mkdir()
    make_clip(other / "yard.mp4", frames=3)
    (folder / "broken.mp4").write_bytes(b"\x00" * 500)
    out = tmp_path / "out"
    code, _, err = run_cli(["process", folder, other / "yard.mp4", "-p", "dog", "-m", tiny_checkpoint, "-o", out], capsys)
    assert code == 2, "a failed source makes the exit code 2"
    assert "1 of 4 sources failed: broken" in err
    assert sorted(p.name for p in out.iterdir()) == [
        "gate.jsonl", "gate.mp4", "yard-2.jsonl", "yard-2.mp4", "yard.jsonl", "yard.mp4"]
    for name, frames in (("yard", 6), ("gate", 4), ("yard-2", 3)):
        records = [json.loads(line) for line in (out / f"{name}.jsonl").read_text().splitlines()]
        assert [r["frame"] for r in records] == list(range(frames))
        assert {r["source"] for r in records} == {name}
        assert len(read_video_pts(out / f"{name}.mp4")) == frames


def test_process_several_files_with_a_prompt_each_and_jsonl_on_stdout(tmp_path, tiny_checkpoint, capsys):
    a, b = make_clip(tmp_path / "a.mp4", frames=3), make_clip(tmp_path / "b.mp4", frames=2)
    code, out, err = run_cli(["process", a, b, "-p", "dog", "-p", "cat,cow", "-m", tiny_checkpoint,
                              "-o", tmp_path / "o", "--jsonl", "-"], capsys)
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert sorted((r["source"], r["frame"]) for r in records) == [("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1)]
    assert all(set(r["states"]) == ({"dog"} if r["source"] == "a" else {"cat", "cow"}) for r in records)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["-p", "dog", "-p", "cat", "-p", "cow"], "once per source: got 3 for 2"),
        (["-p", "dog", "-o", "{tmp}/all.mp4"], "-o names a folder"),
        (["-p", "dog", "--jsonl", "{tmp}/all.jsonl"], "--jsonl is - (stdout) or a folder"),
    ],
)
def test_several_sources_usage_errors(tmp_path, extra, message, capsys):
    a, b = make_clip(tmp_path / "a.mp4", frames=2), make_clip(tmp_path / "b.mp4", frames=2)
    args = ["process", a, b, "-m", tmp_path / "never-loaded", *[e.replace("{tmp}", str(tmp_path)) for e in extra]]
    code, _, err = run_cli(args, capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_watch_several_streams_one_dies_the_other_goes_on(tmp_path, tiny_checkpoint, capsys, monkeypatch):
    import streamsink.sources.live as sources

    monkeypatch.setattr(sources, "RECONNECT_DELAY", 0.05)
    healthy = make_clip(tmp_path / "healthy.mkv", frames=30).read_bytes()
    dying = make_clip(tmp_path / "dying.ts", frames=30, width=64, height=48).read_bytes()
    with ClipServer(healthy, cut_first=False) as good, ClipServer(dying) as bad:
        bad_url = bad.url("/yard/dying.ts")

        def take_down_after_first_request() -> None:
            while bad.requests < 1:
                time.sleep(0.01)
            bad.httpd.shutdown()
            bad.httpd.server_close()

        threading.Thread(target=take_down_after_first_request, daemon=True).start()
        code, _, err = run_cli(
            ["watch", good.url("/healthy.mkv"), bad_url, "-p", "dog", "-m", tiny_checkpoint, "--headless",
             "--buffer", "64", "--retries", "2", "--jsonl", tmp_path / "j"],
            capsys,
        )
    assert code == 2, err
    healthy_lines = (tmp_path / "j" / "127.0.0.1_healthy.jsonl").read_text().splitlines()
    assert [json.loads(line)["frame"] for line in healthy_lines] == list(range(30)), "the healthy stream lost nothing"
    assert "1 of 2 sources failed: 127.0.0.1_yard_dying" in err
    assert "127.0.0.1_yard_dying" in err and "failed after" in err


def test_a_stream_that_reconnects_reports_it(tmp_path, tiny_checkpoint, monkeypatch):
    import streamsink.sources.live as sources

    monkeypatch.setattr(sources, "RECONNECT_DELAY", 0.05)
    data = make_clip(tmp_path / "live.ts", frames=30, width=64, height=48).read_bytes()
    clip = make_clip(tmp_path / "file.mp4", frames=10)
    with ClipServer(data) as server:
        mux = Multiplexer([server.url("/cam/live.ts"), str(clip)], retries=3, timeout=2)
        seen = defaultdict(int)
        for frame in mux:
            seen[frame.source] += 1
            if mux.states["127.0.0.1_cam_live"].reconnects >= 1 and seen["file"] == 10:
                break
        mux.close()
    assert seen["file"] == 10
    assert mux.states["127.0.0.1_cam_live"].reconnects >= 1


def test_ctrl_c_over_several_files_leaves_every_output_playable_and_complete(tmp_path, tiny_checkpoint):
    import os
    import signal
    import subprocess
    import sys

    import av

    clips = [make_clip(tmp_path / f"cam{i}.mp4", frames=300, width=320, height=240) for i in range(2)]
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "streamsink", "process", *map(str, clips), "-p", "dog", "-m", str(tiny_checkpoint),
         "-o", str(out), "--batch-size", "1"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=dict(os.environ, PYTHONUNBUFFERED="1"), text=True,
    )
    deadline = time.monotonic() + 120
    jsonls = [out / "cam0.jsonl", out / "cam1.jsonl"]
    while time.monotonic() < deadline and process.poll() is None:
        if all(p.exists() and len(p.read_text().splitlines()) >= 3 for p in jsonls):
            break
        time.sleep(0.05)
    assert process.poll() is None, "finished before it could be interrupted"
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    for jsonl in jsonls:
        records = [json.loads(line) for line in jsonl.read_text().splitlines()]
        assert 3 <= len(records) < 300
        assert [r["frame"] for r in records] == list(range(len(records)))
        with av.open(str(jsonl.with_suffix(".mp4"))) as container:
            assert sum(1 for _ in container.decode(video=0)) == len(records)
    assert "Traceback" not in err


def test_one_input_with_o_naming_a_folder_writes_name_mp4_in_it(tmp_path, tiny_checkpoint, capsys):
    clip = make_clip(tmp_path / "yard.mp4", frames=3)
    folder = tmp_path / "outdir"
    folder.mkdir()
    code, _, err = run_cli(["process", clip, "-p", "dog", "-m", tiny_checkpoint, "-o", folder], capsys)
    assert code == 0, err
    assert sorted(p.name for p in folder.iterdir()) == ["yard.jsonl", "yard.mp4"]
    assert len(read_video_pts(folder / "yard.mp4")) == 3


def test_headless_status_shows_sources_without_frames_and_quits_without_them():
    import io

    from rich.console import Console

    from streamsink.cli.console import LiveStatus
    from streamsink.multiplex import SourceState

    states = [SourceState("gate", "rtsp://gate/s", True), SourceState("yard", "rtsp://yard/s", True, status=FAILED,
                                                                       error="yard: connection refused")]
    quits = []
    out = io.StringIO()
    with LiveStatus(Console(file=out, force_terminal=False, width=100), states=lambda: states,
                    on_quit=lambda: quits.append(True)) as status:
        time.sleep(0.8)
        status.quit_requested = True
        time.sleep(0.8)
    text = out.getvalue()
    assert "gate  connecting" in text and "yard  failed: yard: connection refused" in text
    assert quits == [True], "a quit with no frames arriving still ends the run, once"


def test_a_prompt_changed_mid_run_applies_from_the_next_batch_encoded_once(tmp_path, tiny_checkpoint):
    """LivePrompts (what the web page changes): later frames use the new classes, the text side is encoded
    once for them, and the source's smoother starts afresh; the other source is untouched."""
    from streamsink.api import detect_sources
    from streamsink.detector import SinkDetector
    from streamsink.stages import LivePrompts

    class CountedPrompts(LivePrompts):
        """Counts each source's lookups (one per frame, when its batch is prepared), atomically with changes."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.asked = defaultdict(int)

        def __getitem__(self, name):
            with self._lock:
                self.asked[name] += 1
                return super().__getitem__(name)

    detector = SinkDetector.from_pretrained(tiny_checkpoint, sinks=4, device="cpu")
    clips = [make_clip(tmp_path / "a.mp4", frames=30), make_clip(tmp_path / "b.mp4", frames=30)]
    prompts = CountedPrompts({"a": ("dog",), "b": ("cat",)}, check=detector.layout)
    mux = Multiplexer([str(c) for c in clips])
    settings = RunSettings(model=str(tiny_checkpoint), batch_size=2, threshold=0.05)
    seen = defaultdict(list)
    encodings = None
    for result in detect_sources(mux, prompts, settings, detector=detector):
        seen[result.frame.source].append(result)
        if result.frame.source == "a" and result.index == 5:
            encodings = detector.text_encodings
            prepared_before = prompts.asked["a"]
            assert prompts.change("a", "car, bus") == ("car", "bus")
            prepared_after = prompts.asked["a"]
    labels = [r.detections.labels for r in seen["a"]]
    switch = labels.index(("car", "bus"))
    # How far the stages ran ahead of the caller depends on the machine; what is fixed is that the frames
    # prepared before the change keep the old prompt and every frame prepared after it takes the new one.
    assert 5 < switch and prepared_before <= switch <= prepared_after, (
        "frames already in flight keep the old prompt; the next batches take the new")
    assert labels[:switch] == [("dog",)] * switch and labels[switch:] == [("car", "bus")] * (30 - switch)
    assert all(set(r.states) == {"car", "bus"} for r in seen["a"][switch:])
    assert detector.text_encodings == encodings + 1, "the new prompt is encoded once, not per frame"
    assert [r.detections.labels for r in seen["b"]] == [("cat",)] * 30
    with pytest.raises(Exception, match="names no class"):
        prompts.change("a", " , ")
    with pytest.raises(KeyError):
        prompts.change("nope", "dog")
