"""Argument checks for the torch functions (losses, interpretation, attacks, calibration).

The torch counterpart of ``_validation``: each check names the argument, what was
expected and what was received. Only the torch modules import this one.
"""

from __future__ import annotations

import torch


def check_module(module: object, name: str, expected: str = "a torch.nn.Module") -> torch.nn.Module:
    """Check that ``module`` is an ``nn.Module`` (``expected`` describes it in the message).

    Raises:
        TypeError: ``module`` is not an ``nn.Module``.
    """
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"{name} must be {expected}, got {type(module).__name__}")
    return module


def check_tensor(x: object, name: str, shape: str, floating: bool = True) -> torch.Tensor:
    """Check that ``x`` is a tensor with as many dimensions as ``shape`` (e.g. ``"[N, C]"``).

    Raises:
        TypeError: ``x`` is not a ``torch.Tensor``, or (``floating``) its dtype is not floating point.
        ValueError: ``x`` has the wrong number of dimensions.
    """
    if not isinstance(x, torch.Tensor):
        hint = "; convert it with torch.as_tensor" if type(x).__module__ == "numpy" else ""
        raise TypeError(f"{name} must be a torch.Tensor {shape}, got {type(x).__module__}.{type(x).__name__}{hint}")
    ndim = shape.count(",") + 1
    if x.ndim != ndim:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(x.shape)}")
    if floating and not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    return x


def check_labels(targets: object, name: str, n: int, num_classes: int) -> torch.Tensor:
    """Check class indices: an integer tensor ``[n]`` with values in ``[0, num_classes)``.

    Raises:
        TypeError: not an integer tensor.
        ValueError: wrong length, or a value out of range.
    """
    if not isinstance(targets, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor [N] of class indices, got {type(targets).__name__}")
    if targets.dtype.is_floating_point or targets.dtype == torch.bool or targets.is_complex():
        raise TypeError(f"{name} must hold integer class indices, got {targets.dtype}")
    if targets.shape != (n,):
        raise ValueError(f"{name} must have shape [{n}] (one class per row), got {tuple(targets.shape)}")
    if n and (targets.min() < 0 or targets.max() >= num_classes):
        raise ValueError(f"{name} must be class indices in [0, {num_classes}), "
                         f"got values from {int(targets.min())} to {int(targets.max())}")
    return targets


def check_positive(value: object, name: str, allow_zero: bool = False) -> float:
    """Check a finite real number that is > 0 (or >= 0 with ``allow_zero``); return it as a float.

    Raises:
        TypeError: not a real number (``bool`` is refused too).
        ValueError: not finite, or out of range.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not (value >= 0.0 if allow_zero else value > 0.0) or value == float("inf"):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}, got {value}")
    return value
