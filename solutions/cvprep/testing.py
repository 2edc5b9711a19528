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


# Chapter 05: focal and distillation losses, Grad-CAM, FGSM ---------------------------------
# These checks need torch (the focal loss's also torchvision). They import it when called,
# so that importing this module stays NumPy-only for the exercises that never use torch.
# Their oracles share no code with cvprep: torchvision's sigmoid_focal_loss, torch's kl_div,
# gradients of tiny networks and of a linear classifier derived by hand.

__all__ += [
    "check_focal_loss",
    "check_distillation_loss",
    "grad_cam_by_hand",
    "random_cam_network",
    "check_grad_cam",
    "fgsm_linear_by_hand",
    "check_fgsm",
]

FOCAL_KINDS = ("elementwise", "reductions")
DISTILLATION_KINDS = ("values", "gradients")
GRAD_CAM_KINDS = ("full_resolution", "coarse", "model_kept")
FGSM_KINDS = ("linear", "budget", "model_kept")


def _check_kind(kind: str, kinds: tuple[str, ...]) -> None:
    if kind not in kinds:
        raise ValueError(f"kind must be one of {kinds}, got {kind!r}")


def _torch_tensor(array: np.ndarray, dtype):
    import torch

    return torch.from_numpy(np.ascontiguousarray(array)).to(dtype)


def _describe_model(model) -> str:
    """One line: the model's layers in order, e.g. ``<Conv2d(2, 4), ReLU, Linear(4, 3), training mode>``."""
    layers = []
    for module in model.modules():
        if next(module.children(), None) is not None:
            continue  # a container: its layers are listed
        sizes = [getattr(module, a) for a in ("in_channels", "out_channels", "in_features", "out_features")
                 if hasattr(module, a)]
        layers.append(type(module).__name__ + (f"({', '.join(map(str, sizes))})" if sizes else ""))
    return f"<{', '.join(layers)}{', training mode' if model.training else ''}>"


def _describe_torch_call(name: str, args: dict) -> str:
    """``name(a=<tensor of shape (2, 3), float64>, b=0.5)``: tensors by shape, models by layers, the rest by value."""
    parts = []
    for key, value in args.items():
        if hasattr(value, "modules") and hasattr(value, "training"):
            parts.append(f"{key}={_describe_model(value)}")
        elif hasattr(value, "shape") and hasattr(value, "dtype"):
            parts.append(f"{key}=<tensor of shape {tuple(value.shape)}, {str(value.dtype).replace('torch.', '')}>")
        else:
            parts.append(f"{key}={value!r}")
    return f"{name}({', '.join(parts)})"


def _assert_tensor_matches(got: object, expected, call: str, rtol: float | None = None,
                           atol: float | None = None) -> None:
    """``got`` must be a tensor of ``expected``'s shape and dtype, close to it (torch's default
    tolerances for the dtype unless given)."""
    import torch

    if not isinstance(got, torch.Tensor):
        raise AssertionError(f"{call} returned {type(got).__name__}, expected a torch.Tensor")
    if got.shape != expected.shape:
        raise AssertionError(f"{call} returned shape {tuple(got.shape)}, expected {tuple(expected.shape)}")
    if got.dtype != expected.dtype:
        raise AssertionError(f"{call} returned dtype {got.dtype}, expected {expected.dtype} (the inputs' dtype)")
    got = got.detach()
    try:
        torch.testing.assert_close(got, expected, rtol=rtol, atol=atol)
    except AssertionError:
        difference = (got - expected).abs().nan_to_num(nan=float("inf"))
        where = np.unravel_index(int(difference.argmax()), tuple(expected.shape)) if expected.ndim else ()
        index = tuple(int(i) for i in where)
        raise AssertionError(
            f"{call} is wrong: at index {index} it returned {got[index].item():.6g}, "
            f"expected {expected[index].item():.6g}"
        ) from None


def _expect_raises(error: type, call: str, run: Callable[[], object]) -> None:
    try:
        result = run()
    except error:
        return
    except Exception as caught:  # noqa: BLE001 - any other exception is the learner's bug to see
        raise AssertionError(f"{call} raised {type(caught).__name__}: {caught}; expected {error.__name__}") from None
    raise AssertionError(f"{call} returned {type(result).__name__}; expected it to raise {error.__name__}")


