"""`RunSettings`: every option of a run, once, with one `validate()`.

`streamsink.run`, the `process`/`watch` commands and the Ray archive all
build one of these and hand it on unchanged, so an option added here reaches
all three (the CLI's parser and the archive read the fields, they do not list
them again). `validate()` needs neither torch nor a model, so bad settings
fail before anything is opened or loaded; whether a device exists on this
machine is a separate, later question (`streamsink.detector.device`).

Adding an option: a field here (and its check in `validate`), and, for the
command line, a flag of the same name in `streamsink/cli/parser.py`. Nothing
else: `run(**options)`, `settings_from_args`, `process_archive` and its
replicas, and the archive's resume fingerprint all read the fields by name
(tests/test_settings.py walks the parser and fails for a flag that is neither
a field nor an output option).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamsink.errors import StreamsinkError
from streamsink.types import SINK_INITS, is_threshold, thresholds_of

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "iSEE-Laboratory/llmdet_tiny"

# Latency budget of a live batch: it leaves when full or when its first frame is this old.
# 0 takes only the frames already waiting: a detector that keeps up answers each frame
# alone, a busy one gets the frames that piled up meanwhile (benchmarks/RESULTS.md, 4).
DEFAULT_MAX_LATENCY = 0.0

NO_PROFILE = "none"  # RunSettings.profile that takes no profile, not even the model folder's
BACKENDS = ("auto", "torch", "openvino")
DTYPES = ("auto", "fp32", "fp16", "bf16", "float32", "float16", "bfloat16")
_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


class SettingsError(StreamsinkError, ValueError):
    """A setting out of its range; `name` is the field, so the CLI can name its own flag."""

    def __init__(self, name: str, words: str, rule: str) -> None:
        super().__init__(f"{words} {rule}")
        self.name = name
        self.words = words
        self.rule = rule


def _words(name: str) -> str:
    return name.replace("_", " ") if name in ("batch_size", "max_latency") else name


def check_int(name: str, value: object, least: int, *, optional: bool = False) -> None:
    """An int (not a bool) >= `least`; None passes when `optional`."""
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise SettingsError(name, _words(name), f"must be an int, got {value!r}")
    if value < least:
        raise SettingsError(name, _words(name), f"must be >= {least}, got {value}")


def check_choice(name: str, value: object, choices: tuple[str, ...], shown: tuple[str, ...] | None = None) -> None:
    if value not in choices:
        raise SettingsError(name, name, f"must be one of {', '.join(shown or choices)}, got {value!r}")


@dataclass(frozen=True)
class RunSettings:
    """How a run detects, smooths and reads its sources; the same for every source of the run.

    model: hub id or local checkpoint directory.
    device: "auto", "cpu", "cuda", "cuda:N" or "mps".
    dtype: "auto" (fp16 on CUDA, fp32 elsewhere), "fp32", "fp16" or "bf16".
    sinks, sink_init: attention sinks appended to every prompt (0: the stock model).
    threshold: minimum class score in [0, 1].
    class_thresholds: a threshold of its own for some classes, by name (what a calibrated profile
        sets: a detector scores some classes higher than others); other classes take `threshold`.
    batch_size: frames per forward pass.
    smooth, smoother_options: temporal smoothing on or off, and
        `TemporalSmoother`'s keyword arguments.
    compile, cuda_graphs: the detector's fast paths (each falls back to eager where it fails).
    backend: what runs the per-frame graph: "torch", "openvino" (CPU; needs streamsink[openvino])
        or "auto" (OpenVINO on a CPU where it is installed, else torch). With OpenVINO, dtype
        "bf16" is its bf16 inference (opt-in: it moves scores), "auto"/"fp32" gives torch's detections.
    threads: the CPU threads of the forward pass, torch's or OpenVINO's (None: a small torch model
        leaves decoding and encoding a core, OpenVINO and heavy models take every core; 0: the library's own).
    max_latency: seconds a live batch waits to fill.
    buffer, retries: live sources: frames kept before the oldest is dropped,
        and network reconnect attempts in a row.
    profile: a profile from `streamsink calibrate` (a JSON path) that sets threshold, class
        thresholds, sinks and sink_init; None takes the `profile.json` inside a local model's
        folder if there is one; "none" takes no profile. A setting the caller moved off its
        default is kept (a threshold given so also drops the profile's class thresholds).
    """

    model: str = DEFAULT_MODEL
    device: str = "auto"
    dtype: str = "auto"
    sinks: int = 16
    sink_init: str = "mean"
    threshold: float = 0.3
    class_thresholds: Mapping[str, float] = field(default_factory=dict)
    batch_size: int = 4
    smooth: bool = True
    smoother_options: Mapping[str, Any] = field(default_factory=dict)
    compile: bool = False
    cuda_graphs: bool = False
    backend: str = "auto"
    threads: int | None = None
    max_latency: float = DEFAULT_MAX_LATENCY
    buffer: int = 2
    retries: int = 5
    profile: str | None = None

    def __post_init__(self) -> None:
        # None was the archive's word for "auto"; one spelling from here on.
        if self.dtype is None:
            object.__setattr__(self, "dtype", "auto")
        object.__setattr__(self, "smoother_options", dict(self.smoother_options or {}))
        object.__setattr__(self, "class_thresholds", dict(self.class_thresholds or {}))
        if not isinstance(self.model, str):
            object.__setattr__(self, "model", str(self.model))

    def validate(self) -> RunSettings:
        """Raise a one-line `SettingsError` (a ValueError) for the first setting out of range; else return
        the settings with their profile applied (`with_profile`; a bad profile is a `ProfileError`).

        The smoother's own options are checked by building one, which costs nothing.
        """
        return self.with_profile()._checked()

    def with_profile(self) -> RunSettings:
        """These settings with the profile's thresholds, sinks and sink_init where they are at their defaults.

        The result names the profile's file; applying it again changes nothing (its values are in).
        """
        from streamsink.profile import default_profile, load_profile

        if self.profile == NO_PROFILE:
            return self
        path = self.profile if self.profile is not None else default_profile(self.model)
        if path is None:
            return self
        profile = load_profile(path, self.model)
        defaults = RunSettings()
        changes = {k: v for k, v in profile.settings().items() if getattr(self, k) == getattr(defaults, k)}
        if self.threshold != defaults.threshold:  # the profile's class thresholds were measured with its threshold
            changes.pop("class_thresholds", None)
        logger.info("profile %s sets %s", path, changes or "nothing (every setting of it given explicitly)")
        return dataclasses.replace(self, profile=str(path), **changes)

    def _checked(self) -> RunSettings:
        check_threshold(self.threshold)
        for name, value in self.class_thresholds.items():
            if not isinstance(name, str) or not name.strip():
                raise SettingsError("class_thresholds", "class thresholds",
                                    f"must be keyed by class names, got {name!r}")
            check_threshold(value, f"threshold of {name!r}", "class_thresholds")
        check_int("batch_size", self.batch_size, 1)
        check_max_latency(self.max_latency)
        check_int("sinks", self.sinks, 0)
        check_choice("sink_init", self.sink_init, SINK_INITS)
        check_device(self.device)
        check_choice("dtype", self.dtype, DTYPES, ("auto", "fp32", "fp16", "bf16"))
        check_choice("backend", self.backend, BACKENDS)
        if self.backend == "openvino" and self.dtype in ("fp16", "float16"):
            raise SettingsError("dtype", "dtype", "fp16 does not run on the OpenVINO backend; use fp32 or bf16")
        check_int("threads", self.threads, 0, optional=True)
        check_int("buffer", self.buffer, 1)
        check_int("retries", self.retries, 0)
        if self.smooth and self.smoother_options:
            from streamsink.smoother import TemporalSmoother

            try:
                TemporalSmoother(("x",), **self.smoother_options)
            except TypeError as error:  # a name the smoother does not take: one line, not a traceback
                raise SettingsError("smoother_options", "smoother_options", f"has an unknown option: {error}") from None
        return self

    def thresholds_of(self, classes: Sequence[str]) -> tuple[float, ...]:
        """Each class's display threshold, in the order given: its own, else `threshold`."""
        return thresholds_of(classes, self.threshold, self.class_thresholds)

    @property
    def torch_dtype(self) -> str | None:
        """The dtype as `SinkDetector` takes it: None for auto."""
        return None if self.dtype == "auto" else self.dtype

    def replace(self, **changes: Any) -> RunSettings:
        return dataclasses.replace(self, **changes)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))


