"""cvprep.cost against hand-worked layers, torch's own parameter tensors and torch's
FlopCounterMode (an independent count of the same forward pass)."""

import pytest
import torch
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cvprep.conv import conv_output_size
from cvprep.cost import conv2d_macs, conv2d_params, linear_macs, linear_params, profile, sequential_costs

from strategies import as_pair, int_or_pair


def torch_flops(model, input_size):
    """FLOPs that torch counts for one forward pass (convolutions and matrix products)."""
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model.eval()(torch.zeros(input_size))
    return counter.get_total_flops()


# ---------------------------------------------------------------- single layers


def test_a_3x3_convolution_of_resnets_first_stage_by_hand():
    # 64 -> 64 channels, 3x3, on a 56x56 map: 64 * 64 * 9 = 36,864 weights;
    # each of the 56 * 56 = 3,136 positions uses every weight once: 36,864 * 3,136 = 115,605,504 MACs.
    assert conv2d_params(64, 64, 3, bias=False) == 36_864
    assert conv2d_macs(64, 64, 3, 56) == 115_605_504


def test_depthwise_convolution_costs_one_filter_per_channel():
    # depthwise 3x3 on 32 channels: 32 filters of 1 * 3 * 3 = 288 weights (+ 32 biases);
    # on 112 x 112: 288 * 12,544 = 3,612,672 MACs, 1/32 of the dense 3x3 convolution's.
    assert conv2d_params(32, 32, 3, groups=32) == 288 + 32
    assert conv2d_macs(32, 32, 3, 112, groups=32) == 3_612_672
    assert conv2d_macs(32, 32, 3, 112) == 32 * conv2d_macs(32, 32, 3, 112, groups=32)


def test_linear_layer_by_hand():
    # ResNet-50's classifier: 2048 * 1000 weights + 1000 biases = 2,049,000; one row: 2,048,000 MACs.
    assert linear_params(2048, 1000) == 2_049_000
    assert linear_macs(2048, 1000) == 2_048_000
    assert linear_macs(768, 768, rows=197) == 197 * 768 * 768  # a ViT-B projection over 197 tokens


@settings(max_examples=60)
@given(groups=st.integers(1, 4), c_in=st.integers(1, 4), c_out=st.integers(1, 4), kernel=int_or_pair(1, 5),
       bias=st.booleans())
def test_conv2d_params_match_torch(groups, c_in, c_out, kernel, bias):
    layer = nn.Conv2d(groups * c_in, groups * c_out, kernel, groups=groups, bias=bias)
    assert conv2d_params(groups * c_in, groups * c_out, kernel, groups, bias) == sum(
        p.numel() for p in layer.parameters())


@settings(max_examples=40)
@given(groups=st.integers(1, 3), c_in=st.integers(1, 3), c_out=st.integers(1, 3), kernel=int_or_pair(1, 4),
       stride=int_or_pair(1, 3), padding=int_or_pair(0, 2), size=st.integers(5, 12))
def test_conv2d_macs_match_torchs_flop_counter(groups, c_in, c_out, kernel, stride, padding, size):
    layer = nn.Conv2d(groups * c_in, groups * c_out, kernel, stride, padding, groups=groups, bias=False)
    out = tuple(conv_output_size(size, k, s, p) for k, s, p in zip(as_pair(kernel), as_pair(stride), as_pair(padding)))
    macs = conv2d_macs(groups * c_in, groups * c_out, kernel, out, groups)
    assert 2 * macs == torch_flops(layer, (1, groups * c_in, size, size))