# Focal loss and distillation --------------------------------------------------------------

def _random_shape(rng: np.random.Generator) -> tuple[int, ...]:
    """[N], [N, C] or [N, C, H, W], small."""
    n = int(rng.integers(1, 7))
    return [(n,), (n, int(rng.integers(1, 6))), (n, int(rng.integers(1, 4)), 3, 2)][int(rng.integers(0, 3))]


def check_focal_loss(fn: Callable, kind: str = "elementwise", n_cases: int = 40, seed: int = 0) -> None:
    """Compare ``fn(logits, targets, alpha=, gamma=, reduction=)`` with ``torchvision.ops.sigmoid_focal_loss``.

    ``"elementwise"``: reduction ``"none"``, logits of moderate size. ``"reductions"``:
    also ``"mean"`` and ``"sum"``, on logits that are often between 50 and 1000 in size,
    where ``log(sigmoid(x))`` gives infinity (torchvision's loss stays exact there); an
    unknown reduction must raise ValueError. Targets are 0.0 or 1.0, the dtype float32 or
    float64, ``alpha`` one of 0.25, 0.5, 0, 1 and -1 (no weighting), ``gamma`` one of 0,
    0.5, 1, 2 and 3.
    """
    _check_kind(kind, FOCAL_KINDS)
    import torch
    from torchvision.ops import sigmoid_focal_loss

    rng = np.random.default_rng(seed)
    for _ in range(n_cases):
        shape = _random_shape(rng)
        logits = rng.normal(0.0, 3.0, size=shape)
        if kind == "reductions":
            huge = rng.choice([-1.0, 1.0], size=shape) * rng.uniform(50.0, 1000.0, size=shape)
            logits = np.where(rng.random(shape) < 0.4, huge, logits)
        dtype = torch.float64 if rng.random() < 0.5 else torch.float32
        x, t = _torch_tensor(logits, dtype), _torch_tensor((rng.random(shape) < 0.4).astype(np.float64), dtype)
        kwargs = {"alpha": float(rng.choice([0.25, 0.5, 0.0, 1.0, -1.0])),
                  "gamma": float(rng.choice([0.0, 0.5, 1.0, 2.0, 3.0])),
                  "reduction": "none" if kind == "elementwise" else str(rng.choice(["none", "mean", "sum"]))}
        call = _describe_torch_call("focal_loss", {"logits": x, "targets": t, **kwargs})
        _assert_tensor_matches(fn(x.clone(), t.clone(), **kwargs), sigmoid_focal_loss(x, t, **kwargs), call)
    if kind == "reductions":
        x, t = torch.zeros(3), torch.ones(3)
        _expect_raises(ValueError, "focal_loss(logits, targets, reduction='average')",
                       lambda: fn(x, t, reduction="average"))


def _distillation_case(rng: np.random.Generator):
    import torch

    n, c = int(rng.integers(1, 7)), int(rng.integers(2, 7))
    student = _torch_tensor(rng.normal(0.0, 3.0, size=(n, c)), torch.float64)
    teacher = _torch_tensor(rng.normal(0.0, 3.0, size=(n, c)), torch.float64)
    targets = torch.from_numpy(rng.integers(0, c, size=n)).to(torch.int64)
    temperature = float(rng.choice([0.5, 1.0, 2.0, 4.0, 10.0]))
    alpha = float(rng.choice([0.0, 0.3, 0.5, 0.9, 1.0]))
    return student, teacher, targets, temperature, alpha


def _check_distillation_value(fn: Callable, case: tuple, call: str) -> None:
    import torch.nn.functional as F

    student, teacher, targets, t, alpha = case
    soft = F.kl_div(F.log_softmax(student / t, dim=1), F.log_softmax(teacher / t, dim=1),
                    reduction="batchmean", log_target=True)
    expected = alpha * t**2 * soft + (1 - alpha) * F.cross_entropy(student, targets)
    _assert_tensor_matches(fn(student.clone(), teacher.clone(), targets.clone(), t, alpha), expected, call)


