"""cvprep.blocks against torchvision's blocks: parameter count, output shape and, with the
same weights copied over tensor by tensor, the same outputs; plus the behaviours the
papers describe (residual or not, per-channel gates) and argument checks."""

import re

import pytest
import torch
import torch.nn.functional as F
import torchvision.models.mobilenetv2 as tv_mobilenetv2
import torchvision.models.resnet as tv_resnet
import torchvision.ops
from torch import nn

import cvprep.blocks
from cvprep.blocks import BasicBlock, Bottleneck, DepthwiseSeparableConv, InvertedResidual, SqueezeExcitation

SIZE = 9  # odd, so a stride of 2 has to round: 9 -> 5


@pytest.fixture(autouse=True)
def seed():
    """Same random weights and inputs on every run, whatever the test order."""
    torch.manual_seed(0)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def strided(size: int, stride: int) -> int:
    """Output size of a 3x3 / padding 1 (or 1x1 / padding 0) convolution with ``stride``."""
    return (size - 1) // stride + 1


def tv_projection(in_channels: int, out_channels: int, stride: int) -> nn.Module | None:
    """The ``downsample`` torchvision's ResNet._make_layer builds when the shape changes."""
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels))


def tv_basic(in_channels, planes, stride=1):
    return tv_resnet.BasicBlock(in_channels, planes, stride, downsample=tv_projection(in_channels, planes, stride))


def tv_bottleneck(in_channels, planes, stride=1, groups=1, base_width=64):
    downsample = tv_projection(in_channels, planes * tv_resnet.Bottleneck.expansion, stride)
    return tv_resnet.Bottleneck(in_channels, planes, stride, downsample, groups=groups, base_width=base_width)


# (id, cvprep block, torchvision counterpart, input channels)
CASES = [
    ("basic-identity", lambda: BasicBlock(64, 64), lambda: tv_basic(64, 64), 64),
    ("basic-stride2", lambda: BasicBlock(64, 128, 2), lambda: tv_basic(64, 128, 2), 64),
    ("basic-channels-only", lambda: BasicBlock(32, 64), lambda: tv_basic(32, 64), 32),
    ("resnet50-identity", lambda: Bottleneck(256, 64), lambda: tv_bottleneck(256, 64), 256),
    ("resnet50-stride2", lambda: Bottleneck(256, 128, 2), lambda: tv_bottleneck(256, 128, 2), 256),
    ("resnet50-first-block", lambda: Bottleneck(64, 64), lambda: tv_bottleneck(64, 64), 64),
    # ResNeXt-50 32x4d: torchvision's width = int(64 * 4 / 64) * 32 = 128, output 64 * 4 = 256 = 2 * width
    ("resnext-identity", lambda: Bottleneck(256, 128, expansion=2, groups=32),
     lambda: tv_bottleneck(256, 64, groups=32, base_width=4), 256),
    ("resnext-stride2", lambda: Bottleneck(256, 256, 2, expansion=2, groups=32),
     lambda: tv_bottleneck(256, 128, 2, groups=32, base_width=4), 256),
    ("se", lambda: SqueezeExcitation(64, 16), lambda: torchvision.ops.SqueezeExcitation(64, 16), 64),
    ("se-silu-hardsigmoid", lambda: SqueezeExcitation(32, 8, nn.SiLU, nn.Hardsigmoid),
     lambda: torchvision.ops.SqueezeExcitation(32, 8, nn.SiLU, nn.Hardsigmoid), 32),
    ("ir-t1", lambda: InvertedResidual(32, 16, 1, 1), lambda: tv_mobilenetv2.InvertedResidual(32, 16, 1, 1), 32),
    ("ir-residual", lambda: InvertedResidual(24, 24, 1, 6), lambda: tv_mobilenetv2.InvertedResidual(24, 24, 1, 6), 24),
    ("ir-stride2", lambda: InvertedResidual(16, 24, 2, 6), lambda: tv_mobilenetv2.InvertedResidual(16, 24, 2, 6), 16),
    ("ir-stride2-same-channels", lambda: InvertedResidual(32, 32, 2, 6),
     lambda: tv_mobilenetv2.InvertedResidual(32, 32, 2, 6), 32),
]
case = pytest.mark.parametrize("make_mine, make_theirs, channels", [c[1:] for c in CASES], ids=[c[0] for c in CASES])


