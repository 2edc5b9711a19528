"""The FLOP calculator: every design's numbers against the same design built from torch
modules and measured by cvprep.cost.profile, and every slider step against design_cost."""

import ipywidgets
import pytest
import torchvision
from torch import nn

from cvprep.cost import profile
from cvprep.widgets import layer_cost as widget


def torch_design(kind, c, k, s):
    """The design built independently from torch (and torchvision) modules, without biases."""
    conv = lambda c_in, c_out, kernel, stride=1, groups=1: nn.Conv2d(  # noqa: E731
        c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False)
    mid, wide = c // 4, 6 * c
    return {
        "standard": lambda: conv(c, c, k, s),
        "grouped": lambda: conv(c, c, k, s, groups=8),
        "1x1": lambda: conv(c, c, 1, s),
        "depthwise-separable": lambda: nn.Sequential(conv(c, c, k, s, groups=c), conv(c, c, 1)),
        "bottleneck": lambda: nn.Sequential(conv(c, mid, 1), conv(mid, mid, k, s), conv(mid, c, 1)),
        "inverted residual": lambda: nn.Sequential(conv(c, wide, 1), conv(wide, wide, k, s, groups=wide),
                                                   conv(wide, c, 1)),
        "squeeze-excitation": lambda: torchvision.ops.SqueezeExcitation(c, c // 4),
    }[kind]()


@pytest.mark.parametrize("kind", widget.KINDS)
@pytest.mark.parametrize("c, k, s, r", [(64, 3, 1, 56), (32, 5, 2, 28), (128, 3, 2, 15)])
def test_each_design_costs_what_profile_measures_on_torch_modules(kind, c, k, s, r):
    cost = widget.design_cost(kind, c, k, s, r)
    report = profile(torch_design(kind, c, k, s), (1, c, r, r))
    weights = sum(m.weight.numel() for m in torch_design(kind, c, k, s).modules() if isinstance(m, nn.Conv2d))
    assert cost.macs == report.macs
    assert cost.params == weights
    assert cost.flops == report.flops
    if kind != "squeeze-excitation":  # its gate multiplies the map outside any module
        assert cost.activation_bytes == sum(4 * row.activations for row in report.layers)


def test_depthwise_separable_saves_what_the_ratio_predicts():
    # (k^2 + C) / (k^2 * C) = (9 + 256) / (9 * 256) = 265 / 2304: the textbook ratio 1/C + 1/k^2
    standard = widget.design_cost("standard", 256, 3, 1, 14).macs
    separable = widget.design_cost("depthwise-separable", 256, 3, 1, 14).macs
    assert separable * 2304 == standard * 265


def test_every_slider_step_shows_design_cost():
    fig = widget.figure(channels=64, kernel_size=5, stride=2, resolution=28)
    slider = fig.layout.sliders[0]
    assert slider.active == widget.CHANNEL_STEPS.index(64)
    for label, step in zip(widget.CHANNEL_STEPS, slider.steps):
        data, layout, traces = step.args
        costs = [widget.design_cost(kind, label, 5, 2, 28) for kind in widget.KINDS]
        assert list(traces) == [0, 1]
        assert data["y"] == [[c.params for c in costs], [c.macs for c in costs]]
        assert f"C = {label} channels" in layout["title.text"]
    data, layout, _ = slider.steps[slider.active].args
    assert list(fig.data[1].y) == data["y"][1] and fig.layout.title.text == layout["title.text"]


@pytest.mark.parametrize("call, error, message", [
    (lambda: widget.design_cost("winograd", 64), ValueError, "kind must be one of"),
    (lambda: widget.design_cost("grouped", 12), ValueError, "divisible by 8 for the grouped design"),
    (lambda: widget.design_cost("standard", 64, stride=0), ValueError, "stride must be >= 1"),
    (lambda: widget.design_cost("standard", 64.0), TypeError, "channels must be an int"),
    (lambda: widget.figure(channels=48), ValueError, "channels must be one of channel_steps"),
])
def test_bad_arguments_are_clear_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_explorer_redraws_when_a_control_changes(figure_calls):
    drawn = figure_calls(widget)
    box = widget.explorer()
    assert isinstance(box, ipywidgets.VBox)
    channels, kernel = box.children[0].children
    stride, resolution = box.children[1].children
    kernel.value, stride.value, channels.value = 5, 2, 128
    assert drawn == [(64, 3, 1, 56), (64, 5, 1, 56), (64, 5, 2, 56), (128, 5, 2, 56)]