def _check_distillation_gradient(fn: Callable, case: tuple, call: str) -> None:
    import torch
    import torch.nn.functional as F

    student, teacher, targets, t, alpha = case
    s, v = student.clone().requires_grad_(True), teacher.clone().requires_grad_(True)
    loss = fn(s, v, targets.clone(), t, alpha)
    if not isinstance(loss, torch.Tensor) or loss.grad_fn is None:
        raise AssertionError(f"{call} must return a tensor differentiable with respect to student_logits")
    grad_student, grad_teacher = torch.autograd.grad(loss, [s, v], allow_unused=True)
    if grad_teacher is not None and grad_teacher.abs().max() > 0:
        raise AssertionError(f"{call} lets gradients reach teacher_logits: the teacher is a fixed target, "
                             "detach its logits")
    if grad_student is None:
        raise AssertionError(f"{call} gives the student logits no gradient")
    q, p = F.softmax(student / t, dim=1), F.softmax(teacher / t, dim=1)
    onehot = F.one_hot(targets, student.shape[1]).to(student.dtype)
    expected = (alpha * t * (q - p) + (1 - alpha) * (F.softmax(student, dim=1) - onehot)) / len(student)
    _assert_tensor_matches(grad_student, expected, f"the gradient of {call} with respect to student_logits")


def check_distillation_loss(fn: Callable, kind: str = "values", n_cases: int = 30, seed: int = 0) -> None:
    """Check ``fn(student_logits, teacher_logits, targets, temperature, alpha)`` on random float64 batches.

    ``"values"``: the loss equals ``alpha T^2 KL(p || q) + (1 - alpha) CE``, written with
    ``F.kl_div`` of ``log_softmax`` outputs (``reduction="batchmean"``) and ``F.cross_entropy``;
    a temperature <= 0 and an alpha outside [0, 1] must raise ValueError.
    ``"gradients"``: the gradient with respect to the student logits is the closed form
    ``(alpha T (q - p) + (1 - alpha) (softmax(z) - onehot)) / N`` (``p``, ``q`` the
    softened teacher and student), and none reaches the teacher's logits.
    """
    _check_kind(kind, DISTILLATION_KINDS)
    check = _check_distillation_value if kind == "values" else _check_distillation_gradient
    rng = np.random.default_rng(seed)
    for _ in range(n_cases):
        case = _distillation_case(rng)
        call = _describe_torch_call("distillation_loss", dict(zip(
            ("student_logits", "teacher_logits", "targets", "temperature", "alpha"), case)))
        check(fn, case, call)
    if kind == "values":
        student, teacher, targets, _, _ = _distillation_case(rng)
        for temperature, alpha in ((0.0, 0.5), (-1.0, 0.5), (2.0, 1.5), (2.0, -0.1)):
            _expect_raises(ValueError, f"distillation_loss(..., temperature={temperature}, alpha={alpha})",
                           lambda: fn(student, teacher, targets, temperature, alpha))


# Grad-CAM ---------------------------------------------------------------------------------
# The networks are features -> head (-> an optional positive scale of the logits), with a
# head simple enough that dy_c / dA is written by hand: global average pooling and a linear
# layer, optionally after a ReLU, or after a 1x1 convolution and a ReLU.

CAM_HEADS = ("linear", "relu", "conv")


def _fill(module, rng: np.random.Generator, scale: float = 0.5) -> None:
    """Overwrite every parameter of ``module`` with seeded normal values (fixed weights)."""
    import torch

    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(_torch_tensor(rng.normal(0.0, scale, size=tuple(parameter.shape)), parameter.dtype))


