"""Non-maximum suppression (NMS) and its variants, in NumPy.

A detector proposes many overlapping boxes per object; NMS keeps the best-scoring box
and removes the boxes that overlap it too much, then repeats with the best remaining
box. Boxes are ``ndarray[N, 4]`` rows ``(x1, y1, x2, y2)`` with ``x1 <= x2`` and
``y1 <= y2``; scores are ``ndarray[N]``. The functions return indices into ``boxes``,
never boxes, and never modify their inputs.

Rules shared by every function here:

* A box is suppressed when its overlap with a kept box is **strictly greater** than the
  threshold, as in ``torchvision.ops.nms``.
* Equal scores are ranked by index: of two boxes with the same score, the one with the
  lower index counts as the higher-scoring (a stable sort of ``-scores``). torchvision
  leaves this order unspecified.
* Overlap is :func:`cvprep.boxes.box_iou`'s IoU: two zero-area boxes have IoU 0, so they
  never suppress each other, and boxes that only touch have IoU 0.

Each algorithm exists twice: a readable loop version (``nms_loops``, ...) that states the
greedy definition, and a vectorised one that gives the same result fast. The tests check
each against the other and ``nms`` and ``batched_nms`` against torchvision.

Taught in the book: chapter 06, "Non-maximum suppression".
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from cvprep._validation import check_boxes, check_choice, check_per_box, check_probability, check_real
from cvprep.boxes import _centre_penalty, _inter_union, _pair_measures, _ratio, box_iou

SOFT_NMS_METHODS = ("linear", "gaussian")

# How many candidate boxes the vectorised greedy pass settles at once (see _greedy).
_BLOCK = 64


# Arguments and shared pieces -------------------------------------------------------------

def _nms_arguments(boxes, scores, iou_threshold):
    """Validate the arguments every NMS variant takes."""
    boxes = check_boxes(boxes, "boxes")
    scores = check_per_box(scores, "scores", len(boxes))
    iou_threshold = check_probability(iou_threshold, "iou_threshold")
    return boxes, scores, iou_threshold


def _priority_order(scores: np.ndarray) -> np.ndarray:
    """Indices by decreasing score; equal scores keep their index order (lower index first)."""
    return np.argsort(-scores, kind="stable")


def _ranked_coordinates(boxes: np.ndarray, order: np.ndarray) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """The columns x1, y1, x2, y2 (each [N], contiguous) and the areas ([N]) of ``boxes[order]``."""
    ranked = boxes[order].astype(np.result_type(boxes.dtype, np.float32), copy=False)  # [N, 4]
    coords = tuple(np.ascontiguousarray(column) for column in ranked.T)
    return coords, (coords[2] - coords[0]) * (coords[3] - coords[1])


def _no_boxes() -> np.ndarray:
    return np.zeros(0, dtype=np.int64)


def _greedy(n: int, suppresses: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    """Greedy suppression of boxes ``0 .. n - 1``, already in priority order.

    The greedy rule: walk down the list; keep a box unless a box kept before it
    suppresses it. Walking one box at a time costs one round of NumPy calls per kept box,
    so this settles ``_BLOCK`` candidates at once:

    1. Take the first ``_BLOCK`` surviving candidates and the matrix of which of them
       suppresses which (``over[i, j]``, only for ``i`` before ``j``).
    2. Settle the block. ``keep[j] = not any(keep[i] and over[i, j] for i < j)`` has
       exactly one solution, the greedy one; iterating it from "keep everything" fixes
       at least one more position per round (position 0 is right at once, position t
       depends only on positions before it), and a round that changes nothing has
       reached the solution.
    3. Remove every later candidate that a box kept in this block suppresses.

    The work is about (kept boxes) x (candidates left), as in torchvision's C++ loop,
    but done in about ``n / _BLOCK`` rounds of NumPy calls instead of one per kept box.

    Args:
        n: number of boxes.
        suppresses: ``suppresses(rows, cols)`` gives ``ndarray[len(rows), len(cols)]`` of
            bool: does box ``rows[i]`` suppress box ``cols[j]`` (were it kept first)?

    Returns:
        ndarray[K] of int64: the kept positions, increasing (that is, in priority order).
    """
    alive = np.arange(n)  # candidates no kept box suppresses, in priority order
    kept = []
    while alive.size:
        block, later = alive[:_BLOCK], alive[_BLOCK:]
        over = np.triu(suppresses(block, block), k=1)  # [B, B]: only an earlier box can suppress
        keep = np.ones(len(block), dtype=bool)  # [B]
        while True:
            settled = ~over[keep].any(axis=0)  # [B]: no kept box of the block suppresses it
            if np.array_equal(settled, keep):
                break
            keep = settled
        kept.append(block[keep])
        if later.size:
            later = later[~suppresses(block[keep], later).any(axis=0)]  # [K_block, L] -> [L]
        alive = later
    return np.concatenate(kept) if kept else _no_boxes()


def _iou_above(coords: tuple[np.ndarray, ...], areas: np.ndarray, threshold: float):
    """``suppresses(rows, cols)`` for :func:`_greedy`: is IoU(rows[i], cols[j]) > threshold?

    Written with in-place operations on [R, C] arrays, since this is where NMS spends
    its time. The arithmetic is torchvision's (inter / (area_i + area_j - inter)), so
    results agree exactly, even for IoUs that equal the threshold.
    """
    x1, y1, x2, y2 = coords
    threshold = np.float64(threshold)  # compare in float64 even for float32 boxes, as torchvision

    def suppresses(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        r = rows[:, None]  # [R, 1]
        inter = np.minimum(x2[r], x2[cols])  # [R, C]
        inter -= np.maximum(x1[r], x1[cols])  # overlap width, negative if none
        np.maximum(inter, 0, out=inter)
        height = np.minimum(y2[r], y2[cols])  # [R, C]
        height -= np.maximum(y1[r], y1[cols])
        np.maximum(height, 0, out=height)
        inter *= height  # [R, C] intersection areas
        union = areas[r] + areas[cols]  # [R, C]
        union -= inter
        with np.errstate(invalid="ignore"):  # 0 / 0 (two zero-area boxes) is NaN, and NaN > t is False
            inter /= union
        return inter > threshold

    return suppresses


# NMS ------------------------------------------------------------------------------------

def nms_loops(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """NMS written as the greedy definition; same contract as :func:`nms`.

    Visit the boxes from the highest score down; keep a box unless it overlaps an
    already kept box with IoU > ``iou_threshold``.
    """
    boxes, scores, iou_threshold = _nms_arguments(boxes, scores, iou_threshold)
    keep = []
    for i in _priority_order(scores):
        overlaps = box_iou(boxes[[i]], boxes[keep])  # [1, K]: with every box kept so far
        if not (overlaps > iou_threshold).any():
            keep.append(int(i))
    return np.array(keep, dtype=np.int64)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Non-maximum suppression, as ``torchvision.ops.nms``.

    Repeatedly keep the highest-scoring remaining box and discard every remaining box
    whose IoU with it is greater than ``iou_threshold``. Equal scores: the lower index
    counts as higher (torchvision leaves ties unspecified). Zero-area boxes have IoU 0
    with everything, so they are never suppressed and never suppress.

    Args:
        boxes (ndarray[N, 4]): boxes ``(x1, y1, x2, y2)`` with ``x1 <= x2``, ``y1 <= y2``.
        scores (ndarray[N]): one finite score per box.
        iou_threshold: in [0, 1]; a box is discarded if IoU > ``iou_threshold``. 0
            discards every box that overlaps a kept one at all, 1 discards nothing.

    Returns:
        ndarray[K] of int64: indices of the kept boxes, by decreasing score. Empty input
        gives an empty array.

    Raises:
        TypeError: ``boxes`` or ``scores`` is not a floating-point ndarray, or
            ``iou_threshold`` is not a number.
        ValueError: bad boxes, a ``scores`` length that differs from the number of
            boxes, non-finite scores, or ``iou_threshold`` outside [0, 1].

    References:
        Neubeck and Van Gool, "Efficient Non-Maximum Suppression", ICPR 2006; greedy NMS
        as used by Felzenszwalb et al., "Object Detection with Discriminatively Trained
        Part-Based Models", TPAMI 2010, and Girshick et al., "Rich feature hierarchies for
        accurate object detection and semantic segmentation", CVPR 2014, arXiv:1311.2524.
    """
    boxes, scores, iou_threshold = _nms_arguments(boxes, scores, iou_threshold)
    order = _priority_order(scores)  # [N]
    coords, areas = _ranked_coordinates(boxes, order)
    return order[_greedy(len(order), _iou_above(coords, areas, iou_threshold))]


