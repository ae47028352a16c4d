"""`process_archive`: check everything, skip what is complete, run the rest on Ray, write the report."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from streamsink.archive import cluster
from streamsink.archive.outputs import (
    Job,
    ReplicaSettings,
    complete,
    expand,
    names_of,
    prepare_outdir,
    refuse_overwriting_inputs,
    remove_partials,
)
from streamsink.archive.report import PENDING, SUMMARY_NAME, ArchiveReport, FileResult
from streamsink.archive.scheduler import Scheduler
from streamsink.errors import WriterError
from streamsink.settings import RunSettings, check_int, settings_from

logger = logging.getLogger(__name__)


def process_archive(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    outdir: str | os.PathLike,
    *,
    prompt: str | Sequence[str],
    settings: RunSettings | None = None,
    raw: bool = False,
    address: str | None = None,
    workers: int | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int, int], None] | None = None,
    on_submit: Callable[[str, Any], None] | None = None,
    _frame_delay: float = 0.0,
    **options: Any,
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

    settings, options: the run's `RunSettings` and/or its fields as keywords
        (`model=`, `threshold=`, `smoother_options=` ...), as `streamsink.run`
        takes them; `raw` adds the raw detections to each JSONL line. Settings, the prompt, the
    inputs and the output folder are checked before Ray starts. Failures: a
    file that raises is retried once, then reported failed with a one-line
    reason while the others go on; a replica that dies has its files redone
    on a replacement (not counted against them). Ctrl-C stops the replicas,
    removes partial files, writes summary.json (unfinished files "pending")
    and re-raises KeyboardInterrupt; a rerun goes on where it stopped.
    """
    from streamsink.detector.prompt import parse_classes

    classes = parse_classes(prompt)
    settings = settings_from(settings, options)
    check_int("workers", workers, 1, optional=True)
    if not isinstance(_frame_delay, (int, float)) or _frame_delay < 0:
        raise ValueError(f"frame delay must be >= 0 seconds, got {_frame_delay!r}")
    ray = cluster.import_ray()
    starts_local = address is None and not ray.is_initialized()
    if starts_local:
        from streamsink.detector.device import resolve_device

        resolve_device(settings.device)  # this machine is the cluster: check what it has, before starting Ray
    files = expand(inputs)
    out = prepare_outdir(outdir)
    names = names_of(files)
    refuse_overwriting_inputs(files, names, out)
    started = time.monotonic()
    results: list[FileResult | None] = [None] * len(files)
    todo: list[Job] = []
    replica = ReplicaSettings(settings, classes, raw=raw, frame_delay=float(_frame_delay))
    for index, (path, name) in enumerate(zip(files, names)):
        job = Job(index, name, path, str(out), "")
        remove_partials(out, name)
        done = None if overwrite else complete(job, replica)
        if done is not None:
            results[index] = done
        else:
            todo.append(job)
    skipped = len(files) - len(todo)
    if skipped:
        logger.info("%d of %d files already have complete outputs; skipped", skipped, len(files))
    if progress is not None:
        progress(skipped, len(files), 0)

    run = Scheduler(results, progress, on_submit)
    interrupted = completed = False
    try:
        if todo:
            started_here = cluster.connect(ray, address)
            try:
                run.go(ray, todo, replica, workers)
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


