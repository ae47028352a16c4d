"""One detector replica (a Ray actor): loads the model once, then annotates whole files.

A file runs through the same run path (`streamsink.api.detect_sources`) and
the same annotate loop (`streamsink.annotate.annotate`) as `streamsink
process`, so `OUTDIR/<name>.mp4` and `OUTDIR/<name>.jsonl` are exactly what
`streamsink process FILE -o OUTDIR/<name>.mp4` writes, and presence is
counted the same way. Keeping a file on one replica keeps the smoother's
state and the video's timestamps intact.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from pathlib import Path

from streamsink.archive.outputs import Job, ReplicaSettings, fingerprint
from streamsink.archive.report import DONE, FAILED, FileResult
from streamsink.errors import SourceError, StreamsinkError, one_line

logger = logging.getLogger(__name__)


class ReplicaBrokenError(StreamsinkError):
    """A replica could not load its model (a replacement short of GPU memory, say): the replica's fault, not the file's."""


class ArchiveWorker:
    """One detector replica: loads the model once, then annotates whole files.

    A load failure is kept and raised by `ready()`, so the driver can report
    the real reason (a model that does not exist, say) as one line instead of
    a dead actor.
    """

    def __init__(self, replica: ReplicaSettings) -> None:
        self.replica = replica
        self._error: BaseException | None = None
        self._detector = None
        try:
            self._detector = self._load()
        except Exception as error:  # raised by ready() in the driver
            self._error = error

    def _load(self):
        from streamsink.api import load_detector

        try:
            import cv2

            # Replicas share the machine; OpenCV's default of every core per replica oversubscribes it.
            cv2.setNumThreads(max(1, int(self.replica.cpus)))
        except Exception:
            pass
        return load_detector(self.replica.settings, quiet=True)

    def ready(self) -> int:
        """The process id once the model is loaded; raises the load error otherwise."""
        if self._error is not None:
            raise self._error
        return os.getpid()

    def process(self, job: Job) -> FileResult:
        """Annotate one file into its final outputs; a failure is returned (status failed), never half-written."""
        if self._error is not None:
            raise ReplicaBrokenError(f"replica could not load the model: {one_line(self._error)}")
        started = time.monotonic()
        video_partial, jsonl_partial = job.partials
        try:
            made_from = fingerprint(job.input, self.replica)
            frames, presence = self._annotate(job, video_partial, jsonl_partial)
            job.jsonl.unlink(missing_ok=True)  # an old final JSONL must not vouch for the new video
            os.replace(video_partial, job.video)
            provenance = job.provenance.with_name(job.provenance.name + f".{job.token}.part")
            provenance.write_text(json.dumps(made_from) + "\n", encoding="utf-8")
            os.replace(provenance, job.provenance)
            os.replace(jsonl_partial, job.jsonl)  # last: a final JSONL means both are complete
        except Exception as error:
            for partial in (video_partial, jsonl_partial):
                partial.unlink(missing_ok=True)
            logger.debug("%s failed", job.input, exc_info=True)
            return FileResult(job.name, job.input, FAILED, elapsed=round(time.monotonic() - started, 3),
                              error=failure_reason(error))
        return FileResult(job.name, job.input, DONE, frames=frames, presence=presence,
                          elapsed=round(time.monotonic() - started, 3), video=str(job.video), jsonl=str(job.jsonl))

    def _annotate(self, job: Job, video_path: Path, jsonl_path: Path) -> tuple[int, dict[str, float]]:
        """`streamsink process` for one file: same run path, drawing, writers, records and presence."""
        from streamsink.annotate import Outputs, Summary, Target, annotate, engine_render
        from streamsink.api import detect_sources
        from streamsink.engine import default_threads
        from streamsink.render import Renderer
        from streamsink.sources import open_source
        from streamsink.stages import is_heavy

        replica, settings = self.replica, self.replica.settings
        if settings.threads is None:
            settings = settings.replace(threads=default_threads(max(1, int(replica.cpus)), heavy=is_heavy(self._detector)))
        with open_source(job.input) as source:
            if source.is_live:
                raise SourceError(f"{job.input} is a live source, not a recorded file")
            # JSONL names the output's unique name, as `process A B` does.
            frames = (frame if frame.source == job.name else dataclasses.replace(frame, source=job.name)
                      for frame in source)
            renderer = Renderer()
            summaries = {job.name: Summary(replica.classes)}
            delay = replica.frame_delay
            with Outputs({job.name: Target(video_path, str(jsonl_path))}, lambda _: source, raw=replica.raw) as outputs:
                results = detect_sources(frames, {job.name: replica.classes}, settings,
                                         detector=self._detector, render=engine_render(renderer))
                annotate(results, outputs, summaries, renderer=renderer,
                         on_result=(lambda *_: time.sleep(delay)) if delay else None)
            summary = summaries[job.name]
            if summary.frames == 0:
                raise SourceError(f"{job.input} has no frames")
            return summary.frames, summary.presence.result(source.fps)


def failure_reason(error: BaseException) -> str:
    """One line; streamsink's own errors speak for themselves, others say what they are."""
    text = one_line(error)
    return text if isinstance(error, StreamsinkError) else f"{type(error).__name__}: {text}"
