"""Where a classifier looks: Grad-CAM and gradient saliency maps, in torch.

Both functions explain one logit per image -- the pre-softmax score ``y_c`` of the
class ``c`` given for that image -- and return one heat map per image at the input's
resolution, ``Tensor[N, H, W]`` with values in [0, 1]:

* :func:`grad_cam` weighs the feature maps ``A`` of one layer by how much the score
  grows with each of them: coarse (the layer's resolution, upsampled) but
  class-discriminative.
* :func:`saliency` is the magnitude of ``dy_c / dx`` itself, pixel by pixel: sharp but
  noisy.

Layout: images are NCHW floats. Each map is divided by its own maximum, so the hottest
pixel is 1; a map that is zero everywhere (nothing pushes the score up) stays zero
rather than becoming 0 / 0.

The functions leave the model as they found it: same parameters, no ``.grad``
accumulated on them (gradients are taken with ``torch.autograd.grad``, with respect to
an activation or the input only), same train/eval mode, no hooks left behind. They run
the model in the mode it is in: call ``model.eval()`` first, as for any inference. In
training mode BatchNorm would update its running statistics (as any forward pass does)
and mix the images of the batch, so an image's map would depend on its neighbours.

References:
    Selvaraju, Cogswell, Das, Vedantam, Parikh and Batra, "Grad-CAM: Visual
    Explanations from Deep Networks via Gradient-based Localization", ICCV 2017,
    arXiv:1610.02391.
    Simonyan, Vedaldi and Zisserman, "Deep Inside Convolutional Networks: Visualising
    Image Classification Models and Saliency Maps", ICLR workshop 2014, arXiv:1312.6034.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cvprep._torch_validation import check_labels, check_module, check_tensor


# Argument checks and the forward pass ---------------------------------------------------

def _check_target_layer(model: nn.Module, target_layer: object) -> nn.Module:
    """``target_layer`` must be one of ``model``'s submodules (the very object, not a copy)."""
    check_module(target_layer, "target_layer")
    if not any(module is target_layer for module in model.modules()):
        raise ValueError(f"target_layer must be a submodule of model (one of model.modules()), "
                         f"got a {type(target_layer).__name__} that model does not contain")
    return target_layer


def _target_scores(logits: object, target_classes: object, n: int) -> Tensor:
    """Each image's own logit ``logits[i, target_classes[i]]``, after checking both; [N]."""
    logits = check_tensor(logits, "model(images)", "[N, num_classes]")
    if logits.shape[0] != n:
        raise ValueError(f"model(images) must have one row per image, got {logits.shape[0]} rows for {n} images")
    classes = check_labels(target_classes, "target_classes", n, logits.shape[1])
    if not logits.requires_grad:
        raise ValueError("model(images) must be differentiable with respect to images; "
                         "it was computed without autograd (torch.no_grad or .detach() inside model?)")
    return logits.gather(1, classes.to(logits.device)[:, None].long())[:, 0]  # [N]


@contextmanager
def _recorded_outputs(layer: nn.Module) -> Iterator[list[object]]:
    """Record every output of ``layer`` while the block runs; the hook is removed on exit,
    also when the model raises.

    The hook hands a copy of the output on to the rest of the network, so that an
    in-place layer after it (``ReLU(inplace=True)``) cannot overwrite the recorded
    activation; gradients flow through the copy unchanged.
    """
    outputs: list[object] = []

    def hook(module, inputs, output):
        outputs.append(output)
        return output.clone() if isinstance(output, Tensor) else output

    handle = layer.register_forward_hook(hook)
    try:
        yield outputs
    finally:
        handle.remove()


def _only_activation(outputs: list[object], n: int) -> Tensor:
    """The single [N, K, h, w] activation the target layer produced in the forward pass."""
    if len(outputs) != 1:
        raise ValueError(f"target_layer must run exactly once in model's forward pass, it ran {len(outputs)} times")
    activation = outputs[0]
    if not isinstance(activation, Tensor) or activation.ndim != 4 or activation.shape[0] != n:
        got = tuple(activation.shape) if isinstance(activation, Tensor) else type(activation).__name__
        raise ValueError(f"target_layer must output a feature map [N, K, h, w] with N = {n}, got {got}")
    return activation


