"""Calibrated profiles: the threshold and sinks that `streamsink calibrate` chose for one model.

A threshold picked by trial and error is a guess; a profile is a measurement. It
records the display threshold (and the classes that need one of their own: a
detector scores some classes higher than others), the number of attention sinks and their init that
gave the highest recall within a false-alarm budget on a labelled set, what they
cost, and which model they were measured on, so a profile never silently applies
to another model. A `profile.json` inside a local model's folder applies by
default; explicit settings override its values.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from streamsink.errors import StreamsinkError
from streamsink.types import SINK_INITS, is_threshold

PROFILE_NAME = "profile.json"  # the file inside a model folder that applies by default
PROFILE_VERSION = 1
_HASHED_BYTES = 1 << 20  # of each weights file, from each end: enough to tell retrained weights apart, fast for GBs


class ProfileError(StreamsinkError, ValueError):
    """A profile that is missing, malformed, or measured on another model."""


@dataclass(frozen=True)
class Profile:
    """The settings a calibration chose (`threshold`, `sinks`, `sink_init`) and what they were measured on.

    class_thresholds: the classes whose own threshold differs from `threshold`, by name; a class
        the calibration set did not have takes `threshold`.

    model: the model's fingerprint (`model_fingerprint`); model_name: how it was named, for messages.
    max_false_alarms: the budget on the false-"present" rate it was chosen for.
    measured: the chosen settings' figures on the calibration set (false_present, missed, ...).
    """

    threshold: float
    sinks: int
    sink_init: str
    model: str
    model_name: str = ""
    max_false_alarms: float | None = None
    dataset: str = ""
    measured: dict[str, float] = field(default_factory=dict)
    class_thresholds: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not is_threshold(self.threshold):
            raise ProfileError(f"profile threshold must be a number in [0, 1], got {self.threshold!r}")
        if isinstance(self.sinks, bool) or not isinstance(self.sinks, int) or self.sinks < 0:
            raise ProfileError(f"profile sinks must be an int >= 0, got {self.sinks!r}")
        if self.sink_init not in SINK_INITS:
            raise ProfileError(f"profile sink_init must be one of {', '.join(SINK_INITS)}, got {self.sink_init!r}")
        if not isinstance(self.model, str) or not self.model:
            raise ProfileError("profile names no model fingerprint")
        if not isinstance(self.class_thresholds, dict) or not all(
                isinstance(k, str) and is_threshold(v) for k, v in self.class_thresholds.items()):
            raise ProfileError("profile class_thresholds must map class names to numbers in [0, 1], "
                               f"got {self.class_thresholds!r}")

    def settings(self) -> dict[str, object]:
        """The run settings this profile sets, by their RunSettings names."""
        return {"threshold": float(self.threshold), "class_thresholds": dict(self.class_thresholds),
                "sinks": int(self.sinks), "sink_init": self.sink_init}

    def to_json(self) -> dict:
        data = asdict(self)
        data["measured"] = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in self.measured.items()}
        return {"streamsink_profile": PROFILE_VERSION, **data}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        return path


def model_fingerprint(model: str | Path) -> str:
    """What identifies a model: for a local folder, a hash of its config and of its weights' sizes and
    ends (retrained weights of one architecture differ); for a hub id, the id itself."""
    folder = Path(model)
    config = folder / "config.json"
    if not config.is_file():
        return str(model)
    digest = hashlib.sha256(config.read_bytes())
    for weights in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
        size = weights.stat().st_size
        digest.update(f"{weights.name}:{size}".encode())
        with weights.open("rb") as f:
            digest.update(f.read(_HASHED_BYTES))
            f.seek(max(0, size - _HASHED_BYTES))
            digest.update(f.read(_HASHED_BYTES))
    return "sha256:" + digest.hexdigest()[:32]


def load_profile(path: str | Path, model: str | Path | None = None) -> Profile:
    """Read a profile; with `model`, refuse one that was measured on another model. One-line ProfileError."""
    path = Path(path)
    if not path.is_file():
        raise ProfileError(f"no such profile: {path}")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ProfileError(f"not a streamsink profile: {path} ({type(error).__name__})") from None
    if not isinstance(data, dict) or data.get("streamsink_profile") != PROFILE_VERSION:
        raise ProfileError(f"not a streamsink profile (version {PROFILE_VERSION}): {path}")
    known = {"threshold", "sinks", "sink_init", "model", "model_name", "max_false_alarms", "dataset", "measured",
             "class_thresholds"}
    missing = {"threshold", "sinks", "sink_init", "model"} - data.keys()
    if missing:
        raise ProfileError(f"profile {path} lacks {', '.join(sorted(missing))}")
    try:
        profile = Profile(**{k: v for k, v in data.items() if k in known})
    except ProfileError as error:
        raise ProfileError(f"{error} in {path}") from None
    if model is not None and profile.model != model_fingerprint(model):
        raise ProfileError(f"profile {path} was calibrated for another model ({profile.model_name or profile.model}), "
                           f"not {model}; run 'streamsink calibrate' for it")
    return profile


def default_profile(model: str | Path) -> Path | None:
    """The `profile.json` inside a local model folder, if there is one."""
    candidate = Path(model) / PROFILE_NAME
    return candidate if candidate.is_file() else None
