"""cvprep.conv against torch.nn.functional, against its own loop versions, and on hand-worked cases."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from cvprep.conv import avg_pool2d, conv2d, conv2d_loops, conv_output_size, max_pool2d, max_pool2d_loops
from cvprep.testing import output_size_by_counting

from strategies import conv2d_cases, pool_cases


def torch_conv2d(case):
    bias = None if case["bias"] is None else torch.from_numpy(case["bias"])
    out = F.conv2d(torch.from_numpy(case["x"]), torch.from_numpy(case["weight"]), bias,
                   case["stride"], case["padding"], case["dilation"], case["groups"])
    return out.numpy()


def torch_pool(function, case):
    return function(torch.from_numpy(case["x"]), case["kernel_size"], case["stride"], case["padding"]).numpy()


# conv_output_size ---------------------------------------------------------------------

@pytest.mark.parametrize(
    "args, expected",
    [
        ((224, 7, 2, 3), 112),  # ResNet's stem: (224 + 6 - 7) // 2 + 1 = 111 + 1
        ((56, 3, 1, 1), 56),  # 'same' 3x3: (56 + 2 - 3) // 1 + 1 = 56
        ((7, 3, 2, 0), 3),  # (7 - 3) // 2 + 1 = 3: positions 0, 2, 4
        ((8, 3, 2, 0), 3),  # (8 - 3) // 2 + 1 = 3: the last column is never used
        ((5, 3, 1, 0, 2), 1),  # span 2 * (3 - 1) + 1 = 5 fits once in 5
        ((1, 1), 1),
    ],
)
def test_conv_output_size_hand_worked(args, expected):
    assert conv_output_size(*args) == expected


@given(st.integers(1, 60), st.integers(1, 9), st.integers(1, 5), st.integers(0, 4), st.integers(1, 4))
def test_conv_output_size_matches_counting_and_torch(size, kernel, stride, padding, dilation):
    expected = output_size_by_counting(size, kernel, stride, padding, dilation)
    if expected < 1:
        with pytest.raises(ValueError, match="output would be empty"):
            conv_output_size(size, kernel, stride, padding, dilation)
        return
    assert conv_output_size(size, kernel, stride, padding, dilation) == expected
    if 2 * padding <= kernel:  # torch's pooling agrees on the arithmetic
        pooled = F.max_pool2d(torch.zeros(1, 1, size, 1), (kernel, 1), (stride, 1), (padding, 0), (dilation, 1))
        assert pooled.shape[2] == expected


@pytest.mark.parametrize(
    "kwargs, error, pattern",
    [
        ({"size": 0, "kernel_size": 3}, ValueError, "size must be >= 1"),
        ({"size": 5, "kernel_size": 0}, ValueError, "kernel_size must be >= 1"),
        ({"size": 5, "kernel_size": 3, "stride": 0}, ValueError, "stride must be >= 1"),
        ({"size": 5, "kernel_size": 3, "padding": -1}, ValueError, "padding must be >= 0"),
        ({"size": 5, "kernel_size": 3, "dilation": 0}, ValueError, "dilation must be >= 1"),
        ({"size": 2, "kernel_size": 3}, ValueError, "covers 3 pixels but the padded input has only 2"),
        ({"size": 5.0, "kernel_size": 3}, TypeError, "size must be an int, got float"),
        ({"size": 5, "kernel_size": True}, TypeError, "kernel_size must be an int, got bool"),
    ],
)
def test_conv_output_size_rejects_bad_arguments(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        conv_output_size(**kwargs)


# conv2d -------------------------------------------------------------------------------

@settings(max_examples=150)
@given(conv2d_cases())
def test_conv2d_matches_torch(case):
    np.testing.assert_allclose(conv2d(**case), torch_conv2d(case), rtol=1e-10, atol=1e-12)


@settings(max_examples=60)
@given(conv2d_cases())
def test_conv2d_loops_match_torch(case):
    np.testing.assert_allclose(conv2d_loops(**case), torch_conv2d(case), rtol=1e-10, atol=1e-12)


@settings(max_examples=60)
@given(conv2d_cases(dtype=np.float32))
def test_conv2d_float32_matches_loops_and_keeps_dtype(case):
    fast, slow = conv2d(**case), conv2d_loops(**case)
    assert fast.dtype == slow.dtype == np.float32
    assert fast.flags.c_contiguous
    np.testing.assert_allclose(fast, slow, rtol=1e-4, atol=1e-5)


def test_conv2d_is_cross_correlation_not_flipped():
    x = np.arange(9.0).reshape(1, 1, 3, 3)  # [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    top_left_tap = np.array([[[[1.0, 0.0], [0.0, 0.0]]]])
    # The tap at (0, 0) picks the top-left pixel of each window; a flipped kernel
    # (true convolution) would pick the bottom-right one, giving [[4, 5], [7, 8]].
    expected = np.array([[[[0.0, 1.0], [3.0, 4.0]]]])
    for function in (conv2d, conv2d_loops):
        np.testing.assert_array_equal(function(x, top_left_tap), expected)


def test_conv2d_box_filter_hand_worked():
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    ones = np.ones((1, 1, 2, 2))
    # window sums: 0+1+3+4 = 8, 1+2+4+5 = 12, 3+4+6+7 = 20, 4+5+7+8 = 24; bias adds 0.5
    expected = np.array([[[[8.0, 12.0], [20.0, 24.0]]]]) + 0.5
    for function in (conv2d, conv2d_loops):
        np.testing.assert_array_equal(function(x, ones, bias=np.array([0.5])), expected)


def test_conv2d_rgb_input_sums_over_channels():
    # One 1x1 filter over an RGB image with weights (0.299, 0.587, 0.114): the
    # grey-level formula. Pixel (R, G, B) = (10, 20, 30) -> 2.99 + 11.74 + 3.42 = 18.15.
    x = np.array([10.0, 20.0, 30.0]).reshape(1, 3, 1, 1)
    weight = np.array([0.299, 0.587, 0.114]).reshape(1, 3, 1, 1)
    np.testing.assert_allclose(conv2d(x, weight), [[[[18.15]]]])


def test_conv2d_dilation_hand_worked():
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0]).reshape(1, 1, 1, 5)
    pair = np.ones((1, 1, 1, 2))
    # dilation 2 makes the two taps two pixels apart: x[j] + x[j + 2] = 4, 6, 8
    for function in (conv2d, conv2d_loops):
        np.testing.assert_array_equal(function(x, pair, dilation=2), [[[[4.0, 6.0, 8.0]]]])


def test_conv2d_stride_and_padding_hand_worked():
    x = np.ones((1, 1, 4, 4))
    ones = np.ones((1, 1, 3, 3))
    # padded to 6x6, windows start at 0 and 2: (6 - 3) // 2 + 1 = 2 positions per axis.
    # The window at (0, 0) overlaps 2x2 real pixels, the one at (0, 2) overlaps 2x3,
    # the one at (2, 2) overlaps 3x3.
    expected = np.array([[[[4.0, 6.0], [6.0, 9.0]]]])
    for function in (conv2d, conv2d_loops):
        np.testing.assert_array_equal(function(x, ones, stride=2, padding=1), expected)


def test_conv2d_depthwise_groups_keep_channels_apart():
    x = np.stack([np.full((2, 2), 1.0), np.full((2, 2), 10.0)])[None]  # channel 0 all 1, channel 1 all 10
    scales = np.array([2.0, 3.0]).reshape(2, 1, 1, 1)  # groups=2: filter f sees channel f only
    expected = np.stack([np.full((2, 2), 2.0), np.full((2, 2), 30.0)])[None]
    for function in (conv2d, conv2d_loops):
        np.testing.assert_array_equal(function(x, scales, groups=2), expected)


def test_conv2d_mixed_precision_promotes_like_numpy():
    x = np.ones((1, 1, 3, 3), dtype=np.float32)
    weight = np.ones((1, 1, 3, 3), dtype=np.float64)
    assert conv2d(x, weight).dtype == np.float64


def test_conv2d_accepts_an_empty_batch():
    assert conv2d(np.ones((0, 2, 5, 5)), np.ones((4, 2, 3, 3))).shape == (0, 4, 3, 3)


@pytest.mark.parametrize(
    "x_shape, w_shape, kwargs, error, pattern",
    [
        ((3, 5, 5), (1, 3, 3, 3), {}, ValueError, r"x must have shape \[N, C_in, H, W\] \(4 dimensions\), got shape \(3, 5, 5\)"),
        ((1, 3, 5, 5), (3, 3, 3), {}, ValueError, r"weight must have shape .* got shape \(3, 3, 3\)"),
        ((1, 4, 5, 5), (2, 3, 3, 3), {}, ValueError, r"x must have 3 channels, but x.shape\[1\] = 4"),
        ((1, 4, 5, 5), (3, 2, 3, 3), {"groups": 2}, ValueError, r"groups=2 must divide .* \(weight.shape\[0\] = 3\)"),
        ((1, 3, 5, 5), (3, 1, 3, 3), {"groups": 2}, ValueError, r"groups=2 must divide the input channels \(x.shape\[1\] = 3\)"),
        ((1, 1, 2, 5), (1, 1, 3, 3), {}, ValueError, r"input height \(x.shape\[2\]\): the kernel covers 3 pixels"),
        ((1, 1, 5, 5), (1, 1, 3, 3), {"dilation": (1, 3)}, ValueError, r"input width \(x.shape\[3\]\): the kernel covers 7 pixels"),
        ((1, 1, 5, 5), (1, 1, 3, 3), {"stride": 0}, ValueError, "stride must be >= 1, got 0"),
        ((1, 1, 5, 5), (1, 1, 3, 3), {"padding": (1, 2, 3)}, ValueError, r"padding must be an int or a pair"),
        ((1, 1, 5, 5), (1, 1, 3, 3), {"padding": 1.5}, TypeError, "padding must be an int or a pair of ints, got float"),
        ((1, 1, 5, 5), (1, 1, 3, 3), {"groups": 0}, ValueError, "groups must be >= 1"),
        ((1, 1, 5, 5), (2, 1, 3, 3), {"bias": np.zeros(3)}, ValueError, r"bias must have shape \[C_out\] = \(2,\), got \(3,\)"),
    ],
)
def test_conv2d_rejects_bad_input(x_shape, w_shape, kwargs, error, pattern):
    for function in (conv2d, conv2d_loops):
        with pytest.raises(error, match=pattern):
            function(np.zeros(x_shape), np.zeros(w_shape), **kwargs)


def test_conv2d_rejects_integer_and_torch_inputs():
    with pytest.raises(TypeError, match=r"x must have a floating-point dtype, got int64; use x.astype"):
        conv2d(np.zeros((1, 1, 3, 3), dtype=np.int64), np.zeros((1, 1, 3, 3)))
    with pytest.raises(TypeError, match=r"weight must be a numpy.ndarray, got torch.Tensor; convert it with .numpy\(\)"):
        conv2d(np.zeros((1, 1, 3, 3)), torch.zeros(1, 1, 3, 3))


# pooling ------------------------------------------------------------------------------

@settings(max_examples=150)
@given(pool_cases())
def test_max_pool2d_matches_torch_and_loops(case):
    expected = torch_pool(F.max_pool2d, case)
    np.testing.assert_array_equal(max_pool2d(**case), expected)
    np.testing.assert_array_equal(max_pool2d_loops(**case), expected)


@settings(max_examples=150)
@given(pool_cases())
def test_avg_pool2d_matches_torch(case):
    np.testing.assert_allclose(avg_pool2d(**case), torch_pool(F.avg_pool2d, case), rtol=1e-12, atol=1e-12)


def test_pooling_hand_worked():
    x = np.arange(16.0).reshape(1, 1, 4, 4)  # rows 0-3, 4-7, 8-11, 12-15
    # 2x2 windows with the default stride 2: maxima 5, 7, 13, 15; means (0+1+4+5)/4 = 2.5 ...
    np.testing.assert_array_equal(max_pool2d(x, 2), [[[[5.0, 7.0], [13.0, 15.0]]]])
    np.testing.assert_array_equal(max_pool2d_loops(x, 2), [[[[5.0, 7.0], [13.0, 15.0]]]])
    np.testing.assert_array_equal(avg_pool2d(x, 2), [[[[2.5, 4.5], [10.5, 12.5]]]])


def test_avg_pool2d_counts_padding_but_max_pool2d_ignores_it():
    x = np.full((1, 1, 2, 2), 4.0)
    # kernel 2, stride 2, padding 1: each window holds one real pixel and three padded ones
    np.testing.assert_array_equal(avg_pool2d(x, 2, padding=1), np.full((1, 1, 2, 2), 1.0))  # 4 / 4
    np.testing.assert_array_equal(max_pool2d(x, 2, padding=1), np.full((1, 1, 2, 2), 4.0))
    negative = -x  # padding is -inf for max pooling, so even negative inputs win
    np.testing.assert_array_equal(max_pool2d(negative, 2, padding=1), np.full((1, 1, 2, 2), -4.0))


def test_max_pool2d_propagates_nan_like_torch():
    x = np.zeros((1, 1, 2, 2))
    x[0, 0, 1, 1] = np.nan
    assert np.isnan(max_pool2d(x, 2)[0, 0, 0, 0])
    assert torch.isnan(F.max_pool2d(torch.from_numpy(x), 2)[0, 0, 0, 0]).item()


@pytest.mark.parametrize("function", [max_pool2d, max_pool2d_loops, avg_pool2d])
@pytest.mark.parametrize(
    "x, kwargs, error, pattern",
    [
        (np.zeros((1, 1, 4, 4)), {"kernel_size": 3, "padding": 2}, ValueError, "padding must be at most half of kernel_size"),
        (np.zeros((1, 1, 4, 4)), {"kernel_size": 5}, ValueError, r"input height \(x.shape\[2\]\): the kernel covers 5 pixels"),
        (np.zeros((4, 4)), {"kernel_size": 2}, ValueError, r"x must have shape \[N, C, H, W\]"),
        (np.zeros((1, 1, 4, 4), dtype=np.int32), {"kernel_size": 2}, TypeError, "floating-point dtype, got int32"),
        (np.zeros((1, 1, 4, 4)), {"kernel_size": 2, "stride": 0}, ValueError, "stride must be >= 1"),
        (np.zeros((1, 0, 4, 4)), {"kernel_size": 2}, ValueError, "must not have empty"),
    ],
)
def test_pooling_rejects_bad_input(function, x, kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        function(x, **kwargs)
