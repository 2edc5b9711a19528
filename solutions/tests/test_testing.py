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


# Chapter 05 checks: focal and distillation losses, Grad-CAM, FGSM -------------------------

@pytest.mark.usefixtures("one_torch_thread")
def test_chapter_05_checks_pass_on_the_reference():
    from cvprep import adversarial, interpret, losses

    for kind in testing.FOCAL_KINDS:
        testing.check_focal_loss(losses.focal_loss, kind)
    for kind in testing.DISTILLATION_KINDS:
        testing.check_distillation_loss(losses.distillation_loss, kind)
    for kind in testing.GRAD_CAM_KINDS:
        testing.check_grad_cam(interpret.grad_cam, kind)
        testing.check_grad_cam(interpret.grad_cam_loops, kind)
    def pgd_as_fgsm(model, images, targets, epsilon, clamp=(0.0, 1.0)):  # one step of size epsilon, no random start
        return adversarial.pgd(model, images, targets, epsilon, alpha=max(epsilon, 1e-3), steps=1 if epsilon else 0,
                               random_start=False, clamp=clamp)

    for kind in testing.FGSM_KINDS:
        testing.check_fgsm(adversarial.fgsm, kind)
        testing.check_fgsm(pgd_as_fgsm, kind)


@pytest.mark.usefixtures("one_torch_thread")
def test_grad_cam_by_hand_on_a_hand_worked_network():
    from collections import OrderedDict

    import torch
    from torch import nn

    # features: a 1x1 convolution 1 -> 2 channels, A_0 = x and A_1 = -x; head: pool, linear W.
    # dy_c / dA_k = W[c, k] / 4 on a 2x2 map, so the map is ReLU(W[c, 0] x - W[c, 1] x) / 4:
    # class 0, W = (1, 3): ReLU(-2x) = (0, 2, 0, 0.5) on x = (1, -1, 0.5, -0.25) -> / 2 -> (0, 1, 0, 0.25)
    # class 1, W = (2, 0): ReLU(2x) = (2, 0, 1, 0) -> / 2 -> (1, 0, 0.5, 0)
    features = nn.Sequential(nn.Conv2d(1, 2, 1, bias=False))
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 2, bias=False))
    model = nn.Sequential(OrderedDict(features=features, head=head))
    with torch.no_grad():
        model.features[0].weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
        model.head[2].weight.copy_(torch.tensor([[1.0, 3.0], [2.0, 0.0]]))
    x = torch.tensor([[1.0, -1.0], [0.5, -0.25]]).expand(2, 1, 2, 2)
    maps = testing.grad_cam_by_hand(model, x, torch.tensor([0, 1]))
    torch.testing.assert_close(maps, torch.tensor([[[0.0, 1.0], [0.0, 0.25]], [[1.0, 0.0], [0.5, 0.0]]]))


@pytest.mark.usefixtures("one_torch_thread")
def test_fgsm_linear_by_hand_on_a_hand_worked_model():
    import torch

    # two classes, y = 0: grad_x = W^T (p - e_0) = p_1 (W[1] - W[0]) = p_1 (-1, 3, 0): signs (-1, +1, 0)
    weight, bias = torch.tensor([[1.0, -2.0, 0.0], [0.0, 1.0, 0.0]]), torch.zeros(2)
    images = torch.tensor([[0.05, 0.5, 0.5]]).view(1, 1, 1, 3)
    got = testing.fgsm_linear_by_hand(weight, bias, images, torch.tensor([0]), 0.1)
    torch.testing.assert_close(got, torch.tensor([[0.0, 0.6, 0.5]]).view(1, 1, 1, 3))  # -0.05 clipped to 0
    unclipped = testing.fgsm_linear_by_hand(weight, bias, images, torch.tensor([0]), 0.1, clamp=None)
    torch.testing.assert_close(unclipped, torch.tensor([[-0.05, 0.6, 0.5]]).view(1, 1, 1, 3))


def test_random_cam_networks_cover_every_head_and_kind():
    from torch import nn

    rng = np.random.default_rng(0)
    heads, scaled, frozen, training = set(), False, False, False
    for kind in testing.GRAD_CAM_KINDS:
        for _ in range(20):
            model, target = testing.random_cam_network(rng, kind)
            assert target is model.features or target is model.features[-1]
            first = model.head[0]
            heads.add("conv" if isinstance(first, nn.Conv2d) else "relu" if isinstance(first, nn.ReLU) else "linear")
            scaled |= hasattr(model, "scale")
            frozen |= not any(p.requires_grad for p in model.parameters())
            training |= model.training
    assert heads == set(testing.CAM_HEADS) and scaled and frozen and training


