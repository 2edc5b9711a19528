"""cvprep.scaling against hand arithmetic, torchvision's channel rounding and the MACs
that cvprep.cost.profile measures on scaled networks."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torchvision.models._utils import _make_divisible

from cvprep.cost import profile
from cvprep.scaling import compound_scale, round_channels, round_depth


def test_one_step_of_the_papers_coefficients_by_hand():
    # alpha * beta^2 * gamma^2 = 1.2 * 1.21 * 1.3225 = 1.92027: about twice the compute per step
    scale = compound_scale(1)
    assert scale.depth == pytest.approx(1.2) and scale.width == pytest.approx(1.1)
    assert scale.resolution == pytest.approx(1.15)
    assert scale.cost == pytest.approx(1.92027)


def test_phi_zero_is_the_base_network():
    assert compound_scale(0) == (1.0, 1.0, 1.0, 1.0)


@given(phi=st.floats(-3, 8), alpha=st.floats(1, 2), beta=st.floats(1, 2), gamma=st.floats(1, 2))
def test_cost_compounds_exponentially(phi, alpha, beta, gamma):
    one = compound_scale(1, alpha, beta, gamma).cost
    assert compound_scale(phi, alpha, beta, gamma).cost == pytest.approx(one**phi, rel=1e-9)


def plain_network(layers, channels):
    """``layers`` identical 3x3 convolutions, ``channels`` in and out, resolution kept."""
    return nn.Sequential(*[nn.Conv2d(channels, channels, 3, padding=1, bias=False) for _ in range(layers)])


@pytest.mark.parametrize("bases", [(2, 1, 1), (1, 2, 1), (1, 1, 2), (2, 2, 2)])
def test_measured_macs_of_a_scaled_network_follow_the_cost_multiplier(bases):
    # integer multipliers round exactly, so the measured ratio must equal d * w^2 * r^2
    scale = compound_scale(1, *bases)
    layers, channels, size = 3, 8, 16
    base = profile(plain_network(layers, channels), (1, channels, size, size)).macs
    wide = int(channels * scale.width)
    scaled = profile(plain_network(int(layers * scale.depth), wide), (1, wide, *(int(size * scale.resolution),) * 2))
    assert scaled.macs / base == pytest.approx(scale.cost)


@given(channels=st.integers(1, 2048), width=st.floats(0.1, 4.0), divisor=st.sampled_from([1, 4, 8, 16]))
def test_round_channels_matches_torchvision(channels, width, divisor):
    assert round_channels(channels, width, divisor) == _make_divisible(channels * width, divisor)


def test_round_channels_never_drops_more_than_ten_percent():
    # 20 * 1.0 = 20 rounds to 24 (nearest multiple of 8: int(24) // 8 * 8 = 24); 12 * 1.0 = 12 -> 16
    assert round_channels(20, 1.0) == 24 and round_channels(12, 1.0) == 16
    assert round_channels(4, 0.5) == 8  # never below one divisor


def test_round_depth_rounds_up():
    assert round_depth(2, 1.2) == 3 and round_depth(4, 1.0) == 4 and round_depth(1, 0.1) == 1
    assert round_depth(3, 1.2**3) == math.ceil(3 * 1.728)


@pytest.mark.parametrize("call, error, message", [
    (lambda: compound_scale(1, alpha=0.9), ValueError, "alpha must be >= 1"),
    (lambda: compound_scale(float("nan")), TypeError, "phi must be a finite real number"),
    (lambda: compound_scale("1"), TypeError, "phi must be a finite real number"),
    (lambda: round_channels(32, 0), ValueError, "width must be > 0"),
    (lambda: round_channels(32.0, 1.0), TypeError, "channels must be an int"),
    (lambda: round_depth(0, 1.0), ValueError, "layers must be >= 1"),
    (lambda: round_depth(3, -1.0), ValueError, "depth must be > 0"),
])
def test_bad_arguments_name_themselves(call, error, message):
    with pytest.raises(error, match=message):
        call()
