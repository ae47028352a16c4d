"""The engine: order, batching, early stop, errors from the worker, and `run`'s checks."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from streamsink.engine import iterate, raw_states, run
from streamsink.types import Detections, Frame

LABELS = ("dog", "tractor")


def frames(n: int, closed: list | None = None):
    try:
        for i in range(n):
            yield Frame(np.full((8, 8, 3), i % 256, np.uint8), index=i, pts=i / 25)
    finally:
        if closed is not None:
            closed.append(True)


class CountingDetector:
    """Finds one dog on frames whose pixel value is even; records batch sizes."""

    def __init__(self, delay: float = 0.0) -> None:
        self.batch_sizes: list[int] = []
        self.delay = delay

    def __call__(self, batch: list[Frame]) -> list[Detections]:
        self.batch_sizes.append(len(batch))
        time.sleep(self.delay)
        out = []
        for frame in batch:
            if frame.image[0, 0, 0] % 2 == 0:
                out.append(Detections([[1, 1, 4, 4]], [0.9], [0], LABELS))
            else:
                out.append(Detections.empty(LABELS))
        return out


def test_every_frame_in_order_and_batched():
    detector = CountingDetector()
    results = list(iterate(frames(10), detector, batch_size=4))
    assert [r.index for r in results] == list(range(10))
    assert detector.batch_sizes == [4, 4, 2]
    assert [len(r.raw) for r in results] == [1, 0] * 5
    assert results[0].states == {"dog": "present", "tractor": "absent"}
    assert results[1].states == {"dog": "absent", "tractor": "absent"}
    assert all(r.detections is r.raw for r in results)


def test_smoother_output_is_what_is_shown():
    class HalfSmoother:
        states = {"dog": "present", "tractor": "absent"}

        def update(self, detections: Detections) -> Detections:
            return detections[detections.scores > 0.95]

    results = list(iterate(frames(4), CountingDetector(), batch_size=2, smoother=HalfSmoother()))
    assert [len(r.raw) for r in results] == [1, 0, 1, 0]
    assert [len(r.detections) for r in results] == [0, 0, 0, 0]
    assert all(r.states == HalfSmoother.states for r in results)


def test_early_stop_closes_source_and_stops_worker():
    before = threading.active_count()
    closed: list = []
    source = frames(1000, closed)
    results = iterate(source, CountingDetector(delay=0.001), batch_size=2)
    for result in results:
        if result.index == 5:
            break
    results.close()
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == before
    assert closed == [True]


def test_detector_error_reaches_the_caller():
    def broken(batch):
        raise RuntimeError("forward pass failed")

    with pytest.raises(RuntimeError, match="forward pass failed"):
        list(iterate(frames(3), broken))


def test_wrong_number_of_results_is_an_error():
    with pytest.raises(RuntimeError, match="returned 0 results for 2 frames"):
        list(iterate(frames(2), lambda batch: [], batch_size=2))


def test_raw_states_names_every_class():
    assert raw_states(Detections.empty(LABELS)) == {"dog": "absent", "tractor": "absent"}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"prompt": " , ,"}, "prompt names no class"),
        ({"threshold": -0.1}, "threshold must be in [0, 1], got -0.1"),
        ({"batch_size": 0}, "batch size must be >= 1, got 0"),
    ],
)
def test_run_checks_settings_before_opening_anything(kwargs, message):
    args = {"prompt": "dog", **kwargs}
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        run("does-not-matter.mp4", **args)


def test_run_end_to_end_with_a_tiny_checkpoint(sample_clip, tiny_checkpoint):
    results = run(str(sample_clip), "dog,tractor", model=str(tiny_checkpoint), threshold=0.0, batch_size=5)
    seen = [(r.index, set(r.states)) for r in results]
    assert [i for i, _ in seen] == list(range(12))
    assert all(states == {"dog", "tractor"} for _, states in seen)


def test_run_is_lazy_and_stops_early(sample_clip, tiny_checkpoint):
    results = run(str(sample_clip), ["dog"], model=str(tiny_checkpoint))
    first = next(results)
    assert first.index == 0 and first.frame.image.shape == (120, 160, 3)
    results.close()