def _grad_cam_from(cam, explain=None):
    """A Grad-CAM built from cvprep's pieces, with ``cam(activations, gradients)`` replaced."""
    from cvprep import interpret

    def grad_cam(model, target_layer, images, target_classes):
        model_ = explain(model) if explain else model
        activations, gradients = interpret._activations_and_gradients(model_, target_layer, images, target_classes)
        return interpret._normalise(interpret._upsample(cam(activations, gradients), tuple(images.shape[2:])))

    return grad_cam


def _grad_cam_mistakes():
    import torch
    import torch.nn.functional as F
    from torch import nn

    from cvprep import interpret

    def without_relu(activations, gradients):
        return torch.einsum("nk,nkhw->nhw", gradients.mean(dim=(2, 3)), activations)

    def gradient_times_activation(activations, gradients):  # no averaging over the map
        return torch.relu((gradients * activations).sum(dim=1))

    def nearest_upsampling(model, target_layer, images, target_classes):
        activations, gradients = interpret._activations_and_gradients(model, target_layer, images, target_classes)
        cam = interpret._cam(activations, gradients)
        return interpret._normalise(F.interpolate(cam[:, None], size=tuple(images.shape[2:]), mode="nearest")[:, 0])

    class Probabilities(nn.Module):  # explains the softmax probability instead of the logit
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return torch.softmax(self.inner(x), dim=1)

    def with_backward(model, target_layer, images, target_classes):  # leaves .grad on the parameters
        outputs = []
        handle = target_layer.register_forward_hook(lambda module, inputs, output: outputs.append(output))
        with torch.enable_grad():
            logits = model(images.detach().requires_grad_(True))
            outputs[0].retain_grad()
            logits.gather(1, target_classes[:, None])[:, 0].sum().backward()
        handle.remove()
        return interpret._normalise(interpret._upsample(interpret._cam(outputs[0].detach(), outputs[0].grad),
                                                        tuple(images.shape[2:])))

    def in_eval_mode(model, target_layer, images, target_classes):
        return interpret.grad_cam(model.eval(), target_layer, images, target_classes)

    return [
        (_grad_cam_from(without_relu), "full_resolution"),
        (_grad_cam_from(gradient_times_activation), "full_resolution"),
        (nearest_upsampling, "coarse"),
        (lambda model, layer, images, classes: interpret.grad_cam(Probabilities(model), layer, images, classes),
         "coarse"),
        (_grad_cam_from(without_relu), "model_kept"),
        (with_backward, "model_kept"),
        (in_eval_mode, "model_kept"),
    ]


def _fgsm_mistakes():
    import torch
    import torch.nn.functional as F

    from cvprep import adversarial

    def gradient(model, images, targets):
        x = images.detach().requires_grad_(True)
        with torch.enable_grad():
            return torch.autograd.grad(F.cross_entropy(model(x), targets, reduction="sum"), x)[0]

    def unclipped(model, images, targets, epsilon, clamp=(0.0, 1.0)):
        return adversarial.fgsm(model, images, targets, epsilon, clamp=None)

    def descending(model, images, targets, epsilon, clamp=(0.0, 1.0)):  # lowers the loss
        low, high = clamp if clamp else (-float("inf"), float("inf"))
        return (images - epsilon * gradient(model, images, targets).sign()).clamp(low, high)

    def raw_gradient(model, images, targets, epsilon, clamp=(0.0, 1.0)):  # forgets the sign
        low, high = clamp if clamp else (-float("inf"), float("inf"))
        return (images + epsilon * gradient(model, images, targets)).clamp(low, high)

    def with_backward(model, images, targets, epsilon, clamp=(0.0, 1.0)):  # .grad on the parameters
        x = images.detach().requires_grad_(True)
        with torch.enable_grad():
            F.cross_entropy(model(x), targets).backward()
        low, high = clamp if clamp else (-float("inf"), float("inf"))
        return (images + epsilon * x.grad.sign()).clamp(low, high)

    def statistics_updated(model, images, targets, epsilon, clamp=(0.0, 1.0)):  # no _model_kept
        low, high = clamp if clamp else (-float("inf"), float("inf"))
        return (images + epsilon * gradient(model, images, targets).sign()).clamp(low, high)

    def accepts_anything(model, images, targets, epsilon, clamp=(0.0, 1.0)):  # no argument checks
        return statistics_updated(model, images, targets, abs(epsilon), clamp)

    return [
        (unclipped, "linear"), (descending, "linear"), (unclipped, "budget"), (raw_gradient, "budget"),
        (accepts_anything, "budget"), (unclipped, "model_kept"), (with_backward, "model_kept"),
        (statistics_updated, "model_kept"),
    ]


