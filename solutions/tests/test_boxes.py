"""cvprep.boxes against torchvision.ops, against its own loop versions, and on hand-worked cases."""

import math

import numpy as np
import pytest
import torch
import torchvision.ops as tv
from hypothesis import given, settings
from hypothesis import strategies as st

from cvprep.boxes import (
    box_area,
    box_iou,
    box_iou_loops,
    complete_box_iou,
    complete_box_iou_loops,
    complete_box_iou_loss,
    distance_box_iou,
    distance_box_iou_loops,
    distance_box_iou_loss,
    generalized_box_iou,
    generalized_box_iou_loops,
    generalized_box_iou_loss,
)

from strategies import box_arrays

PAIRWISE = {  # ours, its loop version, torchvision's
    "iou": (box_iou, box_iou_loops, tv.box_iou),
    "giou": (generalized_box_iou, generalized_box_iou_loops, tv.generalized_box_iou),
    "diou": (distance_box_iou, distance_box_iou_loops, tv.distance_box_iou),
    "ciou": (complete_box_iou, complete_box_iou_loops, tv.complete_box_iou),
}
LOSSES = {
    "giou": (generalized_box_iou_loss, tv.generalized_box_iou_loss),
    "diou": (distance_box_iou_loss, tv.distance_box_iou_loss),
    "ciou": (complete_box_iou_loss, tv.complete_box_iou_loss),
}

two_box_arrays = st.tuples(box_arrays(), box_arrays())


@st.composite
def paired_box_arrays(draw, dtype=np.float64):
    """Two [N, 4] box arrays of the same length, for the losses."""
    boxes1 = draw(box_arrays(dtype=dtype))
    return boxes1, draw(box_arrays(min_size=len(boxes1), max_size=len(boxes1), dtype=dtype))


def torch_op(function, *arrays, **kwargs):
    return function(*(torch.from_numpy(a) for a in arrays), **kwargs).numpy()


def unit_square(x=0.0, y=0.0):
    return [x, y, x + 1.0, y + 1.0]


def boxes(*rows):
    return np.array(rows, dtype=np.float64).reshape(-1, 4)


# Against torchvision ----------------------------------------------------------------------

def test_box_area_matches_torchvision():
    b = boxes([0, 0, 2, 3], [1, 1, 1, 5], [-1.5, -2, 0.5, 0])  # areas 6, 0 (zero width), 4
    np.testing.assert_array_equal(box_area(b), [6.0, 0.0, 4.0])
    np.testing.assert_array_equal(box_area(b), torch_op(tv.box_area, b))


@pytest.mark.parametrize("measure", list(PAIRWISE))
@settings(max_examples=80)
@given(pair=two_box_arrays)
def test_pairwise_matches_torchvision(measure, pair):
    """Where torchvision is finite we agree with it; where it is NaN (0 / 0) we are finite."""
    ours, _, theirs = PAIRWISE[measure]
    got, expected = ours(*pair), torch_op(theirs, *pair)
    assert got.shape == expected.shape == (len(pair[0]), len(pair[1]))
    assert np.isfinite(got).all()
    finite = np.isfinite(expected)
    np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("measure", list(PAIRWISE))
@settings(max_examples=30)
@given(pair=st.tuples(box_arrays(dtype=np.float32), box_arrays(dtype=np.float32)))
def test_pairwise_float32_matches_torchvision_and_keeps_dtype(measure, pair):
    ours, _, theirs = PAIRWISE[measure]
    got, expected = ours(*pair), torch_op(theirs, *pair)
    assert got.dtype == np.float32
    finite = np.isfinite(expected)
    np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("measure", list(LOSSES))
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@settings(max_examples=40)
@given(pair=paired_box_arrays())
def test_losses_match_torchvision(measure, reduction, pair):
    ours, theirs = LOSSES[measure]
    got = np.asarray(ours(*pair, reduction=reduction))
    expected = torch_op(theirs, *pair, reduction=reduction)
    if measure == "ciou":  # torchvision's aspect angle atan(0 / 0) of a point box is NaN; ours is 0
        assert np.isfinite(got).all()
        if not np.isfinite(expected).all():
            return
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("measure", list(LOSSES))
def test_loss_mean_of_no_boxes_is_zero_as_torchvision(measure):
    ours, theirs = LOSSES[measure]
    empty = np.zeros((0, 4))
    assert ours(empty, empty, reduction="mean") == 0.0 == torch_op(theirs, empty, empty, reduction="mean")
    assert ours(empty, empty, reduction="sum") == 0.0
    assert ours(empty, empty).shape == (0,)


