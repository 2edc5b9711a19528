"""Receptive field of a stack of convolution and pooling layers.

Along one spatial axis, a layer with kernel size ``k``, stride ``s``, padding ``p`` and
dilation ``d`` is described by its *effective kernel* ``span = d * (k - 1) + 1``. Three
numbers describe where a unit of layer ``l`` looks in the input:

* ``size`` (r): how many input pixels one unit sees,
* ``jump`` (j): how far apart, in input pixels, two neighbouring units look,
* ``start``: the input coordinate of the centre of what unit 0 sees (pixel centres are
  at 0, 1, 2, ...; a negative start means unit 0 is centred in the padding).

They follow a recurrence, starting from the input itself (``r = 1, j = 1, start = 0``):

    r_l     = r_{l-1} + (span_l - 1) * j_{l-1}
    start_l = start_{l-1} + ((span_l - 1) / 2 - p_l) * j_{l-1}
    j_l     = j_{l-1} * s_l

Unit ``u`` of layer ``l`` is centred at ``start_l + u * j_l`` and sees the
``r_l`` pixels around it. Taught in the book: chapter 01, "Receptive field".

References:
    Araujo, Norris and Sim, "Computing Receptive Fields of Convolutional Neural
    Networks", Distill, 2019, doi:10.23915/distill.00021.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from cvprep._validation import check_int, pair

if TYPE_CHECKING:  # torch is imported only when a module is actually passed in
    import torch


class LayerSpec(NamedTuple):
    """Geometry of one convolution or pooling layer along one axis."""

    kernel_size: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1


class ReceptiveField(NamedTuple):
    """Where a unit of a layer looks in the input, along one axis."""

    size: int  # input pixels one unit sees
    jump: int  # input pixels between neighbouring units (product of strides so far)
    start: float  # input coordinate of the centre of unit 0


def _layer_spec(layer: object, index: int, axis: int) -> LayerSpec:
    """Validate ``layers[index]`` and pick the entries for ``axis`` where pairs are given."""
    if not isinstance(layer, (tuple, list)) or len(layer) != 4:
        raise ValueError(
            f"layers[{index}] must be a (kernel_size, stride, padding, dilation) tuple, got {layer!r}"
        )
    minimums = (1, 1, 0, 1)
    return LayerSpec(*(pair(value, f"layers[{index}].{field}", low)[axis]
                       for value, field, low in zip(layer, LayerSpec._fields, minimums)))


def _receptive_field_of_specs(layers: Sequence[LayerSpec]) -> list[ReceptiveField]:
    """The recurrence of the module docstring, for validated integer layer specs."""
    fields = []
    size, jump, start = 1, 1, 0.0  # the input: each pixel sees itself
    for kernel_size, stride, padding, dilation in layers:
        span = dilation * (kernel_size - 1) + 1  # units of the previous layer one kernel covers
        size = size + (span - 1) * jump
        start = start + ((span - 1) / 2 - padding) * jump
        jump = jump * stride
        fields.append(ReceptiveField(size, jump, start))
    return fields


def receptive_field(layers: Sequence[Sequence[int]] | "torch.nn.Module", axis: int = 0) -> list[ReceptiveField]:
    """Receptive field size, jump and start after every layer of a stack.

    Args:
        layers: either a sequence of ``(kernel_size, stride, padding, dilation)`` tuples
            (each entry an int or an ``(h, w)`` pair), applied in order, or a
            ``torch.nn.Module`` whose ``Conv2d``, ``MaxPool2d`` and ``AvgPool2d``
            layers run one after the other in the order they were registered (see
            :func:`conv_layers`; other layers do not move the receptive field).
        axis: 0 for the height axis, 1 for the width axis (matters only for
            non-square kernels, strides, paddings or dilations).

    Returns:
        One :class:`ReceptiveField` ``(size, jump, start)`` per layer, in order.

    Raises:
        TypeError: a layer entry is not an int or pair of ints.
        ValueError: a layer is not a 4-tuple, an entry is out of range (kernel,
            stride, dilation >= 1, padding >= 0), or ``axis`` is not 0 or 1.

    References:
        Araujo, Norris and Sim, "Computing Receptive Fields of Convolutional Neural
        Networks", Distill, 2019; Simonyan and Zisserman, "Very Deep Convolutional
        Networks for Large-Scale Image Recognition", 2014, arXiv:1409.1556 (stacks of 3x3).
    """
    return _receptive_field_of_specs(layer_specs(layers, axis))


def layer_specs(layers: Sequence[Sequence[int]] | "torch.nn.Module", axis: int = 0) -> list[LayerSpec]:
    """Validate a layer stack and return it as integer :class:`LayerSpec` s along ``axis``.

    Accepts the same ``layers`` as :func:`receptive_field`, which documents the errors.
    """
    axis = check_int(axis, "axis", 0)
    if axis > 1:
        raise ValueError(f"axis must be 0 (height) or 1 (width), got {axis}")
    if hasattr(layers, "named_modules"):
        return list(conv_layers(layers, axis=axis).values())
    if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence):
        raise TypeError(f"layers must be a sequence of layer tuples or a torch.nn.Module, got {type(layers).__name__}")
    return [_layer_spec(layer, i, axis) for i, layer in enumerate(layers)]


def back_projection(layers: Sequence[Sequence[int]], unit: int = 0) -> list[list[int]]:
    """Which units of every layer output ``unit`` of the last layer depends on.

    Walks the stack backwards: unit ``q`` of a layer ``(k, s, p, d)`` reads units
    ``q * s - p + t * d`` (``t = 0 .. k - 1``) of the layer before it. Indices below 0
    or past the end of a layer fall in its padding; they are kept, as the receptive
    field counts them too. This is the definition the recurrence summarises, so the
    tests use it as an independent oracle.

    Args:
        layers: ``(kernel_size, stride, padding, dilation)`` tuples of ints, in order.
        unit: index of the unit in the last layer's output.

    Returns:
        One sorted list of unit indices per layer, from the input (index 0) to the last
        layer's output (``[unit]``); dilation leaves holes in them.
    """
    seen = [[unit]]
    for kernel_size, stride, padding, dilation in reversed(list(layers)):
        seen.append(sorted({q * stride - padding + t * dilation for q in seen[-1] for t in range(kernel_size)}))
    return seen[::-1]


def conv_layers(module: "torch.nn.Module", axis: int = 0, exclude: Sequence[str] = ()) -> dict[str, LayerSpec]:
    """The convolution and pooling layers of a module, in registration order.

    Torchvision's sequential models (VGG, AlexNet) and the main path of ResNet register
    their layers in the order they run. Branches are not followed: pass, e.g.,
    ``exclude=("downsample",)`` to drop ResNet's projection shortcuts, whose receptive
    field is smaller than the main path's.

    Args:
        module: any ``torch.nn.Module``; no forward pass is run and no weights are needed.
        axis: 0 for height, 1 for width.
        exclude: names of sub-modules to skip, matched against each dot-separated part
            of the qualified name (``"downsample"`` skips ``layer1.0.downsample.0``).

    Returns:
        Qualified module name -> :class:`LayerSpec` for each ``Conv2d``, ``MaxPool2d``
        and ``AvgPool2d``. Adaptive (global) pooling is skipped: its window depends on
        the input size.
    """
    from torch import nn

    specs = {}
    for name, layer in module.named_modules():
        if set(name.split(".")) & set(exclude):
            continue
        if isinstance(layer, nn.Conv2d):
            kernel, stride, dilation = layer.kernel_size[axis], layer.stride[axis], layer.dilation[axis]
            padding = layer.padding
            if isinstance(padding, str):  # "valid" pads nothing; "same" pads the left side by floor(total / 2)
                padding = 0 if padding == "valid" else dilation * (kernel - 1) // 2
            else:
                padding = padding[axis]
        elif isinstance(layer, (nn.MaxPool2d, nn.AvgPool2d)):
            kernel = pair(layer.kernel_size, f"{name}.kernel_size", 1)[axis]
            stride = pair(layer.stride or layer.kernel_size, f"{name}.stride", 1)[axis]
            padding = pair(layer.padding, f"{name}.padding", 0)[axis]
            dilation = pair(getattr(layer, "dilation", 1), f"{name}.dilation", 1)[axis]
        else:
            continue
        specs[name] = LayerSpec(kernel, stride, padding, dilation)
    return specs
