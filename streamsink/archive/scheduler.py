"""The driver loop of an archive: keep every replica a few files deep until the queue is empty.

Why the bookkeeping exists:

- Back-pressure: at most `IN_FLIGHT_PER_WORKER` files wait on each replica,
  so an archive of 100,000 files never becomes 100,000 queued tasks (nor
  100,000 lost ones when a worker dies), and the next file is already
  queued when a replica finishes one.
- A file whose task fails (a corrupt video, say) is tried once more, then
  reported as failed with a one-line reason; it never stops the other files.
  A replica that dies (killed, out of memory, node lost) is not the file's
  fault: its files go back to the queue for a replacement replica.

The `ray` module is an argument, so the loop runs against a fake cluster in tests.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from dataclasses import replace
from typing import Any

from streamsink.archive.cluster import kill, plan
from streamsink.archive.outputs import Job, ReplicaSettings, remove_job_partials
from streamsink.archive.report import DONE, FAILED, FileResult
from streamsink.archive.worker import ArchiveWorker, ReplicaBrokenError, failure_reason
from streamsink.errors import StreamsinkError, one_line

logger = logging.getLogger(__name__)

# Files queued on one replica: one running, one ready to start the moment it finishes.
IN_FLIGHT_PER_WORKER = 2
# A file that fails is tried this many times in all before it is reported failed.
ATTEMPTS = 2
# A file whose replica died under it this many times is reported failed (it may be what kills them).
MAX_WORKER_DEATHS_PER_FILE = 3


class _Slot:
    """A replica and the files queued on it."""

    def __init__(self, actor: Any, number: int) -> None:
        self.actor = actor
        self.number = number
        self.refs: list[Any] = []  # in submission order: an actor runs its tasks in that order


class Scheduler:
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
        self.in_flight: dict[Any, tuple[_Slot, Job]] = {}
        self.submitted = 0
        self.slots: list[_Slot] = []

    def go(self, ray: Any, todo: list[Job], replica: ReplicaSettings, workers: int | None) -> None:
        count, options, cpus = plan(ray, replica.settings.device, workers, len(todo))
        replica = replace(replica, cpus=cpus, settings=replica.settings.replace(device=options.pop("_device")))
        self.workers = count
        actor_class = ray.remote(ArchiveWorker).options(max_restarts=0, max_task_retries=0, **options)
        self._new_actor = lambda: actor_class.remote(replica)
        logger.info("archive: %d files on %d replicas (%s)", len(todo), count,
                    ", ".join(f"{k}={v}" for k, v in sorted(options.items())))
        pending = deque(todo)
        try:
            self.slots = [_Slot(self._new_actor(), n) for n in range(count)]
            self._wait_ready(ray)
            self._loop(ray, pending)
        finally:
            for slot in self.slots:
                kill(ray, slot.actor)
            for _, job in self.in_flight.values():
                remove_job_partials(job)
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

    def _loop(self, ray: Any, pending: deque[Job]) -> None:
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
                                        error=failure_reason(cause) if isinstance(cause, BaseException) else one_line(error))
                self._settle(job, result, pending)

    def _fill(self, pending: deque[Job]) -> None:
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

    def _settle(self, job: Job, result: FileResult, pending: deque[Job]) -> None:
        attempts = self.attempts[job.index] = self.attempts.get(job.index, 0) + 1
        if result.status == DONE:
            self.frames += result.frames
            self._finish(job, DONE, result=replace(result, attempts=attempts))
        elif attempts < ATTEMPTS:
            logger.warning("%s failed (%s); trying once more", job.input, result.error)
            pending.append(job)
        else:
            self._finish(job, FAILED, result.error, attempts=attempts)

    def _replica_died(self, ray: Any, slot: _Slot, job: Job, error: BaseException, pending: deque[Job],
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
        kill(ray, slot.actor)
        logger.warning("detector replica %d died (%s); requeueing %s", slot.number, one_line(error),
                       ", ".join(j.name for j in lost))
        lost.sort(key=lambda j: j.submitted)
        for position, lost_job in reversed(list(enumerate(lost))):
            remove_job_partials(lost_job)
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

    def _finish(self, job: Job, status: str, error: str | None = None, *, result: FileResult | None = None,
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