def _activations_and_gradients(model, target_layer, images, target_classes) -> tuple[Tensor, Tensor]:
    """Validate Grad-CAM's arguments, run the model once and return the target layer's
    activations ``A`` and ``dy_c / dA``, both detached, [N, K, h, w].

    Every image's score depends only on its own activations (true for a network in eval
    mode), so the gradient of the sum of the scores holds each image's own gradient.
    """
    model = check_module(model, "model")
    images = check_tensor(images, "images", "[N, C, H, W]")
    target_layer = _check_target_layer(model, target_layer)
    # A leaf that requires grad: activations then require grad even if every parameter
    # before the layer is frozen; ``images`` itself is left untouched.
    x = images.detach().requires_grad_(True)
    with torch.enable_grad():
        with _recorded_outputs(target_layer) as outputs:
            logits = model(x)  # [N, num_classes]
        activation = _only_activation(outputs, len(images))  # [N, K, h, w]
        scores = _target_scores(logits, target_classes, len(images))  # [N]
        (gradient,) = torch.autograd.grad(scores.sum(), activation)  # [N, K, h, w]
    return activation.detach(), gradient


# Grad-CAM ---------------------------------------------------------------------------------

def _normalise(maps: Tensor) -> Tensor:
    """Divide each non-negative map of ``maps`` [N, H, W] by its maximum; all-zero maps stay zero."""
    peaks = maps.amax(dim=(1, 2), keepdim=True)  # [N, 1, 1]
    return maps / torch.where(peaks > 0, peaks, torch.ones_like(peaks))


def _cam(activations: Tensor, gradients: Tensor) -> Tensor:
    """Grad-CAM at the layer's resolution, before upsampling: ReLU(sum_k alpha_k A_k), [N, h, w]."""
    alphas = gradients.mean(dim=(2, 3))  # [N, K]: global-average-pooled gradients
    return torch.relu(torch.einsum("nk,nkhw->nhw", alphas, activations))  # [N, h, w]


