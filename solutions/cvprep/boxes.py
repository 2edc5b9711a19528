"""Box overlap measures (IoU, GIoU, DIoU, CIoU) and their losses, in NumPy.

Convention: a box is a row ``(x1, y1, x2, y2)`` of an ``ndarray[N, 4]`` of floats, with
``x1 <= x2`` and ``y1 <= y2`` (x grows to the right, y downwards, as in image
coordinates; only the order matters). Names and semantics follow ``torchvision.ops``.

Degenerate boxes (zero width or zero height, so zero area) are allowed. Wherever a
measure divides 0 by 0 -- the IoU of two zero-area boxes, whose union is 0 --
torchvision returns NaN; here **0 / 0 is taken as 0**: two boxes that share no area
have IoU 0, whatever their size. Boxes that only touch along an edge share no area
either, so their IoU is 0 too. Everywhere else the results equal torchvision's.

The pairwise measures exist twice: a readable loop version that works on one pair of
boxes at a time (``box_iou_loops``, ...) and a vectorised one (``box_iou``, ...) that
broadcasts every box of ``boxes1`` against every box of ``boxes2``. The tests check
each against the other and both against torchvision.

Taught in the book: chapter 06, "Boxes and how to compare them".
"""

from __future__ import annotations

import math

import numpy as np

from cvprep._validation import check_boxes, check_choice, check_real

REDUCTIONS = ("none", "mean", "sum")


# The definitions, one pair of boxes at a time -----------------------------------------

