"""cvprep.receptive_field against hand-worked stacks, published values, back projection and torch gradients."""

import numpy as np
import pytest
import torch
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cvprep.receptive_field import LayerSpec, ReceptiveField, back_projection, conv_layers, receptive_field
from cvprep.testing import receptive_field_by_back_projection

from strategies import layer_stacks


def test_three_3x3_convolutions_see_7_pixels():
    # each 3x3 layer with stride 1 adds (3 - 1) * 1 = 2: r = 1 + 2 = 3, 5, 7
    fields = receptive_field([(3, 1, 1, 1)] * 3)
    assert [f.size for f in fields] == [3, 5, 7]
    assert [f.jump for f in fields] == [1, 1, 1]
    assert [f.start for f in fields] == [0.0, 0.0, 0.0]  # padding 1 keeps unit 0 centred on pixel 0


def test_stride_multiplies_what_later_layers_add():
    # 3x3 s1, 3x3 s2, 3x3 s1 (no padding): r = 3; 3 + 2 * 1 = 5 (jump becomes 2);
    # 5 + 2 * 2 = 9. Stride does not multiply r, it multiplies every later layer's increment.
    fields = receptive_field([(3, 1, 0, 1), (3, 2, 0, 1), (3, 1, 0, 1)])
    assert fields == [ReceptiveField(3, 1, 1.0), ReceptiveField(5, 2, 2.0), ReceptiveField(9, 2, 4.0)]


def test_dilation_widens_the_kernel_without_new_weights():
    # span = 2 * (3 - 1) + 1 = 5; then a 3x3 with dilation 4 after it adds (9 - 1) * 1 = 8
    fields = receptive_field([(3, 1, 0, 2), (3, 1, 0, 4)])
    assert [f.size for f in fields] == [5, 13]


def test_even_kernel_centres_between_pixels():
    # a 2x2 window with stride 2 and no padding covers pixels 0 and 1: centre 0.5
    assert receptive_field([(2, 2, 0, 1)]) == [ReceptiveField(2, 2, 0.5)]


def test_alexnet_hand_worked():
    # torchvision AlexNet: conv 11 s4 p2 -> r 11, j 4; pool 3 s2 -> 11 + 2*4 = 19, j 8;
    # conv 5 p2 -> 19 + 4*8 = 51; pool 3 s2 -> 51 + 2*8 = 67, j 16;
    # three conv 3 p1 -> 67 + 3 * 2*16 = 163; pool 3 s2 -> 163 + 2*16 = 195, j 32.
    fields = receptive_field(torchvision.models.alexnet())
    assert (fields[-1].size, fields[-1].jump) == (195, 32)
    assert len(fields) == 8


def test_vgg16_matches_published_value():
    # Araujo, Norris and Sim (Distill, 2019), table of receptive fields: VGG 16 -> 212
    last = receptive_field(torchvision.models.vgg16())[-1]
    assert (last.size, last.jump) == (212, 32)


def test_conv_layers_follow_resnet_main_path():
    specs = conv_layers(torchvision.models.resnet18(), exclude=("downsample",))
    assert list(specs)[:2] == ["conv1", "maxpool"]
    assert specs["conv1"] == LayerSpec(7, 2, 3, 1)
    assert not any("downsample" in name for name in specs)
    with_shortcuts = conv_layers(torchvision.models.resnet18())
    assert "layer2.0.downsample.0" in with_shortcuts  # a 1x1 stride-2 projection