# Loop versions ------------------------------------------------------------------------------

@pytest.mark.parametrize("measure", list(PAIRWISE))
@settings(max_examples=60)
@given(pair=two_box_arrays)
def test_pairwise_loops_match_vectorised(measure, pair):
    fast, slow, _ = PAIRWISE[measure]
    np.testing.assert_allclose(fast(*pair), slow(*pair), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("measure", ["diou", "ciou"])
def test_pairwise_loops_match_vectorised_with_eps_zero(measure):
    fast, slow, _ = PAIRWISE[measure]
    points = boxes([1, 1, 1, 1], [1, 1, 1, 1], [2, 3, 2, 3])  # the same point twice: 0 / 0 everywhere
    np.testing.assert_array_equal(fast(points, points, eps=0.0), slow(points, points, eps=0.0))
    assert np.isfinite(fast(points, points, eps=0.0)).all()


@pytest.mark.parametrize("measure", list(LOSSES))
@settings(max_examples=40)
@given(pair=paired_box_arrays())
def test_losses_are_one_minus_the_measure_up_to_eps(measure, pair):
    """The losses add eps to their denominators; for boxes of area >= 1 that moves them by < 1e-6."""
    boxes1, boxes2 = pair
    big = (box_area(boxes1) >= 1) & (box_area(boxes2) >= 1)
    loss = LOSSES[measure][0](boxes1[big], boxes2[big])
    measure_of_pairs = np.diag(PAIRWISE[measure][0](boxes1[big], boxes2[big]))
    np.testing.assert_allclose(loss, 1 - measure_of_pairs, atol=1e-6)


# Properties ---------------------------------------------------------------------------------

@settings(max_examples=80)
@given(pair=two_box_arrays)
def test_iou_is_symmetric_and_in_unit_interval(pair):
    iou = box_iou(*pair)
    np.testing.assert_array_equal(iou, box_iou(pair[1], pair[0]).T)
    assert ((iou >= 0) & (iou <= 1)).all()


@settings(max_examples=60)
@given(b=box_arrays(min_size=1))
def test_iou_of_a_box_with_itself_is_one_unless_degenerate(b):
    self_iou = np.diag(box_iou(b, b))
    np.testing.assert_allclose(self_iou, np.where(box_area(b) > 0, 1.0, 0.0), rtol=1e-12)


@settings(max_examples=80)
@given(pair=two_box_arrays)
def test_measures_are_ordered_and_in_range(pair):
    """GIoU, DIoU and CIoU each subtract a penalty >= 0 from IoU (CIoU from DIoU)."""
    iou, giou = box_iou(*pair), generalized_box_iou(*pair)
    diou, ciou = distance_box_iou(*pair), complete_box_iou(*pair)
    tolerance = 1e-12
    assert ((giou >= -1 - tolerance) & (giou <= iou + tolerance)).all()
    assert ((diou > -1) & (diou <= iou + tolerance)).all()
    assert ((ciou >= -2) & (ciou <= diou + tolerance)).all()


@settings(max_examples=40)
@given(pair=two_box_arrays)
def test_inputs_are_not_modified(pair):
    copies = [b.copy() for b in pair]
    for function, _, _ in PAIRWISE.values():
        function(*pair)
    for b, copy in zip(pair, copies):
        np.testing.assert_array_equal(b, copy)


# Hand-worked cases --------------------------------------------------------------------------

def test_iou_hand_worked():
    # Two unit squares offset by 0.5: intersection 0.5 * 1 = 0.5, union 1 + 1 - 0.5 = 1.5.
    a, b = boxes(unit_square()), boxes(unit_square(0.5))
    for function in (box_iou, box_iou_loops):
        np.testing.assert_allclose(function(a, b), [[1 / 3]])
    # A 2x2 square and the unit square in its corner: intersection 1, union 4.
    np.testing.assert_allclose(box_iou(boxes([0, 0, 2, 2]), a), [[0.25]])


def test_iou_touching_boxes_is_zero():
    a = boxes(unit_square())
    touching = boxes(unit_square(1, 0), unit_square(0, 1), unit_square(1, 1))  # right edge, bottom edge, corner
    for function in (box_iou, box_iou_loops):
        np.testing.assert_array_equal(function(a, touching), [[0.0, 0.0, 0.0]])


def test_giou_hand_worked():
    a = boxes(unit_square())
    # Offset by 0.5: the enclosing box [0, 1.5] x [0, 1] has area 1.5 = the union, so GIoU = IoU = 1/3.
    np.testing.assert_allclose(generalized_box_iou(a, boxes(unit_square(0.5))), [[1 / 3]])
    # One unit apart: IoU 0, enclosing box [0, 3] x [0, 1] area 3, union 2: GIoU = 0 - (3 - 2) / 3 = -1/3.
    np.testing.assert_allclose(generalized_box_iou(a, boxes(unit_square(2))), [[-1 / 3]])
    # GIoU loss = 1 - GIoU = 4/3 (up to eps).
    np.testing.assert_allclose(generalized_box_iou_loss(a, boxes(unit_square(2))), [4 / 3], rtol=1e-6)


def test_diou_hand_worked():
    # Unit squares offset by 0.5: centres (0.5, 0.5) and (1, 0.5), rho^2 = 0.25; the
    # enclosing box is 1.5 x 1, c^2 = 2.25 + 1 = 3.25. DIoU = 1/3 - 0.25 / 3.25 = 1/3 - 1/13.
    a, b = boxes(unit_square()), boxes(unit_square(0.5))
    np.testing.assert_allclose(distance_box_iou(a, b, eps=0.0), [[1 / 3 - 1 / 13]])
    # Same aspect ratio, so v = 0 and CIoU = DIoU.
    np.testing.assert_allclose(complete_box_iou(a, b, eps=0.0), [[1 / 3 - 1 / 13]])


def test_ciou_hand_worked():
    # a = 2x1, b = the unit square in its left half: intersection 1, union 2, IoU 1/2;
    # centres (1, 0.5) and (0.5, 0.5), rho^2 = 0.25; enclosing box = a, c^2 = 4 + 1 = 5;
    # DIoU = 0.5 - 0.05 = 0.45. v = 4 / pi^2 * (atan(2) - atan(1))^2 ~= 0.041956,
    # alpha = v / (1 - 0.5 + v) ~= 0.077417, CIoU = 0.45 - alpha * v ~= 0.446752.
    a, b = boxes([0, 0, 2, 1]), boxes(unit_square())
    v = 4 / math.pi**2 * (math.atan(2) - math.atan(1)) ** 2
    expected = 0.45 - v / (0.5 + v) * v
    np.testing.assert_allclose(complete_box_iou(a, b, eps=0.0), [[expected]])
    np.testing.assert_allclose(expected, 0.446752, atol=1e-6)
    np.testing.assert_allclose(complete_box_iou_loss(a, b), [1 - expected], rtol=1e-6)


def test_identical_boxes_have_zero_loss():
    a = boxes(unit_square(), [2, 3, 7, 4])
    for loss, _ in LOSSES.values():
        np.testing.assert_allclose(loss(a, a), [0.0, 0.0], atol=1e-6)


# Degenerate boxes: 0 / 0 is 0 ---------------------------------------------------------------

def test_iou_of_two_zero_area_boxes_is_zero_where_torchvision_gives_nan():
    line, point = boxes([1, 0, 1, 2]), boxes([3, 3, 3, 3])  # zero width; zero width and height
    for a, b in ((line, line), (line, point), (point, point)):
        assert np.isnan(torch_op(tv.box_iou, a, b)).all()
        for function in (box_iou, box_iou_loops):
            assert function(a, b)[0, 0] == 0.0


def test_iou_of_a_zero_area_box_with_a_box_is_zero_as_torchvision():
    line, square = boxes([0.5, 0, 0.5, 1]), boxes(unit_square())  # a segment inside the square
    assert box_iou(line, square)[0, 0] == 0.0 == torch_op(tv.box_iou, line, square)[0, 0]


def test_giou_of_degenerate_boxes():
    # Two points 3 apart horizontally and 4 vertically: IoU 0, the enclosing box is 3 x 4
    # and the union is 0, so GIoU = 0 - (12 - 0) / 12 = -1.
    p, q = boxes([0, 0, 0, 0]), boxes([3, 4, 3, 4])
    assert generalized_box_iou(p, q)[0, 0] == -1.0
    # Two segments on one vertical line: the enclosing box has zero area too, penalty 0 / 0 = 0.
    s, t = boxes([1, 0, 1, 2]), boxes([1, 5, 1, 6])
    assert generalized_box_iou(s, t)[0, 0] == 0.0


def test_ciou_aspect_angle_of_degenerate_boxes():
    # A zero-height box has aspect angle atan(w / 0) = pi / 2, as torchvision; a point
    # box has angle 0 (arctan2(0, 0)) where torchvision gives NaN.
    flat, tall = boxes([0, 0, 2, 0]), boxes([0, 0, 1, 1000])
    np.testing.assert_allclose(complete_box_iou(flat, tall), torch_op(tv.complete_box_iou, flat, tall))
    point, square = boxes([0.5, 0.5, 0.5, 0.5]), boxes(unit_square())
    # Same centre, IoU 0, rho = 0: DIoU = 0; v = 4 / pi^2 * (0 - pi / 4)^2 = 1/4, alpha = 0.25 / 1.25.
    np.testing.assert_allclose(complete_box_iou(point, square, eps=0.0), [[-0.25 * 0.25 / 1.25]])


# Validation -------------------------------------------------------------------------------

GOOD = boxes(unit_square(), unit_square(0.5))


@pytest.mark.parametrize(
    "bad, error, pattern",
    [
        (GOOD.astype(np.int64), TypeError, "boxes1 must have a floating-point dtype, got int64"),
        (GOOD.tolist(), TypeError, "boxes1 must be a numpy.ndarray, got builtins.list"),
        (torch.from_numpy(GOOD), TypeError, r"boxes1 must be a numpy.ndarray, got torch.Tensor; convert it with .numpy\(\)"),
        (np.zeros((5, 3)), ValueError, r"boxes1 must have shape \[N, 4\], got \(5, 3\)"),
        (np.zeros(4), ValueError, r"boxes1 must have shape \[N, 4\], got \(4,\)"),
        (boxes(unit_square(), [2, 0, 1, 1]), ValueError, r"x1 <= x2 and y1 <= y2, but row 1 is \[2.0, 0.0, 1.0, 1.0\]"),
        (boxes([0, 1, 1, 0]), ValueError, r"boxes1 must be \(x1, y1, x2, y2\) .* row 0"),
        (boxes(unit_square(), [0, 0, np.nan, 1]), ValueError, "boxes1 must be finite, but row 1"),
        (boxes([0, 0, np.inf, 1]), ValueError, "boxes1 must be finite, but row 0"),
    ],
)
def test_pairwise_rejects_bad_boxes(bad, error, pattern):
    """Check that every pairwise measure and its loop version name the bad argument and row."""
    for fast, slow, _ in PAIRWISE.values():
        for function in (fast, slow):
            with pytest.raises(error, match=pattern):
                function(bad, GOOD)
            with pytest.raises(error, match=pattern.replace("boxes1", "boxes2")):
                function(GOOD, bad)


def test_box_area_names_its_argument():
    with pytest.raises(ValueError, match=r"boxes must have shape \[N, 4\], got \(2, 5\)"):
        box_area(np.zeros((2, 5)))


@pytest.mark.parametrize(
    "kwargs, error, pattern",
    [
        ({"eps": -1e-7}, ValueError, "eps must be >= 0.0, got -1e-07"),
        ({"eps": float("nan")}, ValueError, "eps must be finite, got nan"),
        ({"eps": "small"}, TypeError, "eps must be a real number, got str"),
    ],
)
def test_pairwise_rejects_bad_eps(kwargs, error, pattern):
    for function in (distance_box_iou, complete_box_iou, distance_box_iou_loops, complete_box_iou_loops):
        with pytest.raises(error, match=pattern):
            function(GOOD, GOOD, **kwargs)


@pytest.mark.parametrize(
    "args, kwargs, error, pattern",
    [
        ((GOOD, GOOD[:1]), {}, ValueError, "boxes1 and boxes2 must hold the same number of boxes .* got 2 and 1"),
        ((GOOD, GOOD), {"reduction": "avg"}, ValueError, "reduction must be one of 'none', 'mean', 'sum', got 'avg'"),
        ((GOOD, GOOD), {"reduction": None}, ValueError, "reduction must be one of .* got None"),
        ((GOOD, GOOD), {"eps": -1.0}, ValueError, "eps must be >= 0.0, got -1.0"),
        ((GOOD, np.zeros((2, 3))), {}, ValueError, r"boxes2 must have shape \[N, 4\], got \(2, 3\)"),
    ],
)
def test_losses_reject_bad_arguments(args, kwargs, error, pattern):
    for loss, _ in LOSSES.values():
        with pytest.raises(error, match=pattern):
            loss(*args, **kwargs)