def _upsample(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize of [N, h, w] maps to [N, *size] (``align_corners=False``)."""
    return F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


def grad_cam(model: nn.Module, target_layer: nn.Module, images: Tensor, target_classes: Tensor) -> Tensor:
    """Grad-CAM heat maps: where in each image the evidence for its target class lies.

    With ``A`` [N, K, h, w] the output of ``target_layer`` and ``y_c`` each image's
    pre-softmax score for its class, the weight of channel ``k`` is the spatial mean of
    its gradient, ``alpha_k = mean_ij dy_c / dA_k[i, j]``, and the map is
    ``ReLU(sum_k alpha_k A_k)``: only the features that raise the score count. The map
    is upsampled bilinearly (``align_corners=False``) to the input's ``H x W`` and divided
    by its maximum; a map that is zero everywhere stays zero.

    The heat map does not change when the logits are scaled by a positive constant (the
    constant cancels in the normalisation). Hooks are removed even if the model raises;
    the model's parameters, gradients and mode and ``images`` are left unchanged.

    Args:
        model (nn.Module): a classifier, ``model(images)`` -> logits ``Tensor[N, num_classes]``.
        target_layer (nn.Module): the submodule of ``model`` whose output is explained, a
            feature map ``Tensor[N, K, h, w]`` (usually the last convolutional stage). It
            must run exactly once per forward pass.
        images (Tensor[N, C, H, W]): floating-point input batch.
        target_classes (Tensor[N]): integer class index per image, in ``[0, num_classes)``.

    Returns:
        Tensor[N, H, W]: one heat map per image in [0, 1], in ``images``' dtype, detached.

    Raises:
        TypeError: ``model`` or ``target_layer`` is not an ``nn.Module``, ``images`` is
            not a floating-point tensor, ``target_classes`` not an integer tensor.
        ValueError: ``images`` is not 4-D; ``target_layer`` is not a submodule of
            ``model``, did not run exactly once, or did not output [N, K, h, w];
            ``target_classes`` has the wrong length or a class out of range; the
            logits are not [N, num_classes] or not differentiable.

    References:
        Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
        Gradient-based Localization", ICCV 2017, arXiv:1610.02391 (equations 1 and 2).
    """
    activations, gradients = _activations_and_gradients(model, target_layer, images, target_classes)
    maps = _upsample(_cam(activations, gradients), tuple(images.shape[2:]))  # [N, H, W]
    return _normalise(maps)


def grad_cam_loops(model: nn.Module, target_layer: nn.Module, images: Tensor, target_classes: Tensor) -> Tensor:
    """Grad-CAM written one image and one channel at a time; same contract as :func:`grad_cam`.

    Each image gets its own forward and backward pass, so it is also the reference for
    the batched version's claim that one pass over the batch gives every image's map.
    """
    check_tensor(images, "images", "[N, C, H, W]")
    if not isinstance(target_classes, Tensor) or target_classes.shape != images.shape[:1]:
        check_labels(target_classes, "target_classes", len(images), 1)  # raises: wrong type or length
    maps = []
    for image, target in zip(images, target_classes):
        activation, gradient = _activations_and_gradients(model, target_layer, image[None], target[None])
        activation, gradient = activation[0], gradient[0]  # [K, h, w] each
        cam = torch.zeros(activation.shape[1:], dtype=activation.dtype)  # [h, w]
        for k in range(len(activation)):
            alpha = gradient[k].sum() / gradient[k].numel()  # the average-pooled gradient
            cam = cam + alpha * activation[k]
        cam = torch.clamp(cam, min=0)  # ReLU
        resized = F.interpolate(cam[None, None], size=tuple(images.shape[2:]), mode="bilinear", align_corners=False)
        peak = resized.max()
        maps.append(resized[0, 0] / peak if peak > 0 else resized[0, 0])
    return torch.stack(maps) if maps else images.new_zeros(0, *images.shape[2:])


# Saliency ---------------------------------------------------------------------------------

def saliency(model: nn.Module, images: Tensor, target_classes: Tensor) -> Tensor:
    """Gradient saliency: how strongly each pixel's value moves the target logit.

    The map is ``max_c |dy_c / dx[c, i, j]|`` (the largest magnitude over the colour
    channels ``c``, as in the paper), computed by one backward pass to the input and
    divided by its maximum; a map that is zero everywhere stays zero.

    Args:
        model (nn.Module): a classifier, ``model(images)`` -> logits ``Tensor[N, num_classes]``.
        images (Tensor[N, C, H, W]): floating-point input batch.
        target_classes (Tensor[N]): integer class index per image, in ``[0, num_classes)``.

    Returns:
        Tensor[N, H, W]: one saliency map per image in [0, 1], in ``images``' dtype, detached.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``, ``images`` is not a floating-point
            tensor, ``target_classes`` not an integer tensor.
        ValueError: ``images`` is not 4-D; ``target_classes`` has the wrong length or a
            class out of range; the logits are not [N, num_classes] or not differentiable.

    References:
        Simonyan, Vedaldi and Zisserman, "Deep Inside Convolutional Networks: Visualising
        Image Classification Models and Saliency Maps", ICLR workshop 2014,
        arXiv:1312.6034 (section 3.1).
    """
    model = check_module(model, "model")
    images = check_tensor(images, "images", "[N, C, H, W]")
    x = images.detach().requires_grad_(True)
    with torch.enable_grad():
        scores = _target_scores(model(x), target_classes, len(images))  # [N]
        (gradient,) = torch.autograd.grad(scores.sum(), x)  # [N, C, H, W]
    return _normalise(gradient.abs().amax(dim=1))  # [N, H, W]