def settings_from(settings: RunSettings | None, options: Mapping[str, Any]) -> RunSettings:
    """`settings` with `options` (RunSettings field names) applied, validated; a wrong name is a TypeError."""
    base = settings if settings is not None else RunSettings()
    return dataclasses.replace(base, **options).validate() if options else base.validate()


def cache_folder() -> Path:
    """Where streamsink keeps what it builds once (OpenVINO graphs, the GStreamer loader file):
    $STREAMSINK_CACHE, else $XDG_CACHE_HOME/streamsink, else ~/.cache/streamsink."""
    if os.environ.get("STREAMSINK_CACHE"):
        return Path(os.environ["STREAMSINK_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "streamsink"


def check_threshold(threshold: float, what: str = "threshold", name: str = "threshold") -> None:
    if not is_threshold(threshold):
        raise SettingsError(name, what, f"must be in [0, 1], got {threshold!r}")


def check_max_latency(max_latency: float) -> None:
    if not max_latency >= 0.0:
        raise SettingsError("max_latency", "max latency", f"must be >= 0 seconds, got {max_latency}")


def check_device(device: object) -> None:
    """The spelling of a device; whether this machine has it is `resolve_device`'s question."""
    if not isinstance(device, str) or not _DEVICE.fullmatch(device):
        raise SettingsError("device", "device", f"must be auto, cpu, cuda or cuda:N, got {device!r}")
