"""Where an archive's outputs go, and the rules that make a final name mean complete.

A replica writes hidden partial files in OUTDIR and renames them when the
file is done, the video first and the JSONL last, so a JSONL under its final
name vouches for both; beside them a hidden provenance file records which
input and settings they were made from (`fingerprint`). A rerun skips a file
only when all of that matches (`complete`); a killed run leaves partials
that the next run removes.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamsink.annotate import Presence
from streamsink.archive.report import SKIPPED, FileResult
from streamsink.errors import SourceError, SourceNotFoundError, WriterError, one_line
from streamsink.settings import RunSettings

logger = logging.getLogger(__name__)

_PARTIAL = re.compile(r"\.(?P<name>.+)\.(?P<token>[0-9a-f]{12})\.part\.(?:mp4|jsonl)")


@dataclass(frozen=True)
class ReplicaSettings:
    """What every replica needs, sent once when it is created: the run's settings and the archive's own.

    cpus: the cores Ray gives each replica (its torch threads unless `settings.threads` says otherwise).
    frame_delay: seconds a replica sleeps per frame; tests only.
    """

    settings: RunSettings
    classes: tuple[str, ...]
    raw: bool = False
    cpus: float = 1.0
    frame_delay: float = 0.0


@dataclass(frozen=True, slots=True)
class Job:
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


# Settings that change how fast outputs are made, not what they say; every other RunSettings field is
# part of a fingerprint, so a field added to RunSettings is too, with no edit here.
_NOT_IN_FINGERPRINT = frozenset({"device", "dtype", "batch_size", "compile", "cuda_graphs", "threads", "max_latency",
                                 "buffer", "retries"})
# Fingerprints always carried these; other fields join only when not at their default, so outputs made
# before a field existed still match a rerun that leaves it alone.
_ALWAYS_IN_FINGERPRINT = ("model", "sinks", "sink_init", "threshold", "smooth")


def fingerprint(path: str, replica: ReplicaSettings) -> dict[str, Any]:
    """What outputs depend on: the input file (path, size, modification time) and the detection settings.

    A rerun skips a file only when its outputs carry the same fingerprint, so a
    same-named file from another folder, an edited file or another model,
    prompt or threshold is redone, never passed off as complete.
    """
    stat = Path(path).stat()
    settings = replica.settings
    made: dict[str, Any] = {"input": str(Path(path).resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                            "classes": list(replica.classes), "raw": replica.raw}
    made.update((name, getattr(settings, name)) for name in _ALWAYS_IN_FINGERPRINT)
    default = RunSettings()
    for item in dataclasses.fields(RunSettings):
        name = item.name
        if name in _NOT_IN_FINGERPRINT or name in _ALWAYS_IN_FINGERPRINT:
            continue
        value = getattr(settings, name)
        if value != getattr(default, name):
            made[name] = dict(sorted(value.items())) if isinstance(value, Mapping) else value
    return made


def expand(inputs: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
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


def names_of(files: Sequence[str]) -> list[str]:
    from streamsink.sources import unique_names

    return unique_names([Path(f).stem or Path(f).name for f in files])


def prepare_outdir(outdir: str | os.PathLike) -> Path:
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


def refuse_overwriting_inputs(files: Sequence[str], names: Sequence[str], out: Path) -> None:
    """OUTDIR/<name>.mp4 can be the input itself (outdir = the input folder); writing it would destroy it."""
    inputs = {Path(f).resolve(): f for f in files}
    for name in names:
        for suffix in (".mp4", ".jsonl"):
            target = (out / f"{name}{suffix}").resolve()
            if target in inputs:
                raise WriterError(f"output {out / (name + suffix)} would overwrite input {inputs[target]}; "
                                  "choose another output folder")


def complete(job: Job, replica: ReplicaSettings) -> FileResult | None:
    """A skipped result when both final outputs exist and were made from this input with these settings, else None."""
    if not (job.video.is_file() and job.jsonl.is_file()):
        return None
    try:
        made_from = json.loads(job.provenance.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        made_from = None
    classes = replica.classes
    if made_from != fingerprint(job.input, replica):
        logger.warning("%s was not made from %s with these settings; redoing it", job.jsonl, job.input)
        return None
    presence = Presence(classes)
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
                presence.add(float(record["pts"]), record.get("states", {}))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        logger.warning("%s unreadable (%s); redoing it", job.jsonl, one_line(error))
        return None
    if presence.frames == 0:
        return None
    return FileResult(job.name, job.input, SKIPPED, frames=presence.frames, presence=presence.result(),
                      video=str(job.video), jsonl=str(job.jsonl))


def remove_partials(out: Path, name: str) -> None:
    """Partial files of `name` left by a run that was killed outright (one run per OUTDIR at a time)."""
    for path in glob.glob(str(out / f".{glob.escape(name)}.*.part.*")):
        match = _PARTIAL.fullmatch(Path(path).name)
        if match and match.group("name") == name:
            Path(path).unlink(missing_ok=True)


def remove_job_partials(job: Job) -> None:
    for partial in job.partials:
        try:
            partial.unlink(missing_ok=True)
        except OSError:
            pass
