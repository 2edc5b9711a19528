"""Compound scaling explorer: the networks it builds, and every slider step."""

import pytest
import torchvision

from cvprep.scaling import compound_scale
from cvprep.widgets import compound_scaling as widget


@pytest.fixture(scope="module")
def networks():
    return [widget.build(phi) for phi in (0, 1, 2)]


def test_phi_zero_is_torchvisions_efficientnet_b0(networks):
    meta = torchvision.models.EfficientNet_B0_Weights.IMAGENET1K_V1.meta
    assert networks[0].params == meta["num_params"]
    assert round(networks[0].macs / 1e9, 3) == pytest.approx(meta["_ops"])


def test_scaled_networks_follow_the_multipliers(networks):
    for n in networks:
        scale = compound_scale(n.phi)
        assert (n.depth, n.width, n.predicted) == (scale.depth, scale.width, scale.cost)
        assert n.resolution % 8 == 0 and abs(n.resolution - 224 * scale.resolution) <= 4
    # rounding depth up and channels to multiples of 8 only ever adds cost
    assert all(n.macs / networks[0].macs >= n.predicted for n in networks)
    assert networks[2].macs > networks[1].macs > networks[0].macs


def test_every_slider_step_shows_its_network(networks):
    fig = widget.figure(networks, phi=1)
    slider = fig.layout.sliders[0]
    assert slider.active == 1 and [s.label for s in slider.steps] == ["0", "1", "2"]
    for n, step in zip(networks, slider.steps):
        data, layout, traces = step.args
        assert list(traces) == [0, 3]
        assert data["y"][0] == [n.depth, n.width, n.resolution / 224]
        assert data["y"][1] == [n.macs / networks[0].macs]
        assert f"{n.resolution} px" in layout["title.text"]
    assert list(fig.data[2].y) == [n.macs / networks[0].macs for n in networks]
    assert list(fig.data[1].y) == [n.predicted for n in networks]


def test_bad_requests_are_clear_errors(networks):
    with pytest.raises(ValueError, match="must start with the base network"):
        widget.figure(networks[1:])
    with pytest.raises(ValueError, match="phi must be one of"):
        widget.figure(networks, phi=5)


def test_explorer_rebuilds_for_the_chosen_phi_and_bases(monkeypatch):
    built = []

    def fake_build(phi, alpha, beta, gamma):  # the wiring, without profiling real networks
        built.append((phi, alpha, beta, gamma))
        return widget.ScaledNetwork(phi, alpha**phi, beta**phi, 224, 2.0**phi, 1000 * 2**phi, 1)

    monkeypatch.setattr(widget, "build", fake_build)
    box = widget.explorer()
    phi, alpha = box.children[0].children
    built.clear()
    phi.value = 1
    assert built == [(0, 1.2, 1.1, 1.15), (1, 1.2, 1.1, 1.15)]
    built.clear()
    alpha.value = 2.0
    assert built == [(0, 2.0, 1.1, 1.15), (1, 2.0, 1.1, 1.15)]
