"""cvprep.box_coding against torchvision's BoxCoder and AnchorGenerator, its loop versions, and by hand."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.models.detection._utils import BoxCoder
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList

from cvprep.box_coding import (
    BBOX_XFORM_CLIP,
    cell_anchors,
    decode_boxes,
    decode_boxes_loops,
    encode_boxes,
    encode_boxes_loops,
    make_anchors,
    make_anchors_loops,
)

from strategies import box_coding_cases

WEIGHTS = [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)]


def torch_encode(boxes, proposals, weights):
    return BoxCoder(weights).encode_single(torch.from_numpy(boxes), torch.from_numpy(proposals)).numpy()


def torch_decode(deltas, proposals, weights, clip=BBOX_XFORM_CLIP):
    return BoxCoder(weights, clip).decode_single(torch.from_numpy(deltas), torch.from_numpy(proposals)).numpy()


def torch_anchors(feature_size, stride, sizes, aspect_ratios):
    (h, w), (sy, sx) = feature_size, stride
    generator = AnchorGenerator((tuple(sizes),), (tuple(aspect_ratios),))
    images = ImageList(torch.zeros(1, 3, h * sy, w * sx), [(h * sy, w * sx)])  # stride = image size // grid
    return generator(images, [torch.zeros(1, 1, h, w)])[0].numpy()


# encode_boxes / decode_boxes ------------------------------------------------------------

@pytest.mark.parametrize("weights", WEIGHTS)
@settings(max_examples=60)
@given(case=box_coding_cases())
def test_encode_boxes_matches_torchvision_and_loops(case, weights):
    boxes, proposals, _ = case
    expected = torch_encode(boxes, proposals, weights)
    np.testing.assert_allclose(encode_boxes(boxes, proposals, weights), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(encode_boxes_loops(boxes, proposals, weights), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("weights", WEIGHTS)
@settings(max_examples=60)
@given(case=box_coding_cases())
def test_decode_boxes_matches_torchvision_and_loops(case, weights):
    _, proposals, deltas = case  # deltas up to +-8 per weight unit, so the clamp is reached
    expected = torch_decode(deltas, proposals, weights)
    np.testing.assert_allclose(decode_boxes(deltas, proposals, weights), expected, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(decode_boxes_loops(deltas, proposals, weights), expected, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("weights", WEIGHTS)
@settings(max_examples=80)
@given(case=box_coding_cases())
def test_decode_inverts_encode(case, weights):
    boxes, proposals, _ = case  # size ratios stay below 62.5, so the clamp never acts
    deltas = encode_boxes(boxes, proposals, weights)
    scale = np.abs(np.concatenate([boxes, proposals])).max(initial=1.0)
    np.testing.assert_allclose(decode_boxes(deltas, proposals, weights), boxes, rtol=0, atol=1e-9 * scale)


@settings(max_examples=40)
@given(case=box_coding_cases(dtype=np.float32))
def test_box_coding_float32_keeps_dtype_and_matches_torchvision(case):
    boxes, proposals, deltas = case
    weights = (10.0, 10.0, 5.0, 5.0)
    encoded = encode_boxes(boxes, proposals, weights)
    decoded = decode_boxes(deltas, proposals, weights)
    assert encoded.dtype == decoded.dtype == np.float32
    np.testing.assert_allclose(encoded, torch_encode(boxes, proposals, weights), rtol=1e-5, atol=1e-5)
    scale = np.abs(proposals).max(initial=1.0)
    np.testing.assert_allclose(decoded, torch_decode(deltas, proposals, weights), rtol=1e-5, atol=1e-5 * scale)


def test_encode_boxes_hand_worked():
    proposal = np.array([[10.0, 10.0, 50.0, 30.0]])  # centre (30, 20), size 40 x 20
    box = np.array([[14.0, 6.0, 60.0, 40.0]])  # centre (37, 23), size 46 x 34
    # dx = (37 - 30) / 40 = 0.175, dy = (23 - 20) / 20 = 0.15, dw = log(46 / 40), dh = log(34 / 20)
    expected = np.array([[0.175, 0.15, math.log(46 / 40), math.log(34 / 20)]])
    for function in (encode_boxes, encode_boxes_loops):
        np.testing.assert_allclose(function(box, proposal), expected, rtol=1e-14)
    # weights (10, 10, 5, 5) multiply the four targets
    np.testing.assert_allclose(encode_boxes(box, proposal, (10, 10, 5, 5)), expected * [10, 10, 5, 5], rtol=1e-14)


def test_encode_boxes_of_the_proposal_itself_is_zero():
    proposals = np.array([[0.0, 0.0, 10.0, 20.0], [5.0, 7.0, 6.0, 9.0]])
    np.testing.assert_array_equal(encode_boxes(proposals, proposals, (10, 10, 5, 5)), np.zeros((2, 4)))


def test_decode_boxes_clamps_dw_and_dh_only_from_above():
    proposal = np.array([[0.0, 0.0, 2.0, 4.0]])  # centre (1, 2), size 2 x 4
    deltas = np.array([[0.0, 0.0, 100.0, -3.0]])
    # dw = 100 is clamped to log(1000 / 16): width 2 * 62.5 = 125 around x = 1;
    # dh = -3 is not clamped (only large values are): height 4 * exp(-3)
    h = 4 * math.exp(-3)
    expected = np.array([[1 - 62.5, 2 - h / 2, 1 + 62.5, 2 + h / 2]])
    for function in (decode_boxes, decode_boxes_loops):
        np.testing.assert_allclose(function(deltas, proposal), expected, rtol=1e-12)
    np.testing.assert_allclose(torch_decode(deltas, proposal, (1.0, 1.0, 1.0, 1.0)), expected, rtol=1e-12)
    # the clamp applies after dividing by the weight: 100 / 5 = 20 is still clamped
    np.testing.assert_allclose(decode_boxes(deltas * [1, 1, 5, 5], proposal, (1, 1, 5, 5)), expected, rtol=1e-12)
    # a custom clamp: dw / ww = 100 capped at log(2), so the width doubles to 4
    np.testing.assert_allclose(decode_boxes(deltas, proposal, bbox_xform_clip=math.log(2))[0, [0, 2]], [-1, 3])


def test_decode_boxes_shifts_centre_in_units_of_proposal_size():
    proposal = np.array([[10.0, 10.0, 50.0, 30.0]])  # size 40 x 20
    # dx = 10 with wx = 10 means one proposal width to the right: x1, x2 + 40
    deltas = np.array([[10.0, -5.0, 0.0, 0.0]])
    expected = np.array([[50.0, 0.0, 90.0, 20.0]])  # dy = -5 / 10 = -0.5 height: y - 10
    np.testing.assert_allclose(decode_boxes(deltas, proposal, (10, 10, 5, 5)), expected)


def test_box_coding_accepts_empty_inputs():
    empty = np.zeros((0, 4))
    assert encode_boxes(empty, empty).shape == (0, 4)
    assert decode_boxes(empty, empty).shape == (0, 4)


GOOD = np.array([[0.0, 0.0, 10.0, 10.0]])


@pytest.mark.parametrize(
    "function, args, kwargs, error, pattern",
    [
        (encode_boxes, (np.zeros((1, 3)), GOOD), {}, ValueError, r"reference_boxes must have shape \[N, 4\], got \(1, 3\)"),
        (encode_boxes, (GOOD, np.array([[5.0, 0.0, 1.0, 10.0]])), {}, ValueError, "proposals must be .* x1 <= x2"),
        (encode_boxes, (GOOD, np.array([[5.0, 0.0, 5.0, 10.0]])), {}, ValueError, "proposals must have positive width and height"),
        (encode_boxes, (np.array([[0.0, 3.0, 10.0, 3.0]]), GOOD), {}, ValueError, "reference_boxes must have positive width"),
        (encode_boxes, (GOOD, np.zeros((2, 4)) + GOOD), {}, ValueError, "must have the same number of rows, got 1 and 2"),
        (encode_boxes, (GOOD, GOOD), {"weights": (1.0, 1.0, 1.0)}, ValueError, "weights must be a tuple of four numbers"),
        (encode_boxes, (GOOD, GOOD), {"weights": (1.0, 0.0, 1.0, 1.0)}, ValueError, r"weights\[1\] \(wy\) must be > 0"),
        (encode_boxes, (GOOD.astype(int), GOOD), {}, TypeError, "reference_boxes must have a floating-point dtype"),
        (decode_boxes, (np.zeros((1, 5)), GOOD), {}, ValueError, r"deltas must have shape \[N, 4\]"),
        (decode_boxes, (np.array([[0.0, np.inf, 0.0, 0.0]]), GOOD), {}, ValueError, "deltas must be finite, but row 0"),
        (decode_boxes, (np.zeros((2, 4)), GOOD), {}, ValueError, "deltas and proposals .* got 2 and 1"),
        (decode_boxes, (np.zeros((1, 4)), GOOD), {"bbox_xform_clip": "4"}, TypeError, "bbox_xform_clip must be a real number"),
        (decode_boxes, (np.zeros((1, 4)), torch.zeros(1, 4)), {}, TypeError, "proposals must be a numpy.ndarray"),
    ],
)
def test_box_coding_rejects_bad_input(function, args, kwargs, error, pattern):
    loops = {encode_boxes: encode_boxes_loops, decode_boxes: decode_boxes_loops}[function]
    for f in (function, loops):
        with pytest.raises(error, match=pattern):
            f(*args, **kwargs)


# anchors --------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "feature_size, stride, sizes, aspect_ratios",
    [
        ((2, 3), (16, 16), (32, 64), (0.5, 1.0, 2.0)),
        ((38, 63), (16, 16), (128, 256, 512), (0.5, 1.0, 2.0)),  # Faster R-CNN, 600 x 1000 image
        ((1, 1), (8, 8), (32,), (1.0,)),
        ((4, 5), (8, 4), (20, 30), (0.25, 1.0, 4.0)),  # a non-square stride
        ((3, 2), (32, 32), (32, 40.31747359663594, 50.79683366298238), (0.5, 1.0, 2.0)),  # RetinaNet's octave scales
    ],
)
def test_make_anchors_matches_torchvision_anchor_generator(feature_size, stride, sizes, aspect_ratios):
    expected = torch_anchors(feature_size, stride, sizes, aspect_ratios)
    np.testing.assert_array_equal(make_anchors(feature_size, stride, sizes, aspect_ratios), expected)
    np.testing.assert_array_equal(make_anchors_loops(feature_size, stride, sizes, aspect_ratios), expected)


@settings(max_examples=60)
@given(
    st.tuples(st.integers(1, 6), st.integers(1, 6)),
    st.tuples(st.integers(1, 40), st.integers(1, 40)),
    st.lists(st.integers(1, 300), min_size=1, max_size=3),
    st.lists(st.sampled_from([0.2, 0.25, 1 / 3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 4.0]), min_size=1, max_size=4),
)
def test_make_anchors_matches_torchvision_on_random_grids(feature_size, stride, sizes, aspect_ratios):
    expected = torch_anchors(feature_size, stride, sizes, aspect_ratios)
    np.testing.assert_array_equal(make_anchors(feature_size, stride, tuple(sizes), tuple(aspect_ratios)), expected)
    np.testing.assert_array_equal(make_anchors_loops(feature_size, stride, tuple(sizes), tuple(aspect_ratios)), expected)


def test_cell_anchors_hand_worked():
    # size 32, ratio h / w = 0.5: w = 32 / sqrt(0.5) = 45.25, h = 32 * sqrt(0.5) = 22.63;
    # half of each, rounded: 22.63 -> 23 and 11.31 -> 11. Ratio 1: a 32 x 32 square.
    expected = np.array([[-23.0, -11.0, 23.0, 11.0], [-16.0, -16.0, 16.0, 16.0], [-11.0, -23.0, 11.0, 23.0]])
    np.testing.assert_array_equal(cell_anchors((32,), (0.5, 1.0, 2.0)), expected)


def test_cell_anchors_round_half_to_even_like_torch():
    # sizes 1, 3, 5 give half-widths 0.5, 1.5, 2.5, rounded to 0, 2, 2 (half to even):
    # the size-1 anchor collapses to a point, in torchvision too
    expected = np.array([[0.0, 0.0, 0.0, 0.0], [-2.0, -2.0, 2.0, 2.0], [-2.0, -2.0, 2.0, 2.0]])
    np.testing.assert_array_equal(cell_anchors((1, 3, 5), (1.0,)), expected)
    generator = AnchorGenerator(((1, 3, 5),), ((1.0,),))
    np.testing.assert_array_equal(generator.cell_anchors[0].numpy(), expected)


def test_make_anchors_order_is_position_major():
    anchors = make_anchors((2, 3), 16, sizes=(32, 64), aspect_ratios=(0.5, 1.0, 2.0))
    assert anchors.shape == (2 * 3 * 6, 4)
    base = cell_anchors((32, 64), (0.5, 1.0, 2.0))  # ratio-major: (0.5, 32), (0.5, 64), (1, 32) ...
    np.testing.assert_array_equal(base[1], [-45.0, -23.0, 45.0, 23.0])  # ratio 0.5, size 64
    # position (i, j) = (1, 2) is row 1 * 3 + 2 = 5, shifted by (x, y) = (32, 16)
    np.testing.assert_array_equal(anchors[5 * 6 : 6 * 6], base + [32.0, 16.0, 32.0, 16.0])
    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    np.testing.assert_array_equal(centres[::6], [[0, 0], [16, 0], [32, 0], [0, 16], [16, 16], [32, 16]])


@pytest.mark.parametrize(
    "kwargs, error, pattern",
    [
        ({"feature_size": 0, "stride": 16}, ValueError, "feature_size must be >= 1, got 0"),
        ({"feature_size": (2, 2), "stride": (16, 0)}, ValueError, r"stride\[1\] must be >= 1, got 0"),
        ({"feature_size": 2.0, "stride": 16}, TypeError, "feature_size must be an int or a pair of ints"),
        ({"feature_size": 2, "stride": 16, "sizes": ()}, ValueError, "sizes must be a non-empty tuple"),
        ({"feature_size": 2, "stride": 16, "sizes": (32, -8)}, ValueError, r"sizes\[1\] must be > 0"),
        ({"feature_size": 2, "stride": 16, "aspect_ratios": (0.0,)}, ValueError, r"aspect_ratios\[0\] must be > 0"),
        ({"feature_size": 2, "stride": 16, "aspect_ratios": 1.0}, ValueError, "aspect_ratios must be a non-empty tuple"),
    ],
)
def test_make_anchors_rejects_bad_arguments(kwargs, error, pattern):
    for function in (make_anchors, make_anchors_loops):
        with pytest.raises(error, match=pattern):
            function(**kwargs)
