"""Classification losses in torch: cross-entropy with label smoothing, focal loss,
class-balanced weights and knowledge distillation.

* ``softmax_cross_entropy``: mean cross-entropy of ``[N, C]`` logits against class
  indices, with optional label smoothing; equals ``torch.nn.functional.cross_entropy``.
* ``focal_loss``: the binary (sigmoid) focal loss of RetinaNet; equals
  ``torchvision.ops.sigmoid_focal_loss``.
* ``class_balanced_weights``: per-class weights from the "effective number of samples"
  of Cui et al., to pass as ``weight=`` to a loss.
* ``distillation_loss``: Hinton et al.'s blend of a softened teacher-matching term and
  the ordinary cross-entropy.

Convention: logits are raw, unnormalised scores (before softmax or sigmoid); a batch
of ``N`` examples over ``C`` classes is a ``Tensor[N, C]`` and its labels a
``Tensor[N]`` of integer class indices in ``[0, C)``. Every function works in the
logits' dtype and is differentiable with respect to the logits. Probabilities are never
logged directly: log-probabilities come from ``log_softmax`` / ``logsigmoid``, which
stay finite for logits of any size. A mean over an empty batch is NaN, as in torch.

Taught in the book: chapter 05, "Classification in practice" (label smoothing also in
chapter 03).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from cvprep._torch_validation import check_labels, check_positive, check_tensor
from cvprep._validation import check_choice

REDUCTIONS = ("none", "mean", "sum")


# Checks this module needs beyond _torch_validation ---------------------------------------

def _check_fraction(value: object, name: str, upper_open: bool = False) -> float:
    """A real number in [0, 1] (or [0, 1) with ``upper_open``), returned as a float."""
    value = check_positive(value, name, allow_zero=True)
    if value > 1.0 or (upper_open and value == 1.0):
        bound = "[0, 1)" if upper_open else "[0, 1]"
        raise ValueError(f"{name} must be in {bound}, got {value}")
    return value


def _check_float_tensor(x: object, name: str) -> torch.Tensor:
    """A floating-point tensor of any shape."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__module__}.{type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    return x


def _check_focal_alpha(alpha: object) -> float:
    """The focal loss's alpha: in [0, 1], or negative for no weighting."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
        raise TypeError(f"alpha must be a real number, got {type(alpha).__name__} {alpha!r}")
    if not math.isfinite(alpha) or alpha > 1:
        raise ValueError(f"alpha must be in [0, 1], or negative for no weighting, got {alpha}")
    return float(alpha)


def _check_same_shape(a: torch.Tensor, a_name: str, b: torch.Tensor, b_name: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{b_name} must have the same shape as {a_name}, "
                         f"got {tuple(b.shape)} and {tuple(a.shape)}")


def _check_counts(counts: object) -> torch.Tensor:
    """Class counts: a non-empty 1-D sequence, ndarray or tensor of integers >= 1."""
    if isinstance(counts, (list, tuple)):
        for c in counts:
            if isinstance(c, bool) or not hasattr(type(c), "__index__"):  # int or a NumPy integer
                raise TypeError(f"counts must hold integers, got {type(c).__name__} {c!r}")
        counts = torch.tensor([int(c) for c in counts], dtype=torch.int64)
    elif isinstance(counts, torch.Tensor) or type(counts).__module__ == "numpy":
        counts = torch.as_tensor(counts)
        if counts.is_floating_point() or counts.is_complex() or counts.dtype == torch.bool:
            raise TypeError(f"counts must hold integers, got {counts.dtype}")
    else:
        raise TypeError(f"counts must be a sequence, ndarray or tensor of integers, got {type(counts).__name__}")
    if counts.ndim != 1 or counts.numel() == 0:
        raise ValueError(f"counts must be a non-empty 1-D sequence [C], got shape {tuple(counts.shape)}")
    if counts.min() < 1:
        raise ValueError(f"counts must be >= 1 (every class needs a sample), got {counts.tolist()}")
    return counts


# The losses ------------------------------------------------------------------------------

def softmax_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean softmax cross-entropy, with label smoothing, as ``F.cross_entropy``.

    With smoothing ``eps`` the target of row ``i`` is not the one-hot vector of class
    ``targets[i]`` but the mixture ``(1 - eps) * onehot + eps / C``: every class gets
    ``eps / C`` and the true class keeps the rest. The loss of a row is the cross-entropy
    ``-sum_c q_c log softmax(logits)_c`` of that distribution ``q``; the result is the
    mean over rows. ``eps = 0`` is the ordinary cross-entropy.

    Args:
        logits (Tensor[N, C]): unnormalised class scores, floating point.
        targets (Tensor[N]): integer class indices in ``[0, C)``.
        label_smoothing: ``eps``, in [0, 1].

    Returns:
        Tensor[]: the mean loss over the ``N`` rows (NaN if ``N = 0``, as torch).

    Raises:
        TypeError: ``logits`` is not a floating-point tensor, ``targets`` not an integer
            tensor, or ``label_smoothing`` not a real number.
        ValueError: ``logits`` is not 2-D; ``targets`` is not ``[N]`` or holds a class
            outside ``[0, C)``; ``label_smoothing`` is outside [0, 1].

    References:
        Szegedy et al., "Rethinking the Inception Architecture for Computer Vision",
        CVPR 2016, arXiv:1512.00567 (section 7, label-smoothing regularisation).
    """
    logits = check_tensor(logits, "logits", "[N, C]")
    n, num_classes = logits.shape
    targets = check_labels(targets, "targets", n, num_classes)
    eps = _check_fraction(label_smoothing, "label_smoothing")
    log_probs = F.log_softmax(logits, dim=1)  # [N, C]
    onehot = F.one_hot(targets.long(), num_classes).to(log_probs.dtype)  # [N, C]
    smoothed = (1.0 - eps) * onehot + eps / num_classes  # [N, C], rows sum to 1
    return -(smoothed * log_probs).sum(dim=1).mean()


