"""EfficientNet's compound scaling: grow depth, width and resolution together.

A convolutional network's cost grows linearly with its depth (more layers), with the
square of its width (every layer has ``C_in * C_out`` weights and both grow), and with
the square of its input resolution (``H * W`` output positions). Scaling depth by ``d``,
width by ``w`` and resolution by ``r`` therefore multiplies the MACs by about
``d * w**2 * r**2``.

Compound scaling picks one exponent ``phi`` (how much more compute to spend) and scales

    depth d = alpha ** phi,   width w = beta ** phi,   resolution r = gamma ** phi

with ``alpha * beta**2 * gamma**2 ~= 2`` (found once by a small grid search on the base
network), so that the cost grows by about ``2 ** phi``. Taught in the book: chapter 04,
"Scaling a network".

References:
    Tan and Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural
    Networks", ICML 2019, arXiv:1905.11946 (alpha = 1.2, beta = 1.1, gamma = 1.15).
"""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

from cvprep._validation import check_int


class Scale(NamedTuple):
    """Multipliers of a compound-scaled network relative to its base."""

    depth: float  # layers per stage
    width: float  # channels per layer
    resolution: float  # input height and width
    cost: float  # MACs, approximately: depth * width**2 * resolution**2


def _check_real(value: object, name: str, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise TypeError(f"{name} must be a finite real number, got {type(value).__name__} {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return float(value)


def compound_scale(phi: float, alpha: float = 1.2, beta: float = 1.1, gamma: float = 1.15) -> Scale:
    """Depth, width and resolution multipliers for compound coefficient ``phi``.

    Args:
        phi: how many doublings of compute to spend (0 is the base network; negative
            values shrink it).
        alpha: depth base, >= 1.
        beta: width base, >= 1.
        gamma: resolution base, >= 1.

    Returns:
        ``Scale(alpha**phi, beta**phi, gamma**phi, (alpha * beta**2 * gamma**2)**phi)``.

    Raises:
        TypeError: an argument is not a finite real number.
        ValueError: ``alpha``, ``beta`` or ``gamma`` is below 1 (the method only grows).
    """
    phi = _check_real(phi, "phi")
    alpha, beta, gamma = (_check_real(v, n, 1.0) for v, n in ((alpha, "alpha"), (beta, "beta"), (gamma, "gamma")))
    depth, width, resolution = alpha**phi, beta**phi, gamma**phi
    return Scale(depth, width, resolution, depth * width**2 * resolution**2)


def round_channels(channels: int, width: float, divisor: int = 8) -> int:
    """``channels * width`` rounded to a multiple of ``divisor`` (hardware likes multiples of 8).

    Rounds to the nearest multiple but never more than 10% below the exact value, the
    rule of the MobileNet and EfficientNet reference code.

    Raises:
        TypeError: ``channels`` or ``divisor`` is not an int, ``width`` not a real number.
        ValueError: ``channels`` or ``divisor`` is below 1, or ``width`` is not positive.
    """
    channels = check_int(channels, "channels", 1)
    divisor = check_int(divisor, "divisor", 1)
    width = _check_real(width, "width")
    if width <= 0:
        raise ValueError(f"width must be > 0, got {width}")
    exact = channels * width
    rounded = max(divisor, int(exact + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * exact:
        rounded += divisor
    return rounded


def round_depth(layers: int, depth: float) -> int:
    """``layers * depth`` rounded up: a stage never loses a layer to rounding.

    Raises:
        TypeError: ``layers`` is not an int, ``depth`` not a real number.
        ValueError: ``layers`` is below 1, or ``depth`` is not positive.
    """
    layers = check_int(layers, "layers", 1)
    depth = _check_real(depth, "depth")
    if depth <= 0:
        raise ValueError(f"depth must be > 0, got {depth}")
    return math.ceil(layers * depth)
