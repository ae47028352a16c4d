"""Drawing: boxes with label and score, and a status strip that makes abstention visible.

The strip names every prompted class with its state ("dog: present",
"tractor: not here"): a detector that abstains draws no box, so without the
strip a viewer cannot tell "not there" from "not working". Sizes follow the
frame's short side (480 px is the reference), so the same settings stay
legible from 480p to 4K. Drawing is plain OpenCV on a copy of the frame; cv2 is
imported inside `draw` so `import streamsink` stays cheap.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

import numpy as np

from streamsink.types import Detections, State, raw_states

logger = logging.getLogger(__name__)

# Distinct, saturated colours that read on both dark and light scenes (RGB).
DEFAULT_PALETTE: tuple[tuple[int, int, int], ...] = (
    (255, 56, 56),
    (50, 130, 255),
    (255, 178, 29),
    (72, 209, 90),
    (200, 80, 255),
    (0, 212, 212),
    (255, 112, 190),
    (160, 220, 40),
    (255, 140, 60),
    (120, 110, 255),
    (40, 180, 140),
    (230, 220, 60),
)
PRESENT_COLOUR = (90, 230, 120)
ABSENT_COLOUR = (170, 170, 170)
INFO_COLOUR = (255, 255, 255)
_STATE_TEXT = {State.PRESENT: "present", State.ABSENT: "not here"}
_REFERENCE_SIDE = 480  # the short side at which sizes below are in plain pixels
_STRIP_OPACITY = 0.65
_FONT_WEIGHT = 600  # semi-bold: reads better over video than the regular weight


class _Font:
    """Text in pixel sizes: OpenCV 5's Unicode font where present, Hershey (ASCII only) on OpenCV 4."""

    def __init__(self, cv2, *, hershey: bool = False) -> None:
        self.cv2 = cv2
        self.face = None if hershey or not hasattr(cv2, "FontFace") else cv2.FontFace("sans")
        self.separator = " · " if self.face is not None else " | "

    def _hershey_scale(self, px: int) -> float:
        return px / 22.0  # FONT_HERSHEY_SIMPLEX is 22 px tall at scale 1

    def width(self, text: str, px: int) -> int:
        if self.face is not None:
            return int(self.cv2.getTextSize((0, 0), text, (0, px), self.face, px, _FONT_WEIGHT)[2])
        thickness = max(1, round(px / 12))
        return int(self.cv2.getTextSize(text, self.cv2.FONT_HERSHEY_SIMPLEX, self._hershey_scale(px), thickness)[0][0])

    def put(self, image: np.ndarray, text: str, x: int, baseline: int, px: int, colour: tuple[int, int, int]) -> None:
        if self.face is not None:
            self.cv2.putText(image, text, (x, baseline), colour, self.face, px, _FONT_WEIGHT)
        else:
            thickness = max(1, round(px / 12))
            cv2 = self.cv2
            cv2.putText(image, text, (x, baseline), cv2.FONT_HERSHEY_SIMPLEX, self._hershey_scale(px), colour,
                        thickness, cv2.LINE_AA)


def _check_palette(palette: Sequence[Sequence[int]]) -> tuple[tuple[int, int, int], ...]:
    colours = []
    for colour in palette:
        values = tuple(colour) if isinstance(colour, (tuple, list, np.ndarray)) else (colour,)
        if len(values) != 3 or not all(isinstance(v, (int, np.integer)) and 0 <= v <= 255 for v in values):
            raise ValueError(f"palette must hold RGB triples of integers in [0, 255], got {colour!r}")
        colours.append(tuple(int(v) for v in values))
    if not colours:
        raise ValueError("palette must hold at least 1 colour, got 0")
    return tuple(colours)


def _check_number(name: str, value: float | None, integer: bool = False) -> None:
    if value is None:
        return
    kind = int if integer else (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be {'an integer ' if integer else 'a number '}>= 0, got {value!r}")


def _text_colour(background: tuple[int, int, int]) -> tuple[int, int, int]:
    r, g, b = background
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)