def focal_loss(
    logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0, reduction: str = "none"
) -> torch.Tensor:
    """Binary focal loss of every logit, as ``torchvision.ops.sigmoid_focal_loss``.

    Each element is an independent binary problem with probability ``p = sigmoid(x)``.
    With ``p_t = p`` for a positive (target 1) and ``1 - p`` for a negative, the loss is
    ``-alpha_t (1 - p_t)^gamma log(p_t)``: the cross-entropy ``-log(p_t)``, scaled down
    by ``(1 - p_t)^gamma`` for examples the model already gets right (``p_t`` near 1),
    so the many easy negatives of a dense detector do not swamp the few hard ones.
    ``alpha_t`` is ``alpha`` for positives and ``1 - alpha`` for negatives; a negative
    ``alpha`` turns this weighting off (torchvision spells that ``alpha=-1`` and refuses
    other negatives). ``gamma = 0`` with ``alpha < 0`` is the plain binary cross-entropy.

    ``log(p_t)`` is computed as ``logsigmoid(±x)``, never ``log(sigmoid(x))``, so the loss
    stays finite when a logit is large. Targets between 0 and 1 (soft labels) are
    allowed; the formulas then interpolate exactly as torchvision's do.

    Args:
        logits (Tensor[*]): unnormalised scores, any shape, floating point.
        targets (Tensor[*]): the labels, 0.0 or 1.0, same shape as ``logits``, floating point.
        alpha: weight of the positives, in [0, 1], or negative for no weighting.
        gamma: focusing exponent, >= 0.
        reduction: ``"none"`` (a loss per element), ``"mean"`` or ``"sum"``.

    Returns:
        Tensor[*] with ``"none"`` (the shape of ``logits``), else Tensor[] (the mean of
        no elements is NaN, as torchvision).

    Raises:
        TypeError: ``logits`` or ``targets`` is not a floating-point tensor, or
            ``alpha`` / ``gamma`` is not a real number.
        ValueError: the shapes differ; a target is outside [0, 1]; ``alpha > 1``;
            ``gamma < 0``; a number is not finite; ``reduction`` is unknown.

    References:
        Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017, arXiv:1708.02002.
    """
    logits, targets = _check_float_tensor(logits, "logits"), _check_float_tensor(targets, "targets")
    _check_same_shape(logits, "logits", targets, "targets")
    if ((targets < 0) | (targets > 1)).any():
        raise ValueError("targets must be in [0, 1] (1 positive, 0 negative), "
                         f"got values from {targets.min().item()} to {targets.max().item()}")
    alpha = _check_focal_alpha(alpha)
    gamma = check_positive(gamma, "gamma", allow_zero=True)
    check_choice(reduction, "reduction", REDUCTIONS)

    # Cross-entropy -log(p_t) from log-sigmoids: log p = logsigmoid(x), log(1 - p) = logsigmoid(-x).
    bce = -(targets * F.logsigmoid(logits) + (1 - targets) * F.logsigmoid(-logits))  # [*]
    # 1 - p_t = p for a negative, 1 - p for a positive; sigmoid(-x) is 1 - p without cancellation.
    one_minus_pt = torch.sigmoid(logits) * (1 - targets) + torch.sigmoid(-logits) * targets  # [*]
    loss = one_minus_pt**gamma * bce
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    if reduction == "mean":
        return loss.mean()
    return loss.sum() if reduction == "sum" else loss


