"""The `streamsink` GStreamer element: the sink-patched detector and the temporal stage on every frame, in place.

A video filter (GstBase.BaseTransform, in place): raw RGB, BGR, RGBx or BGRx
frames of any size pass through unchanged, in order, with their timestamps,
unless `draw` is set (then the boxes and the status strip are drawn on them,
as the renderer draws them). For every frame it posts an element message
named "streamsink" whose string field "json" is the frame's JSONL object
(`frame`, `pts`, `detections`, `states`), and attaches one
GstVideoRegionOfInterestMeta per shown box (its type is the label).

Settings are `RunSettings` (the same validation and profile as `process`);
`interval` N runs the detector on every Nth frame and carries the last boxes
and states over the frames between. A failure (missing model, over-long
prompt) is a GStreamer error on the bus with streamsink's one-line message.

Loaded by GStreamer's Python plugin loader through `streamsink gst-path`; it
imports gi and must run under the Python GStreamer's bindings were built for.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstBase", "1.0")
gi.require_version("GstVideo", "1.0")
from gi.repository import GLib, GObject, Gst, GstBase, GstVideo  # noqa: E402

import numpy as np  # noqa: E402

from streamsink.settings import DEFAULT_MODEL, RunSettings  # noqa: E402

Gst.init(None)

FORMATS = ("RGB", "BGR", "RGBx", "BGRx")
_CAPS = Gst.Caps.from_string(f"video/x-raw,format={{ {', '.join(FORMATS)} }},"
                             "width=[1,2147483647],height=[1,2147483647],framerate=[0/1,2147483647/1]")
_RW = GObject.ParamFlags.READWRITE


_PROPERTIES = {
    "prompt": (str, "prompt", "classes to find, comma-separated; may change while playing", "", _RW),
    "model": (str, "model", "hub id or local checkpoint directory", DEFAULT_MODEL, _RW),
    "sinks": (int, "sinks", "attention-sink tokens appended to the prompt; 0 = stock model", 0, 1024, 16, _RW),
    "sink-init": (str, "sink-init", "how sink embeddings are set: mean, random or brackets", "mean", _RW),
    "threshold": (float, "threshold", "minimum class score", 0.0, 1.0, 0.3, _RW),
    "device": (str, "device", "auto, cpu, cuda or cuda:N", "auto", _RW),
    "backend": (str, "backend", "what runs the per-frame graph: auto, torch or openvino", "auto", _RW),
    "smooth": (bool, "smooth", "temporal smoothing (off: raw per-frame detections)", True, _RW),
    "profile": (str, "profile", "profile from 'streamsink calibrate' (empty: the model folder's; 'none')", "", _RW),
    "draw": (bool, "draw", "draw the boxes and the status strip on the frames", False, _RW),
    "interval": (int, "interval", "run the detector on every Nth frame; the frames between carry its boxes "
                 "and states", 1, 1_000_000, 1, _RW),
}
_DEFAULTS = {name: spec[-2] for name, spec in _PROPERTIES.items()}


class StreamsinkFilter(GstBase.BaseTransform):
    __gtype_name__ = "GstStreamsink"
    __gstmetadata__ = ("streamsink", "Filter/Analyzer/Video",
                       "Open-vocabulary detection that says when the named thing is not there (attention sinks)",
                       "streamsink")
    __gsttemplates__ = (Gst.PadTemplate.new("src", Gst.PadDirection.SRC, Gst.PadPresence.ALWAYS, _CAPS),
                        Gst.PadTemplate.new("sink", Gst.PadDirection.SINK, Gst.PadPresence.ALWAYS, _CAPS))
    __gproperties__ = dict(_PROPERTIES)  # PyGObject takes this dict away when it registers the class

    def __init__(self) -> None:
        super().__init__()
        self.set_in_place(True)
        self.set_passthrough(False)
        self._values: dict[str, Any] = dict(_DEFAULTS)
        self._lock = threading.Lock()
        self._detector: Any = None
        self._settings: RunSettings | None = None
        self._classes: tuple[str, ...] = ()
        self._smoother: Any = None
        self._renderer: Any = None
        self._info: Any = None
        self._frames = 0
        self._carried: tuple[Any, dict] | None = None

    # properties -------------------------------------------------------------------------------

    def do_get_property(self, spec: GObject.ParamSpec) -> Any:
        return self._values[spec.name]

    def do_set_property(self, spec: GObject.ParamSpec, value: Any) -> None:
        with self._lock:
            self._values[spec.name] = value

    # lifecycle --------------------------------------------------------------------------------

    def do_start(self) -> bool:
        """Check the settings and load the model; a failure is an error on the bus, and the pipeline stops."""
        try:
            from streamsink.api import load_detector
            from streamsink.detector.prompt import parse_classes

            values = self._values
            parse_classes(values["prompt"])
            self._settings = RunSettings(
                model=values["model"], sinks=values["sinks"], sink_init=values["sink-init"],
                threshold=values["threshold"], device=values["device"], backend=values["backend"],
                smooth=values["smooth"], profile=values["profile"] or None, batch_size=1).validate()
            self._detector = load_detector(self._settings, quiet=True)
            _set_threads(self._detector)
        except Exception as error:  # every failure is one line on the bus, never a traceback on stderr
            self._fail(error)
            return False
        self._frames = 0
        self._classes = ()
        return True

    def do_stop(self) -> bool:
        self._detector = self._smoother = None
        return True

    def do_set_caps(self, incaps: Gst.Caps, outcaps: Gst.Caps) -> bool:
        self._info = GstVideo.VideoInfo.new_from_caps(incaps)
        return self._info is not None

    # frames -----------------------------------------------------------------------------------

    def do_transform_ip(self, buffer: Gst.Buffer) -> Gst.FlowReturn:
        try:
            return self._process(buffer)
        except Exception as error:
            self._fail(error)
            return Gst.FlowReturn.ERROR

    def _process(self, buffer: Gst.Buffer) -> Gst.FlowReturn:
        from streamsink.api import detection_floor, smoothers_for
        from streamsink.detector.prompt import parse_classes
        from streamsink.types import Frame, raw_states
        from streamsink.writers import frame_record

        info, settings = self._info, self._settings
        image = self._read(buffer, info)
        pts = buffer.pts / Gst.SECOND if buffer.pts != Gst.CLOCK_TIME_NONE else self._frames / _rate(info)
        frame = Frame(image, self._frames, pts)
        with self._lock:
            classes = parse_classes(self._values["prompt"])
            interval, draw = self._values["interval"], self._values["draw"]
        if classes != self._classes:  # a new prompt: its own smoother, from this frame on
            self._classes = classes
            self._floors = detection_floor(settings, classes)
            smoothers = smoothers_for({"": classes}, settings)
            self._smoother = smoothers[""] if smoothers else None
            self._carried = None
        if self._carried is None or self._frames % interval == 0:
            floors = self._floors
            raw = self._detector.detect([image], classes, threshold=min(floors))[0].at_least(floors)
            if self._smoother is not None:
                shown, states = self._smoother.update(raw), dict(self._smoother.states)
            else:
                shown, states = raw, raw_states(raw)
            self._carried = (shown, states)
        shown, states = self._carried
        self._frames += 1

        for i, (box, label) in enumerate(zip(shown.xyxy.tolist(), shown.class_names)):
            x, y, w, h = roi(box, info.width, info.height)
            meta = GstVideo.buffer_add_video_region_of_interest_meta(buffer, label, x, y, w, h)
            meta.id = i  # in shown order, so a consumer can take them one by one (by id)
        record = frame_record(frame, shown, states)
        structure = Gst.Structure.new_empty("streamsink")
        structure.set_value("json", json.dumps(record))
        self.post_message(Gst.Message.new_element(self, structure))
        if draw:
            if self._renderer is None:
                from streamsink.render import Renderer

                self._renderer = Renderer()
            self._write(buffer, info, self._renderer.draw(image, shown, states))
        return Gst.FlowReturn.OK

    @staticmethod
    def _read(buffer: Gst.Buffer, info: Any) -> np.ndarray:
        """The frame as (H, W, 3) RGB uint8, whatever the format and the row stride."""
        width, height, stride = info.width, info.height, info.stride[0]
        name = info.finfo.name
        channels = 3 if name in ("RGB", "BGR") else 4
        ok, mapped = buffer.map(Gst.MapFlags.READ)
        if not ok:
            raise RuntimeError("cannot map the frame")
        try:
            rows = np.frombuffer(mapped.data, np.uint8, count=stride * height).reshape(height, stride)
            pixels = rows[:, : width * channels].reshape(height, width, channels)[..., :3]
            return np.ascontiguousarray(pixels[..., ::-1] if name.startswith("BGR") else pixels)
        finally:
            buffer.unmap(mapped)

    @staticmethod
    def _write(buffer: Gst.Buffer, info: Any, image_rgb: np.ndarray) -> None:
        """Put a drawn RGB frame back into the buffer in its own format and stride."""
        width, height, stride = info.width, info.height, info.stride[0]
        name = info.finfo.name
        ok, mapped = buffer.map(Gst.MapFlags.READ)
        if not ok:
            raise RuntimeError("cannot map the frame")
        try:
            rows = np.frombuffer(mapped.data, np.uint8, count=stride * height).reshape(height, stride).copy()
        finally:
            buffer.unmap(mapped)
        channels = 3 if name in ("RGB", "BGR") else 4
        pixels = rows[:, : width * channels].reshape(height, width, channels)
        pixels[..., :3] = image_rgb[..., ::-1] if name.startswith("BGR") else image_rgb
        buffer.fill(0, rows.tobytes())

    def _fail(self, error: BaseException) -> None:
        from streamsink.errors import one_line

        text = one_line(error)
        gerror = GLib.Error.new_literal(Gst.LibraryError.quark(), text, Gst.LibraryError.FAILED)
        self.post_message(Gst.Message.new_error(self, gerror, f"streamsink: {text}"))


def roi(box: list[float], width: int, height: int) -> tuple[int, int, int, int]:
    """A box (x1, y1, x2, y2 in pixels, possibly past the frame's edges) as the meta's x, y, w, h inside the frame."""
    x1, y1 = min(max(round(box[0]), 0), width - 1), min(max(round(box[1]), 0), height - 1)
    x2, y2 = min(max(round(box[2]), 0), width), min(max(round(box[3]), 0), height)
    return x1, y1, max(1, x2 - x1), max(1, y2 - y1)


def _set_threads(detector: Any) -> None:
    """torch's CPU threads as `process` sets them (GStreamer's decoders and converters want the rest)."""
    if getattr(detector.device, "type", None) == "cpu":
        import torch

        from streamsink.engine import default_threads
        from streamsink.stages import is_heavy

        torch.set_num_threads(default_threads(heavy=is_heavy(detector)))


def _rate(info: Any) -> float:
    return info.fps_n / info.fps_d if info.fps_n and info.fps_d else 25.0


GObject.type_register(StreamsinkFilter)
__gstelementfactory__ = ("streamsink", Gst.Rank.NONE, StreamsinkFilter)
