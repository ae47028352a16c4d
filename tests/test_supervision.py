"""supervision interop: streamsink's Detections to supervision's and back, and the recipe that draws with it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clips import read_video_pts
from streamsink.types import Detections

sv = pytest.importorskip("supervision", reason="needs supervision (pip install supervision; streamsink[test] has it)")
ROOT = Path(__file__).resolve().parent.parent


def test_round_trip_keeps_boxes_scores_class_ids_and_labels():
    labels = ("dog", "tractor", "cat")
    ours = Detections(np.array([[1, 2, 30, 40], [5.5, 6.25, 70, 80]], np.float32), np.array([0.9, 0.35], np.float32),
                      np.array([2, 0]), labels)
    theirs = ours.to_supervision()
    assert isinstance(theirs, sv.Detections) and len(theirs) == 2
    np.testing.assert_array_equal(theirs.xyxy, ours.xyxy)
    np.testing.assert_array_equal(theirs.confidence, ours.scores)
    np.testing.assert_array_equal(theirs.class_id, [2, 0])
    assert list(theirs.data["class_name"]) == ["cat", "dog"]
    back = Detections.from_supervision(theirs, labels)
    np.testing.assert_array_equal(back.xyxy, ours.xyxy)
    np.testing.assert_array_equal(back.scores, ours.scores)
    np.testing.assert_array_equal(back.class_id, ours.class_id)
    assert back.labels == labels


def test_empty_and_unscored_detections_cross_too():
    empty = Detections.empty(("dog",)).to_supervision()
    assert len(empty) == 0 and Detections.from_supervision(empty, ("dog",)).labels == ("dog",)
    unscored = sv.Detections(xyxy=np.array([[0, 0, 4, 4]], np.float32), class_id=np.array([0]))
    assert Detections.from_supervision(unscored, ("dog",)).scores.tolist() == [1.0]
    with pytest.raises(ValueError, match="class_id"):
        Detections.from_supervision(sv.Detections(xyxy=np.zeros((1, 4), np.float32)), ("dog",))
    with pytest.raises(ValueError, match="indexing labels"):
        Detections.from_supervision(unscored, ())


def test_a_supervision_app_can_use_streamsinks_temporal_stage():
    from streamsink.smoother import TemporalSmoother

    smoother = TemporalSmoother(("dog",), threshold=0.3)
    box = sv.Detections(xyxy=np.array([[10, 10, 50, 50]], np.float32), confidence=np.array([0.9], np.float32),
                        class_id=np.array([0]))
    for _ in range(6):
        shown = smoother.update(Detections.from_supervision(box, ("dog",)))
    assert smoother.states == {"dog": "present"} and len(shown.to_supervision()) == 1


def test_the_supervision_recipe_runs(tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("pipelines_supervision", ROOT / "pipelines" / "supervision_annotate.py")
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    sample = ROOT / "samples" / "clips" / "shapes_short.mp4"
    out = tmp_path / "annotated.mp4"
    assert recipe.main([str(sample), "-p", "triangle,ring", "-m", str(ROOT / "samples" / "models" / "shapes-gdino"),
                        "-o", str(out)]) == 0
    assert len(read_video_pts(out)) == len(read_video_pts(sample))
    assert "wrote" in capsys.readouterr().out
