"""The shapes world: synthetic frames and clips with exact ground truth.

Six classes of filled shapes, coloured independently of their class, on
textured backgrounds, with distractors that belong to no class. It gives the
demo footage, training images for the small demo detector, and frames where a
prompted class is known to be absent, which is what false positives are
measured on. Everything is RGB and deterministic given a seed.

Ground truth rule: a box is the tight box of the whole shape (amodal, from its
exact geometry, in continuous pixel coordinates where pixel i spans [i, i+1)),
clipped to the image. A shape whose visible area (inside the image and not
covered by anything drawn above it) is below `MIN_VISIBLE` of its full area is
left out of the ground truth.

It ships inside the package, so `streamsink eval --dataset shapes` and the
demo work from an installed wheel; `samples/shapes.py` is this module under
its old name, for the scripts beside it.
"""

from streamsink.shapes.clips import make_clip
from streamsink.shapes.draw import (
    BACKGROUNDS,
    CLASSES,
    DISTRACTORS,
    MIN_VISIBLE,
    PALETTE,
    Annotation,
    Clip,
    Shape,
    _pick_color,
    annotate,
    dataset,
    make_background,
    make_image,
    render_frame,
)

__all__ = [
    "BACKGROUNDS", "CLASSES", "DISTRACTORS", "MIN_VISIBLE", "PALETTE", "Annotation", "Clip", "Shape", "annotate",
    "dataset", "make_background", "make_clip", "make_image", "render_frame", "_pick_color",
]
