"""2-D convolution and pooling in NumPy, with the semantics of ``torch.nn.functional``.

Layout: arrays are NCHW (batch, channels, height, width) and floating point. What deep
learning calls convolution is cross-correlation: the kernel is not flipped.

Each operation exists twice: a readable loop version (``conv2d_loops``,
``max_pool2d_loops``) that says what is computed, and a vectorised one (``conv2d``,
``max_pool2d``) that computes it fast. The tests check each against the other and
both against PyTorch.

Taught in the book: chapter 01, "Convolution".
"""

from __future__ import annotations

import numpy as np

from cvprep._validation import check_int, check_window_fits, float_array, pair

IntOrPair = int | tuple[int, int]


def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Number of positions a (dilated) kernel takes along one axis of a padded input.

    The dilated kernel covers ``span = dilation * (kernel_size - 1) + 1`` input pixels;
    it first sits at the left edge of the padded input (``size + 2 * padding`` pixels)
    and moves ``stride`` pixels at a time while it still fits, so

        out = floor((size + 2 * padding - span) / stride) + 1

    Args:
        size: input length along the axis (height or width), >= 1.
        kernel_size: kernel length along the axis, >= 1.
        stride: step between neighbouring kernel positions, >= 1.
        padding: zeros added on each side, >= 0.
        dilation: spacing between kernel taps, >= 1 (1 means no holes).

    Returns:
        The output length, >= 1.

    Raises:
        TypeError: an argument is not an int.
        ValueError: an argument is out of range, or the dilated kernel is larger than the
            padded input (the output would be empty).

    References:
        Dumoulin and Visin, "A guide to convolution arithmetic for deep learning", 2016,
        arXiv:1603.07285 (relationship 15 is this formula).
    """
    size = check_int(size, "size", 1)
    kernel_size = check_int(kernel_size, "kernel_size", 1)
    stride = check_int(stride, "stride", 1)
    padding = check_int(padding, "padding", 0)
    dilation = check_int(dilation, "dilation", 1)
    span = dilation * (kernel_size - 1) + 1  # input pixels covered by one dilated kernel
    check_window_fits(size, padding, span, "conv_output_size")
    return (size + 2 * padding - span) // stride + 1


def _window_starts(padded_size: int, span: int, stride: int) -> range:
    """Left (or top) edges of every window of ``span`` pixels that fits in ``padded_size``."""
    return range(0, padded_size - span + 1, stride)


def _pad(x: np.ndarray, padding: tuple[int, int], value: float = 0.0) -> np.ndarray:
    """Pad the two spatial axes of an NCHW array by ``padding = (ph, pw)`` on each side."""
    ph, pw = padding
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def _conv_arguments(x, weight, bias, stride, padding, dilation, groups):
    """Validate ``conv2d``'s arguments and return them with stride/padding/dilation as pairs."""
    x = float_array(x, "x", "[N, C_in, H, W]")
    weight = float_array(weight, "weight", "[C_out, C_in / groups, kh, kw]")
    groups = check_int(groups, "groups", 1)
    stride = pair(stride, "stride", 1)
    padding = pair(padding, "padding", 0)
    dilation = pair(dilation, "dilation", 1)
    if min(x.shape[1:]) < 1 or min(weight.shape) < 1:
        raise ValueError(f"x and weight must not have empty axes, got x {x.shape} and weight {weight.shape}")
    c_in, c_out, c_per_group = x.shape[1], weight.shape[0], weight.shape[1]
    if c_in % groups or c_out % groups:
        raise ValueError(
            f"groups={groups} must divide the input channels (x.shape[1] = {c_in}) "
            f"and the output channels (weight.shape[0] = {c_out})"
        )
    if c_per_group * groups != c_in:
        raise ValueError(
            f"weight has {c_per_group} input channels per group (weight.shape[1]), so with groups={groups} "
            f"x must have {c_per_group * groups} channels, but x.shape[1] = {c_in}"
        )
    if bias is not None:
        bias = float_array(bias, "bias", "[C_out]")
        if bias.shape != (c_out,):
            raise ValueError(f"bias must have shape [C_out] = ({c_out},), got {bias.shape}")
    for axis, name in ((0, "height"), (1, "width")):
        span = dilation[axis] * (weight.shape[2 + axis] - 1) + 1
        check_window_fits(x.shape[2 + axis], padding[axis], span, f"conv2d: input {name} (x.shape[{2 + axis}])")
    return x, weight, bias, stride, padding, dilation, groups


