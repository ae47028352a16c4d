"""Frame and Detections: validation messages that say expected and actual, immutability, indexing."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from streamsink.types import Detections, Frame

LABELS = ("dog", "tractor")


def two() -> Detections:
    return Detections([[0, 0, 10, 10], [5, 5, 20, 20]], [0.9, 0.4], [0, 1], LABELS)


def test_detections_normalise_dtypes_and_freeze_arrays():
    d = two()
    assert d.xyxy.dtype == np.float32 and d.scores.dtype == np.float32 and d.class_id.dtype == np.int64
    assert d.labels == LABELS and len(d) == 2 and d.class_names == ["dog", "tractor"]
    with pytest.raises(ValueError):
        d.xyxy[0, 0] = 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.scores = np.zeros(2)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"xyxy": np.zeros(3)}, r"Detections.xyxy: expected \(n, 4\), got \(3,\)"),
        ({"xyxy": np.zeros((2, 5))}, r"Detections.xyxy: expected \(n, 4\), got \(2, 5\)"),
        ({"scores": [0.5]}, r"Detections.scores: expected \(2,\), got \(1,\)"),
        ({"class_id": [[0, 1]]}, r"Detections.class_id: expected \(2,\), got \(1, 2\)"),
        ({"class_id": [0, 2]}, r"class_id: expected values in \[0, 1\]"),
        ({"class_id": [-1, 0]}, r"class_id: expected values in \[0, 1\]"),
    ],
)
def test_detections_reject_bad_shapes(kwargs, message):
    args = {"xyxy": [[0, 0, 1, 1], [0, 0, 2, 2]], "scores": [0.5, 0.6], "class_id": [0, 1], "labels": LABELS, **kwargs}
    with pytest.raises(ValueError, match=message):
        Detections(**args)


def test_detections_indexing_keeps_labels_and_returns_new_objects():
    d = two()
    high = d[d.scores > 0.5]
    assert len(high) == 1 and high.labels == LABELS and high.class_names == ["dog"]
    assert len(d[[1]]) == 1 and len(d[1:]) == 1 and d[np.int64(1)].class_names == ["tractor"]
    assert len(d) == 2
    with pytest.raises(IndexError, match=r"boolean mask expected \(2,\), got \(3,\)"):
        d[np.array([True, False, True])]


def test_empty_detections_and_records():
    empty = Detections.empty(LABELS)
    assert len(empty) == 0 and empty.xyxy.shape == (0, 4) and empty.labels == LABELS
    assert empty.to_records() == []
    assert two().to_records()[0] == {"label": "dog", "score": 0.9, "box": [0.0, 0.0, 10.0, 10.0]}


@pytest.mark.parametrize(
    "image, message",
    [
        (np.zeros((4, 4), np.uint8), r"expected \(H, W, 3\) uint8 array, got \(4, 4\)"),
        (np.zeros((4, 4, 4), np.uint8), r"expected \(H, W, 3\) uint8 array, got \(4, 4, 4\)"),
        (np.zeros((4, 4, 3), np.float32), "expected dtype uint8, got float32"),
        ([[1, 2, 3]], r"expected \(H, W, 3\) uint8 array, got list"),
    ],
)
def test_frame_rejects_bad_images(image, message):
    with pytest.raises(ValueError, match=message):
        Frame(image, index=0, pts=0.0)


def test_frame_size():
    frame = Frame(np.zeros((48, 64, 3), np.uint8), index=3, pts=0.12)
    assert (frame.width, frame.height) == (64, 48)
