"""Oracles and checks shared by the test suite and the exercises' hidden tests.

An *oracle* computes the same quantity a different way from the code it checks, so a
bug in one is not repeated in the other: output sizes by sliding a window and
counting, receptive fields by following one output unit back to the input pixels it
depends on (:func:`cvprep.receptive_field.back_projection`). Where an oracle is
another ``cvprep`` function (``conv2d`` checks a learner's loops), that function is
itself tested against PyTorch in ``solutions/tests``.

The ``check_*`` functions take the function under test, run it on seeded random cases
and raise ``AssertionError`` describing the first case that fails. They print nothing:
nbgrader gives zero to a grade cell that writes to stderr. This module imports NumPy
only, so an exercise's hidden tests do not pay for importing torch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from cvprep import boxes, conv, detection_metrics, nms
from cvprep._validation import pair
from cvprep.receptive_field import back_projection

__all__ = [
    "output_size_by_counting",
    "receptive_field_by_back_projection",
    "random_conv2d_case",
    "random_pool_case",
    "random_layer_stack",
    "check_conv_output_size",
    "check_conv_output_size_rejects",
    "check_conv2d",
    "check_max_pool2d",
    "check_receptive_field",
    "random_boxes",
    "random_detections",
    "random_pr_curve",
    "check_box_iou",
    "check_generalized_box_iou",
    "check_nms",
    "check_soft_nms",
    "check_average_precision",
]


# Oracles -----------------------------------------------------------------------------

def output_size_by_counting(size: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Slide the dilated kernel along the padded input one step at a time and count the fits."""
    span = dilation * (kernel_size - 1) + 1
    count, left = 0, 0
    while left + span <= size + 2 * padding:
        count += 1
        left += stride
    return count


def receptive_field_by_back_projection(layers: Sequence[Sequence[int]]) -> list[tuple[int, int, float]]:
    """``(size, jump, start)`` after every layer, measured from back projections of units 0 and 1."""
    fields = []
    for depth in range(1, len(layers) + 1):
        unit0 = back_projection(layers[:depth], 0)[0]  # the input pixels unit 0 depends on
        unit1 = back_projection(layers[:depth], 1)[0]
        centre0 = (unit0[0] + unit0[-1]) / 2
        centre1 = (unit1[0] + unit1[-1]) / 2
        fields.append((unit0[-1] - unit0[0] + 1, int(centre1 - centre0), centre0))
    return fields


# Random cases ------------------------------------------------------------------------

CONV2D_KINDS = ("single_channel", "channels", "geometry", "groups")
POOL_KINDS = ("default_stride", "geometry")
STACK_KINDS = ("stride_one", "any")


def _int_or_pair(rng: np.random.Generator, low: int, high: int) -> int | tuple[int, int]:
    """An int in [low, high], or (a third of the time) a pair of them."""
    if rng.random() < 1 / 3:
        return (int(rng.integers(low, high + 1)), int(rng.integers(low, high + 1)))
    return int(rng.integers(low, high + 1))