@torch.no_grad()
def randomize_batchnorm(module: nn.Module) -> None:
    """Give every BatchNorm non-trivial statistics, so that eval mode does not hide a mismatch."""
    for bn in module.modules():
        if isinstance(bn, nn.BatchNorm2d):
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.normal_()
            bn.running_mean.normal_()
            bn.running_var.uniform_(0.5, 2.0)


@torch.no_grad()
def copy_weights(mine: nn.Module, theirs: nn.Module) -> None:
    """Copy ``theirs`` into ``mine`` tensor by tensor, in registration order."""
    for tensors in ("parameters", "buffers"):
        for a, b in zip(getattr(mine, tensors)(), getattr(theirs, tensors)(), strict=True):
            assert a.shape == b.shape, (tensors, a.shape, b.shape)
            a.copy_(b)


# ---------------------------------------------------------------- against torchvision


@case
def test_parameter_count_matches_torchvision(make_mine, make_theirs, channels):
    assert n_params(make_mine()) == n_params(make_theirs())


@case
def test_output_shape_matches_torchvision(make_mine, make_theirs, channels):
    mine, theirs = make_mine(), make_theirs()
    x = torch.randn(2, channels, SIZE, SIZE)
    with torch.no_grad():
        out = mine(x)
        assert out.shape == theirs(x).shape
    stride = getattr(mine, "stride", 1)
    assert out.shape[2:] == (strided(SIZE, stride),) * 2


@case
def test_same_weights_give_the_same_outputs(make_mine, make_theirs, channels):
    mine, theirs = make_mine(), make_theirs()
    randomize_batchnorm(theirs)
    copy_weights(mine, theirs)
    mine.eval(), theirs.eval()
    x = torch.randn(2, channels, SIZE, SIZE)
    with torch.no_grad():
        torch.testing.assert_close(mine(x), theirs(x))


def test_the_residual_condition_matches_torchvision():
    for args in [(24, 24, 1, 6), (24, 24, 1, 1), (16, 24, 1, 6), (32, 32, 2, 6)]:
        assert InvertedResidual(*args).use_residual == tv_mobilenetv2.InvertedResidual(*args).use_res_connect


# ---------------------------------------------------------------- depthwise separable


@pytest.mark.parametrize("c_in, c_out, stride", [(32, 64, 1), (64, 128, 2), (3, 1, 1), (1, 5, 3)])
def test_depthwise_separable_parameter_count_by_hand(c_in, c_out, stride):
    # depthwise: one 3x3 filter per input channel, 9 * C_in; its BN: 2 * C_in (scale, shift);
    # pointwise: C_in * C_out; its BN: 2 * C_out. No biases: the BN shifts replace them.
    # e.g. 32 -> 64: 288 + 64 + 2,048 + 128 = 2,528, against 9 * 32 * 64 = 18,432 for a full 3x3.
    expected = 3 * 3 * c_in + 2 * c_in + c_in * c_out + 2 * c_out
    block = DepthwiseSeparableConv(c_in, c_out, stride)
    assert n_params(block) == expected
    assert block(torch.randn(1, c_in, SIZE, SIZE)).shape == (1, c_out, strided(SIZE, stride), strided(SIZE, stride))


def test_depthwise_separable_is_a_depthwise_then_a_pointwise_convolution():
    block = DepthwiseSeparableConv(4, 6, stride=2)
    randomize_batchnorm(block)
    block.eval()
    (dw, bn1, _), (pw, bn2, _) = block.depthwise, block.pointwise
    assert dw.weight.shape == (4, 1, 3, 3)  # one filter per channel
    x = torch.randn(2, 4, SIZE, SIZE)

    def bn(t, layer):
        return F.batch_norm(t, layer.running_mean, layer.running_var, layer.weight, layer.bias, eps=layer.eps)

    with torch.no_grad():
        hidden = F.relu(bn(F.conv2d(x, dw.weight, stride=2, padding=1, groups=4), bn1))
        expected = F.relu(bn(F.conv2d(hidden, pw.weight), bn2))
        torch.testing.assert_close(block(x), expected)


