"""cvprep.detection_metrics: matching against its loop version, AP by hand and by its
properties, COCO's mAP against a slow reference built from the loop matcher (pycocotools
itself is compared in benchmarks/bench_map.py)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvprep.detection_metrics import (
    AP_METHODS,
    COCO_AREA_RANGES,
    COCO_IOU_THRESHOLDS,
    COCO_RECALL_POINTS,
    assign_detections,
    assign_detections_loops,
    average_precision,
    match_detections,
    match_detections_loops,
    mean_average_precision,
    precision_recall,
)

from strategies import detection_outcomes, detection_sets, matching_cases


def boxes(*rows):
    return np.array(rows, dtype=np.float64).reshape(-1, 4)


# assign_detections / match_detections ----------------------------------------------------

@settings(max_examples=300)
@given(matching_cases())
def test_assign_detections_matches_loops(case):
    np.testing.assert_array_equal(assign_detections(**case), assign_detections_loops(**case))


@settings(max_examples=100)
@given(matching_cases())
def test_match_detections_is_assignment_without_ignore(case):
    del case["gt_ignore"]
    expected = assign_detections_loops(**case) >= 0
    np.testing.assert_array_equal(match_detections(**case), expected)
    np.testing.assert_array_equal(match_detections_loops(**case), expected)


@settings(max_examples=100)
@given(matching_cases())
def test_assignment_is_one_to_one_and_above_threshold(case):
    assigned = assign_detections(**case)
    matched = assigned[assigned >= 0]
    assert len(np.unique(matched)) == len(matched)  # each ground truth taken at most once
    if len(matched):
        from cvprep.boxes import box_iou

        iou = box_iou(case["det_boxes"], case["gt_boxes"])[assigned >= 0, matched]
        assert (iou >= min(case["iou_threshold"], 1 - 1e-10)).all()


def test_match_detections_hand_worked():
    gt = boxes([0, 0, 10, 10], [20, 0, 30, 10])
    det = boxes([0, 0, 10, 10], [1, 0, 11, 10], [20, 0, 25, 10], [50, 50, 60, 60])
    scores = np.array([0.9, 0.8, 0.7, 0.95])
    # by score: det 3 (0.95) overlaps nothing -> FP; det 0 (0.9) takes gt 0 (IoU 1) -> TP;
    # det 1 (0.8) has IoU 90 / 110 = 0.82 with gt 0, already taken -> FP (a duplicate);
    # det 2 (0.7) has IoU 50 / 100 = 0.5 with gt 1: a match at 0.5, not at 0.55
    for function in (assign_detections, assign_detections_loops):
        np.testing.assert_array_equal(function(gt, det, scores, 0.5), [0, -1, 1, -1])
        np.testing.assert_array_equal(function(gt, det, scores, 0.55), [0, -1, -1, -1])
    np.testing.assert_array_equal(match_detections(gt, det, scores, 0.5), [True, False, True, False])


def test_a_duplicate_of_a_found_object_takes_a_weaker_match_if_there_is_one():
    gt = boxes([0, 0, 10, 10], [2, 0, 12, 10])
    det = boxes([0, 0, 10, 10], [0, 0, 10, 10])
    # both detections overlap gt 0 fully (IoU 1) and gt 1 with IoU 80 / 120 = 0.67:
    # the first takes gt 0, the second the still-free gt 1
    np.testing.assert_array_equal(assign_detections(gt, det, np.array([0.9, 0.8])), [0, 1])


def test_equal_iou_goes_to_the_later_ground_truth():
    gt = boxes([0, 0, 10, 10], [0, 0, 10, 10])  # the same object annotated twice
    det = boxes([0, 0, 10, 10], [0, 0, 10, 10])
    # pycocotools' scan keeps the last of equally good ground truths: gt 1 first, then gt 0
    for function in (assign_detections, assign_detections_loops):
        np.testing.assert_array_equal(function(gt, det, np.array([0.9, 0.8])), [1, 0])


def test_equal_scores_keep_input_order():
    gt = boxes([0, 0, 10, 10])
    det = boxes([0, 0, 10, 9], [0, 0, 10, 10])  # the second is the better box, but comes later
    for function in (assign_detections, assign_detections_loops):
        np.testing.assert_array_equal(function(gt, det, np.array([0.5, 0.5])), [0, -1])


def test_threshold_one_still_matches_a_box_off_by_rounding():
    gt = boxes([0, 0, 10, 10])
    det = boxes([0, 0, 10, 10 - 1e-13])  # IoU 1 - 1e-14: below 1, above 1 - 1e-10
    np.testing.assert_array_equal(match_detections(gt, det, np.array([0.9]), 1.0), [True])
    np.testing.assert_array_equal(match_detections(gt, boxes([0, 0, 10, 9.99]), np.array([0.9]), 1.0), [False])


def test_ignored_ground_truth_is_matched_only_as_a_last_resort():
    gt = boxes([0, 0, 10, 10], [0, 0, 10, 16])
    det = boxes([0, 0, 10, 11], [0, 0, 10, 11])
    ignore = np.array([True, False])
    # det 0 overlaps the ignored gt 0 with IoU 10 / 11 = 0.91 and gt 1 with 11 / 16 = 0.69:
    # it takes gt 1, which counts; det 1 then falls back to the ignored gt 0
    for function in (assign_detections, assign_detections_loops):
        np.testing.assert_array_equal(function(gt, det, np.array([0.9, 0.8]), 0.5, ignore), [1, 0])
        np.testing.assert_array_equal(function(gt, det, np.array([0.9, 0.8]), 0.5), [0, 1])


def test_match_detections_empty_inputs():
    none = np.zeros((0, 4))
    assert match_detections(none, boxes([0, 0, 1, 1]), np.array([0.5])).tolist() == [False]
    assert match_detections(boxes([0, 0, 1, 1]), none, np.zeros(0)).shape == (0,)
    assert assign_detections(none, none, np.zeros(0)).shape == (0,)


GT = boxes([0, 0, 10, 10])
DET = boxes([0, 0, 10, 10], [5, 5, 15, 15])
SCORES = np.array([0.9, 0.8])


@pytest.mark.parametrize(
    "args, kwargs, error, pattern",
    [
        ((np.zeros((1, 3)), DET, SCORES), {}, ValueError, r"gt_boxes must have shape \[N, 4\], got \(1, 3\)"),
        ((GT, boxes([5, 0, 1, 10]), SCORES[:1]), {}, ValueError, "det_boxes must be .* x1 <= x2"),
        ((GT, DET, SCORES[:1]), {}, ValueError, "det_boxes has 2 rows, det_scores has 1 entries"),
        ((GT, DET, np.array([0.9, np.nan])), {}, ValueError, "det_scores must be finite"),
        ((GT, DET, SCORES), {"iou_threshold": -0.1}, ValueError, r"iou_threshold must be in \[0, 1\], got -0.1"),
        ((GT, DET, SCORES), {"iou_threshold": 1.5}, ValueError, r"iou_threshold must be in \[0, 1\], got 1.5"),
        ((GT, DET, SCORES), {"gt_ignore": np.array([0])}, TypeError, "gt_ignore must be a boolean numpy.ndarray"),
        ((GT, DET, SCORES), {"gt_ignore": np.array([True, False])}, ValueError, "gt_boxes has 1 rows, gt_ignore has shape"),
        ((GT.astype(int), DET, SCORES), {}, TypeError, "gt_boxes must have a floating-point dtype"),
    ],
)
def test_assign_detections_rejects_bad_input(args, kwargs, error, pattern):
    for function in (assign_detections, assign_detections_loops):
        with pytest.raises(error, match=pattern):
            function(*args, **kwargs)


# precision_recall ----------------------------------------------------------------------------

def test_precision_recall_hand_worked():
    # sorted by score: 0.9 TP, 0.8 FP, 0.7 TP, with 2 objects:
    # recall 1/2, 1/2, 2/2; precision 1/1, 1/2, 2/3
    recall, precision = precision_recall(np.array([0.7, 0.9, 0.8]), np.array([True, True, False]), 2)
    np.testing.assert_allclose(recall, [0.5, 0.5, 1.0])
    np.testing.assert_allclose(precision, [1.0, 0.5, 2 / 3])


def test_precision_recall_keeps_input_order_for_equal_scores():
    recall, precision = precision_recall(np.array([0.5, 0.5]), np.array([False, True]), 1)
    np.testing.assert_allclose(precision, [0.0, 0.5])  # the FP came first in the input
    np.testing.assert_allclose(recall, [0.0, 1.0])


@pytest.mark.parametrize(
    "args, error, pattern",
    [
        ((np.array([0.9]), np.array([True]), 0), ValueError, "num_gt must be >= 1, got 0"),
        ((np.array([0.9, 0.8]), np.array([True, True]), 1), ValueError, "is_tp has 2 true positives but num_gt is only 1"),
        ((np.array([0.9]), np.array([1]), 1), TypeError, "is_tp must be a boolean numpy.ndarray"),
        ((np.array([0.9, 0.8]), np.array([True]), 1), ValueError, "is_tp must have one entry per score"),
        ((np.array([np.inf]), np.array([True]), 1), ValueError, "scores must be finite"),
        ((np.array([0.9]), np.array([True]), 1.0), TypeError, "num_gt must be an int"),
    ],
)
def test_precision_recall_rejects_bad_input(args, error, pattern):
    with pytest.raises(error, match=pattern):
        precision_recall(*args)


# average_precision -------------------------------------------------------------------------

def test_average_precision_hand_worked_tp_fp_tp():
    # TP, FP, TP with 2 objects: recall [.5, .5, 1], precision [1, .5, 2/3];
    # envelope (best precision at this or a higher recall): [1, 2/3, 2/3]
    recall, precision = np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 2 / 3])
    # coco101: r = 0 .. 0.50 (51 points) read entry 0 -> 1; r = 0.51 .. 1 (50 points) read
    # entry 2 -> 2/3: (51 + 50 * 2/3) / 101 = 84.33 / 101 = 0.83498
    assert average_precision(recall, precision, "coco101") == pytest.approx((51 + 50 * 2 / 3) / 101)
    # voc11: r = 0 .. 0.5 (6 points) -> 1; r = 0.6 .. 1 (5 points) -> 2/3: (6 + 10/3) / 11 = 0.84848
    assert average_precision(recall, precision, "voc11") == pytest.approx((6 + 5 * 2 / 3) / 11)
    # voc_all: recall 0 -> 0.5 at precision 1, 0.5 -> 1 at 2/3: 0.5 + 0.5 * 2/3 = 0.83333
    assert average_precision(recall, precision, "voc_all") == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_average_precision_hand_worked_five_objects():
    # TP TP FP TP FP FP TP FP, 5 objects: recall .2 .4 .4 .6 .6 .6 .8 .8,
    # precision 1 1 .667 .75 .6 .5 .571 .5, envelope 1 1 .75 .75 .6 .571 .571 .5
    hits = np.array([1, 1, 0, 1, 0, 0, 1, 0], dtype=bool)
    recall = np.cumsum(hits) / 5
    precision = np.cumsum(hits) / np.arange(1, 9)
    # voc_all: .4 * 1 + .2 * .75 + .2 * 4/7 (then recall never reaches 1) = 0.66429
    assert average_precision(recall, precision, "voc_all") == pytest.approx(0.4 + 0.2 * 0.75 + 0.2 * 4 / 7)
    # voc11: r = 0 .. .4 (5 points) -> 1, r = .5, .6 -> .75, r = .7, .8 -> 4/7, r = .9, 1 -> 0;
    # (5 + 1.5 + 8/7) / 11 = 0.69481 (recall 3/5 = 0.6 reaches the point 0.6)
    assert average_precision(recall, precision, "voc11") == pytest.approx((5 + 1.5 + 8 / 7) / 11)
    # coco101: r = 0 .. .40 (41 points) -> 1, .41 .. .60 (20) -> .75, .61 .. .80 (20) -> 4/7
    assert average_precision(recall, precision, "coco101") == pytest.approx((41 + 20 * 0.75 + 20 * 4 / 7) / 101)


def test_coco101_reads_recall_points_as_pycocotools_does():
    # 7 of 20 objects found with precision 1, then a run of FPs: recall 7/20 = 0.35.
    # pycocotools' 36th recall point is np.linspace(0, 1, 101)[35] = 0.35000000000000003,
    # just above 0.35, so it is not reached: 35 points (0 .. 0.34) count, not 36.
    recall = np.full(8, 0.35)
    recall[:7] = np.arange(1, 8) / 20
    precision = np.concatenate([np.ones(7), [7 / 8]])
    assert COCO_RECALL_POINTS[35] > 7 / 20
    assert average_precision(recall, precision, "coco101") == pytest.approx(35 / 101)


def test_coco101_and_voc_all_have_no_fixed_order():
    # one TP out of 200 objects: the area is 0.005, but coco101 samples p(0) = 1 -> 1/101
    recall, precision = np.array([0.005]), np.array([1.0])
    assert average_precision(recall, precision, "coco101") == pytest.approx(1 / 101)
    assert average_precision(recall, precision, "voc_all") == pytest.approx(0.005)
    # 199 TPs out of 200: the area is 0.995, but coco101's point r = 1 is never reached
    recall, precision = np.arange(1, 200) / 200, np.ones(199)
    assert average_precision(recall, precision, "coco101") == pytest.approx(100 / 101)
    assert average_precision(recall, precision, "voc_all") == pytest.approx(0.995)


@pytest.mark.parametrize("method", AP_METHODS)
def test_average_precision_of_no_detections_is_zero(method):
    assert average_precision(np.zeros(0), np.zeros(0), method) == 0.0


@pytest.mark.parametrize("method", AP_METHODS)
@given(n=st.integers(1, 30), extra_fp=st.integers(0, 5))
def test_average_precision_perfect_ranking_is_one(method, n, extra_fp):
    # every object found before any false positive
    is_tp = np.concatenate([np.ones(n, bool), np.zeros(extra_fp, bool)])
    recall, precision = precision_recall(np.linspace(1, 0, n + extra_fp), is_tp, n)
    assert average_precision(recall, precision, method) == pytest.approx(1.0)


@pytest.mark.parametrize("method", AP_METHODS)
@given(detection_outcomes())
def test_average_precision_is_in_unit_interval(method, outcome):
    ap = average_precision(*precision_recall(*outcome), method)
    assert 0.0 <= ap <= 1.0


@pytest.mark.parametrize("method", AP_METHODS)
@given(detection_outcomes(), st.data())
def test_average_precision_grows_when_a_false_positive_becomes_true(method, outcome, data):
    scores, is_tp, num_gt = outcome
    if is_tp.all() or is_tp.sum() == num_gt:
        return
    flip = data.draw(st.sampled_from(np.flatnonzero(~is_tp).tolist()))
    better = is_tp.copy()
    better[flip] = True
    # every (recall, precision) point moves up and to the right, so does the envelope
    before = average_precision(*precision_recall(scores, is_tp, num_gt), method)
    after = average_precision(*precision_recall(scores, better, num_gt), method)
    assert after >= before - 1e-12


@pytest.mark.parametrize("method", AP_METHODS)
@given(detection_outcomes())
def test_average_precision_does_not_drop_when_a_last_true_positive_is_added(method, outcome):
    scores, is_tp, num_gt = outcome
    if is_tp.sum() == num_gt:
        return
    before = average_precision(*precision_recall(scores, is_tp, num_gt), method)
    lowest = scores.min(initial=1.0) / 2
    after = average_precision(*precision_recall(np.append(scores, lowest), np.append(is_tp, True), num_gt), method)
    assert after >= before - 1e-12


@settings(max_examples=200)
@given(detection_outcomes())
def test_coco101_and_voc11_equal_their_literal_definition(outcome):
    recall, precision = precision_recall(*outcome)

    def literal(points):  # mean over r of the best precision at recall >= r, 0 if none
        return np.mean([precision[recall >= r].max(initial=0.0) for r in points])

    assert average_precision(recall, precision, "coco101") == pytest.approx(literal(COCO_RECALL_POINTS), abs=1e-12)
    assert average_precision(recall, precision, "voc11") == pytest.approx(literal(np.arange(11) / 10), abs=1e-12)


@settings(max_examples=200)
@given(detection_outcomes())
def test_sampled_aps_are_close_to_the_area(outcome):
    # The envelope p(r) is non-increasing, so a mean of its values at points spaced h apart
    # is within h (one step) of the area under it, plus 1/n for the extra point at r = 0:
    # coco101 (h = 0.01) within 0.02, voc11 (h = 0.1) within 0.2.
    recall, precision = precision_recall(*outcome)
    area = average_precision(recall, precision, "voc_all")
    assert abs(average_precision(recall, precision, "coco101") - area) <= 0.02
    assert abs(average_precision(recall, precision, "voc11") - area) <= 0.2


@pytest.mark.parametrize(
    "recall, precision, kwargs, error, pattern",
    [
        (np.array([0.5]), np.array([1.0]), {"method": "voc12"}, ValueError, "method must be one of 'coco101', 'voc11', 'voc_all', got 'voc12'"),
        (np.array([0.5, 0.4]), np.array([1.0, 1.0]), {}, ValueError, r"recall must be non-decreasing .* entry 1 \(0.4\) is below entry 0"),
        (np.array([0.5, 1.5]), np.array([1.0, 1.0]), {}, ValueError, r"recall must be in \[0, 1\], but entry 1 is 1.5"),
        (np.array([0.5]), np.array([-0.1]), {}, ValueError, r"precision must be in \[0, 1\], but entry 0 is -0.1"),
        (np.array([0.5]), np.array([1.0, 1.0]), {}, ValueError, "recall and precision must have the same length .* got 1 and 2"),
        (np.array([0.5]), np.array([np.nan]), {}, ValueError, "precision must be finite"),
        (np.array([1]), np.array([1.0]), {}, TypeError, "recall must have a floating-point dtype"),
        (np.ones((2, 2)), np.ones((2, 2)), {}, ValueError, r"recall must have shape \[D\]"),
        ([0.5], np.array([1.0]), {}, TypeError, "recall must be a numpy.ndarray"),
    ],
)
def test_average_precision_rejects_bad_input(recall, precision, kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        average_precision(recall, precision, **kwargs)


# mean_average_precision: hand-worked ----------------------------------------------------------

def image(gt_boxes, gt_labels, det_boxes, det_scores, det_labels):
    gt = {"boxes": boxes(*gt_boxes), "labels": np.array(gt_labels, dtype=np.int64)}
    det = {"boxes": boxes(*det_boxes), "scores": np.array(det_scores, dtype=np.float64),
           "labels": np.array(det_labels, dtype=np.int64)}
    return gt, det


def test_map_hand_worked_two_classes():
    a, b = [0, 0, 10, 10], [50, 50, 60, 60]  # class 0, small (area 100)
    c = [0, 0, 100, 100]  # class 1, large (area 10,000)
    far = [200, 200, 400, 400]  # a class-0 detection of nothing, large (area 40,000)
    gt, det = image([a, b, c], [0, 0, 1],
                    [far, a, a, c], [0.95, 0.9, 0.8, 0.7], [0, 0, 0, 1])
    result = mean_average_precision([gt], [det])
    # Every match has IoU 1, so all ten thresholds agree.
    # Class 0 ("all"): far FP, a TP, a again FP (duplicate), b missed; 2 objects:
    #   recall 0, .5, .5; precision 0, .5, .33; envelope .5, .5, .33;
    #   r = 0 .. .5 (51 points) -> .5, the rest 0: AP = 25.5 / 101 = 0.25248
    # Class 1: one TP for one object: AP 1.   map = (25.5 / 101 + 1) / 2 = 0.62624
    assert result["map"] == pytest.approx((25.5 / 101 + 1) / 2)
    assert result["map_50"] == result["map_75"] == pytest.approx(result["map"])
    np.testing.assert_array_equal(result["classes"], [0, 1])
    np.testing.assert_allclose(result["map_per_class"], [25.5 / 101, 1.0])
    # small: class 0's objects are small; far is unmatched and large, so it is ignored:
    #   TP, FP: recall .5, .5; precision 1, .5 -> AP = 51 / 101. Class 1 has no small
    #   object (-1, left out of the mean).
    assert result["map_small"] == pytest.approx(51 / 101)
    assert result["map_medium"] == -1.0  # no medium object in any class
    assert result["map_large"] == pytest.approx(1.0)  # class 1 only
    # recall: with 1 detection per image and class, class 0 keeps only far (recall 0) and
    # class 1 finds its object: (0 + 1) / 2; with 10 or 100, class 0 reaches .5
    assert result["mar_1"] == pytest.approx(0.5)
    assert result["mar_10"] == result["mar_100"] == pytest.approx(0.75)
    assert result["mar_small"] == pytest.approx(0.5)
    assert result["mar_medium"] == -1.0
    assert result["mar_large"] == pytest.approx(1.0)
    np.testing.assert_allclose(result["mar_per_class"], [0.5, 1.0])


def test_map_rewards_precise_boxes_at_high_thresholds():
    # IoU of [0, 0, 8, 8] with [0, 0, 10, 10] is 64 / 100 = 0.64: a TP at the thresholds
    # .50, .55, .60 (AP 1), a FP at the seven above (AP 0): map = 3 / 10
    gt, det = image([[0, 0, 10, 10]], [0], [[0, 0, 8, 8]], [0.9], [0])
    result = mean_average_precision([gt], [det])
    assert result["map"] == pytest.approx(0.3)
    assert result["map_50"] == 1.0
    assert result["map_75"] == 0.0


def test_map_of_missed_objects_is_zero_and_of_classes_without_objects_minus_one():
    gt, det = image([[0, 0, 10, 10]], [0], [[50, 50, 60, 60]], [0.9], [2])
    result = mean_average_precision([gt], [det])
    # class 0 has an object and no detection: AP 0; class 2 has no object: -1, left out
    np.testing.assert_array_equal(result["classes"], [0, 2])
    np.testing.assert_array_equal(result["map_per_class"], [0.0, -1.0])
    assert result["map"] == 0.0
    assert result["mar_100"] == 0.0


def test_map_of_detections_without_any_object_is_minus_one():
    gt, det = image([], [], [[0, 0, 10, 10]], [0.9], [0])
    result = mean_average_precision([gt], [det])
    assert result["map"] == result["mar_100"] == -1.0


@pytest.mark.parametrize("n_images", [0, 3])
def test_map_of_nothing_is_minus_one(n_images):
    empty_gt = {"boxes": np.zeros((0, 4)), "labels": np.zeros(0, dtype=np.int64)}
    empty_det = {"boxes": np.zeros((0, 4)), "scores": np.zeros(0), "labels": np.zeros(0, dtype=np.int64)}
    result = mean_average_precision([empty_gt] * n_images, [empty_det] * n_images)
    assert all(result[key] == -1.0 for key in ("map", "map_50", "map_small", "mar_1", "mar_100", "mar_large"))
    assert result["classes"].shape == result["map_per_class"].shape == (0,)


def test_map_truncates_detections_per_image_and_class():
    obj = [0, 0, 10, 10]
    miss = [[50, 50, 60, 60], [70, 70, 80, 80], [90, 90, 99, 99]]
    # class 0: three FPs above the TP; class 1: four more detections of its own
    gt, det = image([obj], [0], miss + [obj] + miss + [[0, 0, 5, 5]],
                    [0.9, 0.8, 0.7, 0.6, 0.99, 0.98, 0.97, 0.96], [0, 0, 0, 0, 1, 1, 1, 1])
    # max 3 per image and class: the TP (4th of class 0) is cut, whatever class 1 has
    assert mean_average_precision([gt], [det], max_detections=3)["map"] == 0.0
    # max 4: FP FP FP TP -> recall 1 at precision 1/4; class 1 has no object (-1)
    result = mean_average_precision([gt], [det], max_detections=4)
    assert result["map"] == pytest.approx(0.25)
    assert result["mar_1"] == 0.0
    assert result["mar_4"] == 1.0
    assert "mar_10" not in result and "mar_100" not in result


def test_map_with_custom_thresholds():
    gt, det = image([[0, 0, 10, 10]], [0], [[0, 0, 8, 8]], [0.9], [0])  # IoU 0.64
    result = mean_average_precision([gt], [det], iou_thresholds=[0.5, 0.7])
    assert result["map"] == pytest.approx(0.5)  # TP at 0.5, FP at 0.7
    assert result["map_50"] == 1.0
    assert result["map_75"] == -1.0  # 0.75 is not among the thresholds


def test_map_ties_across_images_go_to_the_first_image():
    # one object in each image, one detection each with the same score: image 0's is a
    # FP, image 1's a TP; image 0 comes first: FP, TP -> recall 0, .5; precision 0, .5
    # -> envelope .5 up to recall .5 (51 points): AP = 25.5 / 101; in the other order
    # TP, FP -> 51 / 101
    g0, d0 = image([[0, 0, 10, 10]], [0], [[50, 50, 60, 60]], [0.5], [0])
    g1, d1 = image([[0, 0, 10, 10]], [0], [[0, 0, 10, 10]], [0.5], [0])
    assert mean_average_precision([g0, g1], [d0, d1])["map"] == pytest.approx(25.5 / 101)
    assert mean_average_precision([g1, g0], [d1, d0])["map"] == pytest.approx(51 / 101)


# mean_average_precision against a slow reference ---------------------------------------------

def reference_map(ground_truth, detections, thresholds=COCO_IOU_THRESHOLDS, max_detections=100):
    """COCO's mAP spelled out: per class, area range, detection limit and threshold, match
    each image with the loop matcher, drop ignored detections, compute the 101-point AP."""
    area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # noqa: E731
    limits = [m for m in dict.fromkeys((1, 10, 100, max_detections)) if m <= max_detections]
    labels = [e["labels"] for e in ground_truth + detections]
    classes = np.unique(np.concatenate(labels)) if labels else np.zeros(0, int)
    shape = (len(thresholds), len(classes), len(COCO_AREA_RANGES), len(limits))
    ap, rec = np.full(shape, -1.0), np.full(shape, -1.0)
    for k, c in enumerate(classes):
        for a, (low, high) in enumerate(COCO_AREA_RANGES.values()):
            for m, limit in enumerate(limits):
                for t, threshold in enumerate(thresholds):
                    scores, hits, n_objects = [], [], 0
                    for gt, det in zip(ground_truth, detections):
                        objects = gt["boxes"][gt["labels"] == c]
                        ignore = (area(objects) < low) | (area(objects) > high)
                        n_objects += int((~ignore).sum())
                        mine = det["labels"] == c
                        order = np.argsort(-det["scores"][mine], kind="stable")[:max_detections]
                        found, confidence = det["boxes"][mine][order], det["scores"][mine][order]
                        assigned = assign_detections_loops(objects, found, confidence, threshold, ignore)
                        outside = (area(found) < low) | (area(found) > high)
                        for j in range(min(limit, len(found))):
                            if (assigned[j] >= 0 and ignore[assigned[j]]) or (assigned[j] < 0 and outside[j]):
                                continue  # ignored
                            scores.append(confidence[j])
                            hits.append(assigned[j] >= 0)
                    if n_objects == 0:
                        continue
                    recall, precision = precision_recall(np.array(scores, float), np.array(hits, bool), n_objects)
                    ap[t, k, a, m] = average_precision(recall, precision, "coco101")
                    rec[t, k, a, m] = recall[-1] if len(recall) else 0.0

    def mean(x):
        return float(x[x > -1].mean()) if (x > -1).any() else -1.0

    result = {"map": mean(ap[:, :, 0, -1]), "map_small": mean(ap[:, :, 1, -1]), "map_medium": mean(ap[:, :, 2, -1]),
              "map_large": mean(ap[:, :, 3, -1]), "mar_small": mean(rec[:, :, 1, -1]),
              "mar_medium": mean(rec[:, :, 2, -1]), "mar_large": mean(rec[:, :, 3, -1]),
              "map_per_class": np.array([mean(ap[:, k, 0, -1]) for k in range(len(classes))]),
              "mar_per_class": np.array([mean(rec[:, k, 0, -1]) for k in range(len(classes))])}
    for name, value in (("map_50", 0.5), ("map_75", 0.75)):
        result[name] = mean(ap[np.isclose(thresholds, value), :, 0, -1])
    for m, limit in enumerate(limits):
        result[f"mar_{limit}"] = mean(rec[:, :, 0, m])
    return result


@settings(max_examples=80)
@given(detection_sets(), st.sampled_from([100, 1, 2, 5]))
def test_map_matches_reference(dataset, max_detections):
    ground_truth, detections = dataset
    thresholds = np.array([0.5, 0.75, 0.95])  # three of COCO's ten keep the reference quick
    expected = reference_map(ground_truth, detections, thresholds, max_detections)
    result = mean_average_precision(ground_truth, detections, thresholds, max_detections)
    assert set(result) == set(expected) | {"classes"}
    for key, value in expected.items():
        np.testing.assert_allclose(result[key], value, rtol=0, atol=1e-12, err_msg=key)


@settings(max_examples=15)
@given(detection_sets(max_images=3))
def test_map_matches_reference_on_coco_thresholds(dataset):
    ground_truth, detections = dataset
    expected = reference_map(ground_truth, detections)
    result = mean_average_precision(ground_truth, detections)
    for key, value in expected.items():
        np.testing.assert_allclose(result[key], value, rtol=0, atol=1e-12, err_msg=key)


@settings(max_examples=30)
@given(detection_sets())
def test_map_values_are_in_range(dataset):
    result = mean_average_precision(*dataset)
    for key, value in result.items():
        if key != "classes":
            assert np.all((np.asarray(value) == -1) | ((np.asarray(value) >= 0) & (np.asarray(value) <= 1))), key


def test_map_perfect_detections_score_one():
    rng = np.random.default_rng(0)
    ground_truth, detections = [], []
    for _ in range(5):
        corner = rng.uniform(0, 500, size=(4, 2))
        objects = np.concatenate([corner, corner + rng.uniform(5, 200, size=(4, 2))], axis=1)
        labels = rng.integers(0, 3, size=4)
        ground_truth.append({"boxes": objects, "labels": labels})
        detections.append({"boxes": objects.copy(), "scores": rng.random(4), "labels": labels.copy()})
    result = mean_average_precision(ground_truth, detections)
    for key in ("map", "map_50", "map_75", "mar_100"):
        assert result[key] == pytest.approx(1.0)


# mean_average_precision: bad input -------------------------------------------------------

def good_image():
    return image([[0, 0, 10, 10]], [0], [[0, 0, 10, 10]], [0.9], [0])


def good_lists():
    gt, det = good_image()
    return [gt], [det]


def with_change(which, key, value):
    gt, det = good_image()
    (gt if which == "gt" else det)[key] = value
    return [gt], [det]


@pytest.mark.parametrize(
    "args, kwargs, error, pattern",
    [
        (with_change("gt", "boxes", np.zeros((1, 3))), {}, ValueError, r"ground_truth\[0\]\['boxes'\] must have shape \[N, 4\]"),
        (with_change("det", "boxes", boxes([5, 0, 1, 10])), {}, ValueError, r"detections\[0\]\['boxes'\] must be .* x1 <= x2"),
        (with_change("gt", "labels", np.array([0, 1])), {}, ValueError, r"ground_truth\[0\]\['labels'\] must have one entry per box"),
        (with_change("det", "scores", np.array([0.9, 0.8])), {}, ValueError, r"detections\[0\]\['scores'\] must have one entry per box"),
        (with_change("det", "labels", np.array([0.0])), {}, TypeError, r"detections\[0\]\['labels'\] must have an integer dtype"),
        (good_lists(), {"iou_thresholds": [-0.1, 0.5]}, ValueError, r"iou_thresholds must be in \[0, 1\], got -0.1"),
        (good_lists(), {"iou_thresholds": [0.5, 1.2]}, ValueError, r"iou_thresholds must be in \[0, 1\], got 1.2"),
        (good_lists(), {"iou_thresholds": []}, ValueError, "iou_thresholds must be a non-empty 1-D sequence"),
        (good_lists(), {"max_detections": 0}, ValueError, "max_detections must be >= 1, got 0"),
        (([good_image()[0]] * 2, [good_image()[1]]), {}, ValueError, "one entry per image, got 2 and 1"),
        (([{"boxes": np.zeros((0, 4))}], [good_image()[1]]), {}, ValueError, r"ground_truth\[0\] must have keys .* missing \['labels'\]"),
        (([good_image()[0]], [[1, 2]]), {}, TypeError, r"detections\[0\] must be a dict, got list"),
        ((good_image()[0], good_image()[1]), {}, TypeError, "ground_truth must be a list with one dict per image, got dict"),
    ],
)
def test_map_rejects_bad_input(args, kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        mean_average_precision(*args, **kwargs)
