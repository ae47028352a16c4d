"""Presence events: what alerting and fleet collectors want instead of a state per frame.

A camera that sees a dog for an hour yields one "present" event, not 90,000
frame records. Events come from the smoothed states, so a flickering false
positive raises none.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any


def state_changes(results: Iterable[Any]) -> Iterator[dict]:
    """One event per class whose state differs from its source's previous frame.

    `results` are `streamsink.run` results, of one source or several
    interleaved (each source is followed on its own, by `result.frame.source`).
    A source's first frame sets its baseline and raises no event. Each event:
    {"source", "class", "state" ("present" | "absent"), "frame", "pts"}.
    """
    previous: dict[str, dict[str, str]] = {}
    for result in results:
        source = result.frame.source
        before = previous.get(source)
        if before is not None:
            for label, state in result.states.items():
                if state != before.get(label):
                    yield {"source": source, "class": label, "state": state, "frame": result.index,
                           "pts": round(result.pts, 3)}
        previous[source] = dict(result.states)