class Renderer:
    """Draws detections and the status strip onto a copy of an RGB frame.

    show_scores: write the score after the label ("dog 0.87").
    palette: RGB colours; class i gets palette[i % len(palette)], so a class keeps
        its colour from frame to frame and run to run.
    """

    def __init__(self, *, show_scores: bool = True, palette: Sequence[Sequence[int]] = DEFAULT_PALETTE) -> None:
        self.show_scores = bool(show_scores)
        self.palette = _check_palette(palette)
        self._font: _Font | None = None

    def colour(self, class_id: int) -> tuple[int, int, int]:
        """The colour of class `class_id` (an index into the prompted labels)."""
        return self.palette[int(class_id) % len(self.palette)]

    def draw(
        self,
        image: np.ndarray,
        detections: Detections,
        states: Mapping[str, str] | None = None,
        *,
        fps: float | None = None,
        dropped: int | None = None,
        latency_ms: float | None = None,
    ) -> np.ndarray:
        """Return a new (H, W, 3) uint8 RGB image: `image` with boxes and the status strip; `image` is untouched.

        states: label -> "present" | "absent", as `TemporalSmoother.states`; without it
            a class counts as present when it has a box in `detections`.
        fps, dropped, latency_ms: live-source figures for the strip, each shown when given.
        """
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            shape = getattr(image, "shape", type(image).__name__)
            dtype = getattr(image, "dtype", "")
            raise ValueError(f"image: expected (H, W, 3) uint8 array, got {shape} {dtype}".rstrip())
        if not isinstance(detections, Detections):
            raise ValueError(f"detections must be a streamsink.Detections, got {type(detections).__name__}")
        _check_number("fps", fps)
        _check_number("dropped", dropped, integer=True)
        _check_number("latency_ms", latency_ms)
        states = self._states(detections, states)

        import cv2

        if self._font is None:
            self._font = _Font(cv2)
        out = np.ascontiguousarray(image).copy()
        height, width = out.shape[:2]
        unit = min(height, width) / _REFERENCE_SIDE
        text_px = max(7, round(13 * unit))
        pad = max(1, round(text_px / 4))
        line = max(1, round(2 * unit))

        placed = self._layout(self._strip_items(detections.labels, states, fps, dropped, latency_ms),
                              width, height, text_px, pad)
        strip_height = min(height, (placed[-1][0] + 1) * (text_px + 2 * pad) + pad) if placed else 0
        self._draw_boxes(cv2, out, detections, text_px, pad, line, strip_height)
        self._draw_strip(out, placed, strip_height, text_px, pad)
        return out

    @staticmethod
    def _states(detections: Detections, states: Mapping[str, str] | None) -> dict[str, str]:
        result = raw_states(detections)
        if states is not None:
            for label, state in states.items():
                if state not in _STATE_TEXT:
                    raise ValueError(f"states values must be 'present' or 'absent', got {state!r} for {label!r}")
                result[str(label)] = state
        return result

    def _strip_items(self, labels, states, fps, dropped, latency_ms) -> list[tuple[str, tuple, tuple | None]]:
        """(text, text colour, swatch colour or None) for each class, then the live figures."""
        index = {label: i for i, label in enumerate(labels)}
        items = []
        for label, state in states.items():
            swatch = self.colour(index[label]) if label in index else None
            items.append((f"{label}: {_STATE_TEXT[state]}", PRESENT_COLOUR if state == State.PRESENT else ABSENT_COLOUR,
                          swatch))
        figures = []
        if fps is not None:
            figures.append(f"{fps:.1f} fps")
        if dropped is not None:
            figures.append(f"{dropped} dropped")
        if latency_ms is not None:
            figures.append(f"{latency_ms:.0f} ms")
        if figures:
            items.append((self._font.separator.join(figures), INFO_COLOUR, None))
        return items

    def _layout(self, items, width: int, height: int, text_px: int, pad: int) -> list[tuple]:
        """Place items left to right, wrapping lines, within a third of the frame: (line, x, text, colour, swatch).

        Items past the last line that fits are summed up as "+N more", so a long
        prompt never hides the picture.
        """
        font = self._font
        max_lines = max(1, (height // 3) // (text_px + 2 * pad))
        gap = 3 * pad

        def width_of(text: str, swatch) -> int:
            return font.width(text, text_px) + (text_px + pad if swatch is not None else 0)

        def end(item: tuple) -> int:
            return item[1] + width_of(item[2], item[4]) + gap

        placed, line, x = [], 0, pad
        for n, (text, colour, swatch) in enumerate(items):
            w = width_of(text, swatch)
            if x > pad and x + w > width - pad:
                line, x = line + 1, pad
            if line >= max_lines:
                hidden, last = len(items) - n, max_lines - 1
                while placed and placed[-1][0] == last and end(placed[-1]) + width_of(f"+{hidden} more", None) > width:
                    placed.pop()
                    hidden += 1
                x = end(placed[-1]) if placed and placed[-1][0] == last else pad
                placed.append((last, x, f"+{hidden} more", INFO_COLOUR, None))
                break
            placed.append((line, x, text, colour, swatch))
            x += w + gap
        return placed

    def _draw_strip(self, out: np.ndarray, placed: list[tuple], strip_height: int, text_px: int, pad: int) -> None:
        if strip_height == 0:
            return
        band = out[:strip_height]
        band[:] = (band * (1.0 - _STRIP_OPACITY)).astype(np.uint8)
        line_height = text_px + 2 * pad
        cv2 = self._font.cv2
        for line, x, text, colour, swatch in placed:
            top = pad + line * line_height
            baseline = top + pad + round(text_px * 0.8)
            if swatch is not None:
                side = max(2, round(text_px * 0.7))
                cv2.rectangle(out, (x, baseline - side), (x + side - 1, baseline - 1), swatch, -1)
                x += text_px + pad
            self._font.put(out, text, x, baseline, text_px, colour)

    def _draw_boxes(self, cv2, out, detections: Detections, text_px: int, pad: int, line: int, top: int) -> None:
        height, width = out.shape[:2]
        xyxy = detections.xyxy.astype(np.float64)
        finite = np.isfinite(xyxy).all(axis=1)
        inside = finite & (xyxy[:, 2] >= 0) & (xyxy[:, 0] <= width - 1) & (xyxy[:, 3] >= 0) & (xyxy[:, 1] <= height - 1)
        inside &= (xyxy[:, 2] >= xyxy[:, 0]) & (xyxy[:, 3] >= xyxy[:, 1])
        boxes = np.round(np.clip(np.where(finite[:, None], xyxy, 0), 0, [width - 1, height - 1] * 2)).astype(int)
        labels = []
        for i in np.flatnonzero(inside):
            x1, y1, x2, y2 = boxes[i].tolist()
            colour = self.colour(detections.class_id[i])
            cv2.rectangle(out, (x1, y1), (x2, y2), colour, line)
            text = detections.labels[detections.class_id[i]]
            if self.show_scores:
                text += f" {detections.scores[i]:.2f}"
            labels.append((x1, y1, text, colour))
        # Labels after all boxes, so no box line crosses a label.
        label_height = text_px + 2 * pad
        for x1, y1, text, colour in labels:
            label_width = self._font.width(text, text_px) + 2 * pad
            y0 = y1 - label_height
            if y0 < top:
                y0 = y1  # no room above: tuck the label inside the box
            y0 = max(top, min(y0, height - label_height))
            x0 = max(0, min(x1, width - label_width))
            cv2.rectangle(out, (x0, y0), (x0 + label_width - 1, y0 + label_height - 1), colour, -1)
            self._font.put(out, text, x0 + pad, y0 + pad + round(text_px * 0.8), text_px, _text_colour(colour))
