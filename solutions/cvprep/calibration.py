"""Calibration of a classifier's probabilities: reliability bins, expected calibration
error (ECE) and temperature scaling, in torch.

A classifier is *calibrated* when, of the samples it predicts with confidence ``p``, a
fraction ``p`` is classified correctly. Conventions shared by every function here:

* ``probs`` is a ``Tensor[N, C]`` of class probabilities, one row per sample, each row
  non-negative and summing to 1 within ``ROW_SUM_TOLERANCE``; ``logits`` is a
  ``Tensor[N, C]`` of unnormalised scores; ``targets`` is a ``Tensor[N]`` of integer
  class indices in ``[0, C)``. ``N`` must be at least 1.
* A sample's *confidence* is its largest probability and its *prediction* the class that
  holds it (the first such class on a tie, as ``torch.argmax``).
* Confidences go into ``n_bins`` equal-width bins over (0, 1]. With edges
  ``e[b] = b / n_bins``, a confidence ``c`` falls in bin ``b`` when
  ``e[b] < c <= e[b + 1]``: a confidence exactly on an edge belongs to the bin **below**
  it (0.5 with 10 bins is in (0.4, 0.5]). The edges are rounded to ``probs``' dtype, so
  a float32 confidence of 0.3 lies on the float32 edge 0.3 too. A confidence a rounding
  error above 1 counts in the last bin.

The ECE exists twice: ``expected_calibration_error_loops`` reads one sample at a time and
states the definition; ``expected_calibration_error`` is vectorised. The tests check each
against the other.

Taught in the book: chapter 06, "Detection in practice" (calibrating the scores).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from cvprep._torch_validation import check_labels, check_positive, check_tensor
from cvprep._validation import check_int

ROW_SUM_TOLERANCE = 1e-4  # how far a row of probs may sum from 1 (float32 softmax rounding)
_GOLDEN = (math.sqrt(5) - 1) / 2  # 0.618...: the golden-section step


class ReliabilityBins(NamedTuple):
    """Per-bin statistics of a reliability diagram; every field is a ``Tensor[n_bins]``
    except ``edges`` (``Tensor[n_bins + 1]``). Empty bins have confidence and accuracy 0."""

    edges: torch.Tensor  # float64, e[b] = b / n_bins (rounded to probs' dtype)
    counts: torch.Tensor  # int64, samples per bin
    confidence: torch.Tensor  # float64, mean confidence of the bin's samples
    accuracy: torch.Tensor  # float64, fraction of the bin's samples predicted correctly


# Validation ------------------------------------------------------------------------------

def _check_rows(x: object, name: str, min_classes: int = 1) -> torch.Tensor:
    """A finite floating-point ``Tensor[N, C]`` with ``N >= 1`` and ``C >= min_classes``."""
    x = check_tensor(x, name, "[N, C]")
    if x.shape[0] < 1 or x.shape[1] < min_classes:
        raise ValueError(f"{name} must have shape [N, C] with N >= 1 and C >= {min_classes}, "
                         f"got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} must be finite, got {int((~torch.isfinite(x)).sum())} NaN or inf values")
    return x


def _check_probs(probs: object, targets: object, n_bins: object) -> tuple[torch.Tensor, torch.Tensor, int]:
    probs = _check_rows(probs, "probs")
    if (probs < 0).any():
        raise ValueError(f"probs must be non-negative, got a minimum of {float(probs.min())}")
    row_error = (probs.double().sum(dim=1) - 1).abs()  # [N]
    if (row_error > ROW_SUM_TOLERANCE).any():
        row = int(row_error.argmax())
        raise ValueError(f"probs rows must sum to 1 (within {ROW_SUM_TOLERANCE}), "
                         f"row {row} sums to {float(probs[row].double().sum())}")
    targets = check_labels(targets, "targets", probs.shape[0], probs.shape[1])
    return probs, targets, check_int(n_bins, "n_bins", 1)


def _check_bounds(bounds: object) -> tuple[float, float]:
    if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
        raise TypeError(f"bounds must be a pair (low, high) of temperatures, got {bounds!r}")
    low, high = (check_positive(b, "bounds") for b in bounds)
    if not low < high:
        raise ValueError(f"bounds must satisfy low < high, got ({low}, {high})")
    return low, high


# Reliability bins and ECE ------------------------------------------------------------------

def _bin_edges(n_bins: int, dtype: torch.dtype) -> torch.Tensor:
    """``b / n_bins`` for ``b = 0..n_bins``, rounded to ``dtype`` and returned as float64."""
    return (torch.arange(n_bins + 1, dtype=torch.float64) / n_bins).to(dtype).double()


def reliability_bins(probs: torch.Tensor, targets: torch.Tensor, n_bins: int = 15) -> ReliabilityBins:
    """Count, mean confidence and accuracy of the samples in each confidence bin.

    Plotting ``accuracy`` against ``confidence`` gives the reliability diagram: a
    calibrated classifier lies on the diagonal.

    Args:
        probs (Tensor[N, C]): class probabilities, rows non-negative and summing to 1.
        targets (Tensor[N]): true class indices, integers in ``[0, C)``.
        n_bins: the number of equal-width bins over (0, 1], >= 1; ``c`` is in bin ``b``
            when ``b / n_bins < c <= (b + 1) / n_bins``.

    Returns:
        ReliabilityBins: ``edges`` (Tensor[n_bins + 1]), ``counts`` (int64
        Tensor[n_bins]), ``confidence`` and ``accuracy`` (float64 Tensor[n_bins], 0 in
        empty bins).

    Raises:
        TypeError: ``probs`` is not a floating-point tensor, ``targets`` not an integer
            tensor, or ``n_bins`` not an int.
        ValueError: a shape is wrong, ``probs`` is empty, not finite, negative or has a
            row not summing to 1, a target is out of range, or ``n_bins < 1``.

    References:
        DeGroot and Fienberg, "The Comparison and Evaluation of Forecasters", 1983
        (reliability diagrams); Guo et al., "On Calibration of Modern Neural Networks",
        ICML 2017, arXiv:1706.04599.
    """
    probs, targets, n_bins = _check_probs(probs, targets, n_bins)
    edges = _bin_edges(n_bins, probs.dtype)  # [n_bins + 1]
    confidence, prediction = probs.max(dim=1)  # [N], [N]
    confidence = confidence.double()
    correct = (prediction == targets).double()  # [N]
    # bucketize(right=False) returns i with edges[i - 1] < c <= edges[i]; bin b = i - 1.
    bins = (torch.bucketize(confidence, edges) - 1).clamp(0, n_bins - 1)  # [N]
    counts = torch.bincount(bins, minlength=n_bins)  # [n_bins]
    divisor = counts.clamp(min=1).double()  # empty bins: 0 / 1 = 0
    return ReliabilityBins(
        edges=edges,
        counts=counts,
        confidence=torch.bincount(bins, weights=confidence, minlength=n_bins) / divisor,
        accuracy=torch.bincount(bins, weights=correct, minlength=n_bins) / divisor,
    )


def expected_calibration_error(probs: torch.Tensor, targets: torch.Tensor, n_bins: int = 15) -> float:
    """Expected calibration error: ``ECE = sum_b (n_b / N) * |acc_b - conf_b|``.

    ``n_b`` is the number of samples in confidence bin ``b`` (see :func:`reliability_bins`
    for the bins), ``acc_b`` their accuracy and ``conf_b`` their mean confidence. 0 for a
    perfectly calibrated classifier (up to sampling noise), at most 1. It depends on
    ``n_bins``: report it with the number of bins.

    Args:
        probs (Tensor[N, C]): class probabilities, rows non-negative and summing to 1.
        targets (Tensor[N]): true class indices, integers in ``[0, C)``.
        n_bins: the number of equal-width confidence bins over (0, 1], >= 1.

    Returns:
        float: the ECE, in [0, 1].

    Raises:
        TypeError: as :func:`reliability_bins`.
        ValueError: as :func:`reliability_bins`.

    References:
        Naeini, Cooper and Hauskrecht, "Obtaining Well Calibrated Probabilities Using
        Bayesian Binning", AAAI 2015; Guo et al., "On Calibration of Modern Neural
        Networks", ICML 2017, arXiv:1706.04599.
    """
    bins = reliability_bins(probs, targets, n_bins)
    weights = bins.counts.double() / bins.counts.sum()  # [n_bins], n_b / N
    return float((weights * (bins.accuracy - bins.confidence).abs()).sum())


def expected_calibration_error_loops(probs: torch.Tensor, targets: torch.Tensor, n_bins: int = 15) -> float:
    """The ECE written as a loop over samples, then over bins; same contract as
    :func:`expected_calibration_error`."""
    probs, targets, n_bins = _check_probs(probs, targets, n_bins)
    edges = _bin_edges(n_bins, probs.dtype).tolist()
    counts, confidence_sums, correct_sums = [0] * n_bins, [0.0] * n_bins, [0.0] * n_bins
    for row, target in zip(probs.double().tolist(), targets.tolist()):
        confidence = max(row)
        prediction = row.index(confidence)  # the first maximum, as torch.argmax
        # The bin with edges[b] < confidence <= edges[b + 1]; the last if it is above 1.
        b = next((b for b in range(n_bins) if edges[b] < confidence <= edges[b + 1]), n_bins - 1)
        counts[b] += 1
        confidence_sums[b] += confidence
        correct_sums[b] += prediction == target
    n = len(targets)
    ece = 0.0
    for count, confidence_sum, correct_sum in zip(counts, confidence_sums, correct_sums):
        if count:
            ece += count / n * abs(correct_sum / count - confidence_sum / count)
    return ece


# Temperature scaling -----------------------------------------------------------------------

def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Calibrated probabilities ``softmax(logits / temperature)`` over the classes.

    Args:
        logits (Tensor[N, C]): unnormalised class scores.
        temperature: ``T > 0``; ``T > 1`` softens the probabilities, ``T < 1`` sharpens
            them; the predicted class never changes.

    Returns:
        Tensor[N, C]: probabilities, rows summing to 1, in ``logits``' dtype.

    Raises:
        TypeError: ``logits`` is not a floating-point tensor or ``temperature`` not a real number.
        ValueError: ``logits`` is not [N, C], or ``temperature`` is not finite and > 0.

    References:
        Guo et al., "On Calibration of Modern Neural Networks", ICML 2017, arXiv:1706.04599.
    """
    logits = check_tensor(logits, "logits", "[N, C]")
    temperature = check_positive(temperature, "temperature")
    return torch.softmax(logits / temperature, dim=1)


