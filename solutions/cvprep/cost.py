"""What a network costs: parameters, multiply-accumulates, FLOPs and activation memory.

Conventions (stated once, used everywhere in the book):

* A **multiply-accumulate** (MAC) is one multiplication and one addition, ``acc += w * x``.
  A convolution or linear layer costs one MAC per weight per output position.
* A **FLOP** is one floating-point operation, so a MAC is two FLOPs. The papers and
  torchvision's model tables quote the *MAC* count of the convolution and linear layers
  and call it "FLOPs" (ResNet-50's "4.1 GFLOPs" are 4.1 G MACs, 8.2 G FLOPs). This module
  reports ``macs`` in the papers' sense and ``flops = 2 * macs``.
* Only convolution and linear layers count towards ``macs``. Batch norm, activations,
  pooling and the additions of residual connections are cheap in arithmetic (not in
  memory traffic) and are listed separately in :attr:`CostReport.other_ops`, never
  mixed into the total.
* Bias additions are not counted (one addition per output, a rounding error next to
  ``C_in * k * k`` MACs), as in the papers.

For a convolution with ``C_in`` input and ``C_out`` output channels, a ``kh x kw`` kernel,
``g`` groups and an ``H_out x W_out`` output:

    params = C_out * (C_in / g) * kh * kw  (+ C_out with a bias)
    MACs   = H_out * W_out * C_out * (C_in / g) * kh * kw

Every output value sums ``(C_in / g) * kh * kw`` products: the cost is the parameter
count times the number of output positions. Taught in the book: chapter 04,
"What a layer costs".

References:
    He, Zhang, Ren and Sun, "Deep Residual Learning for Image Recognition", CVPR 2016
    (the MAC convention of Table 1). Molchanov et al., "Pruning Convolutional Neural
    Networks for Resource Efficient Inference", ICLR 2017 (FLOPs as 2 x MACs).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cvprep._validation import check_int, pair

if TYPE_CHECKING:  # torch is imported only by profile()
    import torch

IntOrPair = int | tuple[int, int]


def _check_groups(in_channels: int, out_channels: int, groups: int) -> None:
    for name, channels in (("in_channels", in_channels), ("out_channels", out_channels)):
        if channels % groups:
            raise ValueError(f"{name} must be divisible by groups, got {name}={channels} and groups={groups}")


def conv2d_params(in_channels: int, out_channels: int, kernel_size: IntOrPair, groups: int = 1,
                  bias: bool = True) -> int:
    """Number of parameters of a 2-D convolution (``torch.nn.Conv2d``'s weight and bias).

    Args:
        in_channels: channels of the input, C_in.
        out_channels: channels of the output (number of filters), C_out.
        kernel_size: ``k`` or ``(kh, kw)``.
        groups: channel groups; ``groups = in_channels`` is a depthwise convolution.
        bias: whether the layer has a bias (one per output channel).

    Returns:
        ``C_out * (C_in / groups) * kh * kw``, plus ``C_out`` with a bias.

    Raises:
        TypeError: a size is not an int, or ``bias`` is not a bool.
        ValueError: a size is below 1, or the channels are not divisible by ``groups``.
    """
    in_channels = check_int(in_channels, "in_channels", 1)
    out_channels = check_int(out_channels, "out_channels", 1)
    kh, kw = pair(kernel_size, "kernel_size", 1)
    groups = check_int(groups, "groups", 1)
    if not isinstance(bias, bool):
        raise TypeError(f"bias must be a bool, got {type(bias).__name__} {bias!r}")
    _check_groups(in_channels, out_channels, groups)
    weights = out_channels * (in_channels // groups) * kh * kw  # weight [C_out, C_in/g, kh, kw]
    return weights + (out_channels if bias else 0)


def conv2d_macs(in_channels: int, out_channels: int, kernel_size: IntOrPair, output_size: IntOrPair,
                groups: int = 1) -> int:
    """Multiply-accumulates of a 2-D convolution for one image.

    Args:
        in_channels: channels of the input, C_in.
        out_channels: channels of the output, C_out.
        kernel_size: ``k`` or ``(kh, kw)``.
        output_size: ``H_out`` or ``(H_out, W_out)``, the spatial size of the output
            (compute it with :func:`cvprep.conv.conv_output_size`).
        groups: channel groups; ``groups = in_channels`` is a depthwise convolution.

    Returns:
        ``H_out * W_out * C_out * (C_in / groups) * kh * kw``. Multiply by the batch size
        for a batch, and by 2 for FLOPs.

    Raises:
        TypeError: a size is not an int.
        ValueError: a size is below 1, or the channels are not divisible by ``groups``.
    """
    in_channels = check_int(in_channels, "in_channels", 1)
    out_channels = check_int(out_channels, "out_channels", 1)
    kh, kw = pair(kernel_size, "kernel_size", 1)
    h_out, w_out = pair(output_size, "output_size", 1)
    groups = check_int(groups, "groups", 1)
    _check_groups(in_channels, out_channels, groups)
    macs_per_output = (in_channels // groups) * kh * kw
    return h_out * w_out * out_channels * macs_per_output


def linear_params(in_features: int, out_features: int, bias: bool = True) -> int:
    """Number of parameters of a fully connected layer (``torch.nn.Linear``).

    Raises:
        TypeError: a size is not an int, or ``bias`` is not a bool.
        ValueError: a size is below 1.
    """
    in_features = check_int(in_features, "in_features", 1)
    out_features = check_int(out_features, "out_features", 1)
    if not isinstance(bias, bool):
        raise TypeError(f"bias must be a bool, got {type(bias).__name__} {bias!r}")
    return out_features * in_features + (out_features if bias else 0)


def linear_macs(in_features: int, out_features: int, rows: int = 1) -> int:
    """Multiply-accumulates of a fully connected layer applied to ``rows`` input vectors.

    ``rows`` is 1 for one image's classifier head, and the number of tokens for a
    transformer's projection (a linear layer maps every token).

    Raises:
        TypeError: a size is not an int.
        ValueError: a size is below 1.
    """
    in_features = check_int(in_features, "in_features", 1)
    out_features = check_int(out_features, "out_features", 1)
    rows = check_int(rows, "rows", 1)
    return rows * out_features * in_features


# ---------------------------------------------------------------- whole models


@dataclass(frozen=True)
class LayerCost:
    """One row of a :class:`CostReport`."""

    name: str  # qualified module name, e.g. "layer1.0.conv2"
    kind: str  # module class, e.g. "Conv2d", or "add" for a residual addition
    output_shape: tuple[int, ...]
    params: int  # the module's own parameters
    macs: int  # conv and linear rows only; 0 for the other operations
    activations: int  # elements of the output


@dataclass(frozen=True)
class CostReport:
    """What :func:`profile` measured in one forward pass."""

    layers: list[LayerCost]  # convolution and linear layers, in the order they ran
    other_ops: list[LayerCost]  # everything else: norms, activations, pooling, "add" and "cat"
    params: int  # every parameter of the model, counted once
    macs: int  # multiply-accumulates of the convolution and linear layers
    activation_bytes: int  # memory of every intermediate output, each storage counted once
    input_shape: tuple[int, ...] = field(default=())

    @property
    def flops(self) -> int:
        """Floating-point operations of the convolution and linear layers: 2 per MAC."""
        return 2 * self.macs


def sequential_costs(model: torch.nn.Sequential, input_size: Sequence[int]) -> list[LayerCost]:
    """The rows of :func:`profile` for a plain ``nn.Sequential``, the readable way.

    Walks the layers in order, runs each on the previous output, and counts every
    ``Conv2d`` and ``Linear`` with :func:`conv2d_macs` and :func:`linear_macs`. No hooks:
    in a ``Sequential`` the order of the layers is the order they run in. (For networks
    with branches and additions use :func:`profile`; the two agree on every
    ``Sequential``.)

    Args:
        model: an ``nn.Sequential`` of modules that each take one tensor.
        input_size: the input's shape, e.g. ``(1, 3, 32, 32)``.

    Returns:
        One :class:`LayerCost` per ``Conv2d`` or ``Linear`` layer, in order.

    Raises:
        TypeError: ``model`` is not an ``nn.Sequential``, or ``input_size`` is not a
            sequence of ints.
        ValueError: a size is below 1.
    """
    import torch
    from torch import nn

    if not isinstance(model, nn.Sequential):
        raise TypeError(f"model must be a torch.nn.Sequential, got {type(model).__module__}.{type(model).__name__}")
    x = torch.zeros(_check_input_size(input_size))
    rows = []
    with torch.no_grad():
        for name, layer in model.named_children():
            x = layer(x)
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                params = sum(p.numel() for p in layer.parameters())
                rows.append(LayerCost(name, type(layer).__name__, tuple(x.shape), params,
                                      _module_macs(layer, x), x.numel()))
    return rows


def _module_macs(module: torch.nn.Module, output: torch.Tensor) -> int:
    from torch import nn

    if isinstance(module, nn.Conv2d):
        batch = output.shape[0] if output.dim() == 4 else 1  # Conv2d also takes one unbatched image
        h_out, w_out = output.shape[-2:]
        return batch * conv2d_macs(module.in_channels, module.out_channels, module.kernel_size,
                                   (h_out, w_out), module.groups)
    # nn.Linear maps the last dimension; every other dimension is a row (images, tokens).
    rows = output.numel() // module.out_features
    return linear_macs(module.in_features, module.out_features, rows)


def _attention_macs(module: torch.nn.MultiheadAttention, query: torch.Tensor, key: torch.Tensor) -> int:
    """MACs of ``nn.MultiheadAttention``: its four projections and its two matrix products.

    The module runs its projections as functions on its weights (its ``out_proj`` is never
    called as a module), so no hook sees them; counted here instead. With ``L`` query and
    ``S`` key tokens of width ``E`` (any number of heads): ``L E^2`` (queries),
    ``S E (kdim + vdim)`` (keys, values), ``2 L S E`` (scores, weighted sum), ``L E^2``
    (output).
    """
    batch_dim, token_dim = (0, 1) if module.batch_first else (1, 0)
    batch = query.shape[batch_dim] if query.dim() == 3 else 1
    length, source = query.shape[token_dim if query.dim() == 3 else 0], key.shape[token_dim if key.dim() == 3 else 0]
    width = module.embed_dim
    projections = length * width * width + source * width * (module.kdim + module.vdim) + length * width * width
    return batch * (projections + 2 * length * source * width)


def _check_input_size(input_size: object) -> tuple[int, ...]:
    if not isinstance(input_size, (tuple, list)) or not input_size:
        raise TypeError(f"input_size must be a tuple of ints such as (1, 3, 224, 224), got {input_size!r}")
    return tuple(check_int(s, f"input_size[{i}]", 1) for i, s in enumerate(input_size))


def profile(model: torch.nn.Module, input_size: Sequence[int]) -> CostReport:
    """Parameters, MACs and activation memory of ``model`` on an input of ``input_size``.

    Runs one forward pass on zeros (in eval mode, without gradients) and watches it with
    forward hooks on every leaf module, plus a watch on tensor additions (residual
    connections) and concatenations (DenseNet, Inception), which are functions rather
    than modules in torchvision's networks. No weights are needed:
    the cost depends only on the shapes.

    Args:
        model: any ``torch.nn.Module`` taking one tensor.
        input_size: the shape of that tensor, e.g. ``(1, 3, 224, 224)``; MACs and
            activations grow with the batch size, parameters do not.

    Returns:
        A :class:`CostReport`: per-layer rows for ``Conv2d``, ``Linear`` and
        ``MultiheadAttention`` (its projections and attention products), the other
        operations listed apart, and the totals ``params``, ``macs``, ``flops`` (2 x MACs)
        and ``activation_bytes``.

    Raises:
        TypeError: ``model`` is not a ``torch.nn.Module``, or ``input_size`` is not a
            sequence of ints.
        ValueError: a size is below 1, or the model cannot run on an input of that
            shape (wrong rank, wrong number of channels, too small for its strides).
    """
    import torch
    from torch import nn
    from torch.overrides import TorchFunctionMode

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__module__}.{type(model).__name__}")
    input_size = _check_input_size(input_size)

    layers: list[LayerCost] = []
    others: list[LayerCost] = []
    # Addresses of the outputs still alive: an in-place ReLU returns its input's memory and
    # is counted once; an address freed and handed to a later output counts again. (Keeping
    # every output alive instead would make the allocator fault in fresh pages each call.)
    live: set[int] = set()
    activation_bytes = 0
    running: list[str] = []  # names of the modules whose forward is running, innermost last

    def remember(tensor: torch.Tensor) -> None:
        nonlocal activation_bytes
        storage = tensor.untyped_storage()
        address = storage.data_ptr()
        if address not in live:
            live.add(address)
            activation_bytes += storage.nbytes()
            weakref.finalize(tensor, live.discard, address)

    def after(module: nn.Module, inputs, output) -> None:
        running.pop()
        if isinstance(module, nn.MultiheadAttention):
            attention = output[0]
            layers.append(LayerCost(names[module], "MultiheadAttention", tuple(attention.shape),
                                    sum(p.numel() for p in module.parameters()),
                                    _attention_macs(module, inputs[0], inputs[1]), attention.numel()))
            remember(attention)
            return
        if any(True for _ in module.children()) or not isinstance(output, torch.Tensor):
            return
        own = sum(p.numel() for p in module.parameters(recurse=False))
        is_layer = isinstance(module, (nn.Conv2d, nn.Linear))
        row = LayerCost(names[module], type(module).__name__, tuple(output.shape), own,
                        _module_macs(module, output) if is_layer else 0, output.numel())
        (layers if is_layer else others).append(row)
        remember(output)

    class WatchFunctions(TorchFunctionMode):
        """Residual additions and concatenations: functions, not modules, in torchvision."""

        ADDITIONS = {torch.add, torch.Tensor.add, torch.Tensor.add_, torch.Tensor.__add__,
                     torch.Tensor.__iadd__, torch.Tensor.__radd__}

        def __torch_function__(self, func, types, args=(), kwargs=None):
            result = func(*args, **(kwargs or {}))
            if not isinstance(result, torch.Tensor):
                return result
            if func in self.ADDITIONS:
                kind = "add" if sum(isinstance(a, torch.Tensor) for a in args[:2]) == 2 else None
            else:
                kind = "cat" if func is torch.cat else None  # DenseNet's new copy of all earlier maps
            if kind:
                others.append(LayerCost(running[-1] if running else "", kind, tuple(result.shape), 0, 0,
                                        result.numel()))
                remember(result)
            return result

    names = {module: name for name, module in model.named_modules()}
    handles = []
    for module in names:
        handles.append(module.register_forward_pre_hook(lambda m, _i: running.append(names[m])))
        handles.append(module.register_forward_hook(after))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad(), WatchFunctions():
            try:
                model(torch.zeros(input_size))
            except (RuntimeError, ValueError, IndexError) as error:
                raise ValueError(f"input_size {input_size} does not fit this model: "
                                 f"{str(error).splitlines()[0]}") from error
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    params = sum(p.numel() for p in model.parameters())  # parameters() yields a shared tensor once
    return CostReport(layers=layers, other_ops=others, params=params, macs=sum(r.macs for r in layers),
                      activation_bytes=activation_bytes, input_shape=input_size)
