"""Adversarial examples under an L-infinity budget: FGSM and PGD, in torch.

Both attacks push a batch of inputs uphill on the cross-entropy loss of a classifier,
changing no input value by more than ``epsilon`` and keeping every value inside the
valid input range ``clamp = (low, high)`` (``(0, 1)`` for images scaled to [0, 1];
``None`` for no range, e.g. for inputs already normalised by a mean and std).

Layout: ``images`` is ``[N, C, H, W]`` (also accepted: ``[N, D]``, ``[N, C, L]``,
``[N, C, T, H, W]``); ``model(images)`` must return logits ``[N, K]``; ``targets`` is
``[N]`` of class indices in ``[0, K)`` -- the true labels, whose loss is raised.

What the attacks promise about the model and the inputs:

* The model runs **in the mode it is given**; nothing calls ``train()`` or ``eval()``.
  Attack a model in eval mode, as you would evaluate it: in train mode dropout makes
  every gradient random and batch norm normalises with the attacked batch's statistics.
* The model is left as it was found: the gradient is taken with respect to the input
  only (``torch.autograd.grad``), so no ``.grad`` of a parameter is created or changed,
  and buffers that a forward pass in train mode updates (batch norm's running
  statistics) are restored afterwards.
* ``images`` and ``targets`` are not modified; the result is a new tensor, detached
  from any graph, with the dtype and device of ``images``. The attacks work inside
  ``torch.no_grad()`` too (they switch gradients on for themselves).

Taught in the book: chapter 05, "Classification in practice" (adversarial examples).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from cvprep._torch_validation import check_labels, check_module, check_positive, check_tensor
from cvprep._validation import check_int

_LAYOUTS = {2: "[N, D]", 3: "[N, C, L]", 4: "[N, C, H, W]", 5: "[N, C, T, H, W]"}


# Argument checks ------------------------------------------------------------------------

def _check_range(clamp: object) -> tuple[float, float]:
    """``clamp`` as ``(low, high)`` floats with ``low < high``; ``None`` is ``(-inf, inf)``."""
    if clamp is None:
        return -float("inf"), float("inf")
    if not isinstance(clamp, (tuple, list)) or len(clamp) != 2:
        raise TypeError(f"clamp must be None or a pair (low, high), got {clamp!r}")
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in clamp):
        raise TypeError(f"clamp must hold two real numbers, got {clamp!r}")
    low, high = float(clamp[0]), float(clamp[1])
    if not low < high:
        raise ValueError(f"clamp must be (low, high) with low < high, got {clamp!r}")
    return low, high


def _check_images(images: object, low: float, high: float) -> torch.Tensor:
    """A floating tensor ``[N, ...]`` (2 to 5 dimensions) of finite values in [low, high]."""
    if isinstance(images, torch.Tensor) and images.ndim not in _LAYOUTS:
        raise ValueError(f"images must have shape [N, C, H, W] (or {', '.join(_LAYOUTS[d] for d in (2, 3, 5))}), "
                         f"got {tuple(images.shape)}")
    layout = _LAYOUTS[images.ndim] if isinstance(images, torch.Tensor) else _LAYOUTS[4]
    images = check_tensor(images, "images", layout)
    if images.numel() and not (torch.isfinite(images).all() and images.min() >= low and images.max() <= high):
        raise ValueError(f"images must be finite and within the clamp range [{low}, {high}], "
                         f"got values from {images.min().item()} to {images.max().item()}")
    return images


def _check_generator(generator: object) -> torch.Generator | None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be None or a torch.Generator, got {type(generator).__name__}")
    return generator


# The shared pieces ----------------------------------------------------------------------

@contextmanager
def _model_kept(model: nn.Module) -> Iterator[None]:
    """Run a block with gradients on; put the model's buffers back as they were afterwards."""
    saved = [(buffer, buffer.detach().clone()) for buffer in model.buffers()]
    try:
        with torch.enable_grad():
            yield
    finally:
        # Through .data, so the buffers' autograd version counters do not move: a graph
        # built before the attack (adversarial training's clean forward pass in train
        # mode saves batch norm's buffers) must stay valid for its backward pass, and the
        # values restored are exactly the ones that graph saw.
        for buffer, value in saved:
            buffer.data.copy_(value)


def _loss(model: nn.Module, x: torch.Tensor, targets: object) -> torch.Tensor:
    """CE(model(x), targets) summed over the batch, after checking the logits and targets.

    Summed rather than averaged so that each example's gradient does not shrink with N
    (only its sign is used, but a tiny gradient could round to 0).
    """
    logits = model(x)
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or len(logits) != len(x):
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"model(images) must return logits [N, K] with N = {len(x)}, got {got}")
    targets = check_labels(targets, "targets", len(x), logits.shape[1])
    return F.cross_entropy(logits, targets.to(device=logits.device, dtype=torch.long), reduction="sum")


def _input_gradient(model: nn.Module, x: torch.Tensor, targets: object) -> torch.Tensor:
    """``d loss / dx`` for :func:`_loss`, taken for ``x`` alone; same shape as ``x``."""
    x = x.detach().requires_grad_(True)
    loss = _loss(model, x, targets)
    (gradient,) = torch.autograd.grad(loss, x)
    return gradient


# The attacks ----------------------------------------------------------------------------