def random_cam_network(rng: np.random.Generator, kind: str = "full_resolution", in_channels: int = 2,
                       num_classes: int = 3):
    """A tiny float64 network ``nn.Sequential(features=..., head=...[, scale=...])`` with fixed weights.

    ``features`` ends in the layer Grad-CAM explains, ``K`` channels; ``"full_resolution"``
    keeps the image's size there, ``"coarse"`` halves it (max or average pooling, or a
    stride-2 convolution) and may scale the logits by a positive constant (which must
    not change the maps), ``"model_kept"`` adds an eval-mode batch norm or returns the
    network in training mode (no batch norm then), with its parameters sometimes frozen.
    The head is one of :data:`CAM_HEADS`. Returns ``(model, target_layer)``: the target
    layer is ``model.features`` or its last layer (the same output).
    """
    _check_kind(kind, GRAD_CAM_KINDS)
    from collections import OrderedDict

    import torch
    from torch import nn

    hidden, channels = int(rng.integers(2, 5)), int(rng.integers(1, 5))
    layers = [nn.Conv2d(in_channels, hidden, 3, padding=1), nn.ReLU()]
    batch_norm = kind == "model_kept" and rng.random() < 0.5
    if batch_norm:
        layers.insert(1, nn.BatchNorm2d(hidden))
    if kind == "coarse":
        layers.append([nn.MaxPool2d(2), nn.AvgPool2d(2), nn.Conv2d(hidden, hidden, 3, stride=2, padding=1)][
            int(rng.integers(0, 3))])
    layers.append(nn.Conv2d(hidden, channels, 3, padding=1))
    head_kind = CAM_HEADS[int(rng.integers(0, len(CAM_HEADS)))]
    width = int(rng.integers(2, 5)) if head_kind == "conv" else channels
    head = {"linear": [], "relu": [nn.ReLU()], "conv": [nn.Conv2d(channels, width, 1), nn.ReLU()]}[head_kind]
    head += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes)]
    parts = OrderedDict(features=nn.Sequential(*layers), head=nn.Sequential(*head))
    if kind == "coarse" and rng.random() < 0.5:
        parts["scale"] = nn.Linear(num_classes, num_classes, bias=False)
    model = nn.Sequential(parts).to(torch.float64)
    _fill(model, rng)
    with torch.no_grad():
        if "scale" in parts:  # a positive multiple of the identity
            model.scale.weight.copy_(float(rng.uniform(0.1, 10.0)) * torch.eye(num_classes))
        if batch_norm:
            model.features[1].running_mean.copy_(_torch_tensor(rng.normal(0, 0.5, hidden), torch.float64))
            model.features[1].running_var.copy_(_torch_tensor(rng.uniform(0.5, 2.0, hidden), torch.float64))
    model.train(kind == "model_kept" and not batch_norm and rng.random() < 0.5)
    if kind == "model_kept" and rng.random() < 0.5:
        model.requires_grad_(False)
    target = model.features if rng.random() < 0.5 else model.features[-1]
    return model, target


def grad_cam_by_hand(model, images, target_classes):
    """Grad-CAM of a :func:`random_cam_network`, without hooks or autograd: [N, H, W] in [0, 1].

    ``A = features(images)``; the head's gradient is written out: with ``u`` the linear
    layer's row for the class (times the scale, if any) and ``h w`` the map's size,
    ``dy / dA = u / (h w)`` through the average pooling, times ``[A > 0]`` through a ReLU,
    and ``V^T (u / (h w) [z > 0])`` through a 1x1 convolution ``z = V A + b`` and a ReLU.
    Then ``alpha = mean_ij dy / dA``, ``ReLU(sum_k alpha_k A_k)``, bilinear upsampling
    (``align_corners=False``) and division by the maximum (an all-zero map stays zero).
    """
    import torch
    import torch.nn.functional as F
    from torch import nn

    with torch.no_grad():
        activations = model.features(images)  # [N, K, h, w]
        rows = model.head[-1].weight[target_classes]  # [N, width]
        if hasattr(model, "scale"):
            rows = rows * model.scale.weight.diagonal()[target_classes][:, None]
        h, w = activations.shape[2:]
        layers = list(model.head)
        gradient = rows[:, :, None, None].expand(-1, -1, h, w) / (h * w)  # dy / d(pooled input)
        if isinstance(layers[0], nn.Conv2d):  # 1x1 convolution, then ReLU
            z = layers[0](activations)  # [N, width, h, w]
            gradient = torch.einsum("nmhw,mk->nkhw", gradient * (z > 0), layers[0].weight[:, :, 0, 0])
        elif isinstance(layers[0], nn.ReLU):
            gradient = gradient * (activations > 0)
        alphas = gradient.mean(dim=(2, 3))  # [N, K]
        cam = (alphas[:, :, None, None] * activations).sum(dim=1).clamp(min=0)  # [N, h, w]
        cam = F.interpolate(cam[:, None], size=tuple(images.shape[2:]), mode="bilinear", align_corners=False)[:, 0]
        peaks = cam.flatten(1).max(dim=1).values  # [N]
        return torch.stack([m / p if p > 0 else m for m, p in zip(cam, peaks)]) if len(cam) else cam


