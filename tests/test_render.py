"""Renderer pixels on generated frames: boxes where they belong, a legible status strip, inputs untouched."""

from __future__ import annotations

import numpy as np
import pytest

from streamsink.render import ABSENT_COLOUR, PRESENT_COLOUR, Renderer, _Font
from streamsink.types import Detections

LABELS = ("dog", "cat", "tractor")
GREY = 40


@pytest.fixture(params=["default-font", "hershey"])
def renderer(request) -> Renderer:
    """Both text paths: OpenCV 5's font where it exists, and the Hershey fallback used on OpenCV 4."""
    import cv2

    r = Renderer()
    r._font = _Font(cv2, hershey=request.param == "hershey")
    return r


def frame(width: int, height: int) -> np.ndarray:
    return np.full((height, width, 3), GREY, np.uint8)


def dets(boxes, class_id, scores=None, labels=LABELS) -> Detections:
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    scores = np.full(len(boxes), 0.87, np.float32) if scores is None else np.asarray(scores, np.float32)
    return Detections(boxes, scores, np.asarray(class_id, np.int64), labels)


def strip_rows(out: np.ndarray) -> int:
    """Height of the darkened band at the top (the strip darkens a uniform frame)."""
    dark = (out[:, :, :].max(axis=2) < GREY).mean(axis=1) > 0.3
    return int(np.argmin(dark)) if not dark.all() else len(dark)


def near(out: np.ndarray, colour, tolerance: int = 30) -> np.ndarray:
    return (np.abs(out.astype(int) - np.array(colour)).max(axis=2) <= tolerance)


SIZES = [(854, 480), (1920, 1080), (3840, 2160)]


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_box_edges_are_drawn_in_the_class_colour(renderer, width, height):
    s = height / 480
    box = np.array([200, 150, 400, 350]) * s
    out = renderer.draw(frame(width, height), dets(box, [1]), {"dog": "absent", "cat": "present", "tractor": "absent"})
    colour = renderer.colour(1)
    x1, y1, x2, y2 = np.round(box).astype(int)
    mid_x, mid_y = (x1 + x2) // 2, (y1 + y2) // 2
    for x, y in [(x1, mid_y), (x2, mid_y), (mid_x, y2)]:
        assert tuple(out[y, x]) == colour
    assert tuple(out[mid_y, mid_x]) == (GREY,) * 3  # inside stays clear
    assert tuple(out[mid_y, x1 - round(8 * s)]) == (GREY,) * 3  # outside too


def test_line_and_text_scale_with_the_frame(renderer):
    sizes = {}
    for width, height in [(854, 480), (3840, 2160)]:
        s = height / 480
        box = np.array([200, 150, 400, 350]) * s
        out = renderer.draw(frame(width, height), dets(box, [0]), fps=25.0)
        row = out[int(250 * s)]
        sizes[height] = (near(row[None], renderer.colour(0), 0).sum(), strip_rows(out))
    line_480, strip_480 = sizes[480]
    line_4k, strip_4k = sizes[2160]
    assert line_480 >= 2 * 2 and strip_480 >= 15  # both vertical edges, at least 2 px each; text at least ~13 px
    assert line_4k >= 3 * line_480 and strip_4k >= 3 * strip_480


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_status_strip_names_every_class_with_its_state(renderer, width, height):
    image = frame(width, height)
    states = {"dog": "present", "cat": "absent", "tractor": "absent"}
    out = renderer.draw(image, Detections.empty(LABELS), states)
    rows = strip_rows(out)
    assert 0 < rows < height // 3
    band = out[:rows]
    assert near(band, PRESENT_COLOUR).sum() > 10  # "dog: present"
    assert near(band, ABSENT_COLOUR).sum() > 10  # "cat: not here", "tractor: not here"
    np.testing.assert_array_equal(out[rows + 2 :], image[rows + 2 :])  # below the strip, nothing changed

    all_absent = renderer.draw(image, Detections.empty(LABELS), {label: "absent" for label in LABELS})
    assert near(all_absent[:rows], PRESENT_COLOUR).sum() == 0


def test_states_default_to_what_has_a_box(renderer):
    image = frame(854, 480)
    out = renderer.draw(image, dets([300, 200, 400, 300], [2]))
    states = {"dog": "absent", "cat": "absent", "tractor": "present"}
    same = renderer.draw(image, dets([300, 200, 400, 300], [2]), states)
    np.testing.assert_array_equal(out, same)


def test_live_figures_are_written_in_the_strip(renderer):
    image = frame(854, 480)
    plain = renderer.draw(image, Detections.empty(LABELS))
    live = renderer.draw(image, Detections.empty(LABELS), fps=12.3, dropped=4, latency_ms=38.0)
    rows = strip_rows(plain)
    changed = np.any(live[:rows] != plain[:rows], axis=2)
    white = near(live[:rows], (255, 255, 255), 40) & changed
    assert white.sum() > 30
    assert np.flatnonzero(white.any(axis=0)).min() > 200  # after the class names


def test_input_untouched_and_output_new(renderer):
    image = frame(854, 480)
    image[100:200, 100:200] = (10, 200, 30)
    before = image.copy()
    detections = dets([[50, 50, 300, 300], [400, 100, 500, 400]], [0, 1])
    out = renderer.draw(image, detections, fps=30.0)
    np.testing.assert_array_equal(image, before)
    assert out is not image and not np.shares_memory(out, image)
    assert out.shape == image.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(renderer.draw(image, detections, fps=30.0), out)  # deterministic