def class_balanced_weights(counts, beta: float) -> torch.Tensor:
    """Per-class weights from the effective number of samples (Cui et al. 2019).

    ``n`` samples of a class do not bring ``n`` times the information of one, because
    they overlap. The paper models this with the *effective number*
    ``E_n = (1 - beta^n) / (1 - beta)``, which grows like ``n`` for small ``n`` and
    saturates at ``1 / (1 - beta)``. Each class is weighted by ``1 / E_n``, i.e.
    ``(1 - beta) / (1 - beta^n)``, and the weights are scaled to sum to ``C``.

    The two limits: ``beta = 0`` gives ``E_n = 1`` for every class, so all weights are
    1 (no re-weighting); as ``beta -> 1``, ``E_n -> n`` and the weights approach inverse
    class frequency, ``C * (1 / n_c) / sum_k (1 / n_k)``. The paper tries ``beta`` in
    {0.9, 0.99, 0.999, 0.9999}. ``beta^n`` is computed as ``exp(n log beta)`` with
    ``expm1``, so ``beta`` a hair below 1 stays accurate.

    Args:
        counts (sequence[C] | ndarray[C] | Tensor[C]): number of training samples of each
            class, integers >= 1.
        beta: in [0, 1).

    Returns:
        Tensor[C]: positive weights summing to ``C``, in the default float dtype
        (float32 unless changed), ready for ``F.cross_entropy(..., weight=...)``.

    Raises:
        TypeError: ``counts`` is not a sequence/ndarray/tensor of integers, or ``beta``
            is not a real number.
        ValueError: ``counts`` is empty, not 1-D, or has a count < 1; ``beta`` is
            outside [0, 1).

    References:
        Cui et al., "Class-Balanced Loss Based on Effective Number of Samples", CVPR 2019,
        arXiv:1901.05555.
    """
    counts = _check_counts(counts).to(torch.float64)  # [C]
    beta = _check_fraction(beta, "beta", upper_open=True)
    log_beta = math.log(beta) if beta > 0 else -math.inf
    one_minus_beta_n = -torch.expm1(counts * log_beta)  # [C], 1 - beta^n
    weights = (1.0 - beta) / one_minus_beta_n  # [C], 1 / effective number
    weights = weights * (len(weights) / weights.sum())
    return weights.to(torch.get_default_dtype())


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor,
    temperature: float,
    alpha: float,
) -> torch.Tensor:
    """Knowledge-distillation loss (Hinton et al. 2015): soft teacher targets plus hard labels.

    ``alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * CE``,
    where the KL divergence is summed over classes and averaged over the batch
    (``reduction="batchmean"``) and ``CE`` is :func:`softmax_cross_entropy` of the
    student's unsoftened logits against ``targets``. A temperature ``T > 1`` flattens
    both distributions so that the teacher's small probabilities for wrong classes (its
    "dark knowledge") carry weight. The teacher is a fixed target: its logits are
    detached, so no gradient reaches it.

    Why ``T^2``: the gradient of the KL term with respect to a student logit ``z_i`` is
    ``(q_i - p_i) / T`` (``q``, ``p`` the softened student and teacher probabilities),
    and for large ``T`` (zero-mean logits) ``q_i - p_i ~ (z_i - v_i) / (C T)``, so the
    gradient shrinks like ``1 / T^2``. Multiplying by ``T^2`` undoes this: the soft
    term's gradients keep the same size relative to the hard term's whatever ``T`` is,
    and ``alpha`` keeps its meaning when ``T`` is tuned. In the limit the gradient is
    ``(z_i - v_i) / (C N)``: matching logits, as the paper shows.

    Args:
        student_logits (Tensor[N, C]): the student's unnormalised scores, floating point.
        teacher_logits (Tensor[N, C]): the teacher's, same shape.
        targets (Tensor[N]): integer class indices in ``[0, C)``.
        temperature: ``T``, > 0.
        alpha: weight of the soft (teacher) term, in [0, 1]; ``alpha = 0`` is the plain
            cross-entropy, ``alpha = 1`` ignores the labels.

    Returns:
        Tensor[]: the loss (NaN if ``N = 0``).

    Raises:
        TypeError: a logits tensor is not floating point, ``targets`` is not an integer
            tensor, or ``temperature`` / ``alpha`` is not a real number.
        ValueError: a logits tensor is not 2-D, the two differ in shape, ``targets`` is
            not ``[N]`` or out of range, ``temperature <= 0``, ``alpha`` outside [0, 1].

    References:
        Hinton, Vinyals and Dean, "Distilling the Knowledge in a Neural Network",
        NIPS 2014 Deep Learning Workshop, arXiv:1503.02531 (section 2.1 for the T^2 factor).
    """
    student_logits = check_tensor(student_logits, "student_logits", "[N, C]")
    teacher_logits = check_tensor(teacher_logits, "teacher_logits", "[N, C]")
    _check_same_shape(student_logits, "student_logits", teacher_logits, "teacher_logits")
    check_labels(targets, "targets", *student_logits.shape)
    t = check_positive(temperature, "temperature")
    alpha = _check_fraction(alpha, "alpha")

    log_q = F.log_softmax(student_logits / t, dim=1)  # [N, C], softened student
    log_p = F.log_softmax(teacher_logits.detach() / t, dim=1)  # [N, C], softened teacher
    kl = (log_p.exp() * (log_p - log_q)).sum(dim=1).mean()  # sum over classes, mean over N
    hard = softmax_cross_entropy(student_logits, targets)
    return alpha * t**2 * kl + (1.0 - alpha) * hard
