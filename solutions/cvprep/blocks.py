"""Building blocks of CNN architectures as ``torch.nn`` modules, written from the papers.

Each block has the same parameters (count, shapes and registration order) and the same
output shape as its torchvision counterpart, so weights copied over tensor by tensor
give the same outputs. Parameter costs, for a block that keeps ``C`` channels
(BatchNorm adds 2 per channel; weights dominate):

* ``BasicBlock`` (ResNet-18/34): two 3x3 convolutions, ``2 * 9 * C^2`` weights.
* ``Bottleneck`` (ResNet-50+, ResNeXt): 1x1 down to ``w``, 3x3 with ``g`` groups, 1x1 up
  to ``e * w``: ``2 * e * w^2 + 9 * w^2 / g`` weights for ``C = e * w``. ResNet-50's
  ``e = 4, g = 1`` gives ``17 w^2``: about a BasicBlock on ``w`` channels (``18 w^2``),
  while carrying ``4 w`` channels.
* ``DepthwiseSeparableConv`` (MobileNet v1): ``9 * C_in + C_in * C_out`` weights
  instead of ``9 * C_in * C_out``, a ratio of ``1 / C_out + 1 / 9``.
* ``SqueezeExcitation``: ``2 * C * C_s + C_s + C``, on a pooled ``1x1`` map, so its
  multiply-accumulates do not grow with ``H * W``.
* ``InvertedResidual`` (MobileNet v2): expansion ``t``, ``t * C_in^2 + 9 * t * C_in +
  t * C_in * C_out`` weights; the wide ``t * C_in`` tensor lives only inside the block.

Layout: tensors are NCHW. Every ``forward`` checks that its input is
``[N, C_in, H, W]`` with the block's ``C_in``. Spatial size: a block with stride ``s``
maps ``H`` to ``floor((H - 1) / s) + 1`` (padding 1 on every 3x3 convolution).

References:
    He, Zhang, Ren and Sun, "Deep Residual Learning for Image Recognition", CVPR 2016,
    arXiv:1512.03385.
    Xie, Girshick, Dollar, Tu and He, "Aggregated Residual Transformations for Deep
    Neural Networks", CVPR 2017, arXiv:1611.05431.
    Howard, Zhu, Chen, Kalenichenko, Wang, Weyand, Andreetto and Adam, "MobileNets:
    Efficient Convolutional Neural Networks for Mobile Vision Applications", 2017,
    arXiv:1704.04861.
    Sandler, Howard, Zhu, Zhmoginov and Chen, "MobileNetV2: Inverted Residuals and
    Linear Bottlenecks", CVPR 2018, arXiv:1801.04381.
    Hu, Shen and Sun, "Squeeze-and-Excitation Networks", CVPR 2018, arXiv:1709.01507.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from cvprep._validation import check_int

ActivationFactory = Callable[[], nn.Module]


def _conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """A convolution without bias (a BatchNorm shift follows) whose padding keeps ``H`` and
    ``W`` at stride 1 (odd kernels only)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2, groups=groups,
                     bias=False)


def _conv_bn(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    stride: int = 1,
    groups: int = 1,
    activation: ActivationFactory | None = None,
) -> nn.Sequential:
    """:func:`_conv`, BatchNorm, optional activation."""
    layers: list[nn.Module] = [_conv(in_channels, out_channels, kernel_size, stride, groups),
                               nn.BatchNorm2d(out_channels)]
    if activation is not None:
        layers.append(activation())
    return nn.Sequential(*layers)


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """Identity when the shapes already agree, else a strided 1x1 projection (ResNet option B)."""
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return _conv_bn(in_channels, out_channels, 1, stride)


