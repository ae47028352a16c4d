"""Abstention metrics on hand-made cases whose answers are worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from streamsink.metrics import AbstentionReport, average_precision, box_iou, match, pairs_from, raw_missed_at

HALF = 51 / 101  # recall 0.5 at precision 1: 51 of COCO's 101 recall points


def test_box_iou():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 0, 0]])
    assert box_iou(a, b)[0] == pytest.approx([1.0, 50 / 150, 0.0, 0.0])


def test_match_is_greedy_by_score_and_claims_each_truth_once():
    truth = np.array([[0, 0, 10, 10]])
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 9]])
    assert match(boxes, np.array([0.2, 0.9]), truth).tolist() == [False, True]
    assert match(boxes, np.array([0.9, 0.2]), truth).tolist() == [True, False]
    assert match(np.array([[50, 50, 60, 60]]), np.array([0.9]), truth).tolist() == [False]


@pytest.mark.parametrize(
    "scores, hits, n_truth, expected",
    [
        ([0.9, 0.8], [True, True], 2, 1.0),
        ([0.9, 0.8], [False, True], 1, 0.5),
        ([0.9, 0.8], [True, False], 2, HALF),
        ([], [], 3, 0.0),
        ([0.5], [False], 1, 0.0),
    ],
)
def test_average_precision(scores, hits, n_truth, expected):
    assert average_precision(np.array(scores), np.array(hits, bool), n_truth) == pytest.approx(expected)


def test_average_precision_needs_truth():
    with pytest.raises(ValueError, match="at least one ground-truth box"):
        average_precision(np.array([0.5]), np.array([True]), 0)


TRUTH = [[0, 0, 10, 10], [20, 20, 30, 30]]


def report() -> AbstentionReport:
    """One positive pair (two truths, found at 0.95 and at 0.5) and four negative pairs.

    Negative scores: 0.9 on one, 0.5 twice on another (a tie), nothing on two.
    """
    return AbstentionReport(
        pairs_from(
            [
                ("img0", "dog", [[0, 0, 10, 10], [20, 20, 30, 30]], [0.95, 0.5], TRUTH),
                ("img1", "dog", [[0, 0, 5, 5]], [0.9], []),
                ("img2", "dog", [[0, 0, 5, 5], [1, 1, 6, 6]], [0.5, 0.5], []),
                ("img3", "dog", [], [], []),
                ("img4", "dog", [], [], []),
            ]
        )
    )


def test_fpr_bg_counts_detections_per_negative_pair():
    r = report()
    assert r.fpr_bg() == pytest.approx(3 / 4)
    assert r.fpr_bg(0.6) == pytest.approx(1 / 4)
    assert r.negative_frames_with_detection() == pytest.approx(2 / 4)


def test_operating_points_use_the_loosest_threshold_for_each_fpr_and_admit_ties_together():
    points = report().operating_points()
    assert [f for f, _ in points] == pytest.approx([0.0, 0.25, 0.75])
    # FPR 0: anything above 0.9; FPR 0.25: anything above the tied 0.5s; FPR 0.75: everything.
    assert 0.9 < points[0][1] < 0.9 + 1e-9
    assert 0.5 < points[1][1] < 0.5 + 1e-9
    assert points[2][1] == -np.inf


def test_positives_between_negative_scores_count_at_no_extra_fpr():
    """One negative at 0.9 among 100 negative pairs, a true positive at 0.5, another negative at 0.1.

    A threshold of 0.5 costs FPR 0.01 and finds everything, so AP50 at FPR 0.01 is 1.
    """
    records = [("p", "dog", [[0, 0, 10, 10]], [0.5], [[0, 0, 10, 10]])]
    records += [("n0", "dog", [[0, 0, 5, 5]], [0.9], []), ("n1", "dog", [[0, 0, 5, 5]], [0.1], [])]
    records += [(f"n{i}", "dog", [], [], []) for i in range(2, 100)]
    r = AbstentionReport(pairs_from(records))
    assert r.ap50_at_fpr(0.01) == pytest.approx(1.0)
    assert r.ap50_at_fpr(0.015) == pytest.approx(1.0)
    assert r.ap50_at_fpr(0.005) == pytest.approx(0.5)  # halfway from FPR 0 (AP 0) to FPR 0.01 (AP 1)


def test_ap50_at_fpr_interpolates_between_operating_points():
    r = report()
    assert r.ap50() == pytest.approx(1.0)
    # FPR 0.01 and 0.25 sit between or on points whose threshold keeps only the 0.95 detection.
    assert r.ap50_at_fpr(0.01) == pytest.approx(HALF)
    assert r.ap50_at_fpr(0.25) == pytest.approx(HALF)
    # 0.5 is halfway from FPR 0.25 (AP = HALF) to FPR 0.75 (threshold 0.5 admits the tied true positive: AP = 1).
    assert r.ap50_at_fpr(0.5) == pytest.approx(HALF + 0.5 * (1.0 - HALF))
    # Past every operating point nothing is held back.
    assert r.ap50_at_fpr(0.9) == pytest.approx(1.0)


def test_summary_keys_match_the_report_schema():
    figures = report().summary()
    assert set(figures) == {"ap50", "ap50_at_fpr_0.01", "ap50_at_fpr_0.05", "ap50_at_fpr_0.25", "fpr_bg", "neg_frames_with_detection"}


def test_no_negatives_means_fpr_is_undefined_and_ap_unconstrained():
    r = AbstentionReport(pairs_from([("a", "dog", [[0, 0, 10, 10]], [0.7], [[0, 0, 10, 10]])]))
    assert np.isnan(r.fpr_bg())
    assert r.ap50_at_fpr(0.01) == pytest.approx(1.0)


def test_ap_averages_over_classes():
    r = AbstentionReport(
        pairs_from(
            [
                ("a", "dog", [[0, 0, 10, 10]], [0.7], [[0, 0, 10, 10]]),
                ("a", "cat", [[50, 50, 60, 60]], [0.7], [[0, 0, 10, 10]]),
            ]
        )
    )
    assert r.ap50() == pytest.approx(0.5)


def _column(length: int, present: list[range]) -> np.ndarray:
    column = np.zeros(length, bool)
    for span in present:
        column[span] = True
    return column[:, None]


def test_state_report_on_a_hand_made_timeline():
    from streamsink.metrics import StateReport, StateTrack

    truth = _column(20, [range(5, 15)])  # appears at 5, leaves at 15
    states = _column(20, [range(2, 3), range(7, 17)])  # one false flicker, 2 frames late both ways
    report = StateReport([StateTrack(truth, states, fps=25.0)], grace=2)
    # Scored absent pairs: frames 0-4 and 17-19 (15, 16 are in the grace window); the flicker is wrong.
    assert report.false_present() == pytest.approx(1 / 8)
    assert report.missed() == 0.0  # frames 5, 6 fall in the grace window
    assert report.delay_present() == 2 and report.delay_absent() == 2
    # Four state changes against the truth's two, in 20 frames at 25 fps (0.8 s).
    assert report.flips_per_minute() == pytest.approx(2 / (0.8 / 60))
    assert StateReport([StateTrack(truth, states)], grace=0).missed() == pytest.approx(2 / 10)


def test_state_report_counts_a_class_in_view_from_the_first_frame_as_appearing_there():
    from streamsink.metrics import StateReport, StateTrack

    truth, states = _column(10, [range(0, 10)]), _column(10, [range(3, 10)])
    report = StateReport([StateTrack(truth, states)], grace=2)
    assert report.missed() == pytest.approx(1 / 8) and report.delay_present() == 3
    assert np.isnan(report.false_present()) and np.isnan(report.delay_absent())
    assert report.flips_per_minute() == 0.0


def test_state_report_counts_a_state_that_never_follows_as_the_whole_stretch():
    from streamsink.metrics import StateReport, StateTrack

    truth = _column(12, [range(4, 8)])
    report = StateReport([StateTrack(truth, np.zeros_like(truth))], grace=0)
    assert report.delay_present() == 4 and report.missed() == 1.0 and report.false_present() == 0.0


def test_state_track_rejects_mismatched_shapes():
    from streamsink.metrics import StateTrack

    with pytest.raises(ValueError, match="one shape"):
        StateTrack(np.zeros((4, 2), bool), np.zeros((4, 3), bool))


def test_raw_missed_at_a_false_present_rate_takes_the_best_shift_of_the_thresholds():
    truth = (np.arange(30) >= 10)[:, None]  # one class, here from frame 10 on
    peak = np.where(truth, 0.6, -np.inf)
    peak[0:5] = 0.4  # a false box before it comes
    peak[20:25] = 0.35  # the real one weakens for five frames
    missed = lambda rate: raw_missed_at(rate, [peak], [truth], [0.3], grace=0)  # noqa: E731
    assert missed(0.5) == 0.0  # the thresholds as they are: 5 of 10 absent frames false, nothing missed
    assert missed(0.0) == pytest.approx(5 / 20)  # only over 0.4: no false box, the weak five frames missed
    assert missed(0.4) == pytest.approx(5 / 20)
    assert np.isnan(raw_missed_at(0.1, [peak[10:]], [truth[10:]], [0.3], grace=0))  # no absent pair to rate