def test_conv_layers_read_same_and_valid_padding():
    model = nn.Sequential(nn.Conv2d(1, 1, 5, padding="same", dilation=2), nn.Conv2d(1, 1, 4, padding="same"),
                          nn.Conv2d(1, 1, 3, padding="valid"), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
    # 'same' pads dilation * (k - 1) in total, floor(total / 2) on the left: 4 and 1
    assert list(conv_layers(model).values()) == [LayerSpec(5, 1, 4, 2), LayerSpec(4, 1, 1, 1), LayerSpec(3, 1, 0, 1)]


def test_back_projection_hand_worked():
    assert back_projection([(3, 1, 0, 1), (3, 1, 0, 1)], 0) == [[0, 1, 2, 3, 4], [0, 1, 2], [0]]
    assert back_projection([(3, 1, 0, 2)], 0)[0] == [0, 2, 4]  # holes from dilation
    assert back_projection([(2, 2, 0, 1)], 1)[0] == [2, 3]
    assert back_projection([(3, 1, 1, 1)], 0)[0] == [-1, 0, 1]  # -1 is padding
    assert back_projection([], 4) == [[4]]


@given(layer_stacks)
def test_recurrence_matches_back_projection(layers):
    assert [tuple(f) for f in receptive_field(layers)] == receptive_field_by_back_projection(layers)


@st.composite
def stacks_with_pairs(draw):
    pair = st.tuples(st.integers(1, 5), st.integers(1, 5))
    return [(draw(pair), draw(st.integers(1, 3)), (draw(st.integers(0, 2)), draw(st.integers(0, 2))), 1)
            for _ in range(draw(st.integers(1, 4)))]


@settings(max_examples=40)
@given(stacks_with_pairs(), st.sampled_from([0, 1]))
def test_torch_module_gives_the_same_fields_as_its_tuples(layers, axis):
    modules = []
    for i, (kernel, stride, padding, _) in enumerate(layers):
        kind = i % 3
        if kind == 0:
            modules += [nn.Conv2d(1, 1, kernel, stride, padding), nn.BatchNorm2d(1), nn.ReLU()]
        else:
            # pooling needs padding <= kernel / 2; clip it so every stack is legal
            pad = tuple(min(p, k // 2) for p, k in zip(padding, kernel))
            layers[i] = (kernel, stride, pad, 1)
            modules.append((nn.MaxPool2d if kind == 1 else nn.AvgPool2d)(kernel, stride, pad))
    assert receptive_field(nn.Sequential(*modules), axis=axis) == receptive_field(layers, axis=axis)


def gradient_support(layers, size, unit):
    """Input pixels with a non-zero gradient of output `unit`, through a stack of all-ones 1-D convolutions."""
    stack = nn.Sequential(*[nn.Conv2d(1, 1, (1, k), (1, s), (0, p), (1, d), bias=False) for k, s, p, d in layers])
    for conv in stack:
        nn.init.ones_(conv.weight)  # positive weights: no two paths can cancel
    x = torch.ones(1, 1, 1, size, dtype=torch.float64, requires_grad=True)
    out = stack.double()(x)
    out[0, 0, 0, unit].backward()
    return torch.nonzero(x.grad[0, 0, 0]).flatten().tolist(), out.shape[-1]


@settings(max_examples=60)
@given(layer_stacks)
def test_receptive_field_matches_torch_gradient(layers):
    fields = receptive_field(layers)
    size = 3 * fields[-1].size + 2 * fields[-1].jump + 16  # room for a unit whose field lies inside the image
    unit = int(np.ceil((fields[-1].size - fields[-1].start) / fields[-1].jump))  # first unit clear of the padding
    support, out_size = gradient_support(layers, size, unit)
    assert unit < out_size
    centre = fields[-1].start + unit * fields[-1].jump
    half = (fields[-1].size - 1) / 2
    assert 0 <= centre - half and centre + half < size
    assert (min(support), max(support)) == (centre - half, centre + half)
    assert support == back_projection(layers, unit)[0]  # the same pixels, holes included


@pytest.mark.parametrize(
    "layers, kwargs, error, pattern",
    [
        ([(3, 1, 1)], {}, ValueError, r"layers\[0\] must be a \(kernel_size, stride, padding, dilation\) tuple"),
        ((3, 1, 1, 1), {}, ValueError, r"layers\[0\] must be a \(kernel_size, stride, padding, dilation\) tuple, got 3"),
        ([(3, 1, 1, 1), (3, 0, 1, 1)], {}, ValueError, r"layers\[1\].stride must be >= 1, got 0"),
        ([(3, 1, -1, 1)], {}, ValueError, r"layers\[0\].padding must be >= 0"),
        ([(3.0, 1, 1, 1)], {}, TypeError, r"layers\[0\].kernel_size must be an int or a pair of ints"),
        ([(3, 1, 1, 1)], {"axis": 2}, ValueError, "axis must be 0 .height. or 1 .width., got 2"),
        (7, {}, TypeError, "layers must be a sequence of layer tuples or a torch.nn.Module, got int"),
    ],
)
def test_receptive_field_rejects_bad_layers(layers, kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        receptive_field(layers, **kwargs)


def test_empty_stack_has_no_fields():
    assert receptive_field([]) == []
