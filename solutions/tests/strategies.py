"""Hypothesis strategies shared by the test modules."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st


def int_or_pair(low: int, high: int) -> st.SearchStrategy:
    return st.one_of(st.integers(low, high), st.tuples(st.integers(low, high), st.integers(low, high)))


def as_pair(value):
    return value if isinstance(value, tuple) else (value, value)


@st.composite
def conv2d_cases(draw, dtype=np.float64, max_channels_per_group: int = 3):
    """Keyword arguments for ``conv2d`` (numpy arrays) with a non-empty output."""
    groups = draw(st.integers(1, 3))
    c_in = groups * draw(st.integers(1, max_channels_per_group))
    c_out = groups * draw(st.integers(1, max_channels_per_group))
    kernel = as_pair(draw(int_or_pair(1, 4)))
    stride, padding, dilation = draw(int_or_pair(1, 3)), draw(int_or_pair(0, 3)), draw(int_or_pair(1, 3))
    spans = [d * (k - 1) + 1 for k, d in zip(kernel, as_pair(dilation))]
    h, w = (max(1, s - 2 * p) + draw(st.integers(0, 6)) for s, p in zip(spans, as_pair(padding)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return {
        "x": rng.standard_normal((draw(st.integers(1, 2)), c_in, h, w)).astype(dtype),
        "weight": rng.standard_normal((c_out, c_in // groups, *kernel)).astype(dtype),
        "bias": draw(st.one_of(st.none(), st.just(rng.standard_normal(c_out).astype(dtype)))),
        "stride": stride,
        "padding": padding,
        "dilation": dilation,
        "groups": groups,
    }


@st.composite
def pool_cases(draw, dtype=np.float64):
    """Keyword arguments for ``max_pool2d`` / ``avg_pool2d`` (padding <= kernel / 2)."""
    kernel = draw(int_or_pair(1, 5))
    padding = tuple(draw(st.integers(0, k // 2)) for k in as_pair(kernel))
    stride = draw(st.one_of(st.none(), int_or_pair(1, 4)))
    h, w = (max(1, k - 2 * p) + draw(st.integers(0, 7)) for k, p in zip(as_pair(kernel), padding))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((draw(st.integers(1, 2)), draw(st.integers(1, 3)), h, w)).astype(dtype)
    return {"x": x, "kernel_size": kernel, "stride": stride, "padding": padding}


layer_specs = st.tuples(st.integers(1, 7), st.integers(1, 3), st.integers(0, 3), st.integers(1, 3))
layer_stacks = st.lists(layer_specs, min_size=1, max_size=6)


def _random_boxes(rng, n: int, low: float = -200.0, high: float = 800.0, max_size: float = 500.0) -> np.ndarray:
    """``n`` boxes (x1, y1, x2, y2) with centres in [low, high) and sides from 1 to ``max_size``."""
    centres = rng.uniform(low, high, size=(n, 2))
    sizes = np.exp(rng.uniform(0.0, np.log(max_size), size=(n, 2)))
    return np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1)


@st.composite
def box_coding_cases(draw, dtype=np.float64):
    """``(boxes, proposals, deltas)``, each [N, 4]: boxes within a size factor e^3 of their
    paired proposals (so the decoding clamp at 62.5 never acts on their encodings), and
    deltas large enough (|d| <= 40) to reach the clamp."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(0, 6))
    proposals = _random_boxes(rng, n)
    widths, heights = proposals[:, 2] - proposals[:, 0], proposals[:, 3] - proposals[:, 1]
    centres = (proposals[:, :2] + proposals[:, 2:]) / 2 + rng.uniform(-2, 2, size=(n, 2)) * np.stack([widths, heights], 1)
    sizes = np.stack([widths, heights], 1) * np.exp(rng.uniform(-3, 3, size=(n, 2)))
    boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1)
    deltas = rng.uniform(-40, 40, size=(n, 4))
    return boxes.astype(dtype), proposals.astype(dtype), deltas.astype(dtype)


@st.composite
def box_arrays(draw, min_size: int = 0, max_size: int = 8, dtype=np.float64):
    """ndarray[N, 4] of valid boxes (x1, y1, x2, y2), rich in edge cases.

    Half the time the corners lie on a small integer grid, which makes zero-width,
    zero-height, point, identical, nested and touching boxes common; otherwise corners
    are continuous, with some sides set to zero and some boxes moved to touch another.
    """
    n = draw(st.integers(min_size, max_size))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if draw(st.booleans()):
        xs, ys = np.sort(rng.integers(0, 6, size=(n, 2)), axis=1), np.sort(rng.integers(0, 6, size=(n, 2)), axis=1)
        boxes = np.stack([xs[:, 0], ys[:, 0], xs[:, 1], ys[:, 1]], axis=1).astype(np.float64)
    else:
        centres = rng.uniform(-50, 50, size=(n, 2))
        sizes = rng.exponential(30, size=(n, 2)) * (rng.random((n, 2)) > 0.1)  # about 1 side in 10 is 0
        boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1)
        for i in np.flatnonzero(rng.random(n) < 0.2):  # about 1 box in 5 touches another on the right
            j = rng.integers(n)
            width = boxes[i, 2] - boxes[i, 0]
            boxes[i, 0], boxes[i, 2] = boxes[j, 2], boxes[j, 2] + width
    return boxes.astype(dtype)


