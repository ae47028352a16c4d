"""Runs a GStreamer pipeline under /usr/bin/python3 for the element's tests and benchmark; prints what it saw.

Imports nothing of streamsink's (the element comes in through GST_PLUGIN_PATH, as for a user).

    /usr/bin/python3 gst_probe.py "PIPELINE" [--set NAME=VALUE@FRAME ...]

The pipeline should name the element `ss` and end in `fakesink name=out`. Printed, one JSON document:
{"messages": [the "json" field of every "streamsink" element message],
 "rois": [[[label, x, y, w, h], ...] per buffer reaching `out`], "pts": [...], "checksums": [...],
 "elapsed": seconds from the first buffer reaching `out` to the last, "error": the first error message or null}
`--set prompt=car@5` sets a property of `ss` once 5 buffers have reached `out`.
"""

from __future__ import annotations

import json
import sys
import time
import zlib

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstVideo", "1.0")
from gi.repository import GLib, Gst, GstVideo  # noqa: E402


def main() -> None:
    description, changes = sys.argv[1], []
    for arg in sys.argv[2:]:
        if arg.startswith("--set="):
            name_value, frame = arg[len("--set="):].rsplit("@", 1)
            name, value = name_value.split("=", 1)
            changes.append((int(frame), name, value))
    Gst.init(None)
    pipeline = Gst.parse_launch(description)
    element = pipeline.get_by_name("ss")
    out = pipeline.get_by_name("out")
    seen = {"messages": [], "rois": [], "pts": [], "checksums": [], "elapsed": 0.0, "error": None}
    arrivals: list[float] = []

    def probe(pad, info) -> Gst.PadProbeReturn:
        buffer = info.get_buffer()
        rois, i = [], 0
        while True:
            meta = GstVideo.buffer_get_video_region_of_interest_meta_id(buffer, i)
            if meta is None:
                break
            rois.append([GLib.quark_to_string(meta.roi_type), meta.x, meta.y, meta.w, meta.h])
            i += 1
        arrivals.append(time.perf_counter())
        seen["rois"].append(rois)
        seen["pts"].append(buffer.pts / Gst.SECOND)
        ok, mapped = buffer.map(Gst.MapFlags.READ)
        seen["checksums"].append(zlib.crc32(bytes(mapped.data)) if ok else None)
        if ok:
            buffer.unmap(mapped)
        for frame, name, value in changes:
            if frame == len(seen["pts"]):
                element.set_property(name, value)
        return Gst.PadProbeReturn.OK

    out.get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, probe)
    pipeline.set_state(Gst.State.PLAYING)
    bus = pipeline.get_bus()
    while True:
        message = bus.timed_pop_filtered(120 * Gst.SECOND, Gst.MessageType.ELEMENT | Gst.MessageType.EOS |
                                         Gst.MessageType.ERROR)
        if message is None:
            seen["error"] = "timed out"
            break
        if message.type == Gst.MessageType.ELEMENT and message.get_structure().get_name() == "streamsink":
            seen["messages"].append(json.loads(message.get_structure().get_value("json")))
        elif message.type == Gst.MessageType.ERROR:
            error, _ = message.parse_error()
            seen["error"] = error.message
            break
        elif message.type == Gst.MessageType.EOS:
            break
    pipeline.set_state(Gst.State.NULL)
    seen["elapsed"] = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else 0.0
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