def _ratio_or_zero(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, with the module's rule that 0 / 0 is 0."""
    return numerator / denominator if denominator > 0 else 0.0


def _pair_measures(a, b, eps: float) -> dict[str, float]:
    """IoU, GIoU, DIoU and CIoU of two boxes ``a`` and ``b``, each ``(x1, y1, x2, y2)``."""
    ax1, ay1, ax2, ay2 = (float(v) for v in a)
    bx1, by1, bx2, by2 = (float(v) for v in b)
    # Intersection: the overlap of the two x-intervals times that of the y-intervals,
    # each 0 if the intervals do not overlap (or only touch).
    inter_w = max(0.0, min(ax2, bx2) - max(ax1, bx1))
    inter_h = max(0.0, min(ay2, by2) - max(ay1, by1))
    inter = inter_w * inter_h
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    iou = _ratio_or_zero(inter, union)

    # GIoU: subtract the fraction of the smallest enclosing box that neither box covers.
    enclosing_w = max(ax2, bx2) - min(ax1, bx1)
    enclosing_h = max(ay2, by2) - min(ay1, by1)
    enclosing = enclosing_w * enclosing_h
    giou = iou - _ratio_or_zero(enclosing - union, enclosing)

    # DIoU: subtract the squared centre distance over the enclosing box's squared diagonal.
    centre_distance2 = ((ax1 + ax2) / 2 - (bx1 + bx2) / 2) ** 2 + ((ay1 + ay2) / 2 - (by1 + by2) / 2) ** 2
    diou = iou - _ratio_or_zero(centre_distance2, enclosing_w**2 + enclosing_h**2 + eps)

    # CIoU: also subtract alpha * v, v measuring how different the aspect ratios are.
    v = 4 / math.pi**2 * (math.atan2(ax2 - ax1, ay2 - ay1) - math.atan2(bx2 - bx1, by2 - by1)) ** 2
    alpha = _ratio_or_zero(v, 1 - iou + v + eps)
    ciou = diou - alpha * v
    return {"iou": iou, "giou": giou, "diou": diou, "ciou": ciou}


def _pairwise_loops(boxes1: np.ndarray, boxes2: np.ndarray, measure: str, eps: float = 1e-7) -> np.ndarray:
    """One of :func:`_pair_measures`' measures for every pair (box of boxes1, box of boxes2)."""
    boxes1, boxes2 = check_boxes(boxes1, "boxes1"), check_boxes(boxes2, "boxes2")
    eps = check_real(eps, "eps", minimum=0.0)
    out = np.zeros((len(boxes1), len(boxes2)), dtype=_dtype(boxes1, boxes2))
    for i, a in enumerate(boxes1):
        for j, b in enumerate(boxes2):
            out[i, j] = _pair_measures(a, b, eps)[measure]
    return out


def box_iou_loops(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """Pairwise IoU written as a loop over pairs; same contract as :func:`box_iou`."""
    return _pairwise_loops(boxes1, boxes2, "iou")


def generalized_box_iou_loops(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """Pairwise GIoU written as a loop over pairs; same contract as :func:`generalized_box_iou`."""
    return _pairwise_loops(boxes1, boxes2, "giou")


def distance_box_iou_loops(boxes1: np.ndarray, boxes2: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """Pairwise DIoU written as a loop over pairs; same contract as :func:`distance_box_iou`."""
    return _pairwise_loops(boxes1, boxes2, "diou", eps)


def complete_box_iou_loops(boxes1: np.ndarray, boxes2: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """Pairwise CIoU written as a loop over pairs; same contract as :func:`complete_box_iou`."""
    return _pairwise_loops(boxes1, boxes2, "ciou", eps)


# Vectorised building blocks: b1 and b2 are broadcastable [..., 4] arrays ----------------
# Pairwise functions pass b1[:, None] ([N, 1, 4]) and b2[None] ([1, M, 4]) and get [N, M];
# the losses pass two paired [N, 4] arrays and get [N].

def _dtype(boxes1: np.ndarray, boxes2: np.ndarray) -> np.dtype:
    """The dtype results are computed in: the inputs' common dtype, at least float32."""
    return np.result_type(boxes1.dtype, boxes2.dtype, np.float32)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Elementwise ``numerator / denominator`` with 0 / 0 taken as 0."""
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def _inter_union(b1: np.ndarray, b2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Intersection and union areas of broadcast boxes."""
    inter_w = np.clip(np.minimum(b1[..., 2], b2[..., 2]) - np.maximum(b1[..., 0], b2[..., 0]), 0, None)  # [...]
    inter_h = np.clip(np.minimum(b1[..., 3], b2[..., 3]) - np.maximum(b1[..., 1], b2[..., 1]), 0, None)  # [...]
    inter = inter_w * inter_h
    area1 = (b1[..., 2] - b1[..., 0]) * (b1[..., 3] - b1[..., 1])
    area2 = (b2[..., 2] - b2[..., 0]) * (b2[..., 3] - b2[..., 1])
    return inter, area1 + area2 - inter


def _enclosing_wh(b1: np.ndarray, b2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Width and height of the smallest box enclosing both boxes."""
    width = np.maximum(b1[..., 2], b2[..., 2]) - np.minimum(b1[..., 0], b2[..., 0])  # [...]
    height = np.maximum(b1[..., 3], b2[..., 3]) - np.minimum(b1[..., 1], b2[..., 1])  # [...]
    return width, height


def _centre_penalty(b1: np.ndarray, b2: np.ndarray, eps: float) -> np.ndarray:
    """DIoU's penalty: squared centre distance over the enclosing box's squared diagonal (+ eps)."""
    dx = (b1[..., 0] + b1[..., 2]) / 2 - (b2[..., 0] + b2[..., 2]) / 2  # [...]
    dy = (b1[..., 1] + b1[..., 3]) / 2 - (b2[..., 1] + b2[..., 3]) / 2  # [...]
    width, height = _enclosing_wh(b1, b2)
    return _ratio(dx**2 + dy**2, width**2 + height**2 + eps)


def _aspect_penalty(b1: np.ndarray, b2: np.ndarray, iou: np.ndarray, eps: float) -> np.ndarray:
    """CIoU's extra penalty ``alpha * v``; ``v`` compares the boxes' aspect angles atan(w / h)."""
    angle1 = np.arctan2(b1[..., 2] - b1[..., 0], b1[..., 3] - b1[..., 1])  # atan(w / h), 0 for a point box
    angle2 = np.arctan2(b2[..., 2] - b2[..., 0], b2[..., 3] - b2[..., 1])
    v = (4 / np.pi**2) * (angle1 - angle2) ** 2  # [...], in [0, 1]
    alpha = _ratio(v, 1 - iou + v + eps)  # the trade-off weight, as in the paper
    return alpha * v


def _pairwise_arguments(boxes1, boxes2, eps=0.0):
    """Validate two box sets; return them as [N, 1, 4] and [1, M, 4] in the working dtype."""
    boxes1, boxes2 = check_boxes(boxes1, "boxes1"), check_boxes(boxes2, "boxes2")
    eps = check_real(eps, "eps", minimum=0.0)
    dtype = _dtype(boxes1, boxes2)
    return boxes1.astype(dtype, copy=False)[:, None, :], boxes2.astype(dtype, copy=False)[None, :, :], eps


# Public pairwise measures --------------------------------------------------------------

def box_area(boxes: np.ndarray) -> np.ndarray:
    """Area of each box, as ``torchvision.ops.box_area``.

    Args:
        boxes (ndarray[N, 4]): boxes ``(x1, y1, x2, y2)`` with ``x1 <= x2``, ``y1 <= y2``.

    Returns:
        ndarray[N]: ``(x2 - x1) * (y2 - y1)``, 0 for degenerate boxes; float32 or float64.

    Raises:
        TypeError: ``boxes`` is not a floating-point ndarray.
        ValueError: ``boxes`` is not [N, 4], is not finite, or has ``x2 < x1`` or ``y2 < y1``.
    """
    boxes = check_boxes(boxes, "boxes")
    boxes = boxes.astype(np.result_type(boxes.dtype, np.float32), copy=False)
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_iou(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """Intersection over union of every box in ``boxes1`` with every box in ``boxes2``.

    ``IoU(a, b) = area(a ∩ b) / area(a ∪ b)``, as ``torchvision.ops.box_iou``, except for
    two zero-area boxes: their union is 0, and instead of 0 / 0 = NaN their IoU is 0.
    IoU is 1 for a non-degenerate box with itself and 0 for boxes that only touch.

    Args:
        boxes1 (ndarray[N, 4]): boxes ``(x1, y1, x2, y2)`` with ``x1 <= x2``, ``y1 <= y2``.
        boxes2 (ndarray[M, 4]): boxes in the same format.

    Returns:
        ndarray[N, M]: ``iou[i, j]`` is the IoU of ``boxes1[i]`` and ``boxes2[j]``, in
        [0, 1]; float64 if either input is float64, otherwise float32.

    Raises:
        TypeError: a box set is not a floating-point ndarray.
        ValueError: a box set is not [N, 4], is not finite, or has ``x2 < x1`` or
            ``y2 < y1`` (the message names the argument and the first bad row).

    References:
        Jaccard, "The distribution of the flora in the alpine zone", 1912 (the index);
        Everingham et al., "The PASCAL Visual Object Classes (VOC) Challenge", IJCV 2010
        (IoU >= 0.5 as the detection criterion).
    """
    b1, b2, _ = _pairwise_arguments(boxes1, boxes2)  # [N, 1, 4], [1, M, 4]
    inter, union = _inter_union(b1, b2)  # [N, M], [N, M]
    return _ratio(inter, union)


def generalized_box_iou(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """Generalized IoU of every pair of boxes, as ``torchvision.ops.generalized_box_iou``.

    ``GIoU = IoU - (area(C) - area(a ∪ b)) / area(C)`` where ``C`` is the smallest box
    enclosing both. Unlike IoU it keeps decreasing as disjoint boxes move apart, down to
    -1. 0 / 0 is taken as 0 (torchvision gives NaN): two zero-area boxes have IoU 0, and
    if their enclosing box has zero area too (collinear boxes) the penalty is 0.

    Args:
        boxes1 (ndarray[N, 4]): boxes ``(x1, y1, x2, y2)`` with ``x1 <= x2``, ``y1 <= y2``.
        boxes2 (ndarray[M, 4]): boxes in the same format.

    Returns:
        ndarray[N, M]: GIoU values in [-1, 1].

    Raises:
        TypeError: a box set is not a floating-point ndarray.
        ValueError: a box set is not [N, 4], is not finite, or has inverted corners.

    References:
        Rezatofighi et al., "Generalized Intersection over Union: A Metric and A Loss for
        Bounding Box Regression", CVPR 2019, arXiv:1902.09630.
    """
    b1, b2, _ = _pairwise_arguments(boxes1, boxes2)  # [N, 1, 4], [1, M, 4]
    inter, union = _inter_union(b1, b2)  # [N, M]
    width, height = _enclosing_wh(b1, b2)  # [N, M]
    enclosing = width * height
    return _ratio(inter, union) - _ratio(enclosing - union, enclosing)


def distance_box_iou(boxes1: np.ndarray, boxes2: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """Distance IoU of every pair of boxes, as ``torchvision.ops.distance_box_iou``.

    ``DIoU = IoU - rho^2 / (c^2 + eps)``: ``rho`` is the distance between the two box
    centres and ``c`` the diagonal of the smallest box enclosing both. IoU follows
    :func:`box_iou` (0 for two zero-area boxes, where torchvision gives NaN).

    Args:
        boxes1 (ndarray[N, 4]): boxes ``(x1, y1, x2, y2)`` with ``x1 <= x2``, ``y1 <= y2``.
        boxes2 (ndarray[M, 4]): boxes in the same format.
        eps: added to ``c^2`` against division by zero, >= 0 (with 0, 0 / 0 is 0).

    Returns:
        ndarray[N, M]: DIoU values in (-1, 1].

    Raises:
        TypeError: a box set is not a floating-point ndarray, or ``eps`` is not a number.
        ValueError: a box set is not [N, 4], is not finite, or has inverted corners;
            ``eps`` is negative or not finite.

    References:
        Zheng et al., "Distance-IoU Loss: Faster and Better Learning for Bounding Box
        Regression", AAAI 2020, arXiv:1911.08287.
    """
    b1, b2, eps = _pairwise_arguments(boxes1, boxes2, eps)  # [N, 1, 4], [1, M, 4]
    iou = _ratio(*_inter_union(b1, b2))  # [N, M]
    return iou - _centre_penalty(b1, b2, eps)


def complete_box_iou(boxes1: np.ndarray, boxes2: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """Complete IoU of every pair of boxes, as ``torchvision.ops.complete_box_iou``.

    ``CIoU = DIoU - alpha * v`` with ``v = 4 / pi^2 * (atan(w1 / h1) - atan(w2 / h2))^2``
    (how different the aspect ratios are) and ``alpha = v / (1 - IoU + v + eps)``. The
    angle ``atan(w / h)`` is computed as ``arctan2(w, h)``: pi / 2 for a zero-height box,
    and 0 for a point box (w = h = 0), where torchvision gives NaN.

    Args:
        boxes1 (ndarray[N, 4]): boxes ``(x1, y1, x2, y2)`` with ``x1 <= x2``, ``y1 <= y2``.
        boxes2 (ndarray[M, 4]): boxes in the same format.
        eps: added to the denominators against division by zero, >= 0.

    Returns:
        ndarray[N, M]: CIoU values in [-2, 1].

    Raises:
        TypeError: a box set is not a floating-point ndarray, or ``eps`` is not a number.
        ValueError: a box set is not [N, 4], is not finite, or has inverted corners;
            ``eps`` is negative or not finite.

    References:
        Zheng et al., "Distance-IoU Loss: Faster and Better Learning for Bounding Box
        Regression", AAAI 2020, arXiv:1911.08287 (section 3.2, Complete IoU).
    """
    b1, b2, eps = _pairwise_arguments(boxes1, boxes2, eps)  # [N, 1, 4], [1, M, 4]
    iou = _ratio(*_inter_union(b1, b2))  # [N, M]
    return iou - _centre_penalty(b1, b2, eps) - _aspect_penalty(b1, b2, iou, eps)


# Losses on paired boxes -----------------------------------------------------------------

def _loss_arguments(boxes1, boxes2, reduction, eps):
    """Validate a loss's arguments; return the two [N, 4] box sets in the working dtype."""
    boxes1, boxes2 = check_boxes(boxes1, "boxes1"), check_boxes(boxes2, "boxes2")
    if boxes1.shape != boxes2.shape:
        raise ValueError(
            f"boxes1 and boxes2 must hold the same number of boxes (the losses pair them row by row), "
            f"got {len(boxes1)} and {len(boxes2)}"
        )
    check_choice(reduction, "reduction", REDUCTIONS)
    eps = check_real(eps, "eps", minimum=0.0)
    dtype = _dtype(boxes1, boxes2)
    return boxes1.astype(dtype, copy=False), boxes2.astype(dtype, copy=False), eps


def _reduce(loss: np.ndarray, reduction: str):
    """Apply ``reduction``; the mean of no boxes is 0 (as torchvision), not NaN."""
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.mean() if loss.size else loss.dtype.type(0)


def generalized_box_iou_loss(
    boxes1: np.ndarray, boxes2: np.ndarray, reduction: str = "none", eps: float = 1e-7
) -> np.ndarray:
    """GIoU loss ``1 - GIoU`` of paired boxes, as ``torchvision.ops.generalized_box_iou_loss``.

    Like torchvision, the loss adds ``eps`` to the denominators (``IoU = inter / (union
    + eps)``, penalty ``(C - union) / (C + eps)``) instead of special-casing 0 / 0, so
    it is finite for degenerate boxes and differs from ``1 - GIoU`` by about ``eps``.

    Args:
        boxes1 (ndarray[N, 4]): predicted boxes ``(x1, y1, x2, y2)``, ``x1 <= x2``, ``y1 <= y2``.
        boxes2 (ndarray[N, 4]): target boxes, paired row by row with ``boxes1``.
        reduction: ``"none"`` (one loss per pair), ``"mean"`` or ``"sum"``. The mean
            of zero pairs is 0, as in torchvision.
        eps: added to every denominator, >= 0.

    Returns:
        ndarray[N] for ``reduction="none"``, otherwise a scalar; values in [0, 2].

    Raises:
        TypeError: a box set is not a floating-point ndarray, or ``eps`` is not a number.
        ValueError: bad boxes, box sets of different lengths, an unknown ``reduction``,
            or a negative ``eps``.

    References:
        Rezatofighi et al., "Generalized Intersection over Union: A Metric and A Loss for
        Bounding Box Regression", CVPR 2019, arXiv:1902.09630.
    """
    boxes1, boxes2, eps = _loss_arguments(boxes1, boxes2, reduction, eps)  # [N, 4], [N, 4]
    inter, union = _inter_union(boxes1, boxes2)  # [N], [N]
    width, height = _enclosing_wh(boxes1, boxes2)  # [N], [N]
    enclosing = width * height
    giou = _ratio(inter, union + eps) - _ratio(enclosing - union, enclosing + eps)
    return _reduce(1 - giou, reduction)


def distance_box_iou_loss(
    boxes1: np.ndarray, boxes2: np.ndarray, reduction: str = "none", eps: float = 1e-7
) -> np.ndarray:
    """DIoU loss ``1 - IoU + rho^2 / c^2`` of paired boxes, as ``torchvision.ops.distance_box_iou_loss``.

    ``eps`` is added to the union and to ``c^2``, as in torchvision.

    Args:
        boxes1 (ndarray[N, 4]): predicted boxes ``(x1, y1, x2, y2)``, ``x1 <= x2``, ``y1 <= y2``.
        boxes2 (ndarray[N, 4]): target boxes, paired row by row with ``boxes1``.
        reduction: ``"none"`` (one loss per pair), ``"mean"`` or ``"sum"``. The mean
            of zero pairs is 0, as in torchvision.
        eps: added to every denominator, >= 0.

    Returns:
        ndarray[N] for ``reduction="none"``, otherwise a scalar; values in [0, 2).

    Raises:
        TypeError: a box set is not a floating-point ndarray, or ``eps`` is not a number.
        ValueError: bad boxes, box sets of different lengths, an unknown ``reduction``,
            or a negative ``eps``.

    References:
        Zheng et al., "Distance-IoU Loss: Faster and Better Learning for Bounding Box
        Regression", AAAI 2020, arXiv:1911.08287.
    """
    boxes1, boxes2, eps = _loss_arguments(boxes1, boxes2, reduction, eps)  # [N, 4], [N, 4]
    inter, union = _inter_union(boxes1, boxes2)  # [N], [N]
    loss = 1 - _ratio(inter, union + eps) + _centre_penalty(boxes1, boxes2, eps)
    return _reduce(loss, reduction)


def complete_box_iou_loss(
    boxes1: np.ndarray, boxes2: np.ndarray, reduction: str = "none", eps: float = 1e-7
) -> np.ndarray:
    """CIoU loss ``1 - IoU + rho^2 / c^2 + alpha * v``, as ``torchvision.ops.complete_box_iou_loss``.

    See :func:`complete_box_iou` for ``alpha`` and ``v``. ``eps`` is added to every
    denominator (torchvision uses its default 1e-7 for the DIoU part whatever ``eps``
    is; with the default the two agree). A point box has aspect angle 0.

    Args:
        boxes1 (ndarray[N, 4]): predicted boxes ``(x1, y1, x2, y2)``, ``x1 <= x2``, ``y1 <= y2``.
        boxes2 (ndarray[N, 4]): target boxes, paired row by row with ``boxes1``.
        reduction: ``"none"`` (one loss per pair), ``"mean"`` or ``"sum"``. The mean
            of zero pairs is 0, as in torchvision.
        eps: added to every denominator, >= 0.

    Returns:
        ndarray[N] for ``reduction="none"``, otherwise a scalar; values in [0, 3).

    Raises:
        TypeError: a box set is not a floating-point ndarray, or ``eps`` is not a number.
        ValueError: bad boxes, box sets of different lengths, an unknown ``reduction``,
            or a negative ``eps``.

    References:
        Zheng et al., "Distance-IoU Loss: Faster and Better Learning for Bounding Box
        Regression", AAAI 2020, arXiv:1911.08287 (section 3.2, Complete IoU loss).
    """
    boxes1, boxes2, eps = _loss_arguments(boxes1, boxes2, reduction, eps)  # [N, 4], [N, 4]
    inter, union = _inter_union(boxes1, boxes2)  # [N], [N]
    iou = _ratio(inter, union + eps)
    loss = 1 - iou + _centre_penalty(boxes1, boxes2, eps) + _aspect_penalty(boxes1, boxes2, iou, eps)
    return _reduce(loss, reduction)