def _snapshot(model, *tensors) -> tuple:
    """What a check compares after the call: the state dict, the mode, copies of ``tensors``."""
    return {name: value.clone() for name, value in model.state_dict().items()}, model.training, \
        [t.clone() for t in tensors]


def _check_left_alone(model, snapshot: tuple, tensors: Sequence, call: str) -> None:
    """No hooks and no ``.grad`` left on ``model``; its state, its mode and ``tensors`` as in ``snapshot``."""
    import torch

    state, training, copies = snapshot
    if sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules()):
        raise AssertionError(f"{call} left hooks on the model: remove every hook it registers")
    if any(p.grad is not None for p in model.parameters()):
        raise AssertionError(f"{call} left .grad on the model's parameters: take gradients with "
                             "torch.autograd.grad, not .backward()")
    if model.training != training:
        raise AssertionError(f"{call} switched the model to {'training' if model.training else 'eval'} mode")
    changed = [name for name, value in model.state_dict().items() if not torch.equal(state[name], value)]
    if changed:
        raise AssertionError(f"{call} changed the model's {changed[0]} (a forward pass in training mode "
                             "updates batch norm's statistics: put them back)")
    if any(not torch.equal(t, copy) for t, copy in zip(tensors, copies)):
        raise AssertionError(f"{call} modified its tensor arguments")


def _maybe_without_grad(rng: np.random.Generator, kind: str):
    """``torch.no_grad()`` half of the time for the ``"model_kept"`` kind, else a do-nothing context."""
    import contextlib

    import torch

    return torch.no_grad() if kind == "model_kept" and rng.random() < 0.5 else contextlib.nullcontext()


def check_grad_cam(fn: Callable, kind: str = "full_resolution", n_cases: int = 12, seed: int = 0) -> None:
    """Compare ``fn(model, target_layer, images, target_classes)`` with :func:`grad_cam_by_hand`.

    The networks come from :func:`random_cam_network` (see its kinds). With
    ``"model_kept"``, ``fn`` is also called inside ``torch.no_grad()`` half of the time,
    and must leave the model as it was: parameters, no hooks, no ``.grad``, same mode;
    and ``images`` unchanged.
    """
    _check_kind(kind, GRAD_CAM_KINDS)
    import torch

    rng = np.random.default_rng(seed)
    for _ in range(n_cases):
        model, target = random_cam_network(rng, kind)
        n = int(rng.integers(1, 5))
        size = (int(rng.integers(3, 9)),) * 2 if kind == "full_resolution" else tuple(rng.integers(4, 13, size=2))
        images = _torch_tensor(rng.normal(0.0, 1.0, size=(n, 2, *size)), torch.float64)
        classes = torch.from_numpy(rng.integers(0, 3, size=n)).to(torch.int64)
        expected = grad_cam_by_hand(model, images, classes)
        which = "model.features" if target is model.features else "model.features[-1]"
        call = f"grad_cam(model={_describe_model(model)}, target_layer={which}, " \
               f"images=<tensor of shape {tuple(images.shape)}>, target_classes={classes.tolist()})"
        snapshot = _snapshot(model, images, classes)
        context = _maybe_without_grad(rng, kind)
        with context:
            got = fn(model, target, images, classes)
        if isinstance(context, torch.no_grad):
            call += ", called inside torch.no_grad()"
        _assert_tensor_matches(got, expected, call, rtol=1e-6, atol=1e-9)
        if kind == "model_kept":
            _check_left_alone(model, snapshot, [images, classes], call)


