"""Presence events: what alerting and fleet collectors want instead of a state per frame.

A camera that sees a dog for an hour yields one "present" event, not 90,000
frame records. Events come from the smoothed states, so a flickering false
positive raises none.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from streamsink.types import State


def state_changes(results: Iterable[Any]) -> Iterator[dict]:
    """One event per class whose state differs from its source's previous frame.

    `results` are `streamsink.run` results, of one source or several
    interleaved (each source is followed on its own, by `result.frame.source`).
    The rule and the fields are `StateChanges`'.
    """
    changes = StateChanges()
    for result in results:
        yield from changes.update(result)


class StateChanges:
    """Each source's states followed from result to result: `update(result)` gives that frame's changes.

    One rule for every consumer (`state_changes`, the web page's recent changes,
    alerts): a source's first frame, and a class that just entered its prompt,
    set a baseline and raise nothing; after that an event is raised exactly
    when a class's state differs from its previous frame's. An event:
    {"source", "class", "state" ("present" | "absent"), "frame", "pts"}, and,
    when it turns present, "score" and "box" of the class's strongest detection.
    """

    def __init__(self) -> None:
        self._previous: dict[str, dict[str, str]] = {}

    def update(self, result: Any) -> list[dict]:
        source = result.frame.source
        before = self._previous.get(source, {})
        self._previous[source] = dict(result.states)
        events = []
        for label, state in result.states.items():
            if label in before and state != before[label]:
                event = {"source": source, "class": label, "state": str(state), "frame": result.index,
                         "pts": round(result.pts, 3)}
                if state == State.PRESENT:
                    event.update(_strongest(getattr(result, "detections", None), label))
                events.append(event)
        return events


def _strongest(detections: Any, label: str) -> dict:
    """{"score", "box"} of the best detection of `label`, or nothing when it has no box."""
    if detections is None or label not in detections.labels:
        return {}
    mine = detections.class_id == detections.labels.index(label)
    if not mine.any():
        return {}
    best = int(np.flatnonzero(mine)[np.argmax(detections.scores[mine])])
    return {"score": round(float(detections.scores[best]), 4), "box": [round(float(v), 2) for v in detections.xyxy[best]]}