# ---------------------------------------------------------------- residual behaviour


@torch.no_grad()
def silence(bn: nn.BatchNorm2d) -> None:
    """Make a BatchNorm output zeros, so the residual branch contributes nothing."""
    bn.weight.zero_()
    bn.bias.zero_()


@pytest.mark.parametrize("expand_ratio", [1, 6])
def test_inverted_residual_adds_the_input_when_the_shape_is_kept(expand_ratio):
    block = InvertedResidual(24, 24, 1, expand_ratio).eval()
    silence(block.project[1])
    x = torch.randn(2, 24, SIZE, SIZE)
    with torch.no_grad():
        torch.testing.assert_close(block(x), x)  # no ReLU after the addition either


@pytest.mark.parametrize("in_channels, out_channels, stride", [(32, 32, 2), (16, 24, 1)])
def test_inverted_residual_has_no_shortcut_when_the_shape_changes(in_channels, out_channels, stride):
    block = InvertedResidual(in_channels, out_channels, stride, 6).eval()
    silence(block.project[1])
    with torch.no_grad():
        out = block(torch.randn(2, in_channels, SIZE, SIZE))
    assert not block.use_residual
    assert torch.count_nonzero(out) == 0


def test_inverted_residual_projection_is_linear():
    block = InvertedResidual(8, 8, 2, 6).eval()
    randomize_batchnorm(block)
    with torch.no_grad():
        out = block(torch.randn(2, 8, SIZE, SIZE))
    assert (out < 0).any()  # a final ReLU (or ReLU6) would clip these


@pytest.mark.parametrize("make, last_bn", [
    (lambda: BasicBlock(16, 16), "bn2"),
    (lambda: Bottleneck(64, 16), "bn3"),
    (lambda: Bottleneck(64, 32, expansion=2, groups=4), "bn3"),
])
def test_resnet_blocks_with_a_silent_branch_pass_relu_of_the_input(make, last_bn):
    block = make().eval()
    assert isinstance(block.shortcut, nn.Identity)
    silence(getattr(block, last_bn))
    x = torch.randn(2, block.in_channels, SIZE, SIZE)
    with torch.no_grad():
        torch.testing.assert_close(block(x), torch.relu(x))


@pytest.mark.parametrize("make", [lambda: BasicBlock(16, 32), lambda: BasicBlock(16, 16, 2),
                                  lambda: Bottleneck(16, 16), lambda: Bottleneck(64, 16, 2)])
def test_resnet_blocks_project_the_shortcut_when_the_shape_changes(make):
    block = make()
    conv, bn = block.shortcut
    assert conv.kernel_size == (1, 1) and conv.stride == (block.stride,) * 2 and conv.bias is None
    assert bn.num_features == block.out_channels


def test_bottleneck_output_channels_are_width_times_expansion():
    assert Bottleneck(64, 16, expansion=3)(torch.randn(1, 64, 8, 8)).shape == (1, 48, 8, 8)
    assert Bottleneck(64, 32, groups=8).conv2.weight.shape == (32, 4, 3, 3)  # 32 / 8 inputs per group


# ---------------------------------------------------------------- squeeze-and-excitation


def test_squeeze_excitation_scales_each_channel_by_a_gate_in_0_1():
    block = SqueezeExcitation(16, 4)
    x = torch.randn(3, 16, SIZE, SIZE)
    with torch.no_grad():
        out, s = block(x), block.scale(x)
    assert s.shape == (3, 16, 1, 1)
    assert ((s > 0) & (s < 1)).all()
    torch.testing.assert_close(out, x * s)
    ratio = out / x  # one factor per (image, channel), the same at every pixel
    torch.testing.assert_close(ratio, ratio[:, :, :1, :1].expand_as(ratio))
    assert not torch.allclose(s[0], s[1])  # the gate depends on the image