def random_conv2d_case(rng: np.random.Generator, kind: str = "geometry") -> dict:
    """Keyword arguments for one small ``conv2d`` call, always with a non-empty output.

    Args:
        rng: the random generator (seed it).
        kind: ``"single_channel"`` (one input and one output channel, stride 1, no
            padding), ``"channels"`` (several channels and a bias), ``"geometry"``
            (adds stride, padding and dilation, ints or pairs) or ``"groups"`` (adds groups).
    """
    if kind not in CONV2D_KINDS:
        raise ValueError(f"kind must be one of {CONV2D_KINDS}, got {kind!r}")
    groups = int(rng.choice([1, 2, 3])) if kind == "groups" else 1
    c_in = 1 if kind == "single_channel" else groups * int(rng.integers(1, 4))
    c_out = 1 if kind == "single_channel" else groups * int(rng.integers(1, 4))
    kernel = _int_or_pair(rng, 1, 3) if kind != "single_channel" else int(rng.integers(1, 4))
    geometry = {"stride": 1, "padding": 0, "dilation": 1}
    if kind in ("geometry", "groups"):
        geometry = {"stride": _int_or_pair(rng, 1, 3), "padding": _int_or_pair(rng, 0, 2), "dilation": _int_or_pair(rng, 1, 2)}
    spans = [d * (k - 1) + 1 for k, d in zip(pair(kernel, "kernel_size", 1), pair(geometry["dilation"], "dilation", 1))]
    # at least one output position: H + 2p >= span
    h, w = (max(1, s - 2 * p) + int(rng.integers(0, 5)) for s, p in zip(spans, pair(geometry["padding"], "padding", 0)))
    case = {
        "x": rng.standard_normal((int(rng.integers(1, 3)), c_in, h, w)),
        "weight": rng.standard_normal((c_out, c_in // groups, *pair(kernel, "kernel_size", 1))),
        "bias": rng.standard_normal(c_out) if kind != "single_channel" else None,
        **geometry,
    }
    if kind == "groups":
        case["groups"] = groups
    return case


def random_pool_case(rng: np.random.Generator, kind: str = "geometry") -> dict:
    """Keyword arguments for one small pooling call (``"default_stride"`` or ``"geometry"``)."""
    if kind not in POOL_KINDS:
        raise ValueError(f"kind must be one of {POOL_KINDS}, got {kind!r}")
    kernel = _int_or_pair(rng, 1, 4)
    geometry: dict = {}
    padding = (0, 0)
    if kind == "geometry":
        padding = tuple(int(rng.integers(0, k // 2 + 1)) for k in pair(kernel, "kernel_size", 1))  # at most half the kernel
        geometry = {"stride": _int_or_pair(rng, 1, 3), "padding": padding}
    h, w = (max(1, k - 2 * p) + int(rng.integers(0, 6)) for k, p in zip(pair(kernel, "kernel_size", 1), padding))
    x = rng.standard_normal((int(rng.integers(1, 3)), int(rng.integers(1, 4)), h, w))
    return {"x": x, "kernel_size": kernel, **geometry}


def random_layer_stack(rng: np.random.Generator, kind: str = "any") -> list[tuple[int, int, int, int]]:
    """One to five ``(kernel_size, stride, padding, dilation)`` layers of ints.

    ``"stride_one"`` keeps stride and dilation at 1; ``"any"`` draws all four.
    """
    if kind not in STACK_KINDS:
        raise ValueError(f"kind must be one of {STACK_KINDS}, got {kind!r}")
    layers = []
    for _ in range(int(rng.integers(1, 6))):
        kernel = int(rng.integers(1, 8))
        if kind == "stride_one":
            layers.append((kernel, 1, int(rng.integers(0, kernel)), 1))
        else:
            layers.append((kernel, int(rng.integers(1, 4)), int(rng.integers(0, kernel)), int(rng.integers(1, 4))))
    return layers


# Checks ------------------------------------------------------------------------------

def _describe_call(name: str, kwargs: dict) -> str:
    parts = []
    for key, value in kwargs.items():
        if isinstance(value, np.ndarray):
            parts.append(f"{key}=<array of shape {value.shape}>")
        elif value is not None:
            parts.append(f"{key}={value!r}")
    return f"{name}({', '.join(parts)})"


def _assert_array_matches(got: object, expected: np.ndarray, call: str) -> None:
    if not isinstance(got, np.ndarray):
        raise AssertionError(f"{call} returned {type(got).__name__}, expected a numpy.ndarray")
    if got.shape != expected.shape:
        raise AssertionError(f"{call} returned shape {got.shape}, expected {expected.shape}")
    if not np.allclose(got, expected, rtol=1e-6, atol=1e-8):
        where = np.unravel_index(np.argmax(np.abs(got - expected)), expected.shape)
        raise AssertionError(
            f"{call} is wrong: at index {tuple(int(i) for i in where)} it returned {got[where]:.6g}, "
            f"expected {expected[where]:.6g} (max abs difference {np.max(np.abs(got - expected)):.3g})"
        )


def check_conv_output_size(fn: Callable[..., int], n_cases: int = 200, seed: int = 0) -> None:
    """Compare ``fn`` with sliding-and-counting on random valid arguments."""
    rng = np.random.default_rng(seed)
    for _ in range(n_cases):
        kernel, stride, padding, dilation = (int(rng.integers(1, 8)), int(rng.integers(1, 5)),
                                             int(rng.integers(0, 4)), int(rng.integers(1, 4)))
        span = dilation * (kernel - 1) + 1
        size = max(1, span - 2 * padding) + int(rng.integers(0, 20))
        kwargs = {"size": size, "kernel_size": kernel, "stride": stride, "padding": padding, "dilation": dilation}
        expected = output_size_by_counting(**kwargs)
        got = fn(**kwargs)
        if got != expected:
            raise AssertionError(f"{_describe_call('conv_output_size', kwargs)} returned {got!r}, expected {expected}")


def _expect_value_error(fn: Callable, name: str, kwargs: dict) -> None:
    try:
        result = fn(**kwargs)
    except ValueError:
        return
    except Exception as error:  # noqa: BLE001 - any other exception is the learner's bug to see
        raise AssertionError(
            f"{_describe_call(name, kwargs)} raised {type(error).__name__}: {error}; expected ValueError"
        ) from None
    raise AssertionError(f"{_describe_call(name, kwargs)} returned {result!r}; expected it to raise ValueError")


def check_conv_output_size_rejects(fn: Callable[..., int], n_cases: int = 50, seed: int = 0) -> None:
    """``fn`` must raise ValueError for an out-of-range argument or an empty output."""
    rng = np.random.default_rng(seed)
    for _ in range(n_cases):
        kernel, padding, dilation = int(rng.integers(2, 8)), int(rng.integers(0, 3)), int(rng.integers(1, 4))
        span = dilation * (kernel - 1) + 1
        too_small = span - 2 * padding - 1  # one pixel short of a single window
        if too_small >= 1:
            _expect_value_error(fn, "conv_output_size",
                                {"size": too_small, "kernel_size": kernel, "stride": 1, "padding": padding, "dilation": dilation})
    valid = {"size": 8, "kernel_size": 3, "stride": 1, "padding": 0, "dilation": 1}
    for key, bad in (("size", 0), ("kernel_size", 0), ("stride", 0), ("padding", -1), ("dilation", 0)):
        _expect_value_error(fn, "conv_output_size", {**valid, key: bad})


def check_conv2d(fn: Callable[..., np.ndarray], kind: str = "geometry", n_cases: int = 25, seed: int = 0) -> None:
    """Compare ``fn`` with :func:`cvprep.conv.conv2d` on random cases of one ``kind``.

    See :func:`random_conv2d_case` for the kinds. Arguments are passed by keyword,
    with the names of ``torch.nn.functional.conv2d``.
    """
    rng = np.random.default_rng(seed)
    for _ in range(n_cases):
        kwargs = random_conv2d_case(rng, kind)
        if kwargs["bias"] is None:
            del kwargs["bias"]
        expected = conv.conv2d(**kwargs)
        _assert_array_matches(fn(**{k: v.copy() if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}),
                              expected, _describe_call("conv2d", kwargs))


def check_max_pool2d(fn: Callable[..., np.ndarray], kind: str = "geometry", n_cases: int = 25, seed: int = 0) -> None:
    """Compare ``fn`` with :func:`cvprep.conv.max_pool2d` on random cases of one ``kind``."""
    rng = np.random.default_rng(seed)
    for _ in range(n_cases):
        kwargs = random_pool_case(rng, kind)
        expected = conv.max_pool2d(**kwargs)
        _assert_array_matches(fn(**{**kwargs, "x": kwargs["x"].copy()}), expected, _describe_call("max_pool2d", kwargs))


def check_receptive_field(fn: Callable[[list], list], kind: str = "any", n_cases: int = 50, seed: int = 0) -> None:
    """Compare ``fn`` with :func:`receptive_field_by_back_projection` on random stacks."""
    rng = np.random.default_rng(seed)
    for _ in range(n_cases):
        layers = random_layer_stack(rng, kind)
        expected = receptive_field_by_back_projection(layers)
        got = fn(list(layers))
        call = f"receptive_field({layers})"
        if not isinstance(got, (list, tuple)) or len(got) != len(expected):
            raise AssertionError(f"{call} must return one (size, jump, start) per layer ({len(expected)}), got {got!r}")
        for index, (field, (size, jump, start)) in enumerate(zip(got, expected)):
            if len(tuple(field)) != 3:
                raise AssertionError(f"{call}[{index}] must be a (size, jump, start) triple, got {field!r}")
            got_size, got_jump, got_start = field
            if got_size != size or got_jump != jump or not np.isclose(got_start, start):
                raise AssertionError(
                    f"{call}[{index}] = ({got_size}, {got_jump}, {got_start}), expected ({size}, {jump}, {start})"
                )


# Detection: boxes, NMS and average precision --------------------------------------------
# The oracles are cvprep's own functions, each tested against torchvision (boxes, NMS) or
# pycocotools (AP, in benchmarks/bench_map.py) in solutions/tests.

BOX_KINDS = ("general", "grid")


def random_boxes(rng: np.random.Generator, n: int, kind: str = "general") -> np.ndarray:
    """``n`` boxes ``(x1, y1, x2, y2)``, float64.

    ``"general"``: real-valued corners and sizes. ``"grid"``: integer corners on a small
    grid, so that boxes often coincide, touch along an edge or have zero width or height.
    """
    if kind == "grid":
        corner = rng.integers(0, 6, size=(n, 2))
        size = rng.integers(0, 5, size=(n, 2))
    else:
        corner = rng.uniform(0, 50, size=(n, 2))
        size = rng.uniform(0.5, 30, size=(n, 2))
    return np.concatenate([corner, corner + size], axis=1).astype(np.float64)


def random_detections(rng: np.random.Generator, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A crowded scene for NMS: clusters of jittered boxes around a few objects, and scores.

    Scores are distinct unless ``ties``, which draws them from a handful of values.
    """
    objects = random_boxes(rng, int(rng.integers(1, 5)))  # [K, 4]
    per_object = rng.integers(1, 8, size=len(objects))
    boxes = np.repeat(objects, per_object, axis=0)  # [N, 4]
    sizes = np.tile(boxes[:, 2:] - boxes[:, :2], 2)  # [N, 4]
    jittered = boxes + rng.normal(0, 0.15, size=boxes.shape) * sizes
    boxes = np.concatenate([np.minimum(jittered[:, :2], jittered[:, 2:]),
                            np.maximum(jittered[:, :2], jittered[:, 2:])], axis=1)
    if ties:
        scores = rng.choice([0.3, 0.5, 0.9], size=len(boxes))
    else:
        scores = rng.permutation(len(boxes)) / len(boxes) + 0.01
    return boxes, scores.astype(np.float64)


def _copies(*arrays: np.ndarray) -> list[np.ndarray]:
    return [a.copy() for a in arrays]


def _check_pairwise(fn: Callable, oracle: Callable, name: str, kind: str, n_cases: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(n_cases):
        boxes1 = random_boxes(rng, int(rng.integers(0, 6)), kind)
        boxes2 = random_boxes(rng, int(rng.integers(0, 6)), kind)
        call = f"{name}(boxes1={boxes1.tolist()}, boxes2={boxes2.tolist()})"
        _assert_array_matches(fn(*_copies(boxes1, boxes2)), oracle(boxes1, boxes2), call)


def check_box_iou(fn: Callable, kind: str = "general", n_cases: int = 40, seed: int = 0) -> None:
    """Compare ``fn`` with :func:`cvprep.boxes.box_iou` on random box sets of one ``kind``."""
    _check_pairwise(fn, boxes.box_iou, "box_iou", kind, n_cases, seed)


def check_generalized_box_iou(fn: Callable, kind: str = "general", n_cases: int = 40, seed: int = 0) -> None:
    """Compare ``fn`` with :func:`cvprep.boxes.generalized_box_iou` on random box sets."""
    _check_pairwise(fn, boxes.generalized_box_iou, "generalized_box_iou", kind, n_cases, seed)


def _indices(got: object, call: str) -> np.ndarray:
    if not isinstance(got, np.ndarray) or not np.issubdtype(got.dtype, np.integer) or got.ndim != 1:
        raise AssertionError(f"{call} must return a 1-D integer ndarray of indices, got {got!r}")
    return got


def check_nms(fn: Callable, ties: bool = False, n_cases: int = 40, seed: int = 0) -> None:
    """Compare ``fn`` with :func:`cvprep.nms.nms` on random crowded scenes."""
    rng = np.random.default_rng(seed)
    for _ in range(n_cases):
        scene_boxes, scores = random_detections(rng, ties)
        threshold = float(rng.choice([0.0, 0.3, 0.5, 0.7, 1.0]))
        call = f"nms(boxes={scene_boxes.tolist()}, scores={scores.tolist()}, iou_threshold={threshold})"
        got = _indices(fn(*_copies(scene_boxes, scores), threshold), call)
        expected = nms.nms(scene_boxes, scores, threshold)
        if not np.array_equal(got, expected):
            raise AssertionError(f"{call} returned {got.tolist()}, expected {expected.tolist()}")


def check_soft_nms(fn: Callable, method: str = "gaussian", n_cases: int = 30, seed: int = 0) -> None:
    """Compare ``fn`` with :func:`cvprep.nms.soft_nms`; the inputs must come back unchanged."""
    rng = np.random.default_rng(seed)
    for _ in range(n_cases):
        scene_boxes, scores = random_detections(rng)
        kwargs = {"iou_threshold": float(rng.choice([0.3, 0.5])), "sigma": float(rng.choice([0.2, 0.5, 1.0])),
                  "score_threshold": float(rng.choice([0.001, 0.1])), "method": method}
        call = f"soft_nms(boxes={scene_boxes.tolist()}, scores={scores.tolist()}, " + \
            ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) + ")"
        given_boxes, given_scores = _copies(scene_boxes, scores)
        got = fn(given_boxes, given_scores, **kwargs)
        if not np.array_equal(given_boxes, scene_boxes) or not np.array_equal(given_scores, scores):
            raise AssertionError(f"{call} modified its arguments; work on copies")
        if not isinstance(got, tuple) or len(got) != 2:
            raise AssertionError(f"{call} must return a pair (keep, new_scores), got {got!r}")
        keep, new_scores = _indices(got[0], call), got[1]
        expected_keep, expected_scores = nms.soft_nms(scene_boxes, scores, **kwargs)
        if not np.array_equal(keep, expected_keep):
            raise AssertionError(f"{call} kept {keep.tolist()}, expected {expected_keep.tolist()}")
        _assert_array_matches(new_scores, expected_scores, f"the new_scores of {call}")


def random_pr_curve(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Recall and precision after each of a random list of true and false positives."""
    is_tp = rng.random(int(rng.integers(0, 30))) < rng.uniform(0.1, 0.9)
    num_gt = int(is_tp.sum()) + int(rng.integers(0 if is_tp.any() else 1, 6))
    scores = np.linspace(1.0, 0.0, len(is_tp), endpoint=False)  # already sorted
    return detection_metrics.precision_recall(scores, is_tp, num_gt)


def check_average_precision(fn: Callable, n_cases: int = 200, seed: int = 0) -> None:
    """Compare ``fn(recall, precision)`` with COCO's 101-point :func:`cvprep.detection_metrics.average_precision`."""
    rng = np.random.default_rng(seed)
    for _ in range(n_cases):
        recall, precision = random_pr_curve(rng)
        call = f"average_precision(recall={recall.tolist()}, precision={precision.tolist()})"
        got = fn(*_copies(recall, precision))
        expected = detection_metrics.average_precision(recall, precision, method="coco101")
        if not isinstance(got, (float, np.floating)) or not np.isclose(got, expected, rtol=1e-9, atol=1e-12):
            raise AssertionError(f"{call} returned {got!r}, expected {expected!r}")