def _loss_mistakes():
    import torch
    import torch.nn.functional as F

    from cvprep import losses

    def alpha_swapped(logits, targets, alpha=0.25, gamma=2.0, reduction="none"):
        return losses.focal_loss(logits, targets, 1 - alpha if alpha >= 0 else alpha, gamma, reduction)

    def log_of_sigmoid(logits, targets, alpha=0.25, gamma=2.0, reduction="none"):
        p = torch.sigmoid(logits)
        p_t = p * targets + (1 - p) * (1 - targets)
        loss = -(1 - p_t) ** gamma * torch.log(p_t)
        if alpha >= 0:
            loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
        return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]

    def without_t_squared(student_logits, teacher_logits, targets, temperature, alpha):
        return losses.distillation_loss(student_logits, teacher_logits, targets, temperature, alpha) \
            - alpha * (temperature**2 - 1) * soft(student_logits, teacher_logits, temperature)

    def soft(student_logits, teacher_logits, temperature):
        return F.kl_div(F.log_softmax(student_logits / temperature, dim=1),
                        F.log_softmax(teacher_logits.detach() / temperature, dim=1), reduction="batchmean",
                        log_target=True)

    def kl_reversed(student_logits, teacher_logits, targets, temperature, alpha):
        q = F.log_softmax(student_logits / temperature, dim=1)
        p = F.log_softmax(teacher_logits.detach() / temperature, dim=1)
        kl = (q.exp() * (q - p)).sum(dim=1).mean()
        return alpha * temperature**2 * kl + (1 - alpha) * F.cross_entropy(student_logits, targets)

    def teacher_not_detached(student_logits, teacher_logits, targets, temperature, alpha):
        kl = F.kl_div(F.log_softmax(student_logits / temperature, dim=1),
                      F.log_softmax(teacher_logits / temperature, dim=1), reduction="batchmean", log_target=True)
        return alpha * temperature**2 * kl + (1 - alpha) * F.cross_entropy(student_logits, targets)

    return [
        (testing.check_focal_loss, alpha_swapped, "elementwise"),
        (testing.check_focal_loss, alpha_swapped, "reductions"),
        (testing.check_focal_loss, log_of_sigmoid, "reductions"),
        (testing.check_distillation_loss, without_t_squared, "values"),
        (testing.check_distillation_loss, without_t_squared, "gradients"),
        (testing.check_distillation_loss, kl_reversed, "values"),
        (testing.check_distillation_loss, teacher_not_detached, "gradients"),
    ]


@pytest.mark.usefixtures("one_torch_thread")
def test_chapter_05_checks_catch_plausible_mistakes():
    cases = [*_loss_mistakes(), *((testing.check_grad_cam, wrong, kind) for wrong, kind in _grad_cam_mistakes()),
             *((testing.check_fgsm, wrong, kind) for wrong, kind in _fgsm_mistakes())]
    for check, wrong, kind in cases:
        with pytest.raises(AssertionError):
            check(wrong, kind=kind)


def focal_reading_average_as_sum(logits, targets, alpha=0.25, gamma=2.0, reduction="none"):
    """Right on every valid reduction, but takes an unknown one for "sum" instead of refusing it."""
    from torchvision.ops import sigmoid_focal_loss

    return sigmoid_focal_loss(logits, targets, alpha, gamma, "sum" if reduction == "average" else reduction)


@pytest.mark.usefixtures("one_torch_thread")
def test_chapter_05_check_messages_name_the_failing_call():
    import torch

    with pytest.raises(AssertionError, match=r"focal_loss\(logits=<tensor of shape .*\) returned list"):
        testing.check_focal_loss(lambda logits, targets, **kwargs: logits.tolist())
    with pytest.raises(AssertionError, match="returned Tensor; expected it to raise ValueError"):
        testing.check_focal_loss(focal_reading_average_as_sum, kind="reductions")
    with pytest.raises(AssertionError, match="must return a tensor differentiable with respect to student_logits"):
        testing.check_distillation_loss(lambda s, t, y, temperature, alpha: torch.tensor(0.0), kind="gradients")
    with pytest.raises(AssertionError, match=r"grad_cam\(model=.*target_classes=\[.*\]\) returned shape"):
        testing.check_grad_cam(lambda model, layer, images, classes: images[:, 0, :1])
    with pytest.raises(AssertionError, match="requires grad: detach it"):
        testing.check_fgsm(lambda model, images, targets, epsilon, clamp: images.clone().requires_grad_(True))
    with pytest.raises(ValueError, match="kind must be one of"):
        testing.check_fgsm(lambda *args, **kwargs: None, kind="pgd")