def test_squeeze_excitation_gate_comes_from_the_spatial_mean():
    block = SqueezeExcitation(8, 2)
    x = torch.randn(1, 8, SIZE, SIZE)
    shuffled = x.flatten(2)[:, :, torch.randperm(SIZE * SIZE)].view_as(x)  # same mean per channel
    with torch.no_grad():
        torch.testing.assert_close(block.scale(x), block.scale(shuffled))


# ---------------------------------------------------------------- argument checks


@pytest.mark.parametrize("make, error, message", [
    (lambda: BasicBlock(0, 64), ValueError, "in_channels must be >= 1, got 0"),
    (lambda: BasicBlock(64.0, 64), TypeError, "in_channels must be an int, got float 64.0"),
    (lambda: BasicBlock(64, 64, stride=True), TypeError, "stride must be an int, got bool True"),
    (lambda: BasicBlock(64, 64, stride=0), ValueError, "stride must be >= 1, got 0"),
    (lambda: Bottleneck(256, "64"), TypeError, "width must be an int, got str '64'"),
    (lambda: Bottleneck(256, 64, expansion=0), ValueError, "expansion must be >= 1, got 0"),
    (lambda: Bottleneck(256, 64, groups=0), ValueError, "groups must be >= 1, got 0"),
    (lambda: Bottleneck(256, 64, groups=3), ValueError, "groups must divide width, got groups=3 and width=64"),
    (lambda: DepthwiseSeparableConv(32, -1), ValueError, "out_channels must be >= 1, got -1"),
    (lambda: DepthwiseSeparableConv(32, 64, stride=None), TypeError, "stride must be an int, got NoneType None"),
    (lambda: SqueezeExcitation(64, 0), ValueError, "squeeze_channels must be >= 1, got 0"),
    (lambda: SqueezeExcitation(64, 16, activation="relu"), TypeError, "activation must be a callable"),
    (lambda: SqueezeExcitation(64, 16, scale_activation=nn.Sigmoid()), TypeError,
     "scale_activation must be a class such as nn.ReLU, not an instance"),
    (lambda: SqueezeExcitation(64, 16, activation=lambda: F.relu), TypeError,
     "activation() must return an nn.Module, got function"),
    (lambda: InvertedResidual(32, 16, 1, expand_ratio=0), ValueError, "expand_ratio must be >= 1, got 0"),
    (lambda: InvertedResidual(32, 16, 1, expand_ratio=6.0), TypeError, "expand_ratio must be an int, got float 6.0"),
    (lambda: InvertedResidual(32, 16, stride=0, expand_ratio=6), ValueError, "stride must be >= 1, got 0"),
])
def test_bad_arguments_are_refused_with_a_clear_message(make, error, message):
    with pytest.raises(error, match=re.escape(message)):
        make()


FORWARD_CASES = [BasicBlock(64, 64), Bottleneck(64, 16), DepthwiseSeparableConv(64, 32), SqueezeExcitation(64, 16),
                 InvertedResidual(64, 64, 1, 2)]


@pytest.mark.parametrize("block", FORWARD_CASES, ids=lambda b: type(b).__name__)
def test_forward_checks_the_input_shape(block):
    with pytest.raises(ValueError, match=re.escape("x must have shape [N, 64, H, W], got (1, 32, 8, 8)")):
        block(torch.zeros(1, 32, 8, 8))
    with pytest.raises(ValueError, match=re.escape("x must have shape [N, 64, H, W], got (64, 8, 8)")):
        block(torch.zeros(64, 8, 8))  # a single image without its batch axis
    with pytest.raises(TypeError, match="x must be a torch.Tensor, got numpy.ndarray"):
        block(torch.zeros(1, 64, 8, 8).numpy())


def test_module_docstring_cites_the_papers():
    doc = cvprep.blocks.__doc__
    assert "References:" in doc
    for arxiv in ["1512.03385", "1611.05431", "1704.04861", "1801.04381", "1709.01507"]:
        assert f"arXiv:{arxiv}" in doc