def _nll(logits: torch.Tensor, targets: torch.Tensor, log_temperature: float) -> float:
    """Mean negative log-likelihood of ``softmax(logits / exp(log_temperature))``."""
    return float(F.cross_entropy(logits / math.exp(log_temperature), targets))


def _golden_section_minimum(f, low: float, high: float, tol: float) -> float:
    """The minimum of a unimodal ``f`` on ``[low, high]``, to within ``tol``.

    Keeps a bracket around the minimum and two inner points at the golden ratio; each
    step drops the part of the bracket beyond the worse inner point and reuses the other.
    """
    inner_low, inner_high = high - _GOLDEN * (high - low), low + _GOLDEN * (high - low)
    f_low, f_high = f(inner_low), f(inner_high)
    while high - low > tol:
        if f_low <= f_high:  # the minimum is not right of inner_high
            high, inner_high, f_high = inner_high, inner_low, f_low
            inner_low = high - _GOLDEN * (high - low)
            f_low = f(inner_low)
        else:  # the minimum is not left of inner_low
            low, inner_low, f_low = inner_low, inner_high, f_high
            inner_high = low + _GOLDEN * (high - low)
            f_high = f(inner_high)
    return (low + high) / 2


def fit_temperature(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    bounds: tuple[float, float] = (0.01, 100.0),
    tol: float = 1e-7,
) -> float:
    """Temperature scaling: the ``T`` minimising the NLL of ``softmax(logits / T)``.

    One scalar ``T > 0`` divides every logit, so the predicted classes (and accuracy)
    stay as they are and only the confidences move. Modern networks tend to be
    over-confident; on them the fitted ``T > 1`` softens the probabilities. ``T < 1``
    sharpens an under-confident model. Fit it on held-out data, not the training set.

    The NLL is convex in ``1 / T``, hence unimodal in ``log T``: a golden-section search
    over ``log T`` in ``[log low, log high]`` finds the minimum, deterministically and
    without gradients, in float64. If the NLL keeps falling past a bound (for instance
    when every sample is classified correctly with a margin, which pushes ``T`` to 0)
    the result is that bound (to within ``tol`` on ``log T``).

    Args:
        logits (Tensor[N, C]): unnormalised class scores, ``N >= 1``, ``C >= 2``.
        targets (Tensor[N]): true class indices, integers in ``[0, C)``.
        bounds: ``(low, high)``, the range searched for ``T``, ``0 < low < high``.
        tol: the search stops when the bracket on ``log T`` is narrower than this, > 0.

    Returns:
        float: the fitted temperature, in ``[low, high]``; pass it to
        :func:`apply_temperature`.

    Raises:
        TypeError: ``logits`` is not a floating-point tensor, ``targets`` not an integer
            tensor, ``bounds`` not a pair of real numbers, or ``tol`` not a real number.
        ValueError: ``logits`` is not [N, C] with ``N >= 1`` and ``C >= 2`` or is not
            finite, ``targets`` has the wrong length or a value out of range, or
            ``bounds`` or ``tol`` is out of range.

    References:
        Guo et al., "On Calibration of Modern Neural Networks", ICML 2017,
        arXiv:1706.04599; Kiefer, "Sequential minimax search for a maximum", 1953
        (golden-section search).
    """
    logits = _check_rows(logits, "logits", min_classes=2).double()
    targets = check_labels(targets, "targets", logits.shape[0], logits.shape[1])
    low, high = (math.log(b) for b in _check_bounds(bounds))
    tol = check_positive(tol, "tol")
    log_t = _golden_section_minimum(lambda log_t: _nll(logits, targets, log_t), low, high, tol)
    return math.exp(log_t)