# FGSM -------------------------------------------------------------------------------------

def fgsm_linear_by_hand(weight, bias, images, targets, epsilon: float, clamp=(0.0, 1.0)):
    """FGSM on the linear classifier ``logits = W x + b`` (``x`` an image flattened), in closed form.

    For cross-entropy with true class ``y``, ``dCE / dz = softmax(z) - e_y``, so the
    gradient with respect to ``x`` is ``W^T (softmax(z) - e_y)``; the attack adds
    ``epsilon`` times its sign and clips to ``clamp`` (``None``: no clipping).
    """
    import torch
    import torch.nn.functional as F

    with torch.no_grad():
        logits = images.flatten(1) @ weight.T + bias  # [N, K]
        residual = F.softmax(logits, dim=1) - F.one_hot(targets, weight.shape[0]).to(logits.dtype)  # [N, K]
        gradient = (residual @ weight).view_as(images)  # [N, C, H, W]
        moved = images + epsilon * gradient.sign()
        return moved if clamp is None else moved.clamp(*clamp)


def _fgsm_images(rng: np.random.Generator, shape: tuple[int, ...], clamp) -> np.ndarray:
    """Images inside ``clamp``, about a sixth of the values exactly on its bounds; normal if ``None``."""
    if clamp is None:
        return rng.normal(0.0, 1.0, size=shape)
    low, high = clamp
    values = rng.uniform(low - 0.1 * (high - low), high + 0.1 * (high - low), size=shape)
    return np.clip(values, low, high)


def _random_attacked_cnn(rng: np.random.Generator, channels: int, batch_norm: bool):
    from torch import nn

    hidden = int(rng.integers(2, 5))
    layers = [nn.Conv2d(channels, hidden, 3, padding=1), *([nn.BatchNorm2d(hidden)] if batch_norm else []), nn.Tanh(),
              nn.AvgPool2d(2), nn.Flatten(), nn.Linear(hidden * 9, int(rng.integers(2, 5)))]
    model = nn.Sequential(*layers).double()
    _fill(model, rng)
    return model


def _check_fgsm_result(got, images, epsilon: float, clamp, call: str) -> None:
    """Properties of any FGSM result: the shape and dtype, detached, in the ball, in the range,
    and every value moved by epsilon, not at all, or onto a bound."""
    import torch

    if not isinstance(got, torch.Tensor) or got.shape != images.shape or got.dtype != images.dtype:
        what = f"shape {tuple(got.shape)}, {got.dtype}" if isinstance(got, torch.Tensor) else type(got).__name__
        raise AssertionError(f"{call} returned {what}; expected a tensor of images' shape "
                             f"{tuple(images.shape)} and dtype {images.dtype}")
    if got.requires_grad:
        raise AssertionError(f"{call} returned a tensor that requires grad: detach it")
    step = (got - images).abs()
    if step.max() > epsilon + 1e-12:
        raise AssertionError(f"{call} moved a value by {step.max().item():.6g}, more than epsilon = {epsilon}")
    low, high = clamp if clamp is not None else (-float("inf"), float("inf"))
    if got.min() < low or got.max() > high:
        raise AssertionError(f"{call} left the range {clamp}: values from {got.min().item():.6g} "
                             f"to {got.max().item():.6g}")
    allowed = (step < 1e-12) | ((step - epsilon).abs() < 1e-12) | (got == low) | (got == high)
    if not allowed.all():
        index = tuple(int(i) for i in np.unravel_index(int((~allowed).flatten().nonzero()[0]), tuple(images.shape)))
        raise AssertionError(f"{call} moved the value at {index} by {step[index].item():.6g}: FGSM moves every value "
                             f"by exactly epsilon = {epsilon} along the gradient's sign (then clips)")


