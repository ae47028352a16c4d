"""The engine: order, batching, early stop, errors from the worker, and `run`'s checks."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

from streamsink import run
from streamsink.engine import iterate
from streamsink.types import raw_states
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


def test_run_is_lazy_and_stops_early(tmp_path, tiny_checkpoint, monkeypatch):
    import gc
    import weakref

    import streamsink.api
    import streamsink.sources
    from clips import make_clip

    sample_clip = make_clip(tmp_path / "long.mp4", frames=200)  # longer than the engine reads ahead

    opened, loaded = [], []
    real_open, real_load = streamsink.sources.open_source, streamsink.api.load_detector

    def load(*args, **kwargs):
        detector = real_load(*args, **kwargs)
        loaded.append(weakref.ref(detector))
        return detector

    monkeypatch.setattr(streamsink.sources, "open_source", lambda *a, **k: opened.append(real_open(*a, **k)) or opened[-1])
    monkeypatch.setattr(streamsink.api, "load_detector", load)
    results = run(str(sample_clip), ["dog"], model=str(tiny_checkpoint))
    assert opened == [] and loaded == [], "nothing is opened or loaded before iterating"
    first = next(results)
    assert first.index == 0 and first.frame.image.shape == (120, 160, 3)
    assert len(opened) == 1 and not opened[0].closed and len(loaded) == 1
    results.close()
    del first
    gc.collect()
    assert opened[0].closed, "stopping early closes the source"
    assert loaded[0]() is None, "stopping early releases the model"


class LiveFrames:
    """A live-looking source: `rate` frames per second from a thread, newest kept, like LatestFrames."""

    is_live = True

    def __init__(self, n: int, rate: float) -> None:
        self.n, self.rate = n, rate
        self.closed = False

    def __iter__(self):
        start = time.monotonic()
        for i in range(self.n):
            delay = start + i / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if self.closed:
                return
            yield Frame(np.full((8, 8, 3), i % 256, np.uint8), index=i, pts=i / self.rate, captured_at=time.monotonic())

    def close(self) -> None:
        self.closed = True


def test_live_batches_leave_after_the_latency_budget():
    detector = CountingDetector()
    results = list(iterate(LiveFrames(12, rate=50.0), detector, batch_size=4, max_latency=0.0))
    assert [r.index for r in results] == list(range(12))
    assert max(detector.batch_sizes) <= 2  # an idle detector answers frames as they come


def test_live_batches_fill_while_the_detector_is_busy():
    detector = CountingDetector(delay=0.1)
    results = list(iterate(LiveFrames(24, rate=100.0), detector, batch_size=4, max_latency=0.05))
    assert [r.index for r in results] == sorted(r.index for r in results)
    assert max(detector.batch_sizes) == 4 and len(detector.batch_sizes) < 12


def test_render_runs_in_the_engine():
    results = list(iterate(frames(5), CountingDetector(), batch_size=2,
                           render=lambda result: np.zeros((2, 2, 3), np.uint8) + len(result.raw)))
    assert [int(r.image[0, 0, 0]) for r in results] == [1, 0, 1, 0, 1]


def test_staged_detector_runs_each_stage_once_per_batch_in_order():
    calls: list[tuple[str, int]] = []

    class Staged(CountingDetector):
        def prepare(self, batch):
            calls.append(("prepare", batch[0].index))
            return batch

        def infer(self, batch):
            calls.append(("infer", batch[0].index))
            return self(batch)

        def finish(self, found):
            calls.append(("finish", len(found)))
            return found

    results = list(iterate(frames(6), Staged(), batch_size=3))
    assert [r.index for r in results] == list(range(6))
    assert sorted(calls) == sorted([("prepare", 0), ("prepare", 3), ("infer", 0), ("infer", 3),
                                    ("finish", 3), ("finish", 3)])


def test_stage_errors_reach_the_caller():
    class BrokenPrepare(CountingDetector):
        def prepare(self, batch):
            raise ValueError("bad frame")

        def infer(self, item):
            return item

        def finish(self, item):
            return item

    with pytest.raises(ValueError, match="bad frame"):
        list(iterate(frames(3), BrokenPrepare()))


def test_cpu_threads_are_set_for_the_run_and_restored():
    torch = pytest.importorskip("torch")
    from streamsink.engine import default_threads

    seen = []

    class OnCpu(CountingDetector):
        device = torch.device("cpu")

        def __call__(self, batch):
            seen.append(torch.get_num_threads())
            return super().__call__(batch)

    assert (default_threads(4), default_threads(4, heavy=True), default_threads(1)) == (3, 4, 1)
    expected = max(1, (os.cpu_count() or 1) - 1)  # a small model leaves decoding and encoding a core
    before = torch.get_num_threads()
    torch.set_num_threads(expected + 1)  # so that the run has something to change
    try:
        list(iterate(frames(4), OnCpu(), batch_size=2))
        assert seen == [expected] * 2
        assert torch.get_num_threads() == expected + 1
    finally:
        torch.set_num_threads(before)
    list(iterate(frames(2), OnCpu(), batch_size=2, threads=0))
    assert seen[-1] == before


def _sequential(detector, clip, classes, batch_size, smoother):
    """The same stages one after another, in one thread: what the pipelined engine must equal."""
    from streamsink.engine import batches
    from streamsink.sources import open_source

    out = []
    with open_source(str(clip)) as source:
        for batch in batches(source, batch_size):
            found = detector.detect([frame.image for frame in batch], classes, threshold=0.0)
            for frame, raw in zip(batch, found):
                out.append((frame.index, raw, smoother.update(raw), dict(smoother.states)))
    return out


def _assert_same(pipelined, sequential):
    assert [r.index for r in pipelined] == [index for index, *_ in sequential]
    for result, (_, raw, shown, states) in zip(pipelined, sequential):
        for ours, theirs in ((result.raw, raw), (result.detections, shown)):
            np.testing.assert_array_equal(ours.xyxy, theirs.xyxy)
            np.testing.assert_array_equal(ours.scores, theirs.scores)
            np.testing.assert_array_equal(ours.class_id, theirs.class_id)
        assert result.states == states


@pytest.mark.parametrize("batch_size", [1, 5])
def test_pipelined_engine_equals_the_stages_run_one_after_another(sample_clip, tiny_checkpoint, batch_size):
    pytest.importorskip("torch")
    from streamsink.detector import SinkDetector
    from streamsink.stages import make_detect
    from streamsink.smoother import TemporalSmoother
    from streamsink.sources import open_source

    detector = SinkDetector.from_pretrained(tiny_checkpoint, sinks=16, device="cpu")
    classes = ("dog", "tractor")
    sequential = _sequential(detector, sample_clip, classes, batch_size, TemporalSmoother(classes))
    with open_source(str(sample_clip)) as source:
        pipelined = list(iterate(source, make_detect(detector, classes, 0.0), batch_size=batch_size,
                                 smoother=TemporalSmoother(classes)))
    _assert_same(pipelined, sequential)
    assert sum(len(r.raw) for r in pipelined) > 0


@pytest.mark.gpu
def test_cuda_pipelined_engine_equals_sequential_detect(sample_clip, tiny_checkpoint):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    from streamsink.detector import SinkDetector
    from streamsink.stages import make_detect
    from streamsink.smoother import TemporalSmoother
    from streamsink.sources import open_source

    detector = SinkDetector.from_pretrained(tiny_checkpoint, sinks=16, device="cuda")
    classes = ("dog", "tractor")
    sequential = _sequential(detector, sample_clip, classes, 4, TemporalSmoother(classes))
    with open_source(str(sample_clip)) as source:
        pipelined = list(iterate(source, make_detect(detector, classes, 0.0), batch_size=4, in_flight=3,
                                 smoother=TemporalSmoother(classes)))
    _assert_same(pipelined, sequential)


@pytest.mark.gpu
@pytest.mark.parametrize("option", ["cuda_graphs", "compile"])
def test_cuda_graphs_and_compile_match_eager(tiny_checkpoint, option):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    from streamsink.detector import SinkDetector

    eager = SinkDetector.from_pretrained(tiny_checkpoint, sinks=16, device="cuda")
    fast = SinkDetector.from_pretrained(tiny_checkpoint, sinks=16, device="cuda", **{option: True})
    rng = np.random.default_rng(0)
    pixels = fast.preprocess([rng.integers(0, 256, (120, 160, 3), dtype=np.uint8) for _ in range(4)])
    text = fast.encode_prompt("dog,tractor")
    for _ in range(3):  # the first call captures or compiles, later ones replay
        ours = fast._runner(pixels, text)
    # The fast path really ran: a fallback to eager drops the graphs or the compiled forward (with a warning).
    assert (len(fast._runner.graphs or {}) == 1) if option == "cuda_graphs" else (fast._runner.compiled is not None)
    theirs = eager.forward(pixels, "dog,tractor")
    torch.testing.assert_close(ours.pred_boxes.float(), theirs.pred_boxes.float(), atol=1e-2, rtol=0)
    torch.testing.assert_close(ours.logits.float(), theirs.logits.float(), atol=5e-2, rtol=0)