@pytest.mark.parametrize("call, message", [
    (lambda: conv2d_params(6, 4, 3, groups=4), "in_channels must be divisible by groups"),
    (lambda: conv2d_params(8, 6, 3, groups=4), "out_channels must be divisible by groups"),
    (lambda: conv2d_macs(3, 8, 0, 10), "kernel_size must be >= 1"),
    (lambda: conv2d_macs(3, 8, 3, (10, 10, 10)), "output_size must be an int or a pair"),
    (lambda: linear_macs(10, 10, rows=0), "rows must be >= 1"),
])
def test_bad_sizes_are_value_errors_naming_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("call, message", [
    (lambda: conv2d_params(3.0, 8, 3), "in_channels must be an int"),
    (lambda: conv2d_params(3, 8, 3, bias=1), "bias must be a bool"),
    (lambda: linear_params(10, "10"), "out_features must be an int"),
    (lambda: profile("resnet", (1, 3, 8, 8)), "model must be a torch.nn.Module"),
    (lambda: profile(nn.ReLU(), 224), "input_size must be a tuple"),
])
def test_wrong_types_are_type_errors_naming_the_argument(call, message):
    with pytest.raises(TypeError, match=message):
        call()


# ---------------------------------------------------------------- whole models


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "vgg16", "mobilenet_v2", "mobilenet_v3_large",
                                  "efficientnet_b0", "densenet121", "resnext50_32x4d"])
def test_profile_totals_match_torch(name):
    model = getattr(torchvision.models, name)(weights=None)
    size = (1, 3, 224, 224)
    report = profile(model, size)
    assert report.params == sum(p.numel() for p in model.parameters())
    assert report.flops == 2 * report.macs == torch_flops(model, size)


def test_macs_scale_with_the_batch_and_parameters_do_not():
    model = torchvision.models.resnet18(weights=None)
    one, four = profile(model, (1, 3, 64, 64)), profile(model, (4, 3, 64, 64))
    assert four.macs == 4 * one.macs
    assert four.params == one.params


def test_resnet50_rows_name_every_layer_and_list_the_other_ops_apart():
    report = profile(torchvision.models.resnet50(weights=None), (1, 3, 224, 224))
    kinds = [r.kind for r in report.layers]
    assert kinds.count("Conv2d") == 53 and kinds.count("Linear") == 1  # 49 + 4 projection shortcuts, fc
    assert report.layers[0].name == "conv1" and report.layers[0].output_shape == (1, 64, 112, 112)
    others = {r.kind for r in report.other_ops}
    assert {"BatchNorm2d", "ReLU", "MaxPool2d", "AdaptiveAvgPool2d", "add"} <= others
    assert sum(r.kind == "add" for r in report.other_ops) == 16  # one residual addition per bottleneck
    assert all(r.macs == 0 for r in report.other_ops)
    assert report.macs == sum(r.macs for r in report.layers)


def test_activation_bytes_count_an_in_place_output_once():
    # conv -> in-place ReLU -> conv on an 8x8 input: outputs of 4*8*8 = 256 and 2*8*8 = 128 floats;
    # the ReLU writes into the first conv's output, so 384 floats * 4 bytes = 1,536 bytes.
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(4, 2, 3, padding=1))
    assert profile(model, (1, 1, 8, 8)).activation_bytes == 1_536
    model[1] = nn.ReLU()  # a separate output now: 256 more floats
    assert profile(model, (1, 1, 8, 8)).activation_bytes == 1_536 + 1_024


def test_activation_bytes_count_every_output_even_when_memory_is_reused():
    # Five outputs of 16*32*32 = 16,384 floats (65,536 bytes) each; each is freed as soon as
    # the next layer has read it, and the allocator may hand its address to the next one.
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), *[nn.ReLU() for _ in range(4)])
    assert profile(model, (1, 3, 32, 32)).activation_bytes == 5 * 65_536


class TwoBranches(nn.Module):
    def __init__(self):
        super().__init__()
        self.left, self.right = nn.Conv2d(1, 2, 3, padding=1), nn.Conv2d(1, 3, 1)

    def forward(self, x):
        return torch.cat([self.left(x), self.right(x)], dim=1)


def test_a_concatenation_is_listed_and_its_copy_counted():
    # outputs of 2*8*8 = 128 and 3*8*8 = 192 floats, and the concatenation's own copy of
    # all 320: (128 + 192 + 320) * 4 bytes = 2,560 bytes
    report = profile(TwoBranches(), (1, 1, 8, 8))
    cats = [r for r in report.other_ops if r.kind == "cat"]
    assert [(r.name, r.output_shape) for r in cats] == [("", (1, 5, 8, 8))]
    assert report.activation_bytes == 2_560


