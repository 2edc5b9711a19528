"""Argument checks shared by the public functions.

Every public function validates its inputs at the boundary with these helpers, so a
mistake is reported where it was made, naming the argument, what was expected and what
was received, instead of surfacing later as a confusing NumPy broadcasting error.
"""

from __future__ import annotations

import numbers

import numpy as np


def check_int(value: object, name: str, minimum: int) -> int:
    """Return ``value`` as an ``int`` after checking it is an integer >= ``minimum``.

    Raises:
        TypeError: ``value`` is not an integer (``bool`` is refused too).
        ValueError: ``value`` is smaller than ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def pair(value: object, name: str, minimum: int) -> tuple[int, int]:
    """Return an int or a pair of ints as a ``(height, width)`` pair, each >= ``minimum``.

    This mirrors how ``torch.nn.functional`` accepts ``stride=2`` or ``stride=(2, 1)``.

    Raises:
        TypeError: ``value`` is neither an int nor a sequence of two ints.
        ValueError: a sequence of the wrong length, or an entry below ``minimum``.
    """
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair (height, width), got {value!r}")
        return (check_int(value[0], f"{name}[0]", minimum), check_int(value[1], f"{name}[1]", minimum))
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return (check_int(value, name, minimum),) * 2
    raise TypeError(f"{name} must be an int or a pair of ints, got {type(value).__name__} {value!r}")


def float_array(x: object, name: str, shape: str) -> np.ndarray:
    """Check that ``x`` is a floating-point ``ndarray`` with as many dimensions as ``shape``.

    Args:
        x: the argument to check.
        name: its name, for the error message.
        shape: the expected layout, e.g. ``"[N, C, H, W]"``; its comma count sets ndim.

    Raises:
        TypeError: ``x`` is not a NumPy array, or its dtype is not floating point.
        ValueError: ``x`` has the wrong number of dimensions.
    """
    if not isinstance(x, np.ndarray):
        hint = "; convert it with .numpy()" if type(x).__module__.startswith("torch") else ""
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(x).__module__}.{type(x).__name__}{hint}")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{name} must have a floating-point dtype, got {x.dtype}; use {name}.astype(np.float64)")
    ndim = shape.count(",") + 1
    if x.ndim != ndim:
        raise ValueError(f"{name} must have shape {shape} ({ndim} dimensions), got shape {x.shape}")
    return x


def check_window_fits(size: int, padding: int, span: int, what: str) -> None:
    """Raise if a window of ``span`` pixels does not fit once in ``size + 2 * padding``.

    ``span`` is the extent of the (dilated) kernel: ``dilation * (kernel_size - 1) + 1``.

    Raises:
        ValueError: the output would have size 0 or less.
    """
    padded = size + 2 * padding
    if span > padded:
        raise ValueError(
            f"{what}: the kernel covers {span} pixels but the padded input has only {padded} "
            f"(size {size} + 2 * padding {padding}); the output would be empty"
        )
