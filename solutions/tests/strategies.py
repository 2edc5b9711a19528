"""Hypothesis strategies shared by the test modules."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st


def int_or_pair(low: int, high: int) -> st.SearchStrategy:
    return st.one_of(st.integers(low, high), st.tuples(st.integers(low, high), st.integers(low, high)))


def as_pair(value):
    return value if isinstance(value, tuple) else (value, value)


@st.composite
def conv2d_cases(draw, dtype=np.float64, max_channels_per_group: int = 3):
    """Keyword arguments for ``conv2d`` (numpy arrays) with a non-empty output."""
    groups = draw(st.integers(1, 3))
    c_in = groups * draw(st.integers(1, max_channels_per_group))
    c_out = groups * draw(st.integers(1, max_channels_per_group))
    kernel = as_pair(draw(int_or_pair(1, 4)))
    stride, padding, dilation = draw(int_or_pair(1, 3)), draw(int_or_pair(0, 3)), draw(int_or_pair(1, 3))
    spans = [d * (k - 1) + 1 for k, d in zip(kernel, as_pair(dilation))]
    h, w = (max(1, s - 2 * p) + draw(st.integers(0, 6)) for s, p in zip(spans, as_pair(padding)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return {
        "x": rng.standard_normal((draw(st.integers(1, 2)), c_in, h, w)).astype(dtype),
        "weight": rng.standard_normal((c_out, c_in // groups, *kernel)).astype(dtype),
        "bias": draw(st.one_of(st.none(), st.just(rng.standard_normal(c_out).astype(dtype)))),
        "stride": stride,
        "padding": padding,
        "dilation": dilation,
        "groups": groups,
    }


@st.composite
def pool_cases(draw, dtype=np.float64):
    """Keyword arguments for ``max_pool2d`` / ``avg_pool2d`` (padding <= kernel / 2)."""
    kernel = draw(int_or_pair(1, 5))
    padding = tuple(draw(st.integers(0, k // 2)) for k in as_pair(kernel))
    stride = draw(st.one_of(st.none(), int_or_pair(1, 4)))
    h, w = (max(1, k - 2 * p) + draw(st.integers(0, 7)) for k, p in zip(as_pair(kernel), padding))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((draw(st.integers(1, 2)), draw(st.integers(1, 3)), h, w)).astype(dtype)
    return {"x": x, "kernel_size": kernel, "stride": stride, "padding": padding}


layer_specs = st.tuples(st.integers(1, 7), st.integers(1, 3), st.integers(0, 3), st.integers(1, 3))
layer_stacks = st.lists(layer_specs, min_size=1, max_size=6)
