"""Precision, recall, average precision (VOC and COCO) and COCO's mAP of a detector, in NumPy.

Convention: boxes are rows ``(x1, y1, x2, y2)`` of ``ndarray[N, 4]`` floats with
``x1 <= x2`` and ``y1 <= y2``; class labels are integers; a higher score means a more
confident detection.

Evaluation is per class. The detections of one class in one image are **matched**
greedily to that image's ground truth of the class: in order of decreasing score, each
detection takes the still-unmatched ground-truth box it overlaps most, if that IoU is
at least the threshold. A matched detection is a true positive, an unmatched one a false
positive (a duplicate of an object already found included). Sorting all detections of
the class by score then gives precision and recall after each one, and **average
precision** (AP) summarises that curve: the mean (or area) of its monotone envelope,
sampled at 11 recall points (VOC 2007), at every step (VOC 2010 on) or at 101 points
(COCO). COCO's mAP averages AP over ten IoU thresholds and over classes.

Ties are broken as pycocotools breaks them, and every function here agrees with it:

* detections with equal scores keep their input order (a stable sort; across images,
  the image that comes first in the list goes first);
* a detection whose IoU is the same with several unmatched ground-truth boxes takes
  the one that comes **last** in the input (pycocotools' scan replaces its best
  candidate on ``>=``);
* an IoU equal to the threshold is a match; a threshold of 1 is lowered to
  ``1 - 1e-10``, so that a perfect box still matches after rounding.

``assign_detections_loops`` is the readable definition of the matching, one detection
and one ground-truth box at a time; ``assign_detections`` and ``mean_average_precision``
share a vectorised matcher that runs every image, class, IoU threshold and area range
at once. The tests check the two against each other, and ``benchmarks/bench_map.py``
checks ``mean_average_precision`` against pycocotools.

Taught in the book: chapter 06, "Precision, recall and mAP".

References:
    Everingham, Van Gool, Williams, Winn and Zisserman, "The PASCAL Visual Object Classes
    (VOC) Challenge", IJCV 2010 (11-point AP in section 4.2; the all-point AP is the
    VOC 2010 devkit's). Lin et al., "Microsoft COCO: Common Objects in Context", ECCV
    2014, arXiv:1405.0312. The COCO semantics (ignore rules, truncation, 101-point
    interpolation) are defined by the reference code, pycocotools' ``cocoeval.py``
    (github.com/cocodataset/cocoapi, ``COCOeval.evaluateImg`` and ``accumulate``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from cvprep._validation import check_boxes, check_choice, check_int, check_per_box, check_probability, float_array
from cvprep.boxes import box_area, box_iou

#: COCO's IoU thresholds 0.50, 0.55, ..., 0.95 (the array pycocotools builds).
COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
#: COCO's 101 recall points. They are pycocotools' ``np.linspace(0, 1, 101)``, which is
#: not always the closest double to k / 100 (entry 35 is 0.35000000000000003): a recall
#: of exactly 7 / 20 = 0.35 is *below* that point, and AP depends on such details.
COCO_RECALL_POINTS = np.linspace(0.0, 1.0, 101)
#: VOC 2007's 11 recall points k / 10, as the closest doubles, so that a recall of exactly
#: 3 / 5 reaches the point 0.6. (Python ports that build them with ``np.arange(0, 1.1,
#: 0.1)`` get 0.30000000000000004, 0.6000000000000001 and 0.7000000000000001 and then
#: disagree with this, and with the MATLAB devkit, when a recall lands on one of them.)
VOC11_RECALL_POINTS = np.arange(11) / 10
#: COCO's object-area ranges in pixels, both ends included: an area of exactly 32 ** 2
#: is both small and medium.
COCO_AREA_RANGES = {
    "all": (0.0, 1e5**2),
    "small": (0.0, 32.0**2),
    "medium": (32.0**2, 96.0**2),
    "large": (96.0**2, 1e5**2),
}
AP_METHODS = ("coco101", "voc11", "voc_all")


def _usable_threshold(iou_threshold: float) -> float:
    """pycocotools' rule: a threshold of 1 would reject a perfect box that rounding left
    at 0.9999999999999999, so thresholds are capped at ``1 - 1e-10``."""
    return min(iou_threshold, 1 - 1e-10)


# Matching: the definition ---------------------------------------------------------------

def _match_arguments(gt_boxes, det_boxes, det_scores, iou_threshold, gt_ignore):
    gt_boxes = check_boxes(gt_boxes, "gt_boxes")
    det_boxes = check_boxes(det_boxes, "det_boxes")
    det_scores = check_per_box(det_scores, "det_scores", len(det_boxes), "det_boxes")
    iou_threshold = check_probability(iou_threshold, "iou_threshold")
    if gt_ignore is None:
        gt_ignore = np.zeros(len(gt_boxes), dtype=bool)
    elif not isinstance(gt_ignore, np.ndarray) or gt_ignore.dtype != bool:
        raise TypeError(f"gt_ignore must be a boolean numpy.ndarray or None, got {type(gt_ignore).__name__}")
    elif gt_ignore.shape != (len(gt_boxes),):
        raise ValueError(
            f"gt_ignore must have one entry per ground-truth box: gt_boxes has {len(gt_boxes)} rows, "
            f"gt_ignore has shape {gt_ignore.shape}"
        )
    return gt_boxes, det_boxes, det_scores, iou_threshold, gt_ignore


def assign_detections_loops(
    gt_boxes: np.ndarray,
    det_boxes: np.ndarray,
    det_scores: np.ndarray,
    iou_threshold: float = 0.5,
    gt_ignore: np.ndarray | None = None,
) -> np.ndarray:
    """Greedy matching written as loops over detections and ground-truth boxes.

    Same contract as :func:`assign_detections`; the readable definition and the oracle
    the vectorised matcher is tested against.
    """
    gt_boxes, det_boxes, det_scores, iou_threshold, gt_ignore = _match_arguments(
        gt_boxes, det_boxes, det_scores, iou_threshold, gt_ignore
    )
    threshold = _usable_threshold(iou_threshold)
    iou = box_iou(det_boxes, gt_boxes)  # [D, G]
    assigned = np.full(len(det_boxes), -1, dtype=np.int64)
    taken = np.zeros(len(gt_boxes), dtype=bool)
    for d in np.argsort(-det_scores, kind="stable"):  # highest score first, ties in input order
        best = -1
        for g in range(len(gt_boxes)):
            if taken[g] or iou[d, g] < threshold:
                continue
            # A ground truth that counts beats an ignored one whatever the IoU; then the
            # higher IoU wins; on a tie the later box wins (>=), as in pycocotools.
            if best == -1 or (not gt_ignore[g], iou[d, g]) >= (not gt_ignore[best], iou[d, best]):
                best = g
        if best >= 0:
            assigned[d] = best
            taken[best] = True
    return assigned


def match_detections_loops(
    gt_boxes: np.ndarray, det_boxes: np.ndarray, det_scores: np.ndarray, iou_threshold: float = 0.5
) -> np.ndarray:
    """True positives by the loop matcher; same contract as :func:`match_detections`."""
    return assign_detections_loops(gt_boxes, det_boxes, det_scores, iou_threshold) >= 0


# Matching: vectorised over images, classes, IoU thresholds and area ranges -------------------

def _greedy_match_steps(
    iou: np.ndarray, n_dets: np.ndarray, gt_valid: np.ndarray, gt_ignore: np.ndarray | None, thresholds: np.ndarray
) -> np.ndarray:
    """:func:`_greedy_match` for every rule; ``gt_ignore=None`` means one rule ignoring nothing."""
    n_groups, n_slots_d, n_slots_g = iou.shape
    n_rules, n_thresholds = (1 if gt_ignore is None else gt_ignore.shape[1]), len(thresholds)
    assigned = np.full((n_groups, n_rules, n_thresholds, n_slots_d), -1, dtype=np.int32)
    if n_groups == 0 or n_slots_d == 0 or n_slots_g == 0:
        return assigned
    order = np.argsort(-n_dets, kind="stable")  # most detections first
    iou, counts = iou[order], n_dets[order]
    counts_ok = None if gt_ignore is None else ~gt_ignore[order][:, :, None, :]  # [P, A, 1, G]: boxes that count
    taken = np.broadcast_to(~gt_valid[order][:, None, None, :], (n_groups, n_rules, n_thresholds, n_slots_g)).copy()
    active = np.searchsorted(-counts, -np.arange(n_slots_d), side="left")  # [D]: groups with more than d detections
    slots = np.arange(n_slots_g)
    for d, n in enumerate(active):
        iou_d = iou[:n, d, None, None, :]  # [n, 1, 1, G]
        pool = ~taken[:n] & (iou_d >= thresholds[None, None, :, None])  # [n, A, T, G]: the candidates
        if counts_ok is not None:  # boxes that count first; ignored ones only if no such box qualifies
            preferred = pool & counts_ok[:n]
            pool = np.where(preferred.any(axis=-1, keepdims=True), preferred, pool)
        score = np.where(pool, iou_d, -1.0)  # [n, A, T, G]
        best = n_slots_g - 1 - np.argmax(score[..., ::-1], axis=-1)  # [n, A, T]: the last maximum
        hit = pool.any(axis=-1)  # [n, A, T]
        assigned[:n, :, :, d] = np.where(hit, best, -1)
        taken[:n] |= hit[..., None] & (slots == best[..., None])
    in_input_order = np.empty_like(assigned)
    in_input_order[order] = assigned
    return in_input_order


def _greedy_match(
    iou: np.ndarray, n_dets: np.ndarray, gt_valid: np.ndarray, gt_ignore: np.ndarray, thresholds: np.ndarray
) -> np.ndarray:
    """Greedy matching of ``P`` independent groups (one image and class each) at once.

    Greedy matching is sequential within a group (detection ``d`` sees the ground truth
    taken by detections ``0..d-1``) but groups, thresholds and ignore rules are
    independent, so the loop runs over the detection rank ``d`` only and each step
    handles every group, threshold and rule with array operations. Groups are sorted by
    their number of detections, so the groups still active at step ``d`` are a prefix
    of the arrays.

    A rule changes a group's matching only if it ignores some but not all of its ground
    truth (ignoring none or all leaves nothing to prefer), so the groups are matched
    once without ignoring anything, and again under every rule only where one is mixed.

    Args:
        iou (ndarray[P, D, G]): IoU of the ``d``-th best-scoring detection of group
            ``p`` with its ``g``-th ground truth; padding entries are ignored.
        n_dets (ndarray[P]): number of detections of each group (<= D).
        gt_valid (ndarray[P, G]): which ground-truth slots are real (not padding).
        gt_ignore (ndarray[P, A, G]): ground truth ignored under each of ``A`` rules
            (COCO's area ranges); an ignored box is matched only if no other is.
        thresholds (ndarray[T]): IoU thresholds, already capped by ``_usable_threshold``.

    Returns:
        ndarray[P, A, T, D]: the ground-truth slot matched by each detection, or -1.
    """
    valid = gt_valid[:, None, :]  # [P, 1, G]
    mixed = ((gt_ignore & valid).any(axis=-1) & (~gt_ignore & valid).any(axis=-1)).any(axis=1)  # [P]
    plain = _greedy_match_steps(iou, n_dets, gt_valid, None, thresholds)  # [P, 1, T, D]
    assigned = np.repeat(plain, gt_ignore.shape[1], axis=1)  # [P, A, T, D]
    if mixed.any():
        assigned[mixed] = _greedy_match_steps(iou[mixed], n_dets[mixed], gt_valid[mixed], gt_ignore[mixed], thresholds)
    return assigned


def assign_detections(
    gt_boxes: np.ndarray,
    det_boxes: np.ndarray,
    det_scores: np.ndarray,
    iou_threshold: float = 0.5,
    gt_ignore: np.ndarray | None = None,
) -> np.ndarray:
    """The ground-truth box each detection is matched to, greedily by score (COCO's matching).

    For one image and one class. In order of decreasing score, each detection takes the
    unmatched ground-truth box with the highest IoU, if that IoU is >= ``iou_threshold``.
    Boxes flagged in ``gt_ignore`` (COCO: crowd regions, or objects outside the
    evaluated area range; VOC: "difficult" objects) are taken only when no other box
    qualifies; a detection matched to one is neither a true nor a false positive.

    Ties: equal scores are processed in input order; equal IoUs go to the ground-truth
    box that comes last in the input (pycocotools' rule). An IoU equal to the threshold
    matches, and a threshold of 1 is lowered to ``1 - 1e-10``.

    Args:
        gt_boxes (ndarray[G, 4]): ground-truth boxes ``(x1, y1, x2, y2)``.
        det_boxes (ndarray[D, 4]): detected boxes ``(x1, y1, x2, y2)``.
        det_scores (ndarray[D]): their confidence scores, finite.
        iou_threshold: in [0, 1].
        gt_ignore (ndarray[G] | None): boolean, ground truth to ignore; ``None`` for none.

    Returns:
        ndarray[D] int: for each detection, in input order, the index (row of
        ``gt_boxes``) of the ground truth it matched, or -1.

    Raises:
        TypeError: boxes or scores are not floating-point ndarrays, ``gt_ignore`` is not
            boolean, or ``iou_threshold`` is not a number.
        ValueError: bad box shapes or corners, lengths that disagree, non-finite
            scores, or ``iou_threshold`` outside [0, 1].

    References:
        Everingham et al., "The PASCAL Visual Object Classes (VOC) Challenge", IJCV 2010
        (section 4.2); pycocotools ``COCOeval.evaluateImg`` (the ignore and tie rules).
    """
    gt_boxes, det_boxes, det_scores, iou_threshold, gt_ignore = _match_arguments(
        gt_boxes, det_boxes, det_scores, iou_threshold, gt_ignore
    )
    order = np.argsort(-det_scores, kind="stable")  # [D]
    iou = box_iou(det_boxes[order], gt_boxes)[None]  # [1, D, G]
    thresholds = np.array([_usable_threshold(iou_threshold)])
    gt_valid = np.ones((1, len(gt_boxes)), dtype=bool)
    in_score_order = _greedy_match(iou, np.array([len(det_boxes)]), gt_valid, gt_ignore[None, None], thresholds)
    assigned = np.empty(len(det_boxes), dtype=np.int64)
    assigned[order] = in_score_order[0, 0, 0]
    return assigned


def match_detections(
    gt_boxes: np.ndarray, det_boxes: np.ndarray, det_scores: np.ndarray, iou_threshold: float = 0.5
) -> np.ndarray:
    """Which detections are true positives, for one image and one class.

    The greedy matching of :func:`assign_detections` without ignored ground truth: a
    detection is a true positive if it is matched, a false positive otherwise (no
    ground truth with IoU >= ``iou_threshold`` left, e.g. a duplicate of an object a
    higher-scoring detection already found).

    Args:
        gt_boxes (ndarray[G, 4]): ground-truth boxes ``(x1, y1, x2, y2)``.
        det_boxes (ndarray[D, 4]): detected boxes ``(x1, y1, x2, y2)``.
        det_scores (ndarray[D]): their confidence scores, finite.
        iou_threshold: in [0, 1].

    Returns:
        ndarray[D] bool: ``is_tp``, in the input order of the detections.

    Raises:
        TypeError: boxes or scores are not floating-point ndarrays, or ``iou_threshold``
            is not a number.
        ValueError: bad box shapes or corners, lengths that disagree, non-finite
            scores, or ``iou_threshold`` outside [0, 1].

    References:
        Everingham et al., "The PASCAL Visual Object Classes (VOC) Challenge", IJCV 2010
        (section 4.2, the assignment of detections to ground truth).
    """
    return assign_detections(gt_boxes, det_boxes, det_scores, iou_threshold) >= 0


# Precision, recall and AP -------------------------------------------------------------------

def _finite_vector(x: object, name: str) -> np.ndarray:
    """Check that ``x`` is a 1-D floating-point ndarray of finite values."""
    x = float_array(x, name, "[D]")
    if not np.isfinite(x).all():
        index = int(np.argmin(np.isfinite(x)))
        raise ValueError(f"{name} must be finite, but entry {index} is {x[index]}")
    return x


def precision_recall(scores: np.ndarray, is_tp: np.ndarray, num_gt: int) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall after each detection, the detections sorted by decreasing score.

    After the first ``k`` detections, ``TP_k`` of them true positives:
    ``recall_k = TP_k / num_gt`` and ``precision_k = TP_k / k``. Equal scores keep their
    input order (no merging of ties, as pycocotools). Detections to ignore must be
    removed beforehand.

    Args:
        scores (ndarray[D]): detection scores, finite, from every image of one class.
        is_tp (ndarray[D]): boolean, which detections are true positives.
        num_gt: number of ground-truth objects of the class, >= 1 and at least the
            number of true positives.

    Returns:
        ``(recall, precision)``, two ndarray[D] float64, recall non-decreasing.

    Raises:
        TypeError: ``scores`` is not a floating-point ndarray, ``is_tp`` not a boolean
            one, or ``num_gt`` not an int.
        ValueError: lengths differ, scores are not finite, ``num_gt`` < 1 or smaller
            than the number of true positives.

    References:
        Everingham et al., "The PASCAL Visual Object Classes (VOC) Challenge", IJCV 2010
        (section 4.2).
    """
    scores = _finite_vector(scores, "scores")
    if not isinstance(is_tp, np.ndarray) or is_tp.dtype != bool:
        raise TypeError(f"is_tp must be a boolean numpy.ndarray, got {type(is_tp).__name__}")
    if is_tp.shape != scores.shape:
        raise ValueError(f"is_tp must have one entry per score: scores has shape {scores.shape}, is_tp {is_tp.shape}")
    num_gt = check_int(num_gt, "num_gt", 1)
    if is_tp.sum() > num_gt:
        raise ValueError(f"is_tp has {int(is_tp.sum())} true positives but num_gt is only {num_gt}")
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(is_tp[order])  # [D]
    recall = tp / num_gt
    precision = tp / np.arange(1, len(tp) + 1)
    return recall, precision


def _check_curve(recall: object, precision: object) -> tuple[np.ndarray, np.ndarray]:
    recall, precision = _finite_vector(recall, "recall"), _finite_vector(precision, "precision")
    if recall.shape != precision.shape:
        raise ValueError(
            f"recall and precision must have the same length (one entry per detection), "
            f"got {len(recall)} and {len(precision)}"
        )
    for name, values in (("recall", recall), ("precision", precision)):
        outside = (values < 0) | (values > 1)
        if outside.any():
            index = int(np.argmax(outside))
            raise ValueError(f"{name} must be in [0, 1], but entry {index} is {values[index]}")
    decreasing = np.diff(recall) < 0
    if decreasing.any():
        index = int(np.argmax(decreasing))
        raise ValueError(
            f"recall must be non-decreasing (detections sorted by score), but entry {index + 1} "
            f"({recall[index + 1]}) is below entry {index} ({recall[index]})"
        )
    return recall, precision


def _envelope(precision: np.ndarray) -> np.ndarray:
    """Interpolated precision: the best precision at this or any later (higher-recall) point.

    Works on the last axis, so ``precision`` may be [D] or [T, D].
    """
    return np.maximum.accumulate(precision[..., ::-1], axis=-1)[..., ::-1]


def _sampled_envelope(recall: np.ndarray, precision: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The envelope at each recall point: its value at the first recall >= the point, 0 if none.

    Args:
        recall (ndarray[T, D]): one non-decreasing curve per row.
        precision (ndarray[T, D]): the matching precisions.
        points (ndarray[R]): recall points.

    Returns:
        ndarray[T, R].
    """
    n_curves, n_dets = recall.shape
    out = np.zeros((n_curves, len(points)))
    if n_dets == 0:
        return out
    envelope = _envelope(precision)  # [T, D]
    for t in range(n_curves):
        first = np.searchsorted(recall[t], points, side="left")  # [R]: first index with recall >= point
        reached = first < n_dets
        out[t, reached] = envelope[t, first[reached]]
    return out


def coco_average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """COCO's 101-point average precision of one precision-recall curve.

    The readable single-curve version of ``average_precision(..., method="coco101")``:
    the monotone envelope of ``precision`` read at the first detection whose recall is
    >= each of pycocotools' 101 recall points (0 where the curve never gets there),
    then averaged. ``mean_average_precision`` does the same for many curves at once.

    Args:
        recall (ndarray[D]): recall after each detection, sorted by score; non-decreasing.
        precision (ndarray[D]): precision after each detection.

    Returns:
        AP in [0, 1] (a float); 0 for an empty curve.

    Raises:
        TypeError: ``recall`` or ``precision`` is not a floating-point ndarray.
        ValueError: not 1-D, lengths differ, not finite, outside [0, 1], or recall
            decreasing.

    References:
        Lin et al., "Microsoft COCO: Common Objects in Context", 2014, arXiv:1405.0312;
        pycocotools ``COCOeval.accumulate``.
    """
    recall, precision = _check_curve(recall, precision)
    if len(recall) == 0:
        return 0.0
    envelope = np.maximum.accumulate(precision[::-1])[::-1]  # [D]: best precision from here on
    first = np.searchsorted(recall, COCO_RECALL_POINTS, side="left")  # [101]: first detection reaching each point
    reached = first < len(recall)  # [101]
    sampled = np.where(reached, envelope[np.minimum(first, len(recall) - 1)], 0.0)  # [101]
    return float(sampled.mean())


def average_precision(recall: np.ndarray, precision: np.ndarray, method: str = "coco101") -> float:
    """Average precision: a summary of one class's precision-recall curve.

    All three methods use the **interpolated** precision ``p(r)``, the highest precision
    at any recall >= ``r`` (the curve's monotone envelope), and 0 for a recall the
    detector never reaches:

    * ``"coco101"``: the mean of ``p(r)`` at 101 points ``r = 0, 0.01, ..., 1``
      (pycocotools' ``np.linspace(0, 1, 101)``; ``p(r)`` is read at the first
      detection whose recall is >= ``r``, as its ``np.searchsorted(..., side="left")``).
    * ``"voc11"``: the mean of ``p(r)`` at 11 points ``r = 0, 0.1, ..., 1`` (VOC 2007;
      the points are the closest doubles to k / 10, see ``VOC11_RECALL_POINTS``).
    * ``"voc_all"``: the area under ``p(r)`` from recall 0 to 1, summed over the
      recall values where it steps (VOC 2010 on).

    No method is always the largest: sampling points add ``p(0)`` to the mean,
    which the area does not.

    Args:
        recall (ndarray[D]): recall after each detection (sorted by score), in [0, 1],
            non-decreasing; see :func:`precision_recall`.
        precision (ndarray[D]): precision after each detection, in [0, 1].
        method: ``"coco101"``, ``"voc11"`` or ``"voc_all"``.

    Returns:
        AP in [0, 1] (a float); 0 for an empty curve (no detections).

    Raises:
        TypeError: ``recall`` or ``precision`` is not a floating-point ndarray.
        ValueError: not 1-D, lengths differ, not finite, outside [0, 1], recall
            decreasing, or an unknown ``method``.

    References:
        Everingham et al., "The PASCAL Visual Object Classes (VOC) Challenge", IJCV 2010
        (section 4.2, 11-point AP); the VOC 2010 devkit (all-point AP); Lin et al.,
        "Microsoft COCO: Common Objects in Context", 2014, arXiv:1405.0312, and
        pycocotools ``COCOeval.accumulate`` (101-point AP).
    """
    recall, precision = _check_curve(recall, precision)
    check_choice(method, "method", AP_METHODS)
    recall, precision = recall.astype(np.float64), precision.astype(np.float64)
    if method == "coco101":
        return coco_average_precision(recall, precision)
    if method == "voc11":
        # The definition as written: the best precision at recall >= r, for 11 values of r.
        return float(np.mean([precision[recall >= r].max(initial=0.0) for r in VOC11_RECALL_POINTS]))
    # voc_all: sentinels make the curve start at recall 0 and end at recall 1 (precision 0).
    recall = np.concatenate([[0.0], recall, [1.0]])  # [D + 2]
    envelope = _envelope(np.concatenate([[0.0], precision, [0.0]]))  # [D + 2]
    steps = np.flatnonzero(recall[1:] != recall[:-1])  # where recall moves on
    return float(np.sum((recall[steps + 1] - recall[steps]) * envelope[steps + 1]))


# COCO's mAP ---------------------------------------------------------------------------------

def _check_images(ground_truth: object, detections: object) -> tuple[list[dict], list[dict]]:
    """Validate the per-image dicts; return them with every array checked."""
    for name, value in (("ground_truth", ground_truth), ("detections", detections)):
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"{name} must be a list with one dict per image, got {type(value).__name__}")
    if len(ground_truth) != len(detections):
        raise ValueError(
            f"ground_truth and detections must have one entry per image, got {len(ground_truth)} and {len(detections)}"
        )
    checked_gt, checked_det = [], []
    for i, (gt, det) in enumerate(zip(ground_truth, detections)):
        expected = (("ground_truth", gt, ("boxes", "labels")), ("detections", det, ("boxes", "scores", "labels")))
        for name, entry, keys in expected:
            if not isinstance(entry, dict):
                raise TypeError(f"{name}[{i}] must be a dict, got {type(entry).__name__}")
            missing = [k for k in keys if k not in entry]
            if missing:
                raise ValueError(f"{name}[{i}] must have keys {keys}, missing {missing}")
        # float64 and int64 throughout, as pycocotools' JSON numbers
        boxes = check_boxes(gt["boxes"], f"ground_truth[{i}]['boxes']").astype(np.float64, copy=False)
        labels = check_per_box(gt["labels"], f"ground_truth[{i}]['labels']", len(boxes), "boxes", integer=True)
        checked_gt.append({"boxes": boxes, "labels": labels.astype(np.int64, copy=False)})
        boxes = check_boxes(det["boxes"], f"detections[{i}]['boxes']").astype(np.float64, copy=False)
        scores = check_per_box(det["scores"], f"detections[{i}]['scores']", len(boxes), "boxes")
        labels = check_per_box(det["labels"], f"detections[{i}]['labels']", len(boxes), "boxes", integer=True)
        checked_det.append({"boxes": boxes, "scores": scores.astype(np.float64, copy=False),
                            "labels": labels.astype(np.int64, copy=False)})
    return checked_gt, checked_det


def _check_thresholds(iou_thresholds: object) -> np.ndarray:
    if iou_thresholds is None:
        return COCO_IOU_THRESHOLDS.copy()
    if isinstance(iou_thresholds, bool) or not isinstance(iou_thresholds, (Sequence, np.ndarray, float, int)):
        raise TypeError(f"iou_thresholds must be a sequence of numbers, got {type(iou_thresholds).__name__}")
    thresholds = np.atleast_1d(np.asarray(iou_thresholds))
    if thresholds.ndim != 1 or len(thresholds) == 0 or not np.issubdtype(thresholds.dtype, np.number):
        raise ValueError(f"iou_thresholds must be a non-empty 1-D sequence of numbers, got {iou_thresholds!r}")
    thresholds = thresholds.astype(np.float64)
    bad = ~np.isfinite(thresholds) | (thresholds < 0) | (thresholds > 1)
    if bad.any():
        raise ValueError(f"iou_thresholds must be in [0, 1], got {thresholds[np.argmax(bad)]}")
    return thresholds


def _group_rank(sorted_keys: np.ndarray) -> np.ndarray:
    """Position of each entry within its run of equal keys (``sorted_keys`` sorted)."""
    return np.arange(len(sorted_keys)) - np.searchsorted(sorted_keys, sorted_keys, side="left")


def _flatten(images: list[dict], fields: tuple[str, ...]) -> tuple[np.ndarray, ...]:
    """Concatenate fields over images; also return each row's image index."""
    image = np.repeat(np.arange(len(images)), [len(entry["boxes"]) for entry in images])
    columns = []
    for field in fields:
        parts = [entry[field] for entry in images]
        empty = np.zeros((0, 4) if field == "boxes" else (0,), dtype=np.int64 if field == "labels" else np.float64)
        columns.append(np.concatenate(parts) if parts else empty)
    return (image, *columns)


class _Boxes(NamedTuple):
    """Boxes of every image, flattened and sorted by group (image, class); one row per box."""

    image: np.ndarray  # [N] image index
    key: np.ndarray  # [N] group: image * K + class index, sorted
    rank: np.ndarray  # [N] position in the group: ground truth in input order, detections by score
    boxes: np.ndarray  # [N, 4]
    scores: np.ndarray  # [N] (detections; zeros for ground truth)


def _grouped(ground_truth: list[dict], detections: list[dict], max_detections: int):
    """Ground truth and detections grouped by (image, class); detections truncated per group.

    Returns:
        ``(gt, det, classes)``: two :class:`_Boxes` and the sorted class labels [K].
    """
    gt_image, gt_boxes, gt_labels = _flatten(ground_truth, ("boxes", "labels"))
    det_image, det_boxes, det_scores, det_labels = _flatten(detections, ("boxes", "scores", "labels"))
    classes = np.unique(np.concatenate([gt_labels, det_labels]))  # [K]
    gt_key = gt_image * len(classes) + np.searchsorted(classes, gt_labels)  # [Ng]
    det_key = det_image * len(classes) + np.searchsorted(classes, det_labels)  # [Nd]
    gt_order = np.argsort(gt_key, kind="stable")  # input order within a group
    det_order = np.lexsort((-det_scores, det_key))  # by score within a group, ties in input order
    gt = _Boxes(gt_image[gt_order], gt_key[gt_order], _group_rank(gt_key[gt_order]), gt_boxes[gt_order],
                np.zeros(len(gt_key)))
    det_key = det_key[det_order]
    kept = _group_rank(det_key) < max_detections  # the best max_detections of each image and class
    det = _Boxes(det_image[det_order][kept], det_key[kept], _group_rank(det_key)[kept], det_boxes[det_order][kept],
                 det_scores[det_order][kept])
    return gt, det, classes


def _match_groups(gt: _Boxes, det: _Boxes, gt_outside: np.ndarray, thresholds: np.ndarray, n_images: int) -> np.ndarray:
    """COCO's matching in every (image, class) group, area range and IoU threshold.

    Groups are padded to a common number of detections and ground-truth boxes and
    matched together by :func:`_greedy_match`. To keep the padding small they are
    processed in buckets of similar ground-truth count (1, 2, 3-4, 5-8, ...).

    Args:
        gt, det: the grouped boxes (:func:`_grouped`).
        gt_outside (ndarray[Ng, A]): ground truth outside each area range (ignored).
        thresholds (ndarray[T]): usable IoU thresholds.
        n_images: number of images.

    Returns:
        ndarray[Nd, A, T]: the row of ``gt`` each detection is matched to, or -1.
    """
    n_rules = gt_outside.shape[1]
    found = np.full((len(det.key), n_rules, len(thresholds)), -1, dtype=np.int32)  # [Nd, A, T]
    groups = np.intersect1d(gt.key, det.key)  # [P]: groups with ground truth and detections
    if len(groups) == 0:
        return found
    gt_start = np.searchsorted(gt.key, groups, side="left")  # [P]: first ground truth of each group
    n_gt = np.searchsorted(gt.key, groups, side="right") - gt_start
    n_det = np.searchsorted(det.key, groups, side="right") - np.searchsorted(det.key, groups, side="left")

    # IoU of every (detection, ground truth) pair of the same group, one box_iou call per image.
    pair_det, pair_gt, pair_iou = [], [], []
    gt_images = np.searchsorted(gt.image, np.arange(n_images + 1))
    det_images = np.searchsorted(det.image, np.arange(n_images + 1))
    for i in range(n_images):
        gs, ds = slice(gt_images[i], gt_images[i + 1]), slice(det_images[i], det_images[i + 1])
        d, g = np.nonzero(det.key[ds, None] == gt.key[None, gs])  # [pairs]: same class
        if len(d):
            pair_det.append(ds.start + d)
            pair_gt.append(gs.start + g)
            pair_iou.append(box_iou(det.boxes[ds], gt.boxes[gs])[d, g])
    pair_det, pair_gt, pair_iou = np.concatenate(pair_det), np.concatenate(pair_gt), np.concatenate(pair_iou)
    pair_group = np.searchsorted(groups, det.key[pair_det])  # [pairs]
    det_group = np.searchsorted(groups, det.key).clip(max=len(groups) - 1)  # [Nd]
    det_group[groups[det_group] != det.key] = -1  # detections of a group without ground truth

    bucket = np.searchsorted(2 ** np.arange(63), n_gt)  # [P]: 0 for 1 box, 1 for 2, 2 for 3-4 ...
    for b in np.unique(bucket):
        members = np.flatnonzero(bucket == b)  # [Pb]
        local = np.full(len(groups), -1)
        local[members] = np.arange(len(members))
        g_slots, d_slots = int(n_gt[members].max()), int(n_det[members].max())
        iou = np.full((len(members), d_slots, g_slots), -1.0)  # [Pb, D, G], -1 in the padding
        here = np.flatnonzero(local[pair_group] >= 0)  # pairs of this bucket
        iou[local[pair_group[here]], det.rank[pair_det[here]], gt.rank[pair_gt[here]]] = pair_iou[here]
        slots = np.arange(g_slots)
        gt_valid = slots < n_gt[members][:, None]  # [Pb, G]
        rows = np.minimum(gt_start[members][:, None] + slots, len(gt.key) - 1)  # [Pb, G]: row of each slot
        gt_ignore = gt_outside[rows].transpose(0, 2, 1) | ~gt_valid[:, None, :]  # [Pb, A, G]
        assigned = _greedy_match(iou, n_det[members], gt_valid, gt_ignore, thresholds)  # [Pb, A, T, D]
        dets = np.flatnonzero((det_group >= 0) & (local[det_group] >= 0))  # detections of this bucket
        slot = assigned[local[det_group[dets]], :, :, det.rank[dets]]  # [Nb, A, T]: slot in the group
        first_row = gt_start[det_group[dets]].astype(slot.dtype)[:, None, None]  # [Nb, 1, 1]
        found[dets] = np.add(slot, first_row, out=slot, where=slot >= 0)  # row of gt, -1 stays
    return found


def _accumulate(det: _Boxes, det_class: np.ndarray, is_tp: np.ndarray, is_fp: np.ndarray,
                n_counted_gt: np.ndarray, det_limits: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """101-point AP and final recall per threshold, class, area range and detection limit.

    Args:
        det: the grouped detections; ``det_class`` (ndarray[Nd]) their class index.
        is_tp, is_fp (ndarray[Nd, A, T]): true and false positives; a detection that is
            neither is ignored.
        n_counted_gt (ndarray[K, A]): ground truth that counts, per class and area range.
        det_limits: detections per image and class to keep, e.g. [1, 10, 100].

    Returns:
        ``(ap, final_recall)``, each ndarray[T, K, A, M], -1 where a class has no ground
        truth in the area range.
    """
    n_classes, n_rules = n_counted_gt.shape
    # Each class's detections from all images by score; ties by image, then rank in the
    # image (pycocotools concatenates the images' lists and sorts them stably).
    by_class = np.lexsort((det.rank, det.image, -det.scores, det_class))
    rank = det.rank[by_class]
    is_tp = np.ascontiguousarray(is_tp[by_class].transpose(1, 2, 0))  # [A, T, Nd]: a class is a slice of each row
    is_fp = np.ascontiguousarray(is_fp[by_class].transpose(1, 2, 0))
    class_starts = np.searchsorted(det_class[by_class], np.arange(n_classes + 1))

    shape = (is_tp.shape[1], n_classes, n_rules, len(det_limits))
    ap, final_recall = np.full(shape, -1.0), np.full(shape, -1.0)  # [T, K, A, M]
    for k in range(n_classes):
        segment = slice(class_starts[k], class_starts[k + 1])
        for m, limit in enumerate(det_limits):
            keep = np.flatnonzero(rank[segment] < limit)  # [n]: the best `limit` of each image
            tp = np.cumsum(is_tp[:, :, segment][:, :, keep], axis=2)  # [A, T, n]
            fp = np.cumsum(is_fp[:, :, segment][:, :, keep], axis=2)
            for a in range(n_rules):
                if n_counted_gt[k, a] == 0:
                    continue  # nothing to find: AP and recall stay -1
                recall = tp[a] / n_counted_gt[k, a]  # [T, n]
                precision = tp[a] / np.maximum(tp[a] + fp[a], 1)  # 0 / 0 (only ignored so far) as 0
                ap[:, k, a, m] = _sampled_envelope(recall, precision, COCO_RECALL_POINTS).mean(axis=1)
                final_recall[:, k, a, m] = recall[:, -1] if len(keep) else 0.0
    return ap, final_recall


def _summary(ap: np.ndarray, final_recall: np.ndarray, thresholds: np.ndarray, det_limits: list[int],
             classes: np.ndarray) -> dict:
    """pycocotools' ``summarize``: means over thresholds and classes, skipping the -1 entries."""

    def mean(values: np.ndarray) -> float:
        present = values[values > -1]
        return float(present.mean()) if present.size else -1.0

    at_50 = np.isclose(thresholds, 0.5, rtol=0, atol=1e-9)
    at_75 = np.isclose(thresholds, 0.75, rtol=0, atol=1e-9)
    last = len(det_limits) - 1  # max_detections
    all_, small, medium, large = range(len(COCO_AREA_RANGES))
    result = {
        "map": mean(ap[:, :, all_, last]),
        "map_50": mean(ap[at_50, :, all_, last]),
        "map_75": mean(ap[at_75, :, all_, last]),
        "map_small": mean(ap[:, :, small, last]),
        "map_medium": mean(ap[:, :, medium, last]),
        "map_large": mean(ap[:, :, large, last]),
    }
    for m, limit in enumerate(det_limits):
        result[f"mar_{limit}"] = mean(final_recall[:, :, all_, m])
    result.update({
        "mar_small": mean(final_recall[:, :, small, last]),
        "mar_medium": mean(final_recall[:, :, medium, last]),
        "mar_large": mean(final_recall[:, :, large, last]),
        "classes": classes,
        "map_per_class": np.array([mean(ap[:, k, all_, last]) for k in range(len(classes))]),
        "mar_per_class": np.array([mean(final_recall[:, k, all_, last]) for k in range(len(classes))]),
    })
    return result


def mean_average_precision(
    ground_truth: list[dict],
    detections: list[dict],
    iou_thresholds: Sequence[float] | np.ndarray | None = None,
    max_detections: int = 100,
) -> dict:
    """COCO's box mAP and its companion numbers, with pycocotools' ``COCOeval`` semantics.

    For every class, image by image: detections sorted by score (stable) and truncated
    to the ``max_detections`` best of that class in that image (COCO speaks of
    detections per image, but pycocotools truncates per image and class), then matched
    greedily (:func:`assign_detections`) at each IoU threshold. Over the images, the
    class's detections sorted by score give a precision-recall curve per threshold and
    its 101-point AP (:func:`average_precision`). ``map`` averages AP over thresholds
    and over the classes that have ground truth; a class without any is reported as -1
    and left out, and a mean over nothing is -1. Ties are broken as the module
    docstring says (equal scores: earlier image, then input order; equal IoUs: the
    later ground truth).

    Area ranges (``map_small`` ...) use the ground-truth box area ``(x2 - x1) * (y2 -
    y1)``: small up to 32², medium 32² to 96², large from 96² (ends included). Ground
    truth outside the range is ignored (a detection matched to it counts for nothing,
    and a box inside the range is preferred), and so are unmatched detections whose own
    area is outside it. (For real COCO annotations pycocotools uses the annotated
    segmentation area instead; crowd regions are not supported here.)

    Args:
        ground_truth: one dict per image, ``{"boxes": ndarray[G, 4], "labels":
            ndarray[G] int}``.
        detections: one dict per image, in the same order, ``{"boxes": ndarray[D, 4],
            "scores": ndarray[D], "labels": ndarray[D] int}``.
        iou_thresholds: IoU thresholds in [0, 1]; ``None`` for COCO's ten, 0.50:0.05:0.95.
        max_detections: detections kept per image and class, >= 1.

    Returns:
        dict of floats (-1 where nothing could be averaged):

        * ``map``: AP averaged over thresholds and classes; ``map_50``, ``map_75`` at
          IoU 0.5 and 0.75 (-1 if not among the thresholds);
        * ``map_small``, ``map_medium``, ``map_large``: ``map`` by area range;
        * ``mar_1``, ``mar_10``, ``mar_100``: average recall (the final recall,
          averaged over thresholds and classes) when only the best 1, 10 or 100
          detections per image and class are kept. Limits above ``max_detections``
          are left out and ``mar_<max_detections>`` is added (the default gives
          exactly these three);
        * ``mar_small``, ``mar_medium``, ``mar_large``: by area range, at
          ``max_detections``;

        and three arrays over the classes present (in ground truth or detections):
        ``classes`` (ndarray[K] int, sorted), ``map_per_class`` and ``mar_per_class``
        (ndarray[K], -1 for a class without ground truth).

    Raises:
        TypeError: the arguments are not lists of dicts, or an array has the wrong kind
            of dtype.
        ValueError: lists of different lengths, a missing key, bad boxes (shape,
            inverted corners, not finite), labels or scores whose length differs from
            the boxes', thresholds outside [0, 1], ``max_detections`` < 1.

    References:
        Lin et al., "Microsoft COCO: Common Objects in Context", ECCV 2014,
        arXiv:1405.0312; pycocotools ``cocoeval.py`` (``COCOeval.evaluate``,
        ``evaluateImg``, ``accumulate``, ``summarize``), whose results this reproduces.
    """
    ground_truth, detections = _check_images(ground_truth, detections)
    thresholds = _check_thresholds(iou_thresholds)
    max_detections = check_int(max_detections, "max_detections", 1)
    det_limits = [m for m in dict.fromkeys((1, 10, 100, max_detections)) if m <= max_detections]  # pycocotools' maxDets
    area_ranges = np.array(list(COCO_AREA_RANGES.values()))  # [A, 2]

    gt, det, classes = _grouped(ground_truth, detections, max_detections)
    gt_area, det_area = box_area(gt.boxes), box_area(det.boxes)  # [Ng], [Nd]
    gt_outside = (gt_area[:, None] < area_ranges[:, 0]) | (gt_area[:, None] > area_ranges[:, 1])  # [Ng, A]
    det_outside = (det_area[:, None] < area_ranges[:, 0]) | (det_area[:, None] > area_ranges[:, 1])  # [Nd, A]
    usable = np.array([_usable_threshold(t) for t in thresholds])  # [T]
    found = _match_groups(gt, det, gt_outside, usable, len(ground_truth))  # [Nd, A, T]

    # A detection matched to ignored ground truth, or unmatched and itself outside the
    # area range, is ignored: neither a true nor a false positive.
    matched = found >= 0  # [Nd, A, T]
    matched_ignored = np.zeros_like(matched)
    if matched.any():
        matched_ignored = matched & gt_outside[np.maximum(found, 0), np.arange(len(area_ranges))[:, None]]
    counted = ~(matched_ignored | (~matched & det_outside[:, :, None]))
    is_tp, is_fp = matched & counted, ~matched & counted

    gt_class = gt.key % len(classes) if len(classes) else gt.key  # [Ng]
    det_class = det.key % len(classes) if len(classes) else det.key  # [Nd]
    n_counted_gt = np.stack([np.bincount(gt_class[~gt_outside[:, a]], minlength=len(classes))
                             for a in range(len(area_ranges))], axis=1)  # [K, A]
    ap, final_recall = _accumulate(det, det_class, is_tp, is_fp, n_counted_gt, det_limits)
    return _summary(ap, final_recall, thresholds, det_limits, classes)
