"""Whether two backends found the same things: compare detection sets, not query indices.

Two numerically close forward passes can rank near-equal queries differently
(the two-stage selection of Grounding DINO picks its queries by score), so the
same box may come from another query. What a user sees is the set of boxes
after post-processing; that is what must agree.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from streamsink.types import Detections, box_iou

MIN_IOU = 0.98
MAX_SCORE_GAP = 0.02


def disagreement(a: Detections, b: Detections, *, min_iou: float = MIN_IOU,
                 max_score_gap: float = MAX_SCORE_GAP) -> str | None:
    """None when `b` has as many boxes as `a` and each box of `a` has its own box in `b` of the same
    class with IoU >= min_iou and a score within max_score_gap; else why not, in words."""
    if len(a.scores) != len(b.scores):
        return f"{len(a.scores)} boxes against {len(b.scores)}"
    iou = box_iou(a.xyxy.astype(np.float64), b.xyxy.astype(np.float64))
    free = np.ones(len(b.scores), dtype=bool)
    for i in np.argsort(-a.scores, kind="stable"):
        fits = free & (b.class_id == a.class_id[i]) & (iou[i] >= min_iou) & (np.abs(b.scores - a.scores[i]) <= max_score_gap)
        if not fits.any():
            best = float(iou[i].max()) if len(b.scores) else 0.0
            return (f"box {a.xyxy[i].round(1).tolist()} ({a.labels[a.class_id[i]]}, {a.scores[i]:.3f}) has no match "
                    f"(best IoU {best:.3f})")
        j = int(np.flatnonzero(fits)[np.argmax(iou[i][fits])])
        free[j] = False
    return None


def frames_disagreeing(a: Sequence[Detections], b: Sequence[Detections], **tolerances: float) -> dict[int, str]:
    """{frame index: why} for every frame whose detections disagree (see `disagreement`)."""
    out = {}
    for k, (x, y) in enumerate(zip(a, b, strict=True)):
        reason = disagreement(x, y, **tolerances)
        if reason is not None:
            out[k] = reason
    return out
