"""Footage archives on Ray: many recorded files, one detector replica per GPU (or CPU slot).

One file is the unit of work. A replica (a Ray actor) loads the model once
and annotates whole files with the same engine, drawing and writers as
`streamsink process`, so `OUTDIR/<name>.mp4` and `OUTDIR/<name>.jsonl` are
exactly what `streamsink process FILE -o OUTDIR/<name>.mp4` writes. Keeping a
file on one replica keeps the smoother's state and the video's timestamps
intact, and a replica's model stays loaded across files.

Why the bookkeeping below exists:

- Back-pressure: at most `IN_FLIGHT_PER_WORKER` files wait on each replica,
  so an archive of 100,000 files never becomes 100,000 queued tasks (nor
  100,000 lost ones when a worker dies), and the next file is already
  queued when a replica finishes one.
- Final names mean complete: a replica writes hidden partial files in OUTDIR
  and renames them when the file is done, the video first and the JSONL last,
  so a JSONL under its final name vouches for both. A rerun skips such files;
  a killed run loses only the files that were in flight.
- A file whose task fails (a corrupt video, say) is tried once more, then
  reported as failed with a one-line reason; it never stops the other files.
  A replica that dies (killed, out of memory, node lost) is not the file's
  fault: its files go back to the queue for a replacement replica.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import logging
import math
import os
import re
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from contextlib import closing
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from streamsink.errors import SourceError, SourceNotFoundError, StreamsinkError, WriterError, one_line

logger = logging.getLogger(__name__)

DONE = "done"
FAILED = "failed"
SKIPPED = "skipped"
PENDING = "pending"  # only in the report of an interrupted run

# Files queued on one replica: one running, one ready to start the moment it finishes.
IN_FLIGHT_PER_WORKER = 2
# A file that fails is tried this many times in all before it is reported failed.
ATTEMPTS = 2
# A file whose replica died under it this many times is reported failed (it may be what kills them).
MAX_WORKER_DEATHS_PER_FILE = 3

SUMMARY_NAME = "summary.json"
_PARTIAL = re.compile(r"\.(?P<name>.+)\.(?P<token>[0-9a-f]{12})\.part\.(?:mp4|jsonl)")
_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


class RayNotInstalledError(StreamsinkError, ImportError):
    """Ray, needed only for archives, is not installed."""


class ReplicaBrokenError(StreamsinkError):
    """A replica could not load its model (a replacement short of GPU memory, say): the replica's fault, not the file's."""


@dataclass(frozen=True, slots=True)
class FileResult:
    """What became of one input file.

    status: "done" (written now), "skipped" (complete outputs were already
        there), "failed" (error says why), or "pending" (the run was
        interrupted before it).
    frames: frames annotated (for a skipped file: lines of its JSONL).
    presence: class -> seconds shown as "present"; each frame lasts until the
        next one's timestamp, the last one the mean frame step.
    elapsed: seconds its replica spent on it (0 for skipped files).
    attempts: tries that raised, plus the successful one.
    """

    name: str
    input: str
    status: str
    frames: int = 0
    presence: dict[str, float] = field(default_factory=dict)
    elapsed: float = 0.0
    error: str | None = None
    video: str | None = None
    jsonl: str | None = None
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class ArchiveReport:
    """The outcome of `process_archive`, one `FileResult` per input in input order; saved as OUTDIR/summary.json."""

    files: tuple[FileResult, ...]
    outdir: str
    classes: tuple[str, ...]
    workers: int = 0
    replacements: int = 0
    elapsed: float = 0.0
    interrupted: bool = False

    def _with(self, status: str) -> tuple[FileResult, ...]:
        return tuple(f for f in self.files if f.status == status)

    @property
    def done(self) -> tuple[FileResult, ...]:
        return self._with(DONE)

    @property
    def failed(self) -> tuple[FileResult, ...]:
        return self._with(FAILED)

    @property
    def skipped(self) -> tuple[FileResult, ...]:
        return self._with(SKIPPED)

    @property
    def frames(self) -> int:
        """Frames annotated by this run (skipped files not counted)."""
        return sum(f.frames for f in self.done)

    @property
    def fps(self) -> float:
        """Frames per second of this run over the whole archive, model loading included."""
        return self.frames / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def presence(self) -> dict[str, float]:
        """Class -> seconds present, summed over every complete file (done and skipped)."""
        total = dict.fromkeys(self.classes, 0.0)
        for result in self.files:
            if result.status in (DONE, SKIPPED):
                for label, seconds in result.presence.items():
                    total[label] = total.get(label, 0.0) + seconds
        return {label: round(seconds, 6) for label, seconds in total.items()}

    def to_json(self) -> dict[str, Any]:
        return {
            "outdir": self.outdir,
            "classes": list(self.classes),
            "interrupted": self.interrupted,
            "workers": self.workers,
            "worker_replacements": self.replacements,
            "elapsed": round(self.elapsed, 3),
            "totals": {
                "files": len(self.files),
                "done": len(self.done),
                "failed": len(self.failed),
                "skipped": len(self.skipped),
                "pending": len(self._with(PENDING)),
                "frames": self.frames,
                "fps": round(self.fps, 3),
                "presence": self.presence,
            },
            "files": [asdict(f) for f in self.files],
        }

    def write(self, path: str | Path) -> Path:
        """Write the JSON atomically (a reader never sees half a summary)."""
        path = Path(path)
        partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.part")
        try:
            partial.write_text(json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            os.replace(partial, path)
        except OSError as error:
            partial.unlink(missing_ok=True)
            raise WriterError(f"cannot write {path}: {one_line(error)}") from None
        return path


@dataclass(frozen=True, slots=True)
class _Settings:
    """What every replica needs, sent once when it is created."""

    model: str
    classes: tuple[str, ...]
    sinks: int
    sink_init: str
    device: str
    dtype: str | None
    threshold: float
    batch_size: int
    smooth: bool
    raw: bool
    threads: int | None
    cpus: float
    compile: bool
    cuda_graphs: bool
    frame_delay: float = 0.0


@dataclass(frozen=True, slots=True)
class _Job:
    """One attempt at one file; `token` makes its partial files its own."""

    index: int
    name: str
    input: str
    outdir: str
    token: str
    submitted: int = 0  # order of submission, to tell the running file from those queued behind it

    @property
    def video(self) -> Path:
        return Path(self.outdir) / f"{self.name}.mp4"

    @property
    def jsonl(self) -> Path:
        return Path(self.outdir) / f"{self.name}.jsonl"

    @property
    def provenance(self) -> Path:
        """Which input and settings the final outputs were made from; hidden, renamed into place before the JSONL."""
        return Path(self.outdir) / f".{self.name}.source.json"

    @property
    def partials(self) -> tuple[Path, Path]:
        """Hidden, so a folder of outputs read back as inputs never picks them up; .mp4 keeps the container."""
        stem = Path(self.outdir) / f".{self.name}.{self.token}.part"
        return stem.with_name(stem.name + ".mp4"), stem.with_name(stem.name + ".jsonl")


def _fingerprint(path: str, settings: _Settings) -> dict[str, Any]:
    """What outputs depend on: the input file (path, size, modification time) and the detection settings.

    A rerun skips a file only when its outputs carry the same fingerprint, so a
    same-named file from another folder, an edited file or another model,
    prompt or threshold is redone, never passed off as complete.
    """
    stat = Path(path).stat()
    return {
        "input": str(Path(path).resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
        "model": settings.model, "classes": list(settings.classes), "sinks": settings.sinks,
        "sink_init": settings.sink_init, "threshold": settings.threshold, "smooth": settings.smooth,
        "raw": settings.raw,
    }


class _Presence:
    """Seconds each class is "present", from the JSONL records of a file."""

    def __init__(self, classes: Sequence[str]) -> None:
        self.seconds = dict.fromkeys(classes, 0.0)
        self.frames = 0
        self._first: float | None = None
        self._last: tuple[float, list[str]] | None = None

    def add(self, record: Mapping[str, Any]) -> None:
        pts = float(record["pts"])
        present = [label for label, state in record.get("states", {}).items() if state == "present"]
        if self._last is not None:
            self._count(self._last[1], pts - self._last[0])
        else:
            self._first = pts
        self._last = (pts, present)
        self.frames += 1

    def _count(self, labels: list[str], seconds: float) -> None:
        for label in labels:
            self.seconds[label] = self.seconds.get(label, 0.0) + max(seconds, 0.0)

    def result(self, fps: float | None = None) -> dict[str, float]:
        """Per-class seconds; the last frame lasts the mean step (1/fps for a one-frame file)."""
        seconds = dict(self.seconds)
        if self._last is not None and self._first is not None:
            if self.frames > 1:
                step = (self._last[0] - self._first) / (self.frames - 1)
            else:
                step = 1.0 / fps if fps else 0.0
            for label in self._last[1]:
                seconds[label] = seconds.get(label, 0.0) + max(step, 0.0)
        return {label: round(value, 6) for label, value in seconds.items()}


class ArchiveWorker:
    """One detector replica (run as a Ray actor): loads the model once, then annotates whole files.

    A load failure is kept and raised by `ready()`, so the driver can report
    the real reason (a model that does not exist, say) as one line instead of
    a dead actor.
    """

    def __init__(self, settings: _Settings) -> None:
        self.settings = settings
        self._error: BaseException | None = None
        self._detector = None
        try:
            self._detector = self._load()
        except Exception as error:  # raised by ready() in the driver
            self._error = error

    def _load(self):
        from huggingface_hub.utils import logging as hub_logging
        from transformers.utils import logging as transformers_logging

        from streamsink.detector import SinkDetector

        transformers_logging.disable_progress_bar()
        transformers_logging.set_verbosity_error()
        hub_logging.set_verbosity_error()
        s = self.settings
        try:
            import cv2

            # Replicas share the machine; OpenCV's default of every core per replica oversubscribes it.
            cv2.setNumThreads(max(1, int(s.cpus)))
        except Exception:
            pass
        return SinkDetector.from_pretrained(s.model, sinks=s.sinks, sink_init=s.sink_init, device=s.device,
                                            dtype=s.dtype, compile=s.compile, cuda_graphs=s.cuda_graphs)

    def ready(self) -> int:
        """The process id once the model is loaded; raises the load error otherwise."""
        if self._error is not None:
            raise self._error
        return os.getpid()

    def process(self, job: _Job) -> FileResult:
        """Annotate one file into its final outputs; a failure is returned (status failed), never half-written."""
        if self._error is not None:
            raise ReplicaBrokenError(f"replica could not load the model: {one_line(self._error)}")
        started = time.monotonic()
        video_partial, jsonl_partial = job.partials
        try:
            fingerprint = _fingerprint(job.input, self.settings)
            frames, presence = self._annotate(job, video_partial, jsonl_partial)
            job.jsonl.unlink(missing_ok=True)  # an old final JSONL must not vouch for the new video
            os.replace(video_partial, job.video)
            provenance = job.provenance.with_name(job.provenance.name + f".{job.token}.part")
            provenance.write_text(json.dumps(fingerprint) + "\n", encoding="utf-8")
            os.replace(provenance, job.provenance)
            os.replace(jsonl_partial, job.jsonl)  # last: a final JSONL means both are complete
        except Exception as error:
            for partial in (video_partial, jsonl_partial):
                partial.unlink(missing_ok=True)
            logger.debug("%s failed", job.input, exc_info=True)
            return FileResult(job.name, job.input, FAILED, elapsed=round(time.monotonic() - started, 3),
                              error=_reason(error))
        return FileResult(job.name, job.input, DONE, frames=frames, presence=presence,
                          elapsed=round(time.monotonic() - started, 3), video=str(job.video), jsonl=str(job.jsonl))

    def _annotate(self, job: _Job, video_path: Path, jsonl_path: Path) -> tuple[int, dict[str, float]]:
        """`streamsink process` for one file: same engine, drawing, writers and records."""
        from streamsink.engine import default_threads, iterate, make_detect
        from streamsink.render import Renderer
        from streamsink.smoother import TemporalSmoother
        from streamsink.sources import open_source
        from streamsink.writers import JsonlWriter, VideoWriter, frame_record

        s = self.settings
        with open_source(job.input) as source:
            frames = (frame if frame.source == job.name else dataclasses.replace(frame, source=job.name)
                      for frame in source)  # JSONL names the output's unique name, as `process A B` does
            if source.is_live:
                raise SourceError(f"{job.input} is a live source, not a recorded file")
            detect = make_detect(self._detector, s.classes, s.threshold)
            threads = s.threads if s.threads is not None else default_threads(max(1, int(s.cpus)), heavy=detect.heavy)
            smoother = TemporalSmoother(s.classes) if s.smooth else None
            renderer = Renderer()
            presence = _Presence(s.classes)
            with (
                VideoWriter.like(source, video_path) as video,
                JsonlWriter(jsonl_path) as jsonl,
                closing(iterate(frames, detect, batch_size=s.batch_size, smoother=smoother, threads=threads,
                                render=lambda r: renderer.draw(r.frame.image, r.detections, r.states))) as results,
            ):
                for result in results:
                    video.write(result.frame, result.image)
                    record = frame_record(result.frame, result.detections, result.states,
                                          raw=result.raw if s.raw else None)
                    jsonl.write(record)
                    presence.add(record)
                    if s.frame_delay:
                        time.sleep(s.frame_delay)
            if presence.frames == 0:
                raise SourceError(f"{job.input} has no frames")
            return presence.frames, presence.result(source.fps)


def process_archive(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    outdir: str | os.PathLike,
    *,
    prompt: str | Sequence[str],
    model: str,
    sinks: int = 16,
    sink_init: str = "mean",
    device: str = "auto",
    dtype: str | None = None,
    threshold: float = 0.3,
    batch_size: int = 4,
    smooth: bool = True,
    raw: bool = False,
    threads: int | None = None,
    compile: bool = False,
    cuda_graphs: bool = False,
    address: str | None = None,
    workers: int | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int, int], None] | None = None,
    on_submit: Callable[[str, Any], None] | None = None,
    _frame_delay: float = 0.0,
) -> ArchiveReport:
    """Annotate every video in `inputs` into `outdir` on a Ray cluster and return the report.

    inputs: video files, folders and globs (a folder or glob stands for the
        videos in it, see `expand_inputs`). Outputs are `outdir/<name>.mp4`
        and `outdir/<name>.jsonl`, `<name>` the file's stem made unique
        (clip, clip-2), the same files `streamsink process FILE -o
        outdir/<name>.mp4` writes; `outdir/summary.json` holds the report.
        With a remote `address`, `outdir` and the inputs must be the same
        paths on every node (a shared filesystem).
    address: a Ray cluster to connect to ("auto", "ray://host:10001", ...).
        None uses the Ray instance this process already started, else starts
        a local one with every core; only an instance started here is shut down.
    workers: replicas; default one per GPU when the cluster has GPUs (and
        `device` is not cpu), else one per CPU, never more than files to do.
        Each CPU replica runs torch on its share of the cores (`threads`
        overrides the count per replica; 0 leaves torch's setting).
    overwrite: redo files whose outputs are complete (default: skip them).
    progress: called in this thread as `progress(finished, total, frames)`
        once for the files skipped up front and then after every file that
        finishes (done or failed): `finished` counts files in a final state
        (skipped included), `total` is every input file, `frames` the frames
        annotated by this run so far. Exceptions in it stop the run.
    on_submit: called as `on_submit(name, actor)` after a file is queued on a
        replica (the actor handle); for monitoring and tests.
    _frame_delay: seconds each replica sleeps per frame; tests only.

    The other settings are `streamsink process`'s. Settings, the prompt, the
    inputs and the output folder are checked before Ray starts. Failures: a
    file that raises is retried once, then reported failed with a one-line
    reason while the others go on; a replica that dies has its files redone
    on a replacement (not counted against them). Ctrl-C stops the replicas,
    removes partial files, writes summary.json (unfinished files "pending")
    and re-raises KeyboardInterrupt; a rerun goes on where it stopped.
    """
    classes = _check_settings(prompt, threshold, batch_size, sinks, sink_init, device, dtype, threads, workers)
    if not isinstance(_frame_delay, (int, float)) or _frame_delay < 0:
        raise ValueError(f"frame delay must be >= 0 seconds, got {_frame_delay!r}")
    dtype = None if dtype == "auto" else dtype
    ray = _import_ray()
    starts_local = address is None and not ray.is_initialized()
    if starts_local:
        from streamsink.detector.model import resolve_device

        resolve_device(device)  # this machine is the cluster: check what it has, before starting Ray
    files = _expand(inputs)
    out = _prepare_outdir(outdir)
    names = _names(files)
    _refuse_overwriting_inputs(files, names, out)
    started = time.monotonic()
    results: list[FileResult | None] = [None] * len(files)
    todo: list[_Job] = []
    settings = _Settings(str(model), classes, sinks, sink_init, device, dtype, threshold, batch_size, smooth, raw,
                         threads, 1.0, compile, cuda_graphs, float(_frame_delay))
    for index, (path, name) in enumerate(zip(files, names)):
        job = _Job(index, name, path, str(out), "")
        _remove_partials(out, name)
        complete = None if overwrite else _complete(job, classes, settings)
        if complete is not None:
            results[index] = complete
        else:
            todo.append(job)
    skipped = len(files) - len(todo)
    if skipped:
        logger.info("%d of %d files already have complete outputs; skipped", skipped, len(files))
    if progress is not None:
        progress(skipped, len(files), 0)

    run = _Run(results, progress, on_submit)
    interrupted = completed = False
    try:
        if todo:
            started_here = _connect(ray, address)
            try:
                run.go(ray, todo, settings, workers)
            finally:
                if started_here:
                    ray.shutdown()
        completed = True
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        final = tuple(
            r if r is not None else FileResult(name, path, PENDING)
            for r, path, name in zip(results, files, names)
        )
        report = ArchiveReport(final, str(out), classes, run.workers, run.replacements,
                               round(time.monotonic() - started, 3), interrupted)
        try:
            report.write(out / SUMMARY_NAME)
        except WriterError as error:
            if completed:
                raise
            logger.warning("%s", error)  # the error that stopped the run matters more
    logger.info("archive: %d done, %d failed, %d skipped, %d frames in %.1f s", len(report.done),
                len(report.failed), len(report.skipped), report.frames, report.elapsed)
    return report


class _Slot:
    """A replica and the files queued on it."""

    def __init__(self, actor: Any, number: int) -> None:
        self.actor = actor
        self.number = number
        self.refs: list[Any] = []  # in submission order: an actor runs its tasks in that order


class _Run:
    """The driver loop: keep every replica `IN_FLIGHT_PER_WORKER` files deep until the queue is empty."""

    def __init__(self, results: list[FileResult | None], progress, on_submit) -> None:
        self.results = results
        self.progress = progress
        self.on_submit = on_submit
        self.workers = 0
        self.replacements = 0
        self.frames = 0
        self.attempts: dict[int, int] = {}
        self.deaths: dict[int, int] = {}
        self.in_flight: dict[Any, tuple[_Slot, _Job]] = {}
        self.submitted = 0
        self.slots: list[_Slot] = []

    def go(self, ray: Any, todo: list[_Job], settings: _Settings, workers: int | None) -> None:
        count, options, cpus = _plan(ray, settings.device, workers, len(todo))
        settings = replace(settings, cpus=cpus, device=options.pop("_device"))
        self.workers = count
        actor_class = ray.remote(ArchiveWorker).options(max_restarts=0, max_task_retries=0, **options)
        self._new_actor = lambda: actor_class.remote(settings)
        logger.info("archive: %d files on %d replicas (%s)", len(todo), count,
                    ", ".join(f"{k}={v}" for k, v in sorted(options.items())))
        pending = deque(todo)
        try:
            self.slots = [_Slot(self._new_actor(), n) for n in range(count)]
            self._wait_ready(ray)
            self._loop(ray, pending)
        finally:
            for slot in self.slots:
                _kill(ray, slot.actor)
            for _, job in self.in_flight.values():
                _remove_job_partials(job)
            self.in_flight.clear()

    def _wait_ready(self, ray: Any) -> None:
        """Load every replica's model before any file goes out, so a bad model fails once, as itself."""
        refs = [slot.actor.ready.remote() for slot in self.slots]
        waiting, since = refs, time.monotonic()
        while waiting:
            _, waiting = ray.wait(waiting, num_returns=len(waiting), timeout=60)
            if waiting:  # a cluster short of the resources asked for would otherwise wait in silence
                logger.warning("%d of %d detector replicas not started after %.0f s; waiting for cluster resources",
                               len(waiting), len(refs), time.monotonic() - since)
        try:
            ray.get(refs)
        except ray.exceptions.RayTaskError as error:
            cause = getattr(error, "cause", None)
            raise (cause if isinstance(cause, BaseException) else error) from None
        except ray.exceptions.RayActorError as error:
            raise StreamsinkError(f"a detector replica died while loading the model: {one_line(error)}") from None

    def _loop(self, ray: Any, pending: deque[_Job]) -> None:
        max_replacements = max(4, 2 * len(self.slots))
        while pending or self.in_flight:
            self._fill(pending)
            if not self.in_flight:
                reason = f"no detector replica left ({self.replacements} replaced, the most allowed)"
                while pending:
                    self._finish(pending.popleft(), FAILED, reason)
                return
            ready, _ = ray.wait(list(self.in_flight), num_returns=1, timeout=1.0)
            for ref in ready:
                if ref not in self.in_flight:
                    continue  # its replica died and its files were requeued already
                slot, job = self.in_flight.pop(ref)
                slot.refs.remove(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayActorError as error:
                    self._replica_died(ray, slot, job, error, pending, max_replacements)
                    continue
                except ray.exceptions.RayTaskError as error:
                    cause = getattr(error, "cause", None)
                    if isinstance(cause, ReplicaBrokenError):
                        self._replica_died(ray, slot, job, cause, pending, max_replacements)
                        continue
                    result = FileResult(job.name, job.input, FAILED,
                                        error=_reason(cause) if isinstance(cause, BaseException) else one_line(error))
                self._settle(job, result, pending)

    def _fill(self, pending: deque[_Job]) -> None:
        while pending:
            slot = min(self.slots, key=lambda s: len(s.refs), default=None)
            if slot is None or len(slot.refs) >= IN_FLIGHT_PER_WORKER:
                return
            self.submitted += 1
            job = replace(pending.popleft(), token=uuid.uuid4().hex[:12], submitted=self.submitted)
            ref = slot.actor.process.remote(job)
            slot.refs.append(ref)
            self.in_flight[ref] = (slot, job)
            if self.on_submit is not None:
                self.on_submit(job.name, slot.actor)

    def _settle(self, job: _Job, result: FileResult, pending: deque[_Job]) -> None:
        attempts = self.attempts[job.index] = self.attempts.get(job.index, 0) + 1
        if result.status == DONE:
            self.frames += result.frames
            self._finish(job, DONE, result=replace(result, attempts=attempts))
        elif attempts < ATTEMPTS:
            logger.warning("%s failed (%s); trying once more", job.input, result.error)
            pending.append(job)
        else:
            self._finish(job, FAILED, result.error, attempts=attempts)

    def _replica_died(self, ray: Any, slot: _Slot, job: _Job, error: BaseException, pending: deque[_Job],
                      max_replacements: int) -> None:
        """Requeue the dead replica's files at the front (their tries are not used up) and replace it.

        A file it finished before dying keeps its result rather than being redone. Only the
        file it was running (the oldest unfinished) counts the death; those queued behind it did not run.
        """
        lost = [job]
        for ref in list(slot.refs):
            other = self.in_flight.pop(ref)[1]
            finished, _ = ray.wait([ref], timeout=0)
            try:
                result = ray.get(ref) if finished else None
            except ray.exceptions.RayError:
                result = None
            if result is None:
                lost.append(other)
            else:
                self._settle(other, result, pending)
        slot.refs.clear()
        self.slots.remove(slot)
        _kill(ray, slot.actor)
        logger.warning("detector replica %d died (%s); requeueing %s", slot.number, one_line(error),
                       ", ".join(j.name for j in lost))
        lost.sort(key=lambda j: j.submitted)
        for position, lost_job in reversed(list(enumerate(lost))):
            _remove_job_partials(lost_job)
            if position > 0 or isinstance(error, ReplicaBrokenError):
                pending.appendleft(lost_job)
                continue
            deaths = self.deaths[lost_job.index] = self.deaths.get(lost_job.index, 0) + 1
            if deaths >= MAX_WORKER_DEATHS_PER_FILE:
                self._finish(lost_job, FAILED, f"its detector replica died {deaths} times while on it")
            else:
                pending.appendleft(lost_job)
        if self.replacements < max_replacements:
            self.replacements += 1
            self.slots.append(_Slot(self._new_actor(), slot.number))

    def _finish(self, job: _Job, status: str, error: str | None = None, *, result: FileResult | None = None,
                attempts: int | None = None) -> None:
        if result is None:
            result = FileResult(job.name, job.input, status, error=error,
                                attempts=self.attempts.get(job.index, 0) if attempts is None else attempts)
        if status == FAILED:
            logger.warning("%s failed: %s", job.input, result.error)
        self.results[job.index] = result
        if self.progress is not None:
            finished = sum(r is not None for r in self.results)
            self.progress(finished, len(self.results), self.frames)


def _check_settings(prompt, threshold, batch_size, sinks, sink_init, device, dtype, threads, workers) -> tuple[str, ...]:
    """Everything that can be checked without Ray or a model, so bad usage fails at once."""
    from streamsink.detector.prompt import parse_classes
    from streamsink.detector.sinks import SINK_INITS
    from streamsink.engine import check_settings

    classes = parse_classes(prompt)
    check_settings(threshold=threshold, batch_size=batch_size)
    if isinstance(sinks, bool) or not isinstance(sinks, int) or sinks < 0:
        raise ValueError(f"sinks must be an int >= 0, got {sinks!r}")
    if sink_init not in SINK_INITS:
        raise ValueError(f"sink_init must be one of {', '.join(SINK_INITS)}, got {sink_init!r}")
    if not isinstance(device, str) or not _DEVICE.fullmatch(device):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")
    if dtype not in (None, "auto", "fp32", "fp16", "bf16", "float32", "float16", "bfloat16"):
        raise ValueError(f"dtype must be auto, fp32, fp16 or bf16, got {dtype!r}")
    for label, value, least in (("threads", threads, 0), ("workers", workers, 1)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
            raise ValueError(f"{label} must be an int >= {least}, got {value!r}")
    return classes


def _import_ray() -> Any:
    try:
        import ray
        import ray.exceptions  # noqa: F401  (used as ray.exceptions.*)
    except ImportError:
        raise RayNotInstalledError("footage archives run on Ray, which is not installed: "
                                   "pip install 'streamsink[ray]'") from None
    return ray


def _connect(ray: Any, address: str | None) -> bool:
    """Join `address`, or the instance already running here, or start a local one; True if started here."""
    if ray.is_initialized():
        if address is not None:
            logger.warning("Ray is already initialised in this process; using it, not %s", address)
        return False
    if address is not None:
        ray.init(address=address, logging_level=logging.WARNING)
        return False
    ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, logging_level=logging.WARNING)
    return True


def _plan(ray: Any, device: str, workers: int | None, files: int) -> tuple[int, dict[str, Any], float]:
    """Replica count, actor resource options and CPUs per replica, from the cluster's resources."""
    resources = ray.cluster_resources()
    cpus = float(resources.get("CPU", 0.0))
    gpus = float(resources.get("GPU", 0.0))
    node_cpus = max((float(n.get("Resources", {}).get("CPU", 0.0)) for n in ray.nodes() if n.get("Alive")),
                    default=cpus)
    use_gpu = gpus >= 1 and device not in ("cpu", "mps")
    if device.startswith("cuda") and gpus < 1:
        raise ValueError(f"device {device!r} asked for, but the Ray cluster has no GPU; use cpu or auto")
    count = workers or max(1, int(gpus if use_gpu else cpus))
    count = max(1, min(count, files))
    if use_gpu:
        if device.startswith("cuda:"):
            logger.warning("device %s: Ray assigns each replica its GPU; the index is ignored", device)
        per_gpu = 1.0 if count <= gpus else _floor4(gpus / count)
        per_cpu = 1.0 if cpus >= count else _floor4(cpus / count)
        return count, {"num_gpus": per_gpu, "num_cpus": per_cpu, "_device": "cuda"}, per_cpu
    if cpus <= 0:
        raise StreamsinkError("the Ray cluster has no CPU to run detector replicas on")
    # Whole cores where they go round (fractions can strand a replica between nodes), capped at one node's.
    per_cpu = float(min(int(cpus) // count, int(node_cpus))) if count <= cpus else _floor4(cpus / count)
    per_cpu = max(per_cpu, 0.0001)
    return count, {"num_cpus": per_cpu, "_device": "cpu" if device == "auto" else device}, per_cpu


def _floor4(value: float) -> float:
    """Ray accepts resource fractions to four decimals."""
    return max(math.floor(value * 10_000) / 10_000, 0.0001)


def _expand(inputs: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """The video files `inputs` names; anything that is not a recorded video file is refused here."""
    from streamsink.sources import expand_inputs

    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    if not inputs:
        raise ValueError("no inputs given: pass video files, folders or globs")
    files: list[str] = []
    for spec in expand_inputs(list(inputs)):
        if isinstance(spec, int) or "://" in str(spec):
            raise SourceError(f"{spec} is a camera or stream; archives take recorded files (use 'streamsink watch')")
        path = Path(spec).expanduser()
        if path.is_file():
            files.append(str(path))
        elif path.is_dir() or any(c in str(spec) for c in "*?["):
            raise SourceError(f"{spec} holds images, not videos; annotate it with 'streamsink process {spec}'")
        else:
            raise SourceNotFoundError(f"no such file: {spec}")
    return files


def _names(files: Sequence[str]) -> list[str]:
    from streamsink.sources import unique_names

    return unique_names([Path(f).stem or Path(f).name for f in files])


def _prepare_outdir(outdir: str | os.PathLike) -> Path:
    out = Path(outdir).expanduser()
    if out.exists() and not out.is_dir():
        raise WriterError(f"output folder {out} is a file")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise WriterError(f"cannot create output folder {out}: {one_line(error)}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise WriterError(f"cannot write to output folder {out}: permission denied")
    return out


def _refuse_overwriting_inputs(files: Sequence[str], names: Sequence[str], out: Path) -> None:
    """OUTDIR/<name>.mp4 can be the input itself (outdir = the input folder); writing it would destroy it."""
    inputs = {Path(f).resolve(): f for f in files}
    for name in names:
        for suffix in (".mp4", ".jsonl"):
            target = (out / f"{name}{suffix}").resolve()
            if target in inputs:
                raise WriterError(f"output {out / (name + suffix)} would overwrite input {inputs[target]}; "
                                  "choose another output folder")


def _complete(job: _Job, classes: tuple[str, ...], settings: _Settings) -> FileResult | None:
    """A skipped result when both final outputs exist and were made from this input with these settings, else None."""
    if not (job.video.is_file() and job.jsonl.is_file()):
        return None
    try:
        made_from = json.loads(job.provenance.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        made_from = None
    if made_from != _fingerprint(job.input, settings):
        logger.warning("%s was not made from %s with these settings; redoing it", job.jsonl, job.input)
        return None
    presence = _Presence(classes)
    try:
        with open(job.jsonl, encoding="utf-8") as lines:
            for line in lines:
                if not line.strip():
                    continue
                record = json.loads(line)
                if presence.frames == 0 and set(record.get("states", {})) != set(classes):
                    logger.warning("%s was made for other classes (%s); redoing it", job.jsonl,
                                   ", ".join(record.get("states", {})))
                    return None
                presence.add(record)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        logger.warning("%s unreadable (%s); redoing it", job.jsonl, one_line(error))
        return None
    if presence.frames == 0:
        return None
    return FileResult(job.name, job.input, SKIPPED, frames=presence.frames, presence=presence.result(),
                      video=str(job.video), jsonl=str(job.jsonl))


def _remove_partials(out: Path, name: str) -> None:
    """Partial files of `name` left by a run that was killed outright (one run per OUTDIR at a time)."""
    for path in glob.glob(str(out / f".{glob.escape(name)}.*.part.*")):
        match = _PARTIAL.fullmatch(Path(path).name)
        if match and match.group("name") == name:
            Path(path).unlink(missing_ok=True)


def _remove_job_partials(job: _Job) -> None:
    for partial in job.partials:
        try:
            partial.unlink(missing_ok=True)
        except OSError:
            pass


def _kill(ray: Any, actor: Any) -> None:
    try:
        ray.kill(actor, no_restart=True)
    except Exception:
        pass


def _reason(error: BaseException) -> str:
    """One line; streamsink's own errors speak for themselves, others say what they are."""
    text = one_line(error)
    return text if isinstance(error, StreamsinkError) else f"{type(error).__name__}: {text}"
