"""The one run path: load the detector, build the smoothers, run any number of sources.

`streamsink.run`, `streamsink process`/`watch` and the archive's replicas all
come through `detect_sources`; one source is the case N = 1 (an opened
`Source`, whose frames carry its name), several are a `Multiplexer`. What a
run does is decided by one `RunSettings`, so an option reaches every caller
the moment it is a field there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from streamsink.detector.prompt import parse_classes
from streamsink.engine import iterate
from streamsink.multiplex import Multiplexer, prompts_per_source
from streamsink.settings import DEFAULT_MODEL, RunSettings, settings_from
from streamsink.stages import LivePrompts, RoutedDetect
from streamsink.types import Frame, Result

__all__ = ["DEFAULT_MODEL", "Result", "RunSettings", "detect_sources", "load_detector", "run", "smoothers_for"]


def load_detector(settings: RunSettings, *, sinks: int | None = None, quiet: bool = False) -> Any:
    """The `SinkDetector` that `settings` describe (`sinks` overrides theirs, as `explain` and `eval` need).

    quiet: silence transformers' and the hub's progress bars and retry
    chatter, for the CLI and the archive, whose users see one status line
    and, on failure, one error line. A library caller keeps its own logging.
    """
    if quiet:
        from huggingface_hub.utils import logging as hub_logging
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        transformers_logging.set_verbosity_error()
        hub_logging.set_verbosity_error()
    from streamsink.detector import SinkDetector

    return SinkDetector.from_pretrained(
        settings.model,
        sinks=settings.sinks if sinks is None else sinks,
        sink_init=settings.sink_init,
        device=settings.device,
        dtype=settings.torch_dtype,
        compile=settings.compile,
        cuda_graphs=settings.cuda_graphs,
        backend=settings.backend,
    )


def smoothers_for(prompts: Mapping[str, tuple[str, ...]], settings: RunSettings) -> dict[str, Any] | None:
    """One TemporalSmoother per source, for that source's classes; None when smoothing is off."""
    if not settings.smooth:
        return None
    from streamsink.smoother import TemporalSmoother

    options = {"threshold": settings.threshold, "class_thresholds": settings.class_thresholds,
               **settings.smoother_options}
    return {name: TemporalSmoother(classes, **options) for name, classes in prompts.items()}


class _SmootherOfFrame:
    """The engine's `smoother_for`: each source's smoother, started afresh when its prompt changed.

    A frame's raw detections name the classes it was detected with, so the
    switch happens at the first frame of the new prompt, not when the change
    was asked for (frames in flight keep the old smoother).
    """

    def __init__(self, smoothers: dict[str, Any], settings: RunSettings) -> None:
        self._smoothers = smoothers
        self._settings = settings

    def __call__(self, frame: Frame, raw: Any) -> Any:
        smoother = self._smoothers[frame.source]
        if raw.labels and tuple(smoother.labels) != raw.labels:
            smoother = self._smoothers[frame.source] = smoothers_for({frame.source: raw.labels}, self._settings)[frame.source]
        return smoother


def detection_floor(settings: RunSettings, classes: Sequence[str]) -> tuple[float, ...]:
    """Each class's score the detector keeps boxes from: its threshold, or with smoothing the lowest score
    the temporal stage reads (its `floors`: evidence `margin` under the threshold, so weak frames can
    confirm an object, and the weaker duplicate queries that back one, down to `support_floor`)."""
    if not settings.smooth:
        return settings.thresholds_of(classes)
    return smoothers_for({"": tuple(classes)}, settings)[""].floors


def detect_sources(
    frames: Iterable[Frame],
    prompts: Mapping[str, tuple[str, ...]] | LivePrompts,
    settings: RunSettings,
    *,
    detector: Any | None = None,
    render: Callable[[Result], np.ndarray] | None = None,
) -> Iterator[Result]:
    """Results of every frame of `frames`, each detected with its source's prompt and smoothed on its own.

    frames: an opened `Source` or a `Multiplexer` (anything whose frames are
        named by `Frame.source`, each name a key of `prompts`); it is closed
        when the iteration ends or stops early.
    prompts: each source's classes; a `LivePrompts` can change them while the
        run goes on (from the next batch; that source's smoother restarts).
    detector: an already loaded `SinkDetector`; otherwise `settings` load one.
    render: `iterate`'s: drawing in the engine's finish stage.
    """
    if detector is None:
        detector = load_detector(settings)
    smoothers = smoothers_for(dict(prompts.items()), settings)
    yield from iterate(
        frames,
        RoutedDetect(detector, prompts, lambda classes: detection_floor(settings, classes)),
        batch_size=settings.batch_size,
        smoother_for=_SmootherOfFrame(smoothers, settings) if smoothers else None,
        max_latency=settings.max_latency,
        threads=settings.threads,
        render=render,
    )


def run(
    source: str | int | Sequence[str | int],
    prompt: str | Sequence[str] | Mapping[str | int, str | Sequence[str]],
    settings: RunSettings | None = None,
    *,
    detector: Any | None = None,
    **options: Any,
) -> Iterator[Result]:
    """Detect `prompt`'s classes in every frame of `source`, lazily, one `Result` per frame.

    `source` is anything `open_source` reads: a file, "camera0", a URL, a folder
    or glob. The run is described by `settings` (a `RunSettings`) and/or its
    fields as keywords (`model=`, `threshold=`, `dtype=`, `smoother_options=`
    ...; keywords override `settings`). Pass an already loaded `detector` (a
    `SinkDetector`) to share one model across runs. Settings and the prompt
    are checked now; the source and the model are opened when iteration
    starts and released when it ends or stops early.

    Several sources (a list or tuple) share one detector and its batches;
    `prompt` is then one prompt for all or a mapping from each source (as
    given, or its name) to its own. Results of all sources come interleaved,
    each source's in order, named by `result.frame.source`; every source is
    smoothed on its own. A source that fails is logged (a warning of
    logger "streamsink.multiplex") and left out, the others go on; to watch
    each source's state while running, build a `streamsink.Multiplexer` and
    pass it to `streamsink.detect_sources` as the CLI does.
    """
    settings = settings_from(settings, options)
    from streamsink.sources import expand_inputs

    if not isinstance(source, (list, tuple)):
        # A folder or glob of videos is one source per video; a prompt per source needs the multi-source path.
        if not isinstance(prompt, Mapping) and expand_inputs([source]) == [source]:
            return _run_one(source, parse_classes(prompt), settings, detector)
        source = [source]
    specs: list[str | int] = []
    given: list[str | int] = []
    for each in source:
        expanded = expand_inputs([each])
        specs += expanded
        given += [each] * len(expanded)
    mux = Multiplexer(specs, buffer=settings.buffer, retries=settings.retries)
    prompts = prompts_per_source(mux.names, specs, prompt, given)
    return _run_many(mux, prompts, settings, detector)


def _run_one(source: str | int, classes: tuple[str, ...], settings: RunSettings, detector: Any) -> Iterator[Result]:
    """One source, opened when iterated: its errors are the caller's (with several, a failure is logged)."""
    from streamsink.sources import open_source

    with open_source(source, buffer=settings.buffer, retries=settings.retries) as frames:
        yield from detect_sources(frames, {frames.name: classes}, settings, detector=detector)


def _run_many(mux: Multiplexer, prompts: dict[str, tuple[str, ...]], settings: RunSettings,
              detector: Any) -> Iterator[Result]:
    with mux:
        yield from detect_sources(mux, prompts, settings, detector=detector)
