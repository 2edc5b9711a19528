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


def check_boxes(x: object, name: str) -> np.ndarray:
    """Check that ``x`` is an ``ndarray[N, 4]`` of finite (x1, y1, x2, y2) boxes.

    ``N`` may be 0. Zero-width or zero-height boxes are allowed; inverted ones are not.

    Raises:
        TypeError: ``x`` is not a NumPy array, or its dtype is not floating point.
        ValueError: ``x`` does not have shape [N, 4], holds NaN or infinity, or has a row
            with x2 < x1 or y2 < y1 (the first such row is named).
    """
    if isinstance(x, np.ndarray) and (x.ndim != 2 or x.shape[1] != 4):
        raise ValueError(f"{name} must have shape [N, 4], got {x.shape}")
    x = float_array(x, name, "[N, 4]")
    finite = np.isfinite(x).all(axis=1)  # [N]
    if not finite.all():
        row = int(np.argmin(finite))
        raise ValueError(f"{name} must be finite, but row {row} is {x[row].tolist()}")
    inverted = (x[:, 2] < x[:, 0]) | (x[:, 3] < x[:, 1])  # [N]
    if inverted.any():
        row = int(np.argmax(inverted))
        raise ValueError(
            f"{name} must be (x1, y1, x2, y2) with x1 <= x2 and y1 <= y2, but row {row} is {x[row].tolist()}"
        )
    return x


def check_real(
    value: object,
    name: str,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
) -> float:
    """Return ``value`` as a ``float`` after checking it is a finite real number in range.

    Args:
        value: the argument to check.
        name: its name, for the error message.
        minimum: smallest allowed value, or ``None`` for no lower bound.
        maximum: largest allowed value (inclusive), or ``None`` for no upper bound.
        exclusive_minimum: if True, ``value`` must be strictly greater than ``minimum``.

    Raises:
        TypeError: ``value`` is not a real number (``bool`` is refused too).
        ValueError: ``value`` is NaN or infinite, or out of range.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if minimum is not None and (value <= minimum if exclusive_minimum else value < minimum):
        raise ValueError(f"{name} must be {'>' if exclusive_minimum else '>='} {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_probability(value: object, name: str) -> float:
    """Return ``value`` as a ``float`` after checking it is a finite number in [0, 1].

    Raises:
        TypeError: ``value`` is not a real number.
        ValueError: ``value`` is NaN, infinite, or outside [0, 1].
    """
    value = check_real(value, name)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return value


def check_choice(value: object, name: str, choices: tuple[str, ...]) -> str:
    """Return ``value`` after checking it is one of the strings in ``choices``.

    Raises:
        ValueError: ``value`` is not one of ``choices``.
    """
    if not isinstance(value, str) or value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return value


def check_per_box(x: object, name: str, n_boxes: int, boxes_name: str = "boxes", integer: bool = False) -> np.ndarray:
    """Check that ``x`` is an ``ndarray[N]`` with one entry per box (scores, class ids, ...).

    Args:
        x: the argument to check.
        name: its name, for the error message.
        n_boxes: the number of boxes ``N`` it must match.
        boxes_name: the name of the boxes argument, for the error message.
        integer: require an integer dtype (class ids) instead of a finite floating-point
            one (scores).

    Raises:
        TypeError: ``x`` is not a NumPy array, or has the wrong kind of dtype.
        ValueError: ``x`` is not 1-D, its length is not ``n_boxes``, or (floating
            point) it holds NaN or infinity.
    """
    if isinstance(x, np.ndarray) and x.ndim != 1:
        raise ValueError(f"{name} must have shape [N], got {x.shape}")
    if not integer:
        x = float_array(x, name, "[N]")
    elif not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(x).__module__}.{type(x).__name__}")
    elif not np.issubdtype(x.dtype, np.integer):
        raise TypeError(f"{name} must have an integer dtype, got {x.dtype}; use {name}.astype(np.int64)")
    if len(x) != n_boxes:
        raise ValueError(
            f"{name} must have one entry per box: {boxes_name} has {n_boxes} rows, {name} has {len(x)} entries"
        )
    if not integer and not np.isfinite(x).all():
        index = int(np.argmin(np.isfinite(x)))
        raise ValueError(f"{name} must be finite, but entry {index} is {x[index]}")
    return x
