"""Footage archives on Ray: many recorded files, one detector replica per GPU (or CPU slot).

One file is the unit of work. A replica (a Ray actor) loads the model once
and annotates whole files with the same run path, annotate loop and writers
as `streamsink process`, so `OUTDIR/<name>.mp4` and `OUTDIR/<name>.jsonl` are
exactly what `streamsink process FILE -o OUTDIR/<name>.mp4` writes. Keeping a
file on one replica keeps the smoother's state and the video's timestamps
intact, and a replica's model stays loaded across files.

The package by job: `report` (what a run reports), `outputs` (where outputs
go and when a final name means complete), `worker` (the replica),
`scheduler` (the driver loop, testable with a fake cluster), `cluster`
(Ray: import, connect, size replicas) and `driver` (`process_archive`).
"""

from streamsink.archive.cluster import RayNotInstalledError
from streamsink.archive.driver import process_archive
from streamsink.archive.outputs import Job, ReplicaSettings
from streamsink.archive.report import DONE, FAILED, PENDING, SKIPPED, SUMMARY_NAME, ArchiveReport, FileResult
from streamsink.archive.scheduler import ATTEMPTS, IN_FLIGHT_PER_WORKER, MAX_WORKER_DEATHS_PER_FILE
from streamsink.archive.worker import ArchiveWorker, ReplicaBrokenError

__all__ = [
    "ATTEMPTS", "DONE", "FAILED", "IN_FLIGHT_PER_WORKER", "MAX_WORKER_DEATHS_PER_FILE", "PENDING", "SKIPPED",
    "SUMMARY_NAME", "ArchiveReport", "ArchiveWorker", "FileResult", "Job", "RayNotInstalledError",
    "ReplicaBrokenError", "ReplicaSettings", "process_archive",
]