def conv2d_loops(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
    groups: int = 1,
) -> np.ndarray:
    """2-D convolution written as loops over images, filters and output positions.

    Same contract as :func:`conv2d`; this version is the readable definition and the
    oracle the vectorised version is tested against.
    """
    x, weight, bias, stride, padding, dilation, groups = _conv_arguments(
        x, weight, bias, stride, padding, dilation, groups
    )
    (sh, sw), (dh, dw) = stride, dilation
    c_out, c_per_group, kh, kw = weight.shape
    filters_per_group = c_out // groups
    xp = _pad(x, padding)  # [N, C_in, H + 2ph, W + 2pw]
    span_h, span_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    tops = _window_starts(xp.shape[2], span_h, sh)
    lefts = _window_starts(xp.shape[3], span_w, sw)
    out = np.zeros((x.shape[0], c_out, len(tops), len(lefts)), dtype=np.result_type(x, weight))
    for n in range(x.shape[0]):
        for f in range(c_out):
            group = f // filters_per_group
            channels = slice(group * c_per_group, (group + 1) * c_per_group)  # the inputs filter f sees
            for i, top in enumerate(tops):
                for j, left in enumerate(lefts):
                    window = xp[n, channels, top : top + span_h : dh, left : left + span_w : dw]  # [C_in/G, kh, kw]
                    out[n, f, i, j] = np.sum(window * weight[f])
            if bias is not None:
                out[n, f] += bias[f]
    return out


def _windows(xp: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int]) -> np.ndarray:
    """Every kernel-sized window of a padded NCHW array, as a view (nothing is copied).

    Returns:
        ndarray[N, C, H_out, W_out, kh, kw]: ``[n, c, i, j]`` holds the taps that the
        kernel at output position ``(i, j)`` multiplies.
    """
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    spans = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    views = np.lib.stride_tricks.sliding_window_view(xp, spans, axis=(2, 3))  # [N, C, Hp-span_h+1, Wp-span_w+1, span_h, span_w]
    return views[:, :, ::sh, ::sw, ::dh, ::dw]


