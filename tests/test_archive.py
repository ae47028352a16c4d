"""Footage archives on Ray: corrupt files, killed replicas, reruns, and usage errors before Ray starts."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

ray = pytest.importorskip("ray")

from clips import make_clip  # noqa: E402
from streamsink import archive  # noqa: E402
from streamsink.archive import cluster  # noqa: E402
from streamsink.archive import ArchiveReport, RayNotInstalledError, process_archive  # noqa: E402
from streamsink.errors import PromptError, SourceError, SourceNotFoundError, WriterError  # noqa: E402

PROMPT = "dog,tractor"
# Low enough that the random tiny model's boxes come through, so records and presence carry content.
THRESHOLD = 0.05
GOOD = {"alpha": 10, "beta": 14, "gamma": 7, "delta": 9}


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray instance for the module; process_archive uses it and leaves it running."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield
    ray.shutdown()


def decoded_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(container.streams.video[0]))


def jsonl_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def assert_complete(out: Path, name: str, source: Path) -> None:
    """Both outputs exist, the video has every input frame and the JSONL one line per frame, in order, once."""
    frames = decoded_frames(source)
    records = jsonl_records(out / f"{name}.jsonl")
    assert decoded_frames(out / f"{name}.mp4") == frames
    assert [r["frame"] for r in records] == list(range(frames))


def partial_files(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.startswith(".") and ".part" in p.name)


@pytest.fixture(scope="module")
def archive_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("archive")
    for name, frames in GOOD.items():
        make_clip(folder / f"{name}.mp4", frames=frames, audio=name == "beta")
    (folder / "bad.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return folder


@pytest.fixture(scope="module")
def first_run(ray_local, archive_dir, tiny_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    calls: list[tuple[int, int, int]] = []
    report = process_archive([archive_dir], out, prompt=PROMPT, model=str(tiny_checkpoint), threshold=THRESHOLD,
                             workers=2, progress=lambda *args: calls.append(args))
    return out, report, calls


def test_corrupt_file_fails_after_retry_and_the_others_complete(first_run, archive_dir):
    out, report, calls = first_run
    by_name = {f.name: f for f in report.files}
    assert sorted(by_name) == sorted([*GOOD, "bad"])
    bad = by_name["bad"]
    assert bad.status == "failed"
    assert bad.attempts == 2
    assert "bad.mp4" in bad.error and "\n" not in bad.error
    assert not (out / "bad.mp4").exists() and not (out / "bad.jsonl").exists()
    for name, frames in GOOD.items():
        result = by_name[name]
        assert result.status == "done", result.error
        assert result.frames == frames
        assert set(result.presence) == {"dog", "tractor"}
        assert_complete(out, name, archive_dir / f"{name}.mp4")
    assert partial_files(out) == []
    summary = json.loads((out / "summary.json").read_text())
    assert summary == report.to_json()
    assert summary["totals"]["done"] == len(GOOD) and summary["totals"]["failed"] == 1
    assert summary["totals"]["frames"] == sum(GOOD.values())
    # One call for the (no) skipped files, then one per file as it finishes; frames only grow.
    assert calls[0] == (0, 5, 0)
    assert [c[0] for c in calls] == list(range(6))
    assert calls[-1] == (5, 5, sum(GOOD.values()))
    assert all(a[2] <= b[2] for a, b in zip(calls, calls[1:]))


def test_outputs_and_presence_match_streamsink_process(first_run, archive_dir, tiny_checkpoint, tmp_path, capsys):
    from streamsink.cli import main

    out, report, _ = first_run
    name = "beta"  # the clip with audio
    reference = tmp_path / f"{name}.mp4"
    code = main(["process", str(archive_dir / f"{name}.mp4"), "--prompt", PROMPT, "--model", str(tiny_checkpoint),
                 "--threshold", str(THRESHOLD), "--threads", "1", "-o", str(reference)])
    assert code == 0, capsys.readouterr().err
    ours = jsonl_records(out / f"{name}.jsonl")
    assert ours == jsonl_records(reference.with_suffix(".jsonl"))
    with av.open(str(out / f"{name}.mp4")) as a, av.open(str(reference)) as b:
        assert [s.type for s in a.streams] == [s.type for s in b.streams] == ["video", "audio"]
    # Presence: each frame lasts until the next one (the last one the mean step), summed while "present".
    (result,) = [f for f in report.files if f.name == name]
    pts = [r["pts"] for r in ours]
    lasts = np.diff(pts + [pts[-1] + (pts[-1] - pts[0]) / (len(pts) - 1)])
    for label in ("dog", "tractor"):
        expected = sum(d for r, d in zip(ours, lasts) if r["states"][label] == "present")
        assert result.presence[label] == pytest.approx(expected, abs=1e-5)


# Irregular steps (ms): presence by frame count x mean step and by timestamps disagree here.
VFR_PTS = [0, 40, 80, 200, 210, 300, 400, 401, 450, 600, 640, 900]


def _by_timestamps(pts: list[float], present: list[bool]) -> float:
    lasts = np.diff(pts + [pts[-1] + (pts[-1] - pts[0]) / (len(pts) - 1)])
    return float(sum(d for d, p in zip(lasts, present) if p))


def _by_frame_count(pts: list[float], present: list[bool]) -> float:
    """What `process` printed before presence had one accounting: present frames x mean step."""
    return sum(present) * (pts[-1] - pts[0]) / (len(pts) - 1)


def test_process_and_process_ray_give_the_same_presence_on_variable_frame_rate(ray_local, tiny_checkpoint, tmp_path,
                                                                                capsys):
    import re
    from fractions import Fraction

    import streamsink
    from streamsink.cli import main

    clip = make_clip(tmp_path / "vfr.mkv", frames=len(VFR_PTS), pts=VFR_PTS, time_base=Fraction(1, 1000))
    pts = [p / 1000 for p in VFR_PTS]
    # The random model's best "dog" score per frame; a threshold between two of them makes dog present in some frames.
    best = [float(r.raw.scores.max(initial=0.0)) for r in
            streamsink.run(str(clip), "dog", model=str(tiny_checkpoint), smooth=False, threshold=0.0, threads=1)]
    levels = sorted(set(best))
    candidates = []
    for low, high in zip(levels, levels[1:]):
        threshold = (low + high) / 2
        present = [b > threshold for b in best]
        new, old = _by_timestamps(pts, present), _by_frame_count(pts, present)
        if high - low > 1e-3 and round(new, 1) != round(old, 1):
            candidates.append((abs(new - old), threshold, new, old))
    assert candidates, f"no threshold separates the two accountings for scores {best}"
    _, threshold, expected, old = max(candidates)
    flags = ["-p", "dog", "-m", str(tiny_checkpoint), "--no-smooth", "--threshold", f"{threshold:.6f}", "--threads", "1"]

    assert main(["process", str(clip), *flags, "-o", str(tmp_path / "one" / "vfr.mp4")]) == 0
    err = capsys.readouterr().err
    printed = float(re.search(r"dog: present in \d+ frames \(~([\d.]+) s\)", err).group(1))
    assert main(["process", "--ray", "-o", str(tmp_path / "ray"), str(clip), *flags, "--workers", "1"]) == 0, \
        capsys.readouterr().err
    (entry,) = json.loads((tmp_path / "ray" / "summary.json").read_text())["files"]

    records = jsonl_records(tmp_path / "one" / "vfr.jsonl")
    assert records == jsonl_records(tmp_path / "ray" / "vfr.jsonl")
    assert entry["presence"]["dog"] == pytest.approx(expected, abs=1e-5)
    assert printed == round(entry["presence"]["dog"], 1), "process and process --ray report the same seconds"
    assert printed != round(old, 1), "the frame-count rule would have printed another figure"


def test_rerun_skips_complete_outputs_and_redoes_incomplete_ones(first_run, archive_dir, tiny_checkpoint):
    out, before, _ = first_run
    first = {f.name: f for f in before.files}
    untouched = {name: (out / f"{name}.mp4").stat().st_mtime_ns for name in GOOD}
    (out / "gamma.jsonl").unlink()  # as if the run died between the two renames
    stale = out / ".alpha.0123456789ab.part.mp4"  # left by a run killed outright
    stale.write_bytes(b"half a video")
    good = [archive_dir / f"{name}.mp4" for name in GOOD]
    submitted: list[str] = []
    report = process_archive(good, out, prompt=PROMPT, model=str(tiny_checkpoint), threshold=THRESHOLD,
                             workers=1, on_submit=lambda name, actor: submitted.append(name))
    by_name = {f.name: f for f in report.files}
    assert submitted == ["gamma"]
    assert by_name["gamma"].status == "done"
    assert_complete(out, "gamma", archive_dir / "gamma.mp4")
    for name in ("alpha", "beta", "delta"):
        assert by_name[name].status == "skipped"
        assert (out / f"{name}.mp4").stat().st_mtime_ns == untouched[name]
        assert (by_name[name].frames, by_name[name].presence) == (first[name].frames, first[name].presence)
    assert not stale.exists()
    assert report.frames == GOOD["gamma"]

    # Everything complete: no replica is started at all.
    again = process_archive(good, out, prompt=PROMPT, model=str(tiny_checkpoint), threshold=THRESHOLD,
                            on_submit=lambda name, actor: submitted.append(name))
    assert [f.status for f in again.files] == ["skipped"] * len(GOOD)
    assert (again.workers, submitted) == (0, ["gamma"])
    assert json.loads((out / "summary.json").read_text())["totals"]["skipped"] == len(GOOD)


def test_killed_replica_has_its_files_redone(ray_local, tiny_checkpoint, tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    lengths = {"one": 12, "two": 16, "three": 12, "four": 10}
    for name, frames in lengths.items():
        make_clip(clips / f"{name}.mp4", frames=frames)
    out = tmp_path / "out"
    victim = "two"
    killed = threading.Event()
    seen_mid_run: list[int] = []

    def kill_when_started(name: str, actor) -> None:
        if name != victim or killed.is_set():
            return

        def watch() -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                for partial in out.glob(f".{victim}.*.part.jsonl"):
                    lines = partial.read_text().count("\n")
                    if lines >= 2:
                        seen_mid_run.append(lines)
                        ray.kill(actor, no_restart=True)
                        killed.set()
                        return
                time.sleep(0.02)

        threading.Thread(target=watch, daemon=True).start()

    report = process_archive([clips], out, prompt=PROMPT, model=str(tiny_checkpoint), threshold=THRESHOLD,
                             workers=2, on_submit=kill_when_started, _frame_delay=0.1)
    assert killed.is_set(), "the replica was never killed mid-file"
    assert seen_mid_run and seen_mid_run[0] < lengths[victim]
    assert report.replacements >= 1
    assert sorted(f.name for f in report.files) == sorted(lengths)
    for result in report.files:
        assert result.status == "done", result.error
        assert result.attempts == 1  # a dead replica is not the file's failure
        assert result.frames == lengths[result.name]
        assert_complete(out, result.name, clips / f"{result.name}.mp4")
    assert partial_files(out) == []


@pytest.fixture()
def no_ray_start(monkeypatch):
    """Reaching Ray at all is the failure these cases look for."""

    class RayReached(Exception):
        pass

    def refuse(*args, **kwargs):
        raise RayReached("Ray was started before the bad setting was noticed")

    monkeypatch.setattr(cluster, "connect", refuse)
    monkeypatch.setattr(ray, "init", refuse)


BAD_SETTINGS = {
    "threshold out of range": ({"threshold": 1.5}, ValueError, "threshold must be in [0, 1]"),
    "batch size zero": ({"batch_size": 0}, ValueError, "batch size must be >= 1"),
    "empty prompt": ({"prompt": " , ,"}, PromptError, "prompt names no class"),
    "negative sinks": ({"sinks": -1}, ValueError, "sinks must be"),
    "unknown sink init": ({"sink_init": "zeros"}, ValueError, "sink_init must be one of"),
    "unknown device": ({"device": "tpu"}, ValueError, "device must be"),
    "zero workers": ({"workers": 0}, ValueError, "workers must be"),
    "negative threads": ({"threads": -1}, ValueError, "threads must be"),
    "no inputs": ({"inputs": []}, ValueError, "no inputs"),
    "missing file": ({"inputs": ["{tmp}/nope.mp4"]}, SourceNotFoundError, "nope.mp4"),
    "folder without videos": ({"inputs": ["{tmp}/empty"]}, SourceNotFoundError, "no videos or images"),
    "image folder": ({"inputs": ["{tmp}/stills"]}, SourceError, "holds images, not videos"),
    "stream": ({"inputs": ["rtsp://camera.local/live"]}, SourceError, "camera or stream"),
    "output folder is a file": ({"outdir": "{tmp}/stills/a.png"}, WriterError, "is a file"),
    "output over the input": ({"outdir": "{tmp}/videos"}, WriterError, "would overwrite input"),
}


@pytest.mark.parametrize("case", list(BAD_SETTINGS), ids=list(BAD_SETTINGS))
def test_bad_settings_fail_before_ray_starts(case, tmp_path, tiny_checkpoint, no_ray_start):
    overrides, error, needle = BAD_SETTINGS[case]
    (tmp_path / "empty").mkdir()
    (tmp_path / "stills").mkdir()
    (tmp_path / "stills" / "a.png").write_bytes(b"")
    (tmp_path / "videos").mkdir()
    make_clip(tmp_path / "videos" / "clip.mp4", frames=2)
    settings = {"inputs": [str(tmp_path / "videos")], "outdir": str(tmp_path / "out"), "prompt": PROMPT,
                "model": str(tiny_checkpoint)}
    settings.update(overrides)
    fill = {"tmp": str(tmp_path)}
    settings["inputs"] = [s.format(**fill) for s in settings["inputs"]]
    settings["outdir"] = settings["outdir"].format(**fill)
    inputs, outdir = settings.pop("inputs"), settings.pop("outdir")
    with pytest.raises(error) as raised:
        process_archive(inputs, outdir, **settings)
    assert needle in str(raised.value)
    assert "\n" not in str(raised.value)


def test_good_settings_do_reach_ray(tmp_path, tiny_checkpoint, no_ray_start):
    """The guard above can fail: with nothing wrong, the run gets as far as Ray."""
    make_clip(tmp_path / "clip.mp4", frames=2)
    with pytest.raises(Exception, match="Ray was started"):
        process_archive([tmp_path / "clip.mp4"], tmp_path / "out", prompt=PROMPT, model=str(tiny_checkpoint))


def test_missing_ray_is_one_line_naming_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(RayNotInstalledError, match=r"pip install 'streamsink\[ray\]'") as raised:
        process_archive([tmp_path], tmp_path / "out", prompt=PROMPT, model="unused")
    assert isinstance(raised.value, ImportError) and "\n" not in str(raised.value)


def test_report_totals_count_complete_files_only():
    files = (
        archive.FileResult("a", "a.mp4", "done", frames=10, presence={"dog": 0.4, "cat": 0.0}),
        archive.FileResult("b", "b.mp4", "skipped", frames=5, presence={"dog": 0.2, "cat": 0.1}),
        archive.FileResult("c", "c.mp4", "failed", error="not a video"),
    )
    report = ArchiveReport(files, "out", ("dog", "cat"), elapsed=2.0)
    assert report.frames == 10 and report.fps == 5.0
    assert report.presence == {"dog": pytest.approx(0.6), "cat": pytest.approx(0.1)}
    totals = report.to_json()["totals"]
    assert (totals["done"], totals["skipped"], totals["failed"], totals["files"]) == (1, 1, 1, 3)


class FakeCluster:
    """The two calls `_plan` makes, answered for a cluster of `nodes` (CPU, GPU) pairs."""

    def __init__(self, *nodes: tuple[float, float]) -> None:
        self._nodes = nodes

    def cluster_resources(self) -> dict[str, float]:
        return {"CPU": sum(c for c, _ in self._nodes), "GPU": sum(g for _, g in self._nodes)}

    def nodes(self) -> list[dict]:
        return [{"Alive": True, "Resources": {"CPU": c, "GPU": g}} for c, g in self._nodes]


PLANS = {
    # case: (nodes, device, workers, files) -> (replicas, actor options, CPUs per replica)
    "one replica per CPU": (((2, 0),), "auto", None, 10, (2, {"num_cpus": 1.0, "_device": "cpu"}, 1.0)),
    "no more replicas than files": (((8, 0),), "auto", None, 3, (3, {"num_cpus": 2.0, "_device": "cpu"}, 2.0)),
    "fewer workers get more cores": (((4, 0),), "cpu", 2, 10, (2, {"num_cpus": 2.0, "_device": "cpu"}, 2.0)),
    "cores capped at one node's": (((4, 0), (4, 0)), "auto", 1, 10, (1, {"num_cpus": 4.0, "_device": "cpu"}, 4.0)),
    "more workers than cores": (((2, 0),), "auto", 3, 10, (3, {"num_cpus": 0.6666, "_device": "cpu"}, 0.6666)),
    "one replica per GPU": (((16, 2),), "auto", None, 10,
                            (2, {"num_gpus": 1.0, "num_cpus": 1.0, "_device": "cuda"}, 1.0)),
    "GPUs shared by more workers": (((16, 1),), "cuda", 4, 10,
                                    (4, {"num_gpus": 0.25, "num_cpus": 1.0, "_device": "cuda"}, 1.0)),
    "cpu asked for on a GPU cluster": (((4, 2),), "cpu", None, 10, (4, {"num_cpus": 1.0, "_device": "cpu"}, 1.0)),
}


@pytest.mark.parametrize("case", list(PLANS), ids=list(PLANS))
def test_replicas_follow_the_cluster(case):
    nodes, device, workers, files, expected = PLANS[case]
    assert cluster.plan(FakeCluster(*nodes), device, workers, files) == expected


def test_cuda_on_a_cluster_without_gpus_is_refused():
    with pytest.raises(ValueError, match="no GPU"):
        cluster.plan(FakeCluster((4, 0)), "cuda", None, 10)


def test_cli_process_ray_writes_every_file_and_reports_the_corrupt_one(ray_local, archive_dir, tiny_checkpoint,
                                                                        tmp_path, capsys):
    from test_cli import run_cli

    out = tmp_path / "cli"
    # `--ray DIR`: the folder is taken as an input, not as a cluster address.
    code, _, err = run_cli(["process", "--ray", archive_dir, "-p", PROMPT, "-m", tiny_checkpoint, "-o", out,
                            "--workers", "1", "--threshold", str(THRESHOLD)], capsys)
    assert code == 2, err
    assert "1 of 5 files failed: bad" in err and "4 files annotated" in err
    for name in GOOD:
        assert_complete(out, name, archive_dir / f"{name}.mp4")
    assert json.loads((out / "summary.json").read_text())["totals"]["done"] == 4


def test_rerun_redoes_outputs_made_from_another_file_or_other_settings(ray_local, tiny_checkpoint, tmp_path):
    day1, day2 = tmp_path / "day1", tmp_path / "day2"
    day1.mkdir()
    day2.mkdir()
    make_clip(day1 / "cam.mp4", frames=5)
    make_clip(day2 / "cam.mp4", frames=8)
    out = tmp_path / "out"
    first = process_archive([day1], out, prompt=PROMPT, model=str(tiny_checkpoint), workers=1)
    assert [f.status for f in first.files] == ["done"]
    again = process_archive([day1], out, prompt=PROMPT, model=str(tiny_checkpoint), workers=1)
    assert [f.status for f in again.files] == ["skipped"]
    other_day = process_archive([day2], out, prompt=PROMPT, model=str(tiny_checkpoint), workers=1)
    assert [(f.status, f.frames) for f in other_day.files] == [("done", 8)], "day1's outputs do not stand for day2's file"
    assert_complete(out, "cam", day2 / "cam.mp4")
    other_threshold = process_archive([day2], out, prompt=PROMPT, model=str(tiny_checkpoint), workers=1, threshold=0.5)
    assert [f.status for f in other_threshold.files] == ["done"]


def test_fingerprint_takes_every_setting_that_changes_outputs(tmp_path):
    """A RunSettings field joins the fingerprint when set, with no edit in the archive; speed-only ones never do."""
    from streamsink import RunSettings
    from streamsink.archive import ReplicaSettings
    from streamsink.archive.outputs import fingerprint

    clip = make_clip(tmp_path / "clip.mp4", frames=2)
    plain = fingerprint(str(clip), ReplicaSettings(RunSettings(model="m"), ("dog",)))
    assert set(plain) == {"input", "size", "mtime_ns", "classes", "raw", "model", "sinks", "sink_init", "threshold",
                          "smooth"}, "outputs made before other fields existed still match"
    smoothed = fingerprint(str(clip), ReplicaSettings(RunSettings(model="m", smoother_options={"present_after": 2}), ("dog",)))
    assert smoothed == {**plain, "smoother_options": {"present_after": 2}}
    faster = RunSettings(model="m", device="cpu", dtype="fp16", batch_size=8, threads=1, compile=True)
    assert fingerprint(str(clip), ReplicaSettings(faster, ("dog",))) == plain


class FakeRay(FakeCluster):
    """The Ray calls the scheduler makes, answered in this process: replicas are scripted, tasks finish at once."""

    class exceptions:  # noqa: N801  (the shape of ray.exceptions)
        class RayError(Exception):
            pass

        class RayActorError(RayError):
            pass

        class RayTaskError(RayError):
            def __init__(self, cause: BaseException) -> None:
                super().__init__(str(cause))
                self.cause = cause

    class Ref:
        def __init__(self, value=None, error: BaseException | None = None) -> None:
            self.value, self.error = value, error

    def __init__(self, nodes, outcome) -> None:
        super().__init__(*nodes)
        self.outcome = outcome  # (job, actor number) -> FileResult, or raises: the file's fate on that replica
        self.actors: list = []

    def remote(self, cls):
        fake = self

        class Method:
            def __init__(self, call) -> None:
                self.remote = call

        class Actor:
            def __init__(self, replica) -> None:
                self.number, self.dead = len(fake.actors), False
                fake.actors.append(self)
                self.ready = Method(lambda: fake.Ref(self.number))
                self.process = Method(self._process)

            def _process(self, job):
                if self.dead:
                    return fake.Ref(error=fake.exceptions.RayActorError("actor died"))
                try:
                    return fake.Ref(fake.outcome(job, self))
                except fake.exceptions.RayActorError as error:
                    self.dead = True
                    return fake.Ref(error=error)

        class ActorClass:
            def options(self, **options):
                return self

            def remote(self, replica):
                return Actor(replica)

        return ActorClass()

    def wait(self, refs, num_returns=1, timeout=None):
        return list(refs)[:num_returns], list(refs)[num_returns:]

    def get(self, ref):
        if isinstance(ref, list):
            return [self.get(r) for r in ref]
        if ref.error is not None:
            raise ref.error
        return ref.value

    def kill(self, actor, no_restart=True):
        actor.dead = True


def test_scheduler_retries_a_failing_file_once_and_redoes_a_dead_replicas_file_elsewhere(tmp_path):
    from streamsink import RunSettings
    from streamsink.archive import FileResult, Job, ReplicaSettings
    from streamsink.archive.scheduler import Scheduler

    tries: dict[str, list[int]] = {}

    def outcome(job, actor):
        tries.setdefault(job.name, []).append(actor.number)
        if job.name == "bad":
            return FileResult(job.name, job.input, "failed", error="not a video")
        if job.name == "crash" and len(tries["crash"]) == 1:
            raise FakeRay.exceptions.RayActorError("replica killed")
        return FileResult(job.name, job.input, "done", frames=3)

    names = ["a", "crash", "bad", "b"]
    jobs = [Job(i, name, f"{name}.mp4", str(tmp_path), "") for i, name in enumerate(names)]
    results: list = [None] * len(jobs)
    ray = FakeRay([(2, 0)], outcome)
    scheduler = Scheduler(results, None, None)
    scheduler.go(ray, jobs, ReplicaSettings(RunSettings(model="m"), ("dog",)), 2)
    by_name = {r.name: r for r in results}
    assert {n: r.status for n, r in by_name.items()} == {"a": "done", "crash": "done", "bad": "failed", "b": "done"}
    assert by_name["bad"].attempts == 2 and len(tries["bad"]) == 2, "a failing file is tried once more, then failed"
    assert len(tries["crash"]) == 2 and tries["crash"][1] != tries["crash"][0], "redone on another replica"
    assert by_name["crash"].attempts == 1, "a replica's death does not count against the file"
    assert scheduler.replacements == 1 and len(ray.actors) == 3 and all(a.dead for a in ray.actors)