def fgsm(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, epsilon: float,
         clamp: tuple[float, float] | None = (0.0, 1.0)) -> torch.Tensor:
    """Fast gradient sign method: one step of size ``epsilon`` along the sign of the gradient.

    ``x_adv = clip(x + epsilon * sign(grad_x CE(model(x), y)), low, high)``. It is the
    best L-infinity perturbation of size ``epsilon`` for a model that is linear in ``x``;
    for a real network it is a cheap first-order guess. An input value whose gradient is
    exactly 0 does not move (``sign(0) = 0``). ``epsilon = 0`` returns ``images``' values.

    Args:
        model (nn.Module): classifier, ``[N, ...] -> logits [N, K]``; used as given
            (train or eval mode) and left unchanged.
        images (Tensor[N, C, H, W]): floating inputs within ``clamp``; any ``[N, ...]``
            layout from 2 to 5 dimensions.
        targets (Tensor[N]): integer true classes in ``[0, K)``.
        epsilon: the L-infinity budget, >= 0, in the units of ``images``
            (``8 / 255`` is a common choice for [0, 1] images).
        clamp: the valid input range ``(low, high)``, or ``None`` for no range.

    Returns:
        Tensor[N, C, H, W]: the adversarial inputs, detached, ``images``' dtype; every value
        within ``epsilon`` of the original and inside ``clamp``.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``; ``images`` is not a floating tensor;
            ``targets`` is not an integer tensor; ``epsilon`` or ``clamp`` is not numeric.
        ValueError: ``images`` has the wrong number of dimensions or values outside
            ``clamp``; ``targets`` is not ``[N]`` or holds a class >= K; ``model`` does not
            return ``[N, K]``; ``epsilon < 0``; ``clamp`` has ``low >= high``.

    References:
        Goodfellow, Shlens and Szegedy, "Explaining and Harnessing Adversarial Examples",
        ICLR 2015, arXiv:1412.6572.
    """
    model = check_module(model, "model", "a torch.nn.Module returning logits [N, K]")
    low, high = _check_range(clamp)
    images = _check_images(images, low, high)
    epsilon = check_positive(epsilon, "epsilon", allow_zero=True)
    with _model_kept(model):
        gradient = _input_gradient(model, images, targets)  # [N, C, H, W]
    return (images.detach() + epsilon * gradient.sign()).clamp(low, high)


def pgd(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, epsilon: float, alpha: float,
        steps: int, random_start: bool = True, generator: torch.Generator | None = None,
        clamp: tuple[float, float] | None = (0.0, 1.0)) -> torch.Tensor:
    """Projected gradient descent (ascent on the loss) in the L-infinity ball of radius ``epsilon``.

    Start at ``x`` (or, with ``random_start``, at a uniform random point of the ball
    ``|x' - x| <= epsilon``, clipped to ``clamp``), then repeat ``steps`` times::

        x' <- project(x' + alpha * sign(grad_x' CE(model(x'), y)))

    where ``project`` clips each value to ``[max(x - epsilon, low), min(x + epsilon, high)]``:
    the ball around the **original** ``x`` intersected with the valid range. With
    ``steps = 1``, ``alpha = epsilon`` and no random start this is :func:`fgsm`.
    ``steps = 0`` is allowed: it returns the starting point (random noise in the ball, a
    baseline any attack should beat, or ``images`` itself). ``epsilon = 0`` returns
    ``images``' values. A common setting for [0, 1] images: ``epsilon = 8 / 255``,
    ``alpha = 2 / 255``, ``steps = 10``.

    Args:
        model (nn.Module): classifier, ``[N, ...] -> logits [N, K]``; used as given
            (train or eval mode) and left unchanged.
        images (Tensor[N, C, H, W]): floating inputs within ``clamp``; any ``[N, ...]``
            layout from 2 to 5 dimensions.
        targets (Tensor[N]): integer true classes in ``[0, K)``.
        epsilon: the L-infinity budget, >= 0.
        alpha: the step size, > 0 (a fraction of ``epsilon``; ``2.5 * epsilon / steps``
            lets the attack reach the ball's surface from anywhere in it).
        steps: the number of gradient steps, an int >= 0.
        random_start: start from a uniform random point of the ball (Madry et al.), so
            that restarts explore different local maxima.
        generator (torch.Generator, optional): the source of the random start, on
            ``images``' device; the same seed gives the same result. ``None`` uses
            torch's global generator.
        clamp: the valid input range ``(low, high)``, or ``None`` for no range.

    Returns:
        Tensor[N, C, H, W]: the adversarial inputs, detached, ``images``' dtype; every value
        within ``epsilon`` of the original and inside ``clamp``.

    Raises:
        TypeError: as :func:`fgsm`; also ``alpha`` not a number, ``steps`` not an int,
            ``generator`` not a ``torch.Generator``.
        ValueError: as :func:`fgsm`; also ``alpha <= 0`` or ``steps < 0``.

    References:
        Madry, Makelov, Schmidt, Tsipras and Vladu, "Towards Deep Learning Models
        Resistant to Adversarial Attacks", ICLR 2018, arXiv:1706.06083.
    """
    model = check_module(model, "model", "a torch.nn.Module returning logits [N, K]")
    low, high = _check_range(clamp)
    images = _check_images(images, low, high).detach()
    epsilon = check_positive(epsilon, "epsilon", allow_zero=True)
    alpha = check_positive(alpha, "alpha")
    steps, generator = check_int(steps, "steps", 0), _check_generator(generator)
    lower = (images - epsilon).clamp(min=low)  # [N, C, H, W], the box ball ∩ range
    upper = (images + epsilon).clamp(max=high)
    x = images
    if random_start:
        noise = torch.rand(images.shape, generator=generator, dtype=images.dtype, device=images.device)
        x = torch.clamp(images + (2 * noise - 1) * epsilon, lower, upper)
    with _model_kept(model):
        if steps == 0:  # no gradient needed, but the targets are still checked against K
            _loss(model, images, targets)
        for _ in range(steps):
            x = torch.clamp(x + alpha * _input_gradient(model, x, targets).sign(), lower, upper)
    return x.clone() if x is images else x
