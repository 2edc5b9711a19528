"""Anchors, and the encoding of boxes as regression targets relative to them, in NumPy.

Convention: a box is a row ``(x1, y1, x2, y2)`` of an ``ndarray[N, 4]`` of floats, with
``x1 <= x2`` and ``y1 <= y2``; its width is ``x2 - x1`` (no "+ 1" pixel convention),
its centre ``x1 + width / 2``. Names and semantics follow torchvision's detection
models: ``encode_boxes`` and ``decode_boxes`` are ``BoxCoder.encode_single`` and
``BoxCoder.decode_single`` (``torchvision.models.detection._utils``), and
``make_anchors`` gives the anchors of ``AnchorGenerator`` for one feature map.

A box is encoded relative to a reference box, the *proposal* (an anchor, or a region
proposal in the second stage), by four numbers: the centre offset in units of the
proposal's size and the log of the size ratios,

    dx = wx * (x - x_p) / w_p        dw = ww * log(w / w_p)
    dy = wy * (y - y_p) / h_p        dh = wh * log(h / h_p)

so the targets do not depend on the scale of the object. Decoding inverts this.

Each function exists twice: a readable loop version (``encode_boxes_loops``,
``decode_boxes_loops``, ``make_anchors_loops``) that works on one box or one anchor at
a time, and a vectorised one. The tests check each against the other and both against
torchvision.

Taught in the book: chapter 06, "Anchors and box coding".
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from cvprep._validation import check_boxes, check_real, float_array, pair

IntOrPair = int | tuple[int, int]
Weights = tuple[float, float, float, float]

#: torchvision's default clamp of ``dw / ww`` and ``dh / wh`` before ``exp``: a decoded
#: box is at most 1000 / 16 = 62.5 times wider (or taller) than its proposal.
BBOX_XFORM_CLIP = math.log(1000.0 / 16)


# Validation -------------------------------------------------------------------------------

def _check_weights(weights: object) -> Weights:
    """Return ``weights`` as a tuple of four positive floats ``(wx, wy, ww, wh)``."""
    if not isinstance(weights, (tuple, list)) or len(weights) != 4:
        raise ValueError(f"weights must be a tuple of four numbers (wx, wy, ww, wh), got {weights!r}")
    names = ("wx", "wy", "ww", "wh")
    return tuple(check_real(w, f"weights[{i}] ({n})", minimum=0.0, exclusive_minimum=True)
                 for i, (w, n) in enumerate(zip(weights, names)))


def _check_positive_size(boxes: np.ndarray, name: str) -> None:
    """Raise if a box has zero width or height (encoding divides by it and takes its log)."""
    flat = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])  # [N]
    if flat.any():
        row = int(np.argmax(flat))
        raise ValueError(
            f"{name} must have positive width and height to encode boxes, but row {row} is {boxes[row].tolist()}"
        )


def _check_same_length(boxes: np.ndarray, name: str, proposals: np.ndarray) -> None:
    if len(boxes) != len(proposals):
        raise ValueError(
            f"{name} and proposals are paired row by row and must have the same number of rows, "
            f"got {len(boxes)} and {len(proposals)}"
        )


def _encode_arguments(reference_boxes, proposals, weights):
    reference_boxes = check_boxes(reference_boxes, "reference_boxes")
    proposals = check_boxes(proposals, "proposals")
    _check_same_length(reference_boxes, "reference_boxes", proposals)
    _check_positive_size(reference_boxes, "reference_boxes")
    _check_positive_size(proposals, "proposals")
    dtype = np.result_type(reference_boxes, proposals)
    return reference_boxes.astype(dtype, copy=False), proposals.astype(dtype, copy=False), _check_weights(weights)


def _decode_arguments(deltas, proposals, weights, bbox_xform_clip):
    deltas = float_array(deltas, "deltas", "[N, 4]")
    if deltas.shape[1] != 4:
        raise ValueError(f"deltas must have shape [N, 4] (dx, dy, dw, dh), got {deltas.shape}")
    if not np.isfinite(deltas).all():
        row = int(np.argmin(np.isfinite(deltas).all(axis=1)))
        raise ValueError(f"deltas must be finite, but row {row} is {deltas[row].tolist()}")
    proposals = check_boxes(proposals, "proposals")
    _check_same_length(deltas, "deltas", proposals)
    bbox_xform_clip = check_real(bbox_xform_clip, "bbox_xform_clip")
    dtype = np.result_type(deltas, proposals)
    deltas, proposals = deltas.astype(dtype, copy=False), proposals.astype(dtype, copy=False)
    return deltas, proposals, _check_weights(weights), bbox_xform_clip


# Encoding and decoding ----------------------------------------------------------------

def _centre_size(box) -> tuple[float, float, float, float]:
    """``(x_centre, y_centre, width, height)`` of one box ``(x1, y1, x2, y2)``."""
    x1, y1, x2, y2 = box
    width, height = x2 - x1, y2 - y1
    return x1 + 0.5 * width, y1 + 0.5 * height, width, height


def encode_boxes_loops(
    reference_boxes: np.ndarray, proposals: np.ndarray, weights: Weights = (1.0, 1.0, 1.0, 1.0)
) -> np.ndarray:
    """Box encoding written one box at a time; same contract as :func:`encode_boxes`."""
    reference_boxes, proposals, (wx, wy, ww, wh) = _encode_arguments(reference_boxes, proposals, weights)
    deltas = np.empty_like(reference_boxes)
    for i, (box, proposal) in enumerate(zip(reference_boxes, proposals)):
        x, y, w, h = _centre_size(box)
        xp, yp, wp, hp = _centre_size(proposal)
        deltas[i] = (wx * (x - xp) / wp, wy * (y - yp) / hp, ww * np.log(w / wp), wh * np.log(h / hp))
    return deltas


def encode_boxes(
    reference_boxes: np.ndarray, proposals: np.ndarray, weights: Weights = (1.0, 1.0, 1.0, 1.0)
) -> np.ndarray:
    """Regression targets that move each proposal onto its box, as torchvision's ``BoxCoder.encode_single``.

    With centres ``(x, y)``, sizes ``(w, h)`` of the box and ``(x_p, y_p)``,
    ``(w_p, h_p)`` of its proposal:

        dx = wx * (x - x_p) / w_p,    dy = wy * (y - y_p) / h_p,
        dw = ww * log(w / w_p),       dh = wh * log(h / h_p).

    The weights only rescale the targets; Fast/Faster R-CNN's second stage uses
    ``(10, 10, 5, 5)`` so that each target has a spread of about one.

    Args:
        reference_boxes (ndarray[N, 4]): the boxes to encode (the ground truth matched
            to each proposal), ``(x1, y1, x2, y2)`` with positive width and height.
        proposals (ndarray[N, 4]): the reference frame of each box (anchors or region
            proposals), paired row by row with ``reference_boxes``, positive width and
            height.
        weights: ``(wx, wy, ww, wh)``, positive numbers multiplying the four targets.

    Returns:
        ndarray[N, 4]: ``(dx, dy, dw, dh)`` per row, in the inputs' common dtype.

    Raises:
        TypeError: a box set is not a floating-point ndarray, or a weight is not a number.
        ValueError: a box set is not [N, 4], not finite, has inverted corners or a zero
            width or height; the two sets have different lengths; ``weights`` is not four
            positive numbers.

    References:
        Girshick, Donahue, Darrell and Malik, "Rich feature hierarchies for accurate object
        detection and semantic segmentation", CVPR 2014, arXiv:1311.2524 (appendix C, the
        bounding-box regression parametrisation); Girshick, "Fast R-CNN", ICCV 2015,
        arXiv:1504.08083 (the weights, as target normalisation).
    """
    reference_boxes, proposals, (wx, wy, ww, wh) = _encode_arguments(reference_boxes, proposals, weights)
    widths = proposals[:, 2] - proposals[:, 0]  # [N]
    heights = proposals[:, 3] - proposals[:, 1]
    ctr_x = proposals[:, 0] + 0.5 * widths
    ctr_y = proposals[:, 1] + 0.5 * heights
    gt_widths = reference_boxes[:, 2] - reference_boxes[:, 0]  # [N]
    gt_heights = reference_boxes[:, 3] - reference_boxes[:, 1]
    gt_ctr_x = reference_boxes[:, 0] + 0.5 * gt_widths
    gt_ctr_y = reference_boxes[:, 1] + 0.5 * gt_heights
    dx = wx * (gt_ctr_x - ctr_x) / widths
    dy = wy * (gt_ctr_y - ctr_y) / heights
    dw = ww * np.log(gt_widths / widths)
    dh = wh * np.log(gt_heights / heights)
    return np.stack([dx, dy, dw, dh], axis=1)  # [N, 4]


def decode_boxes_loops(
    deltas: np.ndarray,
    proposals: np.ndarray,
    weights: Weights = (1.0, 1.0, 1.0, 1.0),
    bbox_xform_clip: float = BBOX_XFORM_CLIP,
) -> np.ndarray:
    """Box decoding written one box at a time; same contract as :func:`decode_boxes`."""
    deltas, proposals, (wx, wy, ww, wh), clip = _decode_arguments(deltas, proposals, weights, bbox_xform_clip)
    boxes = np.empty_like(deltas)
    for i, ((dx, dy, dw, dh), proposal) in enumerate(zip(deltas, proposals)):
        xp, yp, wp, hp = _centre_size(proposal)
        # Undo the weights, then keep exp() finite: a size may grow at most exp(clip) times.
        dx, dy, dw, dh = dx / wx, dy / wy, min(dw / ww, clip), min(dh / wh, clip)
        x, y = xp + dx * wp, yp + dy * hp  # the box's centre
        w, h = wp * np.exp(dw), hp * np.exp(dh)  # and size
        boxes[i] = (x - 0.5 * w, y - 0.5 * h, x + 0.5 * w, y + 0.5 * h)
    return boxes


def decode_boxes(
    deltas: np.ndarray,
    proposals: np.ndarray,
    weights: Weights = (1.0, 1.0, 1.0, 1.0),
    bbox_xform_clip: float = BBOX_XFORM_CLIP,
) -> np.ndarray:
    """Boxes from regression targets and proposals, as torchvision's ``BoxCoder.decode_single``.

    The inverse of :func:`encode_boxes`: with ``(x_p, y_p)``, ``(w_p, h_p)`` the
    proposal's centre and size,

        x = x_p + w_p * dx / wx,    w = w_p * exp(min(dw / ww, bbox_xform_clip)),
        y = y_p + h_p * dy / wy,    h = h_p * exp(min(dh / wh, bbox_xform_clip)),

    and the box is ``(x - w / 2, y - h / 2, x + w / 2, y + h / 2)``. The clamp (upper
    bound only; the centre offsets are not clamped) keeps ``exp`` finite when an
    untrained head outputs a large ``dw``. Boxes are not clipped to the image.

    Args:
        deltas (ndarray[N, 4]): ``(dx, dy, dw, dh)`` per row, finite.
        proposals (ndarray[N, 4]): the boxes the deltas are relative to, ``(x1, y1, x2,
            y2)`` with ``x1 <= x2`` and ``y1 <= y2``, paired row by row with ``deltas``.
        weights: ``(wx, wy, ww, wh)``, positive, the weights the deltas were encoded with.
        bbox_xform_clip: largest ``dw / ww`` and ``dh / wh`` used, ``log(1000 / 16)``
            by default as in torchvision.

    Returns:
        ndarray[N, 4]: the decoded boxes ``(x1, y1, x2, y2)``, in the inputs' common dtype.

    Raises:
        TypeError: ``deltas`` or ``proposals`` is not a floating-point ndarray, or a
            weight or ``bbox_xform_clip`` is not a number.
        ValueError: wrong shapes, non-finite values, inverted proposals, different
            lengths, or ``weights`` not four positive numbers.

    References:
        Girshick, Donahue, Darrell and Malik, "Rich feature hierarchies for accurate object
        detection and semantic segmentation", CVPR 2014, arXiv:1311.2524 (appendix C).
    """
    deltas, proposals, (wx, wy, ww, wh), clip = _decode_arguments(deltas, proposals, weights, bbox_xform_clip)
    widths = proposals[:, 2] - proposals[:, 0]  # [N]
    heights = proposals[:, 3] - proposals[:, 1]
    ctr_x = proposals[:, 0] + 0.5 * widths
    ctr_y = proposals[:, 1] + 0.5 * heights
    dx = deltas[:, 0] / wx  # [N]
    dy = deltas[:, 1] / wy
    dw = np.minimum(deltas[:, 2] / ww, clip)
    dh = np.minimum(deltas[:, 3] / wh, clip)
    pred_ctr_x = dx * widths + ctr_x  # [N]
    pred_ctr_y = dy * heights + ctr_y
    half_w = 0.5 * (np.exp(dw) * widths)  # [N]
    half_h = 0.5 * (np.exp(dh) * heights)
    boxes = np.stack([pred_ctr_x - half_w, pred_ctr_y - half_h, pred_ctr_x + half_w, pred_ctr_y + half_h], axis=1)
    return boxes.astype(deltas.dtype, copy=False)  # [N, 4]


# Anchors --------------------------------------------------------------------------------

def _check_positive_reals(values: object, name: str) -> tuple[float, ...]:
    if not isinstance(values, (tuple, list)) or len(values) == 0:
        raise ValueError(f"{name} must be a non-empty tuple of positive numbers, got {values!r}")
    return tuple(check_real(v, f"{name}[{i}]", minimum=0.0, exclusive_minimum=True) for i, v in enumerate(values))


def _anchor_arguments(feature_size, stride, sizes, aspect_ratios):
    feature_size = pair(feature_size, "feature_size", 1)
    stride = pair(stride, "stride", 1)
    sizes = _check_positive_reals(sizes, "sizes")
    aspect_ratios = _check_positive_reals(aspect_ratios, "aspect_ratios")
    return feature_size, stride, sizes, aspect_ratios


def _anchor_size(size: float, aspect_ratio: float) -> tuple[np.float32, np.float32]:
    """Width and height of the anchor of area ``size ** 2`` and ratio height / width.

    Computed in float32, as torchvision does, so that a half-way corner rounds the same way.
    """
    h_ratio = np.sqrt(np.float32(aspect_ratio))
    w_ratio = np.float32(1) / h_ratio
    return w_ratio * np.float32(size), h_ratio * np.float32(size)


def cell_anchors(sizes: Sequence[float] = (32,), aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0)) -> np.ndarray:
    """The anchors of one feature-map position, centred on (0, 0), as ``AnchorGenerator``.

    For an aspect ratio ``a = height / width`` and a size ``s``, the anchor has area
    ``s ** 2``: ``w = s / sqrt(a)``, ``h = s * sqrt(a)``. Its corners ``(-w/2, -h/2,
    w/2, h/2)`` are rounded to whole pixels (half to even, computed in float32, as
    torchvision's ``torch.round``). Order: ratio by ratio, and for each ratio size by size.

    Args:
        sizes: anchor sizes (square roots of the areas) in pixels, positive.
        aspect_ratios: height / width ratios, positive.

    Returns:
        ndarray[A, 4] with ``A = len(aspect_ratios) * len(sizes)``, float64 (whole numbers).

    Raises:
        TypeError: a size or ratio is not a number.
        ValueError: ``sizes`` or ``aspect_ratios`` is empty or holds a value <= 0.

    References:
        Ren, He, Girshick and Sun, "Faster R-CNN: Towards Real-Time Object Detection with
        Region Proposal Networks", NeurIPS 2015, arXiv:1506.01497 (section 3.1.1).
    """
    sizes = np.asarray(_check_positive_reals(sizes, "sizes"), dtype=np.float32)  # [S]
    ratios = np.asarray(_check_positive_reals(aspect_ratios, "aspect_ratios"), dtype=np.float32)  # [R]
    h_ratios = np.sqrt(ratios)  # [R]
    w_ratios = np.float32(1) / h_ratios
    ws = (w_ratios[:, None] * sizes[None, :]).reshape(-1)  # [R*S], ratio-major
    hs = (h_ratios[:, None] * sizes[None, :]).reshape(-1)
    return (np.round(np.stack([-ws, -hs, ws, hs], axis=1) / 2)).astype(np.float64)  # [A, 4]


def make_anchors_loops(
    feature_size: IntOrPair,
    stride: IntOrPair,
    sizes: Sequence[float] = (32,),
    aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
) -> np.ndarray:
    """Anchors built one position and one anchor at a time; same contract as :func:`make_anchors`."""
    (height, width), (stride_y, stride_x), sizes, aspect_ratios = _anchor_arguments(
        feature_size, stride, sizes, aspect_ratios
    )
    anchors = []
    for i in range(height):
        for j in range(width):
            x, y = j * stride_x, i * stride_y  # the position, in image pixels
            for ratio in aspect_ratios:
                for size in sizes:
                    w, h = _anchor_size(size, ratio)
                    half_w, half_h = np.round(w / 2), np.round(h / 2)
                    anchors.append((x - half_w, y - half_h, x + half_w, y + half_h))
    return np.array(anchors, dtype=np.float64).reshape(-1, 4)


def make_anchors(
    feature_size: IntOrPair,
    stride: IntOrPair,
    sizes: Sequence[float] = (32,),
    aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
) -> np.ndarray:
    """Every anchor of one feature map, as torchvision's ``AnchorGenerator`` for one level.

    Position ``(i, j)`` of an ``H x W`` feature map with stride ``(s_y, s_x)`` gets the
    :func:`cell_anchors` shifted to the image point ``(x, y) = (j * s_x, i * s_y)``.
    (torchvision puts the anchors at the top-left corner of each ``s x s`` cell, not at
    its centre; with a stride of 16 and anchors of 32 pixels or more the half-cell
    difference hardly matters.) torchvision derives the stride as image size // feature
    size; here it is given.

    Args:
        feature_size: ``H`` or ``(H, W)``, the feature map's height and width, >= 1.
        stride: ``s`` or ``(s_y, s_x)``, image pixels per feature-map step, >= 1.
        sizes: anchor sizes (square roots of the areas) in pixels, positive.
        aspect_ratios: height / width ratios, positive.

    Returns:
        ndarray[H * W * A, 4] with ``A = len(aspect_ratios) * len(sizes)``: anchors
        ``(x1, y1, x2, y2)``, float64 (whole numbers), position by position in row-major
        order and the ``A`` anchors of a position together (row ``(i * W + j) * A + a``).

    Raises:
        TypeError: ``feature_size`` or ``stride`` is not an int or a pair of ints, or a
            size or ratio is not a number.
        ValueError: ``feature_size`` or ``stride`` is below 1, or ``sizes`` or
            ``aspect_ratios`` is empty or not positive.

    References:
        Ren, He, Girshick and Sun, "Faster R-CNN: Towards Real-Time Object Detection with
        Region Proposal Networks", NeurIPS 2015, arXiv:1506.01497 (section 3.1.1, anchors);
        Lin et al., "Feature Pyramid Networks for Object Detection", CVPR 2017,
        arXiv:1612.03144 (one anchor size per pyramid level).
    """
    (height, width), (stride_y, stride_x), sizes, aspect_ratios = _anchor_arguments(
        feature_size, stride, sizes, aspect_ratios
    )
    base = cell_anchors(sizes, aspect_ratios)  # [A, 4]
    shift_y, shift_x = np.meshgrid(np.arange(height) * stride_y, np.arange(width) * stride_x, indexing="ij")  # [H, W]
    shifts = np.stack([shift_x, shift_y, shift_x, shift_y], axis=-1).reshape(-1, 1, 4)  # [H*W, 1, 4]
    return (shifts + base[None, :, :]).reshape(-1, 4)  # [H*W*A, 4]