def _check_input(x: object, channels: int) -> Tensor:
    """Raise unless ``x`` is a ``Tensor[N, channels, H, W]``; return it.

    Raises:
        TypeError: ``x`` is not a ``torch.Tensor``.
        ValueError: ``x`` is not 4-D or has the wrong number of channels.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__module__}.{type(x).__name__}")
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(f"x must have shape [N, {channels}, H, W], got {tuple(x.shape)}")
    return x


def _make_activation(factory: object, name: str) -> nn.Module:
    """Instantiate an activation from its class (or any zero-argument factory).

    Raises:
        TypeError: ``factory`` is a module instance, is not callable, or does not build
            an ``nn.Module``.
    """
    if isinstance(factory, nn.Module):  # callable too, but calling it runs forward() with no input
        raise TypeError(f"{name} must be a class such as nn.ReLU, not an instance, got {factory!r}")
    if not callable(factory):
        raise TypeError(f"{name} must be a callable returning an nn.Module (e.g. nn.ReLU), got {factory!r}")
    module = factory()
    if not isinstance(module, nn.Module):
        raise TypeError(f"{name}() must return an nn.Module, got {type(module).__name__}")
    return module


class BasicBlock(nn.Module):
    """ResNet's basic residual block: ``relu(bn(conv3x3(relu(bn(conv3x3(x))))) + shortcut(x))``.

    The first 3x3 convolution carries the stride. The shortcut is the identity when the
    shape is unchanged, otherwise a strided 1x1 convolution with BatchNorm (projection).

    Args:
        in_channels: channels of the input, ``C_in >= 1``.
        out_channels: channels of both convolutions and of the output, ``C_out >= 1``.
        stride: stride of the first convolution and of the projection, ``>= 1``.

    Shapes:
        x (Tensor[N, C_in, H, W]) -> Tensor[N, C_out, H', W'] with
        ``H' = floor((H - 1) / stride) + 1``, and the same for ``W'``.

    Raises:
        TypeError: an argument is not an int (``bool`` is refused).
        ValueError: an argument is below 1.

    Counterpart: ``torchvision.models.resnet.BasicBlock(in_channels, out_channels, stride,
    downsample=...)``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels", 1)
        self.out_channels = check_int(out_channels, "out_channels", 1)
        self.stride = check_int(stride, "stride", 1)
        # registration order matters: conv1, bn1, conv2, bn2, shortcut, as in torchvision
        self.conv1 = _conv(in_channels, out_channels, 3, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = _conv(out_channels, out_channels, 3)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = _shortcut(in_channels, out_channels, stride)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block.

        Args:
            x (Tensor[N, C_in, H, W]): input feature map.

        Returns:
            Tensor[N, C_out, H', W'].

        Raises:
            TypeError: ``x`` is not a tensor.
            ValueError: ``x`` is not ``[N, C_in, H, W]``.
        """
        x = _check_input(x, self.in_channels)
        out = torch.relu(self.bn1(self.conv1(x)))  # [N, C_out, H', W']
        out = self.bn2(self.conv2(out))
        # ReLU after the addition, so the residual branch can push the sum either way
        return torch.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """ResNet's bottleneck block (v1.5), also ResNeXt's with ``groups > 1``.

    ``1x1`` reduce to ``width`` -> ``3x3`` (stride, ``groups``) -> ``1x1`` expand to
    ``width * expansion``, BatchNorm after each, ReLU after the first two and after the
    addition of the shortcut. Putting the stride on the 3x3 (not the first 1x1, as in the
    paper) is torchvision's "ResNet v1.5": the 1x1 then sees every input pixel.

    Output channels are ``width * expansion``. torchvision instead fixes them to
    ``planes * 4`` and derives the width, so ResNet-50 is ``expansion=4``, while
    ResNeXt-50 32x4d and Wide ResNet-50-2 (width ``2 * planes``) are ``expansion=2``.

    Args:
        in_channels: channels of the input, ``C_in >= 1``.
        width: channels of the two inner convolutions, ``>= 1``.
        stride: stride of the 3x3 convolution and of the projection, ``>= 1``.
        expansion: ``C_out = width * expansion``, ``>= 1``.
        groups: groups of the 3x3 convolution (ResNeXt's cardinality), must divide ``width``.

    Shapes:
        x (Tensor[N, C_in, H, W]) -> Tensor[N, width * expansion, H', W'] with
        ``H' = floor((H - 1) / stride) + 1``, and the same for ``W'``.

    Raises:
        TypeError: an argument is not an int (``bool`` is refused).
        ValueError: an argument is below 1, or ``groups`` does not divide ``width``.

    Counterpart: ``torchvision.models.resnet.Bottleneck(in_channels, planes, stride,
    downsample, groups, base_width)`` with ``width = int(planes * base_width / 64) * groups``.
    """

    def __init__(self, in_channels: int, width: int, stride: int = 1, expansion: int = 4, groups: int = 1) -> None:
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels", 1)
        self.width = check_int(width, "width", 1)
        self.stride = check_int(stride, "stride", 1)
        self.expansion = check_int(expansion, "expansion", 1)
        self.groups = check_int(groups, "groups", 1)
        if width % groups:
            raise ValueError(f"groups must divide width, got groups={groups} and width={width}")
        self.out_channels = width * expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, padding=1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, self.out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(self.out_channels)
        self.shortcut = _shortcut(in_channels, self.out_channels, stride)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block.

        Args:
            x (Tensor[N, C_in, H, W]): input feature map.

        Returns:
            Tensor[N, width * expansion, H', W'].

        Raises:
            TypeError: ``x`` is not a tensor.
            ValueError: ``x`` is not ``[N, C_in, H, W]``.
        """
        x = _check_input(x, self.in_channels)
        out = torch.relu(self.bn1(self.conv1(x)))  # [N, width, H, W]
        out = torch.relu(self.bn2(self.conv2(out)))  # [N, width, H', W']
        out = self.bn3(self.conv3(out))  # [N, width * expansion, H', W']
        return torch.relu(out + self.shortcut(x))


class DepthwiseSeparableConv(nn.Module):
    """MobileNet v1's factorised convolution: depthwise 3x3, then pointwise 1x1.

    The depthwise 3x3 (``groups = C_in``, one filter per channel, carries the stride)
    filters space; the pointwise 1x1 mixes channels. Each is followed by BatchNorm and
    ReLU. Weights: ``9 * C_in + C_in * C_out`` instead of ``9 * C_in * C_out``.

    Args:
        in_channels: channels of the input, ``C_in >= 1``.
        out_channels: channels of the output, ``C_out >= 1``.
        stride: stride of the depthwise convolution, ``>= 1``.

    Shapes:
        x (Tensor[N, C_in, H, W]) -> Tensor[N, C_out, H', W'] with
        ``H' = floor((H - 1) / stride) + 1``, and the same for ``W'``.

    Raises:
        TypeError: an argument is not an int (``bool`` is refused).
        ValueError: an argument is below 1.

    torchvision has no counterpart (its MobileNets are v2 and v3).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels", 1)
        self.out_channels = check_int(out_channels, "out_channels", 1)
        self.stride = check_int(stride, "stride", 1)
        self.depthwise = _conv_bn(in_channels, in_channels, 3, stride, groups=in_channels, activation=nn.ReLU)
        self.pointwise = _conv_bn(in_channels, out_channels, 1, activation=nn.ReLU)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block.

        Args:
            x (Tensor[N, C_in, H, W]): input feature map.

        Returns:
            Tensor[N, C_out, H', W'].

        Raises:
            TypeError: ``x`` is not a tensor.
            ValueError: ``x`` is not ``[N, C_in, H, W]``.
        """
        x = _check_input(x, self.in_channels)
        return self.pointwise(self.depthwise(x))  # [N, C_in, H', W'] -> [N, C_out, H', W']


class SqueezeExcitation(nn.Module):
    """Squeeze-and-Excitation: reweight each channel by a gate computed from the whole map.

    Squeeze: global average pool to one number per channel. Excite: 1x1 convolution
    (with bias) down to ``squeeze_channels``, ``activation``, 1x1 convolution (with bias)
    back up, ``scale_activation``. The output is the input times this per-channel gate.

    Args:
        channels: channels of the input and of the output, ``C >= 1``.
        squeeze_channels: channels of the bottleneck, ``C_s >= 1`` (``C / 16`` in the paper).
        activation: class (zero-argument factory) of the bottleneck's activation.
        scale_activation: class of the gate's activation; ``nn.Sigmoid`` gives gates in (0, 1).

    Shapes:
        x (Tensor[N, C, H, W]) -> Tensor[N, C, H, W].

    Raises:
        TypeError: a channel count is not an int (``bool`` is refused), or an activation
            is not a callable returning an ``nn.Module``.
        ValueError: a channel count is below 1.

    Counterpart: ``torchvision.ops.SqueezeExcitation(channels, squeeze_channels)``.
    """

    def __init__(
        self,
        channels: int,
        squeeze_channels: int,
        activation: ActivationFactory = nn.ReLU,
        scale_activation: ActivationFactory = nn.Sigmoid,
    ) -> None:
        super().__init__()
        self.channels = check_int(channels, "channels", 1)
        self.squeeze_channels = check_int(squeeze_channels, "squeeze_channels", 1)
        self.reduce = nn.Conv2d(channels, squeeze_channels, 1)
        self.expand = nn.Conv2d(squeeze_channels, channels, 1)
        self.activation = _make_activation(activation, "activation")
        self.scale_activation = _make_activation(scale_activation, "scale_activation")

    def scale(self, x: Tensor) -> Tensor:
        """Per-channel gate of ``x``.

        Args:
            x (Tensor[N, C, H, W]): input feature map.

        Returns:
            Tensor[N, C, 1, 1]: the factor each channel of ``x`` is multiplied by.

        Raises:
            TypeError: ``x`` is not a tensor.
            ValueError: ``x`` is not ``[N, C, H, W]``.
        """
        x = _check_input(x, self.channels)
        squeezed = x.mean(dim=(2, 3), keepdim=True)  # [N, C, 1, 1]
        hidden = self.activation(self.reduce(squeezed))  # [N, C_s, 1, 1]
        return self.scale_activation(self.expand(hidden))  # [N, C, 1, 1]

    def forward(self, x: Tensor) -> Tensor:
        """Reweight the channels of ``x``.

        Args:
            x (Tensor[N, C, H, W]): input feature map.

        Returns:
            Tensor[N, C, H, W]: ``x * self.scale(x)``, the gate broadcast over ``H, W``.

        Raises:
            TypeError: ``x`` is not a tensor.
            ValueError: ``x`` is not ``[N, C, H, W]``.
        """
        return x * self.scale(x)


class InvertedResidual(nn.Module):
    """MobileNet v2's inverted residual block with a linear bottleneck.

    ``1x1`` expansion to ``t * C_in`` (skipped when ``t == 1``) -> depthwise ``3x3``
    (stride) -> ``1x1`` projection to ``C_out``; BatchNorm after each, ReLU6 after the
    first two only. The projection has no activation: a ReLU on the narrow output would
    destroy information that the low-dimensional tensor cannot afford to lose. The
    residual connects the narrow ends, only when the shape is unchanged
    (``stride == 1`` and ``C_in == C_out``); there is no projection shortcut.

    Args:
        in_channels: channels of the input, ``C_in >= 1``.
        out_channels: channels of the output, ``C_out >= 1``.
        stride: stride of the depthwise convolution, ``>= 1``.
        expand_ratio: ``t``, the hidden width is ``t * C_in``, ``>= 1`` (6 in the paper).

    Shapes:
        x (Tensor[N, C_in, H, W]) -> Tensor[N, C_out, H', W'] with
        ``H' = floor((H - 1) / stride) + 1``, and the same for ``W'``.

    Raises:
        TypeError: an argument is not an int (``bool`` is refused).
        ValueError: an argument is below 1.

    Counterpart: ``torchvision.models.mobilenetv2.InvertedResidual(in_channels,
    out_channels, stride, expand_ratio)``, which also accepts a fractional
    ``expand_ratio`` (rounding the hidden width) but only ``stride`` 1 or 2.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels", 1)
        self.out_channels = check_int(out_channels, "out_channels", 1)
        self.stride = check_int(stride, "stride", 1)
        self.expand_ratio = check_int(expand_ratio, "expand_ratio", 1)
        # torchvision rounds in_channels * expand_ratio for fractional ratios; ints are exact
        self.hidden_channels = in_channels * expand_ratio
        self.use_residual = stride == 1 and in_channels == out_channels
        hidden = self.hidden_channels
        # with t == 1 a 1x1 expansion would only be an extra linear map: leave it out
        self.expand = _conv_bn(in_channels, hidden, 1, activation=nn.ReLU6) if expand_ratio != 1 else nn.Identity()
        self.depthwise = _conv_bn(hidden, hidden, 3, stride, groups=hidden, activation=nn.ReLU6)
        self.project = _conv_bn(hidden, out_channels, 1)  # linear: no activation

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block.

        Args:
            x (Tensor[N, C_in, H, W]): input feature map.

        Returns:
            Tensor[N, C_out, H', W'].

        Raises:
            TypeError: ``x`` is not a tensor.
            ValueError: ``x`` is not ``[N, C_in, H, W]``.
        """
        x = _check_input(x, self.in_channels)
        out = self.expand(x)  # [N, t * C_in, H, W]
        out = self.depthwise(out)  # [N, t * C_in, H', W']
        out = self.project(out)  # [N, C_out, H', W']
        return x + out if self.use_residual else out
