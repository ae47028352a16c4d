"""Writers: where results leave streamsink (an annotated video, JSONL, a window).

The video writer keeps the input's own timestamps, tick for tick, so the
annotated video lines up with the original (variable frame rate included) and
its audio can be copied across. Every writer finishes a usable file on
`close()`, also when the run was interrupted: a Ctrl-C leaves a playable video
and complete JSONL lines.

By job: `video`, `records` (JSONL), `window`, and `output` (what they share).
"""

from streamsink.writers.records import JsonlWriter, frame_record
from streamsink.writers.video import VideoWriter
from streamsink.writers.window import Window

__all__ = ["JsonlWriter", "VideoWriter", "Window", "frame_record"]
