"""The oracles and hidden-test checks in cvprep.testing: correct on hand-worked cases,
silent on the reference, and loud on plausible wrong answers (so hidden tests can fail)."""

import numpy as np
import pytest

from cvprep import conv, testing
from cvprep.receptive_field import receptive_field


def test_output_size_by_counting_hand_worked():
    assert testing.output_size_by_counting(7, 3, stride=2) == 3  # windows at 0, 2, 4
    assert testing.output_size_by_counting(2, 3) == 0  # never fits
    assert testing.output_size_by_counting(5, 3, dilation=2) == 1  # span 5


@pytest.mark.parametrize("kind", testing.CONV2D_KINDS)
def test_random_conv2d_cases_are_valid_and_varied(kind):
    rng = np.random.default_rng(1)
    shapes = {conv.conv2d(**testing.random_conv2d_case(rng, kind)).shape for _ in range(30)}
    assert len(shapes) > 5


def test_checks_pass_on_the_reference():
    testing.check_conv_output_size(conv.conv_output_size)
    testing.check_conv_output_size_rejects(conv.conv_output_size)
    for kind in testing.CONV2D_KINDS:
        testing.check_conv2d(conv.conv2d_loops, kind)
    for kind in testing.POOL_KINDS:
        testing.check_max_pool2d(conv.max_pool2d_loops, kind)
    for kind in testing.STACK_KINDS:
        testing.check_receptive_field(receptive_field, kind)


def off_by_one_output_size(size, kernel_size, stride=1, padding=0, dilation=1):
    return (size + 2 * padding - dilation * (kernel_size - 1)) // stride  # forgot the + 1 and the - 1