def test_label_stays_inside_the_frame(renderer):
    width, height = 854, 480
    colour = renderer.colour(0)
    out = renderer.draw(frame(width, height), dets([830, 300, 853, 400], [0]))
    above = near(out[250:300], colour, 0)
    assert above[:, width - 1].any()  # the label reaches the right edge...
    assert above[:, : 830 - 20].any()  # ...because it moved left to fit

    # A box at the very top gets its label below the strip, inside the box.
    out = renderer.draw(frame(width, height), dets([100, 0, 300, 200], [0]))
    rows = strip_rows(renderer.draw(frame(width, height), Detections.empty(LABELS)))
    assert near(out[rows : rows + 10, 110:150], colour, 0).any()


def test_boxes_outside_the_frame(renderer):
    image = frame(854, 480)
    empty = renderer.draw(image, Detections.empty(LABELS), {label: "absent" for label in LABELS})
    gone = dets([[900, 500, 1000, 600], [-300, -300, -10, -10], [np.nan, 0, 10, 10], [50, 50, 40, 40]], [0, 0, 0, 0])
    out = renderer.draw(image, gone, {label: "absent" for label in LABELS})
    np.testing.assert_array_equal(out, empty)

    out = renderer.draw(image, dets([-100, 100, 300, 900], [0]))  # clipped to the frame
    assert tuple(out[300, 300]) == renderer.colour(0)
    assert tuple(out[479, 150]) == renderer.colour(0)


@pytest.mark.parametrize(("width", "height"), [(64, 48), (16, 16), (1, 1), (2000, 30)])
def test_tiny_and_odd_frames_do_not_crash(renderer, width, height):
    image = frame(width, height)
    detections = dets([[5, 5, 40, 30], [-5, -5, 100, 100], [60, 40, 70, 50]], [0, 1, 2], [0.9, 0.5, 0.1])
    out = renderer.draw(image, detections, fps=29.97, dropped=0, latency_ms=12.0)
    assert out.shape == image.shape and (out != image).any()


def test_many_classes_fold_into_more(renderer):
    labels = tuple(f"class number {i}" for i in range(60))
    out = renderer.draw(frame(854, 480), Detections.empty(labels))
    assert strip_rows(out) <= 480 // 3 + 1


def test_scores_can_be_hidden_and_unicode_labels_draw():
    r = Renderer(show_scores=False)
    out = r.draw(frame(854, 480), dets([100, 100, 200, 200], [0], labels=("café", "ü", "狗")))
    with_scores = Renderer().draw(frame(854, 480), dets([100, 100, 200, 200], [0], labels=("café", "ü", "狗")))
    assert (out != with_scores).any()


def test_palette_is_used_by_class_index():
    r = Renderer(palette=[(255, 0, 0), (0, 0, 255)])
    assert r.colour(0) == (255, 0, 0) and r.colour(1) == (0, 0, 255) and r.colour(2) == (255, 0, 0)
    out = r.draw(frame(854, 480), dets([100, 100, 300, 300], [1]))
    assert tuple(out[200, 100]) == (0, 0, 255)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r: r.draw(np.zeros((48, 64), np.uint8), Detections.empty(LABELS)), "image: expected (H, W, 3) uint8"),
        (lambda r: r.draw(np.zeros((48, 64, 3)), Detections.empty(LABELS)), "image: expected (H, W, 3) uint8"),
        (lambda r: r.draw(frame(64, 48), None), "detections must be a streamsink.Detections"),
        (lambda r: r.draw(frame(64, 48), Detections.empty(LABELS), {"dog": "here"}), "states values must be"),
        (lambda r: r.draw(frame(64, 48), Detections.empty(LABELS), fps=-1.0), "fps must be a number >= 0, got -1.0"),
        (lambda r: r.draw(frame(64, 48), Detections.empty(LABELS), fps=float("nan")), "fps must be a number >= 0"),
        (lambda r: r.draw(frame(64, 48), Detections.empty(LABELS), dropped=1.5), "dropped must be an integer >= 0"),
        (lambda r: r.draw(frame(64, 48), Detections.empty(LABELS), latency_ms=-3), "latency_ms must be a number >= 0"),
        (lambda r: Renderer(palette=[]), "palette must hold at least 1 colour, got 0"),
        (lambda r: Renderer(palette=[(300, 0, 0)]), "palette must hold RGB triples of integers in [0, 255]"),
        (lambda r: Renderer(palette=[(1, 2)]), "palette must hold RGB triples"),
    ],
)
def test_bad_input_raises(call, message):
    with pytest.raises(ValueError) as info:
        call(Renderer())
    assert message in str(info.value)


@pytest.mark.parametrize("hershey", [False, True])
@pytest.mark.parametrize("text", ["dog: present", "tractor: not here", "24.7 fps · 3 dropped · 85 ms"])
def test_measured_text_width_covers_what_is_drawn(hershey, text):
    """The strip lays items out by measured width; measuring narrower than drawing makes them overlap."""
    import cv2

    font = _Font(cv2, hershey=hershey)
    canvas = np.zeros((80, 800, 3), np.uint8)
    font.put(canvas, text, 10, 50, 24, (255, 255, 255))
    drawn = np.nonzero(canvas.any(axis=(0, 2)))[0]
    assert drawn.max() - 10 <= font.width(text, 24) + 1
