"""cvprep.nms against torchvision.ops, against its own loop versions, on invariants and hand-worked cases."""

import math

import numpy as np
import pytest
import torch
import torchvision.ops as tv
from hypothesis import given, settings
from hypothesis import strategies as st

from cvprep.boxes import box_iou, distance_box_iou
from cvprep.nms import (
    batched_nms,
    batched_nms_loops,
    diou_nms,
    diou_nms_loops,
    nms,
    nms_loops,
    soft_nms,
    soft_nms_loops,
)

from strategies import box_arrays, nms_cases


def torch_nms(case):
    return tv.nms(torch.from_numpy(case["boxes"]), torch.from_numpy(case["scores"]), case["iou_threshold"]).numpy()


def torch_batched_nms(case):
    boxes, scores, idxs = (torch.from_numpy(case[k]) for k in ("boxes", "scores", "idxs"))
    return tv.batched_nms(boxes, scores, idxs, case["iou_threshold"]).numpy()


def args(case):
    return case["boxes"], case["scores"], case["iou_threshold"]


def boxes(*rows):
    return np.array(rows, dtype=np.float64).reshape(-1, 4)


def clustered(n, seed=0):
    """``n`` boxes jittered around n // 20 objects in a 1000 x 1000 image, and distinct scores."""
    rng = np.random.default_rng(seed)
    objects = rng.uniform(0, 1000, size=(n // 20, 2))
    sizes = rng.uniform(20, 200, size=(n // 20, 2))
    which = rng.integers(len(objects), size=n)
    centres = objects[which] + rng.normal(0, 0.1, size=(n, 2)) * sizes[which]
    half = sizes[which] * np.exp(rng.normal(0, 0.15, size=(n, 2))) / 2
    return np.concatenate([centres - half, centres + half], axis=1), rng.permutation(n) / n


# NMS against torchvision --------------------------------------------------------------------

@settings(max_examples=150)
@given(nms_cases())
def test_nms_matches_torchvision(case):
    keep = nms(*args(case))
    assert keep.dtype == np.int64
    np.testing.assert_array_equal(keep, torch_nms(case))


@settings(max_examples=60)
@given(nms_cases(dtype=np.float32))
def test_nms_float32_matches_torchvision(case):
    np.testing.assert_array_equal(nms(*args(case)), torch_nms(case))


@settings(max_examples=15)
@given(nms_cases(min_size=65, max_size=300))
def test_nms_matches_torchvision_across_several_blocks(case):
    """More boxes than one block of the vectorised greedy pass (64)."""
    np.testing.assert_array_equal(nms(*args(case)), torch_nms(case))


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_nms_matches_torchvision_on_many_clustered_boxes(threshold):
    b, s = clustered(3000)
    case = {"boxes": b, "scores": s, "iou_threshold": threshold}
    keep = nms(*args(case))
    assert 0.02 * len(b) < len(keep) < 0.5 * len(b)  # NMS had work to do, and kept a fair number
    np.testing.assert_array_equal(keep, torch_nms(case))


@settings(max_examples=100)
@given(nms_cases(n_classes=3))
def test_batched_nms_matches_torchvision(case):
    keep = batched_nms(*args(case)[:2], case["idxs"], case["iou_threshold"])
    assert keep.dtype == np.int64
    np.testing.assert_array_equal(keep, torch_batched_nms(case))


def test_batched_nms_matches_torchvision_on_many_boxes():
    """Above 4,000 coordinates torchvision switches to its coordinate-offset trick."""
    b, s = clustered(2000)
    idxs = np.random.default_rng(1).integers(0, 10, size=len(b))
    case = {"boxes": b, "scores": s, "idxs": idxs, "iou_threshold": 0.5}
    np.testing.assert_array_equal(batched_nms(b, s, idxs, 0.5), torch_batched_nms(case))


# Loop versions --------------------------------------------------------------------------------

@settings(max_examples=100)
@given(nms_cases(max_size=30))
def test_nms_loops_match_vectorised(case):
    np.testing.assert_array_equal(nms_loops(*args(case)), nms(*args(case)))


@settings(max_examples=60)
@given(nms_cases(max_size=30, n_classes=3))
def test_batched_nms_loops_match_vectorised(case):
    b, s, threshold = args(case)
    np.testing.assert_array_equal(batched_nms_loops(b, s, case["idxs"], threshold), batched_nms(b, s, case["idxs"], threshold))


@settings(max_examples=100)
@given(nms_cases(max_size=30))
def test_diou_nms_loops_match_vectorised(case):
    np.testing.assert_array_equal(diou_nms_loops(*args(case)), diou_nms(*args(case)))


@settings(max_examples=10)
@given(nms_cases(min_size=65, max_size=120))
def test_loops_match_vectorised_across_several_blocks(case):
    np.testing.assert_array_equal(nms_loops(*args(case)), nms(*args(case)))
    np.testing.assert_array_equal(diou_nms_loops(*args(case)), diou_nms(*args(case)))


@pytest.mark.parametrize("method", ["linear", "gaussian"])
@settings(max_examples=50)
@given(case=nms_cases(max_size=25), sigma=st.sampled_from([0.05, 0.5, 2.0]), score_threshold=st.sampled_from([0.0, 0.001, 0.3]))
def test_soft_nms_loops_match_vectorised(method, case, sigma, score_threshold):
    kwargs = {"sigma": sigma, "score_threshold": score_threshold, "method": method}
    keep_slow, scores_slow = soft_nms_loops(*args(case), **kwargs)
    keep_fast, scores_fast = soft_nms(*args(case), **kwargs)
    np.testing.assert_array_equal(keep_fast, keep_slow)
    np.testing.assert_allclose(scores_fast, scores_slow, rtol=1e-12)


# Invariants -----------------------------------------------------------------------------------

@pytest.mark.parametrize("function, overlap", [(nms, box_iou), (diou_nms, lambda a, b: distance_box_iou(a, b, eps=0.0))])
@settings(max_examples=80)
@given(case=nms_cases())
def test_nms_output_is_a_score_sorted_subset_and_greedy(function, overlap, case):
    """Kept boxes: distinct, by decreasing score, no kept pair above the threshold; every
    dropped box overlaps a kept box with a higher score above the threshold."""
    b, s, threshold = args(case)
    keep = function(b, s, threshold)
    assert len(set(keep.tolist())) == len(keep) and set(keep.tolist()) <= set(range(len(b)))
    assert (np.diff(s[keep]) < 0).all()
    kept_overlaps = overlap(b[keep], b[keep])  # [K, K]
    assert not (np.triu(kept_overlaps, k=1) > threshold).any()
    for dropped in sorted(set(range(len(b))) - set(keep.tolist())):
        over = overlap(b[keep], b[dropped : dropped + 1])[:, 0] > threshold  # [K]
        assert (over & (s[keep] > s[dropped])).any(), f"box {dropped} was dropped, but no kept box suppresses it"


@settings(max_examples=50)
@given(case=nms_cases(n_classes=3))
def test_batched_nms_is_nms_per_class(case):
    b, s, threshold = args(case)
    keep = batched_nms(b, s, case["idxs"], threshold)
    for label in range(3):
        members = np.flatnonzero(case["idxs"] == label)
        np.testing.assert_array_equal(keep[case["idxs"][keep] == label], members[nms(b[members], s[members], threshold)])
    assert (np.diff(s[keep]) < 0).all()


@pytest.mark.parametrize("function", [nms, diou_nms, nms_loops, soft_nms])
@settings(max_examples=30)
@given(case=nms_cases())
def test_inputs_are_not_modified(function, case):
    b, s, threshold = args(case)
    b_copy, s_copy = b.copy(), s.copy()
    function(b, s, threshold)
    np.testing.assert_array_equal(b, b_copy)
    np.testing.assert_array_equal(s, s_copy)


@pytest.mark.parametrize("method", ["linear", "gaussian"])
@settings(max_examples=50)
@given(case=nms_cases(), score_threshold=st.sampled_from([0.0, 0.001, 0.3]))
def test_soft_nms_invariants(method, case, score_threshold):
    b, s, threshold = args(case)
    keep, new_scores = soft_nms(b, s, threshold, score_threshold=score_threshold, method=method)
    assert keep.dtype == np.int64 and new_scores.dtype == s.dtype and len(keep) == len(new_scores)
    assert len(set(keep.tolist())) == len(keep)
    assert (np.diff(new_scores) <= 0).all()  # selected by decreasing decayed score
    assert (new_scores <= s[keep]).all() and (new_scores >= score_threshold).all()
    if len(keep):
        assert keep[0] == np.argmax(s) and new_scores[0] == s.max()  # the best box is never decayed
    # A box that overlaps no other box is never decayed, so it is kept with its own score.
    alone = np.flatnonzero((box_iou(b, b) > 0).sum(axis=1) <= 1)
    alone = alone[s[alone] >= score_threshold]
    assert set(alone.tolist()) <= set(keep.tolist())
    np.testing.assert_array_equal(new_scores[np.isin(keep, alone)], s[keep][np.isin(keep, alone)])


@settings(max_examples=50)
@given(b=box_arrays(max_size=12))
def test_soft_nms_gaussian_with_tiny_sigma_is_nms_at_zero(b):
    """exp(-IoU^2 / sigma) -> 0 for any overlap as sigma -> 0, so every box overlapping a
    selected box at all is dropped: hard NMS with iou_threshold 0. (Grid boxes with
    integer corners have IoU 0 or >= 1/1000, so sigma = 1e-12 is small enough.)"""
    b = np.round(b)  # integer corners, still valid boxes
    s = (np.arange(len(b))[::-1] + 1.0) / len(b) if len(b) else np.zeros(0)
    keep, _ = soft_nms(b, s, sigma=1e-12, score_threshold=0.001)
    np.testing.assert_array_equal(keep, nms(b, s, 0.0))


@given(case=nms_cases())
def test_soft_nms_without_decay_keeps_everything_in_score_order(case):
    """Linear Soft-NMS with N_t = 1 never decays (IoU > 1 is impossible), and Gaussian
    with a huge sigma barely does: every box comes out, by score, with its own score."""
    b, s, _ = args(case)
    order = np.argsort(-s, kind="stable")
    keep, new_scores = soft_nms(b, s, iou_threshold=1.0, score_threshold=0.0, method="linear")
    np.testing.assert_array_equal(keep, order)
    np.testing.assert_array_equal(new_scores, s[order])
    keep, new_scores = soft_nms(b, s, sigma=1e12, score_threshold=0.0, method="gaussian")
    np.testing.assert_array_equal(keep, order)
    np.testing.assert_allclose(new_scores, s[order], rtol=1e-10)


# Hand-worked cases ----------------------------------------------------------------------------

def test_nms_hand_worked():
    b = boxes(
        [0, 0, 1, 1],  # 0: score 0.9, kept first
        [0.5, 0, 1.5, 1],  # 1: IoU with box 0 = 0.5 / 1.5 = 1/3
        [0, 0, 1, 0.9],  # 2: inside box 0, IoU = 0.9 / 1 = 0.9
        [5, 5, 6, 6],  # 3: far away
    )
    s = np.array([0.9, 0.8, 0.85, 0.1])
    for function in (nms, nms_loops):
        np.testing.assert_array_equal(function(b, s, 0.5), [0, 1, 3])  # box 2 (0.9 > 0.5) goes
        np.testing.assert_array_equal(function(b, s, 0.3), [0, 3])  # box 1 (1/3 > 0.3) goes too
        np.testing.assert_array_equal(function(b, s, 0.95), [0, 2, 1, 3])  # nothing goes: by score


def test_nms_threshold_is_strict():
    # A 2x1 box and the unit square in its left half: IoU = 1 / 2 exactly.
    b, s = boxes([0, 0, 2, 1], [0, 0, 1, 1]), np.array([0.9, 0.8])
    for function in (nms, nms_loops):
        np.testing.assert_array_equal(function(b, s, 0.5), [0, 1])  # 0.5 > 0.5 is false: kept
        np.testing.assert_array_equal(function(b, s, 0.49), [0])
    np.testing.assert_array_equal(tv.nms(torch.from_numpy(b), torch.from_numpy(s), 0.5).numpy(), [0, 1])


def test_nms_ties_keep_the_lower_index():
    """Equal scores: the lower index counts as higher-scoring (torchvision leaves this unspecified)."""
    same = boxes([0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1], [3, 3, 4, 4], [3, 3, 4, 4])
    s = np.array([0.5, 0.7, 0.7, 0.7, 0.7])
    for function in (nms, nms_loops, diou_nms, diou_nms_loops):
        np.testing.assert_array_equal(function(same, s, 0.5), [1, 3])
    distinct = boxes([0, 0, 1, 1], [2, 2, 3, 3], [4, 4, 5, 5])
    np.testing.assert_array_equal(nms(distinct, np.array([0.3, 0.3, 0.3]), 0.5), [0, 1, 2])
    # Per class: class 0 keeps 3 and 0 (apart), class 1 keeps 1 (the tie with 2) and 4;
    # merged by score with ties by index: 1, 3, 4 (all 0.7), then 0 (0.5).
    idxs = np.array([0, 1, 1, 0, 1])
    for function in (batched_nms, batched_nms_loops):
        np.testing.assert_array_equal(function(same, s, idxs, 0.5), [1, 3, 4, 0])


def test_nms_zero_area_boxes_never_suppress():
    # Identical points and segments have IoU 0 (0 / 0 is taken as 0), so all are kept.
    b = boxes([1, 1, 1, 1], [1, 1, 1, 1], [0, 0, 0, 2], [0, 0, 0, 2], [0, 0, 2, 2])
    s = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    for function in (nms, nms_loops, diou_nms, diou_nms_loops):
        np.testing.assert_array_equal(function(b, s, 0.0), [0, 1, 2, 3, 4])


def test_batched_nms_hand_worked():
    # Boxes 0 and 1 coincide; in different classes they both survive, in one class 1 goes.
    b = boxes([0, 0, 1, 1], [0, 0, 1, 1], [0.1, 0, 1.1, 1])
    s = np.array([0.9, 0.8, 0.7])
    for function in (batched_nms, batched_nms_loops):
        np.testing.assert_array_equal(function(b, s, np.array([0, 1, 1]), 0.5), [0, 1])  # 2 overlaps 1
        np.testing.assert_array_equal(function(b, s, np.array([0, 0, 1]), 0.5), [0, 2])
        np.testing.assert_array_equal(function(b, s, np.array([0, 1, 2]), 0.5), [0, 1, 2])


def test_diou_nms_keeps_boxes_with_distant_centres():
    # a = [0, 4] x [0, 1], b = [1, 5] x [0, 1]: intersection 3, union 5, IoU 0.6. Centres
    # (2, 0.5) and (3, 0.5), rho^2 = 1; enclosing box 5 x 1, c^2 = 26: DIoU = 0.6 - 1/26 ~= 0.5615.
    b, s = boxes([0, 0, 4, 1], [1, 0, 5, 1]), np.array([0.9, 0.8])
    np.testing.assert_array_equal(nms(b, s, 0.58), [0])  # 0.6 > 0.58
    for function in (diou_nms, diou_nms_loops):
        np.testing.assert_array_equal(function(b, s, 0.58), [0, 1])  # 0.5615 <= 0.58
        np.testing.assert_array_equal(function(b, s, 0.56), [0])  # 0.5615 > 0.56


def test_soft_nms_hand_worked():
    # Unit squares offset by 0.5: IoU 1/3. Box 0 (0.9) is selected first, then box 1 decays.
    b, s = boxes([0, 0, 1, 1], [0.5, 0, 1.5, 1], [5, 5, 6, 6]), np.array([0.9, 0.8, 0.5])
    for function in (soft_nms, soft_nms_loops):
        # Gaussian: 0.8 * exp(-(1/3)^2 / 0.5) = 0.8 * exp(-2/9) ~= 0.6406; box 2 overlaps nothing.
        keep, new = function(b, s, sigma=0.5, method="gaussian")
        np.testing.assert_array_equal(keep, [0, 1, 2])
        np.testing.assert_allclose(new, [0.9, 0.8 * math.exp(-2 / 9), 0.5])
        # Linear, N_t = 0.3: 1/3 > 0.3, so box 1 decays to 0.8 * (1 - 1/3) ~= 0.533, still above box 2's 0.5.
        keep, new = function(b, s, iou_threshold=0.3, method="linear")
        np.testing.assert_array_equal(keep, [0, 1, 2])
        np.testing.assert_allclose(new, [0.9, 0.8 * 2 / 3, 0.5])
        # Linear, N_t = 0.5: 1/3 <= 0.5, no decay.
        keep, new = function(b, s, iou_threshold=0.5, method="linear")
        np.testing.assert_allclose(new, [0.9, 0.8, 0.5])
        # score_threshold 0.6 drops box 1 (0.5333 < 0.6) and box 2 (0.5 from the start).
        keep, new = function(b, s, iou_threshold=0.3, score_threshold=0.6, method="linear")
        np.testing.assert_array_equal(keep, [0])
        np.testing.assert_allclose(new, [0.9])


def test_soft_nms_decay_can_reorder():
    # Box 1 (0.8) coincides with box 0 (0.9): IoU 1, linear decay to 0.8 * (1 - 1) = 0,
    # dropped; box 2 (0.7) is far away and comes second.
    b, s = boxes([0, 0, 1, 1], [0, 0, 1, 1], [5, 5, 6, 6]), np.array([0.9, 0.8, 0.7])
    for function in (soft_nms, soft_nms_loops):
        keep, new = function(b, s, iou_threshold=0.3, method="linear")
        np.testing.assert_array_equal(keep, [0, 2])
        # Gaussian, sigma 0.5: box 1 decays to 0.8 * exp(-2) ~= 0.108, selected after box 2.
        keep, new = function(b, s, sigma=0.5)
        np.testing.assert_array_equal(keep, [0, 2, 1])
        np.testing.assert_allclose(new, [0.9, 0.7, 0.8 * math.exp(-2)])


def test_soft_nms_ties_select_the_lower_index():
    b, s = boxes([0, 0, 1, 1], [5, 5, 6, 6], [9, 9, 10, 10]), np.array([0.5, 0.7, 0.7])
    for function in (soft_nms, soft_nms_loops):
        np.testing.assert_array_equal(function(b, s)[0], [1, 2, 0])


@pytest.mark.parametrize("function", [nms, nms_loops, diou_nms, diou_nms_loops])
def test_nms_empty_input(function):
    keep = function(np.zeros((0, 4)), np.zeros(0), 0.5)
    assert keep.shape == (0,) and keep.dtype == np.int64


def test_batched_and_soft_nms_empty_input():
    for function in (batched_nms, batched_nms_loops):
        keep = function(np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=np.int64), 0.5)
        assert keep.shape == (0,) and keep.dtype == np.int64
    for function in (soft_nms, soft_nms_loops):
        keep, new_scores = function(np.zeros((0, 4)), np.zeros(0, dtype=np.float32))
        assert keep.shape == new_scores.shape == (0,)
        assert keep.dtype == np.int64 and new_scores.dtype == np.float32


# Validation ---------------------------------------------------------------------------------

B3, S3 = boxes([0, 0, 1, 1], [0.5, 0, 1.5, 1], [5, 5, 6, 6]), np.array([0.9, 0.8, 0.5])


@pytest.mark.parametrize(
    "b, s, threshold, error, pattern",
    [
        (B3, S3[:2], 0.5, ValueError, "scores must have one entry per box: boxes has 3 rows, scores has 2 entries"),
        (B3, S3[:, None], 0.5, ValueError, r"scores must have shape \[N\], got \(3, 1\)"),
        (B3, np.array([3, 2, 1]), 0.5, TypeError, "scores must have a floating-point dtype, got int64"),
        (B3, [0.9, 0.8, 0.5], 0.5, TypeError, "scores must be a numpy.ndarray, got builtins.list"),
        (B3, np.array([0.9, np.nan, 0.5]), 0.5, ValueError, "scores must be finite, but entry 1 is nan"),
        (B3, S3, -0.1, ValueError, r"iou_threshold must be in \[0, 1\], got -0.1"),
        (B3, S3, 1.5, ValueError, r"iou_threshold must be in \[0, 1\], got 1.5"),
        (B3, S3, float("nan"), ValueError, "iou_threshold must be finite, got nan"),
        (B3, S3, "0.5", TypeError, "iou_threshold must be a real number, got str"),
        (B3[:, :3], S3, 0.5, ValueError, r"boxes must have shape \[N, 4\], got \(3, 3\)"),
        (B3[:, [2, 1, 0, 3]], S3, 0.5, ValueError, r"boxes must be \(x1, y1, x2, y2\) with x1 <= x2 and y1 <= y2, but row 0"),
    ],
)
def test_nms_rejects_bad_arguments(b, s, threshold, error, pattern):
    """Check that every NMS variant names the bad argument, what it expected and what it got."""
    for function in (nms, nms_loops, diou_nms, diou_nms_loops, soft_nms, soft_nms_loops):
        with pytest.raises(error, match=pattern):
            function(b, s, threshold)
    for function in (batched_nms, batched_nms_loops):
        with pytest.raises(error, match=pattern):
            function(b, s, np.zeros(len(b), dtype=np.int64), threshold)


@pytest.mark.parametrize(
    "idxs, error, pattern",
    [
        (np.zeros(2, dtype=np.int64), ValueError, "idxs must have one entry per box: boxes has 3 rows, idxs has 2 entries"),
        (np.zeros(3), TypeError, "idxs must have an integer dtype, got float64"),
        (np.zeros((3, 1), dtype=np.int64), ValueError, r"idxs must have shape \[N\], got \(3, 1\)"),
        ([0, 0, 0], TypeError, "idxs must be a numpy.ndarray, got builtins.list"),
    ],
)
def test_batched_nms_rejects_bad_idxs(idxs, error, pattern):
    for function in (batched_nms, batched_nms_loops):
        with pytest.raises(error, match=pattern):
            function(B3, S3, idxs, 0.5)


@pytest.mark.parametrize(
    "kwargs, error, pattern",
    [
        ({"sigma": 0.0}, ValueError, "sigma must be > 0.0, got 0.0"),
        ({"sigma": -1}, ValueError, "sigma must be > 0.0, got -1.0"),
        ({"score_threshold": -0.1}, ValueError, "score_threshold must be >= 0.0, got -0.1"),
        ({"method": "hard"}, ValueError, "method must be one of 'linear', 'gaussian', got 'hard'"),
        ({"method": "Linear"}, ValueError, "method must be one of 'linear', 'gaussian', got 'Linear'"),
        ({"scores": -S3}, ValueError, r"scores must be >= 0 for soft_nms .* entry 0 is -0.9"),
    ],
)
def test_soft_nms_rejects_bad_arguments(kwargs, error, pattern):
    kwargs = {"boxes": B3, "scores": S3, **kwargs}
    for function in (soft_nms, soft_nms_loops):
        with pytest.raises(error, match=pattern):
            function(**kwargs)