def unchecked_output_size(size, kernel_size, stride=1, padding=0, dilation=1):
    return (size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1  # right formula, no errors


def convolution_with_flipped_kernel(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return conv.conv2d(x, weight[:, :, ::-1, ::-1].copy(), bias, stride, padding, dilation, groups)


def conv2d_ignoring_dilation(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return conv.conv2d(x, weight, bias, stride, padding, 1, groups)


def conv2d_ignoring_groups(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return conv.conv2d(x, np.tile(weight, (1, groups, 1, 1)) / groups, bias, stride, padding, dilation, 1)


def max_pool_with_stride_one(x, kernel_size, stride=None, padding=0):
    return conv.max_pool2d(x, kernel_size, 1, padding)


def max_pool_with_zero_padding(x, kernel_size, stride=None, padding=0):
    return conv.max_pool2d(conv._pad(x, conv.pair(padding, "padding", 0)), kernel_size, stride, 0)


def receptive_field_without_jump(layers):
    size, fields = 1, []
    for kernel_size, stride, padding, dilation in layers:
        size += dilation * (kernel_size - 1)  # forgets that stride spreads later layers apart
        fields.append((size, 1, 0.0))
    return fields


def receptive_field_ignoring_padding(layers):
    return [(size, jump, start + sum(layer[2] for layer in layers[:i + 1]))
            for i, (size, jump, start) in enumerate(receptive_field(layers))]


@pytest.mark.parametrize(
    "check, wrong, kwargs",
    [
        (testing.check_conv_output_size, off_by_one_output_size, {}),
        (testing.check_conv_output_size_rejects, unchecked_output_size, {}),
        (testing.check_conv2d, convolution_with_flipped_kernel, {"kind": "single_channel"}),
        (testing.check_conv2d, conv2d_ignoring_dilation, {"kind": "geometry"}),
        (testing.check_conv2d, conv2d_ignoring_groups, {"kind": "groups"}),
        (testing.check_max_pool2d, max_pool_with_stride_one, {"kind": "default_stride"}),
        (testing.check_max_pool2d, max_pool_with_zero_padding, {"kind": "geometry"}),
        (testing.check_receptive_field, receptive_field_without_jump, {"kind": "any"}),
        (testing.check_receptive_field, receptive_field_ignoring_padding, {"kind": "stride_one"}),
    ],
)
def test_checks_catch_plausible_mistakes(check, wrong, kwargs):
    with pytest.raises(AssertionError):
        check(wrong, **kwargs)


def test_check_messages_name_the_failing_call():
    with pytest.raises(AssertionError, match=r"conv2d\(x=<array of shape .*\) is wrong: at index"):
        testing.check_conv2d(convolution_with_flipped_kernel, kind="single_channel")
    with pytest.raises(AssertionError, match=r"conv_output_size\(size=\d+, kernel_size=\d+.*\) returned 1; expected it to raise ValueError"):
        testing.check_conv_output_size_rejects(lambda **kw: 1)
    with pytest.raises(AssertionError, match="raised ZeroDivisionError: .* expected ValueError"):
        testing.check_conv_output_size_rejects(lambda size, kernel_size, stride, padding, dilation: size // 0)
    with pytest.raises(AssertionError, match=r"returned list, expected a numpy.ndarray"):
        testing.check_max_pool2d(lambda x, **kw: x.tolist())
    with pytest.raises(AssertionError, match="must return one .size, jump, start. per layer"):
        testing.check_receptive_field(lambda layers: None)


# Detection checks -------------------------------------------------------------------------

def test_detection_checks_pass_on_the_loop_versions():
    from cvprep import boxes, detection_metrics, nms

    for kind in testing.BOX_KINDS:
        testing.check_box_iou(boxes.box_iou_loops, kind)
        testing.check_generalized_box_iou(boxes.generalized_box_iou_loops, kind)
    testing.check_nms(nms.nms_loops)
    testing.check_nms(nms.nms_loops, ties=True)
    for method in ("linear", "gaussian"):
        testing.check_soft_nms(nms.soft_nms_loops, method)
    testing.check_average_precision(detection_metrics.coco_average_precision)


def test_random_scenes_have_overlaps_and_grid_boxes_touch_and_vanish():
    from cvprep.boxes import box_area, box_iou

    rng = np.random.default_rng(0)
    grid = np.concatenate([testing.random_boxes(rng, 6, "grid") for _ in range(20)])
    assert (box_area(grid) == 0).any()  # zero-area boxes occur
    scene_boxes, _ = testing.random_detections(rng)
    overlap = box_iou(scene_boxes, scene_boxes)[~np.eye(len(scene_boxes), dtype=bool)]
    assert (overlap > 0.5).any()  # NMS has something to suppress
    recall, precision = testing.random_pr_curve(rng)
    assert np.all(np.diff(recall) >= 0) and len(recall) == len(precision)


def test_detection_checks_catch_plausible_mistakes():
    from cvprep import boxes, detection_metrics, nms

    def iou_without_clamp(boxes1, boxes2):  # negative overlaps for disjoint boxes
        b1, b2 = boxes1[:, None], boxes2[None]
        w = np.minimum(b1[..., 2], b2[..., 2]) - np.maximum(b1[..., 0], b2[..., 0])
        h = np.minimum(b1[..., 3], b2[..., 3]) - np.maximum(b1[..., 1], b2[..., 1])
        inter = w * h
        return inter / (boxes.box_area(boxes1)[:, None] + boxes.box_area(boxes2)[None] - inter)

    def giou_is_iou(boxes1, boxes2):
        return boxes.box_iou(boxes1, boxes2)

    def nms_unsorted(boxes_, scores, iou_threshold):
        keep = []
        for i in range(len(scores)):
            if not (boxes.box_iou(boxes_[[i]], boxes_[keep]) > iou_threshold).any():
                keep.append(i)
        return np.array(keep, dtype=np.int64)

    def soft_nms_in_place(boxes_, scores, **kwargs):
        keep, new_scores = nms.soft_nms(boxes_, scores, **kwargs)
        scores[keep] = new_scores  # the bug the seeds' version has
        return keep, new_scores

    def ap_without_envelope(recall, precision):
        if len(recall) == 0:
            return 0.0
        first = np.searchsorted(recall, detection_metrics.COCO_RECALL_POINTS, side="left")
        return float(np.where(first < len(recall), precision[np.minimum(first, len(recall) - 1)], 0).mean())

    cases = [
        (testing.check_box_iou, iou_without_clamp, "box_iou"),
        (testing.check_generalized_box_iou, giou_is_iou, "generalized_box_iou"),
        (testing.check_nms, nms_unsorted, "returned"),
        (testing.check_soft_nms, soft_nms_in_place, "modified its arguments"),
        (testing.check_average_precision, ap_without_envelope, "expected"),
    ]
    for check, wrong, message in cases:
        with pytest.raises(AssertionError, match=message):
            check(wrong)