def batched_nms_loops(boxes: np.ndarray, scores: np.ndarray, idxs: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Class-aware NMS as one :func:`nms_loops` per class; same contract as :func:`batched_nms`."""
    boxes, scores, iou_threshold = _nms_arguments(boxes, scores, iou_threshold)
    idxs = check_per_box(idxs, "idxs", len(boxes), integer=True)
    keep = []
    for label in np.unique(idxs):
        members = np.flatnonzero(idxs == label)  # this class's boxes, as indices into boxes
        keep.extend(members[nms_loops(boxes[members], scores[members], iou_threshold)])
    keep = np.sort(np.array(keep, dtype=np.int64))  # by index, so that equal scores stay by index
    return keep[_priority_order(scores[keep])]


def batched_nms(boxes: np.ndarray, scores: np.ndarray, idxs: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Class-aware NMS, as ``torchvision.ops.batched_nms``: boxes of different classes never suppress each other.

    The result is that of :func:`nms` run on each class separately, merged by
    decreasing score (equal scores: lower index first). Rather than torchvision's trick
    of shifting each class's boxes far apart, which rounds coordinates, a box here only
    suppresses boxes with the same ``idxs`` entry, in a single greedy pass.

    Args:
        boxes (ndarray[N, 4]): boxes ``(x1, y1, x2, y2)`` with ``x1 <= x2``, ``y1 <= y2``.
        scores (ndarray[N]): one finite score per box.
        idxs (ndarray[N]): integer class (or image) of each box.
        iou_threshold: in [0, 1]; a box is discarded if IoU > ``iou_threshold`` with a
            kept box of its class.

    Returns:
        ndarray[K] of int64: indices of the kept boxes, by decreasing score.

    Raises:
        TypeError: ``boxes`` or ``scores`` is not a floating-point ndarray, ``idxs`` is
            not an integer ndarray, or ``iou_threshold`` is not a number.
        ValueError: bad boxes, ``scores`` or ``idxs`` of the wrong length, non-finite
            scores, or ``iou_threshold`` outside [0, 1].

    References:
        Girshick, "Fast R-CNN", ICCV 2015, arXiv:1504.08083 (NMS applied independently
        for each class).
    """
    boxes, scores, iou_threshold = _nms_arguments(boxes, scores, iou_threshold)
    idxs = check_per_box(idxs, "idxs", len(boxes), integer=True)
    order = _priority_order(scores)  # [N]
    coords, areas = _ranked_coordinates(boxes, order)
    labels = idxs[order]  # [N]
    iou_above = _iou_above(coords, areas, iou_threshold)

    def suppresses(rows, cols):
        return iou_above(rows, cols) & (labels[rows, None] == labels[cols])  # [R, C]

    return order[_greedy(len(order), suppresses)]


# DIoU-NMS -------------------------------------------------------------------------------

def diou_nms_loops(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """DIoU-NMS written as the greedy definition; same contract as :func:`diou_nms`."""
    boxes, scores, iou_threshold = _nms_arguments(boxes, scores, iou_threshold)
    keep = []
    for i in _priority_order(scores):
        if all(_pair_measures(boxes[i], boxes[k], 0.0)["diou"] <= iou_threshold for k in keep):
            keep.append(int(i))
    return np.array(keep, dtype=np.int64)


def diou_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """DIoU-NMS: NMS that suppresses by ``IoU - rho^2 / c^2`` instead of IoU.

    ``rho`` is the distance between the two box centres and ``c`` the diagonal of the
    smallest box enclosing both (DIoU, :func:`cvprep.boxes.distance_box_iou` with
    ``eps=0``). Two overlapping boxes whose centres are far apart -- often two
    neighbouring objects -- score lower than under IoU, so they are less likely to
    suppress each other. A box is discarded if DIoU with a kept box > ``iou_threshold``.
    Ties and degenerate boxes follow :func:`nms`.

    Args:
        boxes (ndarray[N, 4]): boxes ``(x1, y1, x2, y2)`` with ``x1 <= x2``, ``y1 <= y2``.
        scores (ndarray[N]): one finite score per box.
        iou_threshold: in [0, 1], compared with DIoU.

    Returns:
        ndarray[K] of int64: indices of the kept boxes, by decreasing score.

    Raises:
        TypeError: ``boxes`` or ``scores`` is not a floating-point ndarray, or
            ``iou_threshold`` is not a number.
        ValueError: bad boxes, a ``scores`` length that differs from the number of
            boxes, non-finite scores, or ``iou_threshold`` outside [0, 1].

    References:
        Zheng et al., "Distance-IoU Loss: Faster and Better Learning for Bounding Box
        Regression", AAAI 2020, arXiv:1911.08287 (section 3.4, DIoU-NMS).
    """
    boxes, scores, iou_threshold = _nms_arguments(boxes, scores, iou_threshold)
    order = _priority_order(scores)  # [N]
    ranked = boxes[order].astype(np.result_type(boxes.dtype, np.float32), copy=False)  # [N, 4]

    def suppresses(rows, cols):
        b1, b2 = ranked[rows][:, None, :], ranked[cols][None, :, :]  # [R, 1, 4], [1, C, 4]
        diou = _ratio(*_inter_union(b1, b2)) - _centre_penalty(b1, b2, 0.0)  # [R, C]
        return diou > iou_threshold

    return order[_greedy(len(order), suppresses)]


# Soft-NMS -------------------------------------------------------------------------------

def _soft_nms_arguments(boxes, scores, iou_threshold, sigma, score_threshold, method):
    boxes, scores, iou_threshold = _nms_arguments(boxes, scores, iou_threshold)
    if (scores < 0).any():
        index = int(np.argmax(scores < 0))
        raise ValueError(
            f"scores must be >= 0 for soft_nms (decaying a negative score would raise it), "
            f"but entry {index} is {scores[index]}"
        )
    sigma = check_real(sigma, "sigma", minimum=0.0, exclusive_minimum=True)
    score_threshold = check_real(score_threshold, "score_threshold", minimum=0.0)
    method = check_choice(method, "method", SOFT_NMS_METHODS)
    return boxes, scores, iou_threshold, sigma, score_threshold, method


def _decay(iou: float, method: str, iou_threshold: float, sigma: float) -> float:
    """Soft-NMS's factor for a box whose IoU with the newly selected box is ``iou``."""
    if method == "linear":
        return 1.0 - iou if iou > iou_threshold else 1.0
    return math.exp(-(iou * iou) / sigma)


def soft_nms_loops(
    boxes: np.ndarray,
    scores: np.ndarray,
    iou_threshold: float = 0.3,
    sigma: float = 0.5,
    score_threshold: float = 0.001,
    method: str = "gaussian",
) -> tuple[np.ndarray, np.ndarray]:
    """Soft-NMS written as the paper's loop, one box at a time; same contract as :func:`soft_nms`."""
    boxes, scores, iou_threshold, sigma, score_threshold, method = _soft_nms_arguments(
        boxes, scores, iou_threshold, sigma, score_threshold, method
    )
    current = [float(s) for s in scores]  # decayed scores: a new list, the input is untouched
    remaining = [i for i in range(len(current)) if current[i] >= score_threshold]  # increasing indices
    keep, kept_scores = [], []
    while remaining:
        best = max(remaining, key=lambda i: current[i])  # the first of equal maxima: the lowest index
        remaining.remove(best)
        keep.append(best)
        kept_scores.append(current[best])
        for i in remaining:
            iou = float(box_iou(boxes[[best]], boxes[[i]])[0, 0])
            current[i] *= _decay(iou, method, iou_threshold, sigma)
        remaining = [i for i in remaining if current[i] >= score_threshold]
    return np.array(keep, dtype=np.int64), np.array(kept_scores, dtype=scores.dtype)


def soft_nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    iou_threshold: float = 0.3,
    sigma: float = 0.5,
    score_threshold: float = 0.001,
    method: str = "gaussian",
) -> tuple[np.ndarray, np.ndarray]:
    """Soft-NMS: instead of discarding the boxes that overlap a selected box, lower their scores.

    Repeatedly select the remaining box with the highest (decayed) score, then multiply
    the score of every other remaining box ``b`` by a factor of its IoU with the
    selected box ``M``:

    * ``method="linear"``: ``1 - IoU(M, b)`` if ``IoU(M, b) > iou_threshold``, else 1
      (the paper writes ``>=``; ``>`` matches :func:`nms`);
    * ``method="gaussian"``: ``exp(-IoU(M, b)^2 / sigma)`` for every remaining box;
      ``iou_threshold`` is not used.

    A box whose decayed score drops below ``score_threshold`` is discarded (a box whose
    score starts below it is never selected). Selected scores never increase, since
    factors are at most 1, so the boxes come out by decreasing decayed score; equal
    scores select the lower index first. Neither ``boxes`` nor ``scores`` is modified.

    Args:
        boxes (ndarray[N, 4]): boxes ``(x1, y1, x2, y2)`` with ``x1 <= x2``, ``y1 <= y2``.
        scores (ndarray[N]): one finite score >= 0 per box.
        iou_threshold: in [0, 1], the linear method's ``N_t``.
        sigma: > 0, the Gaussian method's width; smaller decays more.
        score_threshold: >= 0; boxes whose decayed score is below it are dropped.
        method: ``"linear"`` or ``"gaussian"``.

    Returns:
        ``(keep, new_scores)``: ``keep`` (ndarray[K] of int64) holds indices into
        ``boxes`` in the order they were selected; ``new_scores`` (ndarray[K], the dtype
        of ``scores``) holds their decayed scores at selection, non-increasing.

    Raises:
        TypeError: ``boxes`` or ``scores`` is not a floating-point ndarray, or a
            threshold is not a number.
        ValueError: bad boxes, a ``scores`` length that differs from the number of
            boxes, negative or non-finite scores, ``iou_threshold`` outside [0, 1],
            ``sigma <= 0``, a negative ``score_threshold``, or an unknown ``method``.

    References:
        Bodla et al., "Soft-NMS -- Improving Object Detection With One Line of Code",
        ICCV 2017, arXiv:1704.04503 (algorithm 1; equations 2 and 3).
    """
    boxes, scores, iou_threshold, sigma, score_threshold, method = _soft_nms_arguments(
        boxes, scores, iou_threshold, sigma, score_threshold, method
    )
    boxes = boxes.astype(np.float64)  # [N, 4]; like the loop version, compute in float64
    current = scores.astype(np.float64)  # [N] decayed scores: a copy, the input is untouched
    remaining = np.flatnonzero(current >= score_threshold)  # [R], increasing indices
    keep, kept_scores = [], []
    while remaining.size:
        position = int(np.argmax(current[remaining]))  # the first of equal maxima: the lowest index
        best = remaining[position]
        keep.append(best)
        kept_scores.append(current[best])
        remaining = np.delete(remaining, position)  # [R - 1]
        inter, union = _inter_union(boxes[best], boxes[remaining])  # [R - 1], [R - 1]
        iou = _ratio(inter, union)
        if method == "linear":
            decay = np.where(iou > iou_threshold, 1.0 - iou, 1.0)  # [R - 1]
        else:
            decay = np.exp(-(iou * iou) / sigma)  # [R - 1]
        current[remaining] *= decay
        remaining = remaining[current[remaining] >= score_threshold]
    return np.array(keep, dtype=np.int64), np.array(kept_scores, dtype=scores.dtype)