@st.composite
def nms_cases(draw, min_size: int = 0, max_size: int = 40, dtype=np.float64, n_classes: int = 1):
    """Keyword arguments for ``nms``: boxes in a few clusters (so NMS has work to do),
    distinct scores (torchvision's order for ties is unspecified), an IoU threshold in
    [0, 1], and ``idxs``, a class per box in ``range(n_classes)``."""
    n = draw(st.integers(min_size, max_size))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if draw(st.booleans()):  # the grid: exact IoUs, equal boxes, degenerate boxes
        boxes = draw(box_arrays(min_size=n, max_size=n))
    else:  # jittered copies of a few object boxes, as a detector proposes them
        objects = rng.uniform(0, 100, size=(draw(st.integers(1, 5)), 2))
        sizes = rng.uniform(5, 40, size=(len(objects), 2))
        which = rng.integers(len(objects), size=n)
        centres = objects[which] + rng.normal(0, 0.15, size=(n, 2)) * sizes[which]
        half = sizes[which] * np.exp(rng.normal(0, 0.2, size=(n, 2))) / 2
        boxes = np.concatenate([centres - half, centres + half], axis=1)
    scores = (rng.permutation(n) + rng.uniform(0.1, 0.9, size=n)) / n  # distinct, in (0, 1)
    threshold = draw(st.one_of(st.sampled_from([0.0, 0.3, 0.5, 0.7, 1.0]), st.floats(0.0, 1.0)))
    return {
        "boxes": boxes.astype(dtype),
        "scores": scores.astype(dtype),
        "iou_threshold": threshold,
        "idxs": rng.integers(0, n_classes, size=n),
    }


def _detections_of(rng, objects: np.ndarray, n: int, integer: bool) -> np.ndarray:
    """``n`` detections: shifted copies of random ``objects`` (random boxes if there are none)."""
    if len(objects) == 0:
        corner = rng.integers(0, 100, size=(n, 2)).astype(float)
        return np.concatenate([corner, corner + rng.integers(1, 60, size=(n, 2))], axis=1)
    moved = objects[rng.integers(0, len(objects), size=n)]
    moved = moved + (rng.integers(-6, 7, size=(n, 4)) if integer else rng.normal(0, 4, size=(n, 4)))
    return np.concatenate([np.minimum(moved[:, :2], moved[:, 2:]), np.maximum(moved[:, :2], moved[:, 2:])], axis=1)


def _objects(rng, n: int, integer: bool) -> np.ndarray:
    """``n`` ground-truth boxes with sides around COCO's 32 and 96 (some exactly on them),
    and sometimes an exact duplicate, so that IoU ties and area-range edges occur."""
    if integer:
        sides = rng.choice([4, 16, 31, 32, 33, 64, 95, 96, 97, 130], size=(n, 2)).astype(float)
        corner = rng.integers(0, 100, size=(n, 2)).astype(float)
    else:
        sides = np.exp(rng.uniform(np.log(4), np.log(200), size=(n, 2)))
        corner = rng.uniform(0, 100, size=(n, 2))
    boxes = np.concatenate([corner, corner + sides], axis=1)
    if n >= 2 and rng.random() < 0.4:
        boxes[1] = boxes[0]
    return boxes


def _scores(rng, n: int) -> np.ndarray:
    """Scores, half the time from three values so that ties occur."""
    return rng.choice([0.2, 0.5, 0.9], size=n) if rng.random() < 0.5 else rng.random(n)


@st.composite
def matching_cases(draw):
    """Keyword arguments for ``assign_detections``: one image and class, with IoU ties
    (integer boxes, duplicates), score ties, ignored ground truth and edge thresholds."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    integer = draw(st.booleans())
    gt_boxes = _objects(rng, draw(st.integers(0, 6)), integer)
    n = draw(st.integers(0, 10))
    return {
        "gt_boxes": gt_boxes,
        "det_boxes": _detections_of(rng, gt_boxes, n, integer),
        "det_scores": _scores(rng, n),
        "iou_threshold": draw(st.one_of(st.sampled_from([0.0, 0.5, 0.75, 0.95, 1.0]), st.floats(0.0, 1.0))),
        "gt_ignore": rng.random(len(gt_boxes)) < draw(st.sampled_from([0.0, 0.3, 1.0])),
    }


@st.composite
def detection_sets(draw, max_images: int = 4, n_classes: int = 3):
    """``(ground_truth, detections)`` for ``mean_average_precision``: a few images, classes
    0..n_classes-1, detections mostly shifted copies of the objects (some with the wrong
    class), score ties, IoU ties and boxes on COCO's area-range edges."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    integer = draw(st.booleans())
    ground_truth, detections = [], []
    for _ in range(draw(st.integers(1, max_images))):
        objects = _objects(rng, int(rng.integers(0, 6)), integer)
        labels = rng.integers(0, n_classes, size=len(objects))
        n = int(rng.integers(0, 12))
        boxes = _detections_of(rng, objects, n, integer)
        det_labels = rng.integers(0, n_classes, size=n)
        if len(objects):  # most copies keep the class of the object they copy
            source = np.argmin(np.abs(boxes[:, None, :] - objects[None]).sum(-1), axis=1)
            det_labels = np.where(rng.random(n) < 0.8, labels[source], det_labels)
        ground_truth.append({"boxes": objects, "labels": labels})
        detections.append({"boxes": boxes, "scores": _scores(rng, n), "labels": det_labels})
    return ground_truth, detections


@st.composite
def detection_outcomes(draw, max_size: int = 30):
    """``(scores, is_tp, num_gt)`` for ``precision_recall``: distinct scores in random
    order, and ``num_gt`` at least the number of true positives (and at least 1)."""
    is_tp = np.array(draw(st.lists(st.booleans(), max_size=max_size)), dtype=bool)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scores = rng.permutation(len(is_tp)) / max(len(is_tp), 1) + 0.01
    num_gt = max(int(is_tp.sum()), 1) + draw(st.integers(0, 5))
    return scores, is_tp, num_gt