def conv2d(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
    groups: int = 1,
) -> np.ndarray:
    """2-D convolution (cross-correlation) of a batch of images, as ``torch.nn.functional.conv2d``.

    ``out[n, f, i, j] = bias[f] + sum over c, u, v of
    weight[f, c, u, v] * x_padded[n, g * C_in/G + c, i * sh + u * dh, j * sw + v * dw]``
    where ``g`` is the group of filter ``f``. Vectorised with im2col: every window is
    unrolled into a row of a matrix and all filters are applied by one matrix product
    per group.

    Args:
        x (ndarray[N, C_in, H, W]): input images, floating point.
        weight (ndarray[C_out, C_in / groups, kh, kw]): one kernel per output channel.
        bias (ndarray[C_out] | None): added to every position of each output channel.
        stride: int or (sh, sw), step between kernel positions.
        padding: int or (ph, pw), zeros added on each side of each spatial axis.
        dilation: int or (dh, dw), spacing between kernel taps.
        groups: split input and output channels into this many independent groups;
            ``groups == C_in`` with ``C_out == C_in`` is a depthwise convolution.

    Returns:
        ndarray[N, C_out, H_out, W_out] with ``H_out = conv_output_size(H, kh, sh, ph, dh)``
        (and likewise ``W_out``); its dtype is that of ``x`` and ``weight`` combined.

    Raises:
        TypeError: ``x``, ``weight`` or ``bias`` is not a floating-point ndarray, or an
            integer argument has the wrong type.
        ValueError: wrong number of dimensions, channel counts that ``groups`` does not
            divide or that do not match ``weight``, a bias of the wrong length, or a
            kernel larger than the padded input.

    References:
        LeCun et al., "Gradient-based learning applied to document recognition", 1998;
        Dumoulin and Visin, "A guide to convolution arithmetic for deep learning", 2016,
        arXiv:1603.07285; Chellapilla et al., "High performance convolutional neural
        networks for document processing", 2006 (im2col).
    """
    x, weight, bias, stride, padding, dilation, groups = _conv_arguments(
        x, weight, bias, stride, padding, dilation, groups
    )
    dtype = np.result_type(x, weight)
    n, c_in = x.shape[:2]
    c_out, c_per_group, kh, kw = weight.shape
    windows = _windows(_pad(x.astype(dtype, copy=False), padding), (kh, kw), stride, dilation)  # [N, C_in, H_out, W_out, kh, kw]
    h_out, w_out = windows.shape[2:4]
    # im2col, one matrix per group: a row per (image, output position), a column per (channel, tap).
    grouped = windows.reshape(n, groups, c_per_group, h_out, w_out, kh, kw)
    cols = grouped.transpose(1, 0, 3, 4, 2, 5, 6).reshape(groups, n * h_out * w_out, c_per_group * kh * kw)
    kernels = weight.astype(dtype, copy=False).reshape(groups, c_out // groups, c_per_group * kh * kw)
    out = cols @ kernels.transpose(0, 2, 1)  # [G, N*H_out*W_out, C_out/G]
    out = out.reshape(groups, n, h_out, w_out, c_out // groups).transpose(1, 0, 4, 2, 3)  # [N, G, C_out/G, H_out, W_out]
    out = out.reshape(n, c_out, h_out, w_out)
    if bias is not None:
        out = out + bias[:, None, None]
    return np.ascontiguousarray(out, dtype=dtype)


def _pool_arguments(x, kernel_size, stride, padding, name: str):
    """Validate a pooling call's arguments; ``stride=None`` means ``stride = kernel_size``."""
    x = float_array(x, "x", "[N, C, H, W]")
    kernel = pair(kernel_size, "kernel_size", 1)
    stride = kernel if stride is None else pair(stride, "stride", 1)
    padding = pair(padding, "padding", 0)
    if min(x.shape[1:]) < 1:
        raise ValueError(f"x must not have empty channel or spatial axes, got shape {x.shape}")
    for axis, axis_name in ((0, "height"), (1, "width")):
        # PyTorch's rule: a window may not hang more than half outside the input.
        if 2 * padding[axis] > kernel[axis]:
            raise ValueError(
                f"{name}: padding must be at most half of kernel_size, got padding={padding} and kernel_size={kernel}"
            )
        check_window_fits(x.shape[2 + axis], padding[axis], kernel[axis], f"{name}: input {axis_name} (x.shape[{2 + axis}])")
    return x, kernel, stride, padding


def max_pool2d_loops(x: np.ndarray, kernel_size: IntOrPair, stride: IntOrPair | None = None, padding: IntOrPair = 0) -> np.ndarray:
    """Max pooling written as a loop over output positions.

    Same contract as :func:`max_pool2d`; the readable definition and its test oracle.
    """
    x, (kh, kw), (sh, sw), padding = _pool_arguments(x, kernel_size, stride, padding, "max_pool2d")
    xp = _pad(x, padding, value=-np.inf)  # -inf never wins a max, so padding is ignored
    tops = _window_starts(xp.shape[2], kh, sh)
    lefts = _window_starts(xp.shape[3], kw, sw)
    out = np.empty((x.shape[0], x.shape[1], len(tops), len(lefts)), dtype=x.dtype)
    for i, top in enumerate(tops):
        for j, left in enumerate(lefts):
            out[:, :, i, j] = xp[:, :, top : top + kh, left : left + kw].max(axis=(2, 3))
    return out


def max_pool2d(x: np.ndarray, kernel_size: IntOrPair, stride: IntOrPair | None = None, padding: IntOrPair = 0) -> np.ndarray:
    """Max pooling, as ``torch.nn.functional.max_pool2d`` (no dilation, ``ceil_mode=False``).

    Each output is the largest value in its ``kh x kw`` window; each channel is pooled
    on its own. Padding is implicit ``-inf``, so it never wins.

    Args:
        x (ndarray[N, C, H, W]): input, floating point.
        kernel_size: int or (kh, kw), window size.
        stride: int or (sh, sw); ``None`` (the default) means ``kernel_size``, so
            windows do not overlap.
        padding: int or (ph, pw), at most half of ``kernel_size``.

    Returns:
        ndarray[N, C, H_out, W_out] of ``x``'s dtype, ``H_out = conv_output_size(H, kh, sh, ph)``.

    Raises:
        TypeError: ``x`` is not a floating-point ndarray, or an argument is not an int.
        ValueError: ``x`` is not 4-D, padding exceeds half the kernel, or the window
            is larger than the padded input.

    References:
        Dumoulin and Visin, "A guide to convolution arithmetic for deep learning", 2016,
        arXiv:1603.07285 (section 3, pooling arithmetic).
    """
    x, kernel, stride, padding = _pool_arguments(x, kernel_size, stride, padding, "max_pool2d")
    windows = _windows(_pad(x, padding, value=-np.inf), kernel, stride, (1, 1))  # [N, C, H_out, W_out, kh, kw]
    return windows.max(axis=(4, 5))


def avg_pool2d(x: np.ndarray, kernel_size: IntOrPair, stride: IntOrPair | None = None, padding: IntOrPair = 0) -> np.ndarray:
    """Average pooling, as ``torch.nn.functional.avg_pool2d`` with its defaults.

    Each output is the mean of its ``kh x kw`` window. Padded zeros count in the mean
    (PyTorch's ``count_include_pad=True``), so outputs near a padded border are pulled
    towards zero.

    Args:
        x (ndarray[N, C, H, W]): input, floating point.
        kernel_size: int or (kh, kw), window size.
        stride: int or (sh, sw); ``None`` (the default) means ``kernel_size``.
        padding: int or (ph, pw), at most half of ``kernel_size``.

    Returns:
        ndarray[N, C, H_out, W_out] of ``x``'s dtype.

    Raises:
        TypeError: ``x`` is not a floating-point ndarray, or an argument is not an int.
        ValueError: ``x`` is not 4-D, padding exceeds half the kernel, or the window
            is larger than the padded input.

    References:
        Dumoulin and Visin, "A guide to convolution arithmetic for deep learning", 2016,
        arXiv:1603.07285 (section 3, pooling arithmetic).
    """
    x, kernel, stride, padding = _pool_arguments(x, kernel_size, stride, padding, "avg_pool2d")
    windows = _windows(_pad(x, padding), kernel, stride, (1, 1))  # [N, C, H_out, W_out, kh, kw]
    return windows.mean(axis=(4, 5), dtype=x.dtype)
