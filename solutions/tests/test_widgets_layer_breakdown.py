"""Per-layer breakdown: the bars are the profile's rows, for every network in the menu."""

import pytest
import torchvision
from torch import nn

from cvprep.cost import profile
from cvprep.widgets import layer_breakdown as widget


@pytest.fixture(scope="module")
def reports():
    return {"resnet18": profile(torchvision.models.resnet18(weights=None), (1, 3, 64, 64)),
            "mobilenet_v2": profile(torchvision.models.mobilenet_v2(weights=None), (1, 3, 64, 64))}


def test_bars_are_the_profile_rows(reports):
    fig = widget.figure(reports, shown="mobilenet_v2")
    rows = reports["mobilenet_v2"].layers
    assert list(fig.data[0].y) == [r.macs / 1e6 for r in rows]
    assert list(fig.data[1].y) == [r.params / 1e6 for r in rows]
    assert sum(fig.data[0].y) * 1e6 == pytest.approx(reports["mobilenet_v2"].macs)


def test_the_menu_switches_to_each_network(reports):
    fig = widget.figure(reports)
    buttons = fig.layout.updatemenus[0].buttons
    assert [b.label for b in buttons] == ["resnet18", "mobilenet_v2"]
    for button, report in zip(buttons, reports.values()):
        data, layout = button.args
        assert data["y"][0] == [r.macs / 1e6 for r in report.layers]
        assert f"{len(report.layers)} layers" in layout["title.text"]


def test_layers_of_one_stage_share_a_colour(reports):
    fig = widget.figure(reports)
    names = [r.name for r in reports["resnet18"].layers]
    colours = dict(zip(names, fig.data[0].marker.color))
    assert colours["layer1.0.conv1"] == colours["layer1.1.conv2"] != colours["layer2.0.conv1"]
    assert widget.stage_of("layer3.2.conv1") == "layer3" and widget.stage_of("") == "(model)"


def test_bad_requests_are_clear_errors(reports):
    with pytest.raises(ValueError, match="shown must be one of"):
        widget.figure(reports, shown="vgg16")
    with pytest.raises(ValueError, match="at least one network"):
        widget.figure({})
    with pytest.raises(ValueError, match="has no convolution, linear or attention layer"):
        widget.figure({"relu": profile(nn.ReLU(), (1, 4))})