def _fgsm_case(rng: np.random.Generator, kind: str) -> tuple:
    """``(model, images, targets, epsilon, clamp)`` for one :func:`check_fgsm` case of ``kind``."""
    import torch
    from torch import nn

    n, channels = int(rng.integers(1, 5)), int(rng.integers(1, 3))
    clamp = [(0.0, 1.0), (0.0, 1.0), (-1.0, 2.0), None][int(rng.integers(0, 4))]
    images = _torch_tensor(_fgsm_images(rng, (n, channels, 6, 6), clamp), torch.float64)
    epsilon = float(rng.choice([0.0, 0.01, 0.05, 0.1, 0.3])) if kind != "model_kept" else 0.1
    if kind == "linear":
        model = nn.Sequential(nn.Flatten(), nn.Linear(channels * 36, int(rng.integers(2, 5)))).double()
        _fill(model, rng)
        if rng.random() < 0.5:  # inputs the model ignores: gradient exactly 0, they must stay
            with torch.no_grad():
                model[1].weight[:, rng.integers(0, channels * 36, size=5)] = 0.0
    else:
        model = _random_attacked_cnn(rng, channels, batch_norm=kind == "model_kept")
        model.train(kind == "model_kept" and rng.random() < 0.5)
        if kind == "model_kept" and rng.random() < 0.5:
            model.requires_grad_(False)
    targets = torch.from_numpy(rng.integers(0, model[-1].out_features, size=n)).to(torch.int64)
    return model, images, targets, epsilon, clamp


def _check_fgsm_rejects(fn: Callable, rng: np.random.Generator) -> None:
    """A negative epsilon and an image value outside the range must raise ValueError."""
    import torch

    model, images = _random_attacked_cnn(rng, 1, batch_norm=False), torch.full((2, 1, 6, 6), 0.5, dtype=torch.float64)
    targets = torch.zeros(2, dtype=torch.int64)
    _expect_raises(ValueError, "fgsm(model, images, targets, epsilon=-0.1)", lambda: fn(model, images, targets, -0.1))
    outside = images.clone()
    outside[0, 0, 0, 0] = 1.5
    _expect_raises(ValueError, "fgsm(model, images, targets, 0.1) with an image value of 1.5 (outside (0, 1))",
                   lambda: fn(model, outside, targets, 0.1))


def check_fgsm(fn: Callable, kind: str = "linear", n_cases: int = 20, seed: int = 0) -> None:
    """Check ``fn(model, images, targets, epsilon, clamp=)`` on random float64 batches.

    ``"linear"``: the result equals :func:`fgsm_linear_by_hand` on a linear classifier
    (some inputs with zero weight, which must not move), with clamp ``(0, 1)``, another
    range, or ``None``. ``"budget"``: on small conv nets, every result stays within
    ``epsilon`` and inside the range, each value moving by exactly ``epsilon`` unless
    clipped (or its gradient is 0); ``epsilon = 0`` returns the images; a negative
    ``epsilon`` and images outside the range raise ValueError. ``"model_kept"``: conv nets
    with batch norm, in training or eval mode, some frozen, some attacks run inside
    ``torch.no_grad()``; the model (parameters, buffers, ``.grad``, mode), images and
    targets must be left as they were, and the result keep the properties above.
    """
    _check_kind(kind, FGSM_KINDS)
    import torch

    rng = np.random.default_rng(seed)
    for _ in range(n_cases):
        model, images, targets, epsilon, clamp = _fgsm_case(rng, kind)
        call = _describe_torch_call("fgsm", {"model": model, "images": images, "targets": targets,
                                             "epsilon": epsilon, "clamp": clamp})
        snapshot = _snapshot(model, images, targets)
        context = _maybe_without_grad(rng, kind)
        with context:
            got = fn(model, images, targets, epsilon, clamp=clamp)
        if isinstance(context, torch.no_grad):
            call += ", called inside torch.no_grad()"
        _check_fgsm_result(got, images, epsilon, clamp, call)
        if kind == "linear":
            expected = fgsm_linear_by_hand(model[1].weight, model[1].bias, images, targets, epsilon, clamp)
            _assert_tensor_matches(got, expected, call, rtol=0.0, atol=1e-12)
        elif kind == "budget" and epsilon == 0 and not torch.equal(got, images):
            raise AssertionError(f"{call} must return the images' values unchanged when epsilon is 0")
        elif kind == "model_kept":
            _check_left_alone(model, snapshot, [images, targets], call)
    if kind == "budget":
        _check_fgsm_rejects(fn, rng)