def test_profile_leaves_the_model_as_it_found_it():
    model = torchvision.models.resnet18(weights=None).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    profile(model, (2, 3, 32, 32))
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BN statistics untouched
    assert not model._forward_hooks and not model.conv1._forward_hooks


def small_cnn():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, stride=2, groups=2), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))


def test_the_readable_walk_agrees_with_profile_on_sequential_models():
    for model, size in ((small_cnn(), (2, 3, 32, 32)), (torchvision.models.vgg11(weights=None).features, (1, 3, 32, 32))):
        assert sequential_costs(model, size) == profile(model, size).layers


def test_the_readable_walk_by_hand():
    # conv 3->8 3x3 pad 1 on 32x32: 8*3*9 = 216 weights + 8 biases; 216 * 32*32 = 221,184 MACs.
    # pool -> 16x16; conv 8->16 3x3 stride 2, 2 groups: 16*4*9 = 576 weights + 16; output 7x7: 576 * 49 = 28,224.
    # linear 16->10: 160 weights + 10; 160 MACs.
    rows = sequential_costs(small_cnn(), (1, 3, 32, 32))
    assert [(r.name, r.params, r.macs, r.output_shape) for r in rows] == [
        ("0", 224, 221_184, (1, 8, 32, 32)), ("3", 592, 28_224, (1, 16, 7, 7)), ("8", 170, 160, (1, 10))]


def test_the_readable_walk_refuses_other_models():
    with pytest.raises(TypeError, match="model must be a torch.nn.Sequential"):
        sequential_costs(torchvision.models.resnet18(weights=None), (1, 3, 32, 32))


@pytest.mark.filterwarnings("ignore:The default weight initialization of inception_v3")
@pytest.mark.parametrize("name", ["resnet18", "resnext50_32x4d", "densenet121", "mobilenet_v3_large",
                                  "efficientnet_b0", "regnet_y_400mf", "inception_v3",
                                  "vit_b_16"])
def test_profile_reproduces_torchvisions_published_cost(name):
    # torchvision publishes, per weights, its own count of parameters and of multiply-accumulates
    # (labelled "GFLOPS", rounded to 3 decimals) at the weights' evaluation resolution
    weights = torchvision.models.get_model_weights(name).DEFAULT
    size = weights.transforms().crop_size[0]
    report = profile(torchvision.models.get_model(name, weights=None), (1, 3, size, size))
    assert report.params == weights.meta["num_params"]
    assert round(report.macs / 1e9, 3) == pytest.approx(weights.meta["_ops"])


def test_multihead_attention_counts_its_projections_and_products():
    # E = 64, L = S = 10 tokens, batch 2. Four projections: 4 * 2 * 10 * 64^2 = 327,680;
    # scores and weighted sums: 2 * 2 * 10 * 10 * 64 = 25,600; total 353,280. (Its out_proj
    # runs as a function on the weights, so no Linear hook may count it a second time.)
    class SelfAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.attention = nn.MultiheadAttention(64, 4, batch_first=True)

        def forward(self, x):
            return self.attention(x, x, x, need_weights=False)[0]

    report = profile(SelfAttention(), (2, 10, 64))
    assert [(r.kind, r.macs) for r in report.layers] == [("MultiheadAttention", 353_280)]
    assert report.layers[0].params == 4 * 64 * 64 + 4 * 64


@pytest.mark.parametrize("size, message", [
    ((1, 3, 224), "does not fit this model"),  # wrong rank for a network that flattens a batch
    ((1, 4, 64, 64), "does not fit this model"),  # four channels for a three-channel stem
])
def test_an_input_the_model_cannot_take_is_a_clear_error(size, message):
    with pytest.raises(ValueError, match=message):
        profile(torchvision.models.resnet18(weights=None), size)


def test_an_unbatched_image_counts_as_one():
    conv = nn.Conv2d(3, 8, 3, padding=1)
    assert profile(conv, (3, 16, 16)).macs == profile(conv, (1, 3, 16, 16)).macs == 8 * 27 * 256
