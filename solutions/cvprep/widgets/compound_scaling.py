"""Compound scaling explorer: one coefficient phi scales EfficientNet-B0's depth, width and
resolution together; the figure shows the three multipliers and the MACs of the network
actually built at each phi (torchvision's EfficientNet definition with those multipliers,
profiled by :func:`cvprep.cost.profile`) against the ``(alpha * beta**2 * gamma**2)**phi``
that the method predicts. Every slider step is computed here, for the static site.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cvprep.scaling import compound_scale
from cvprep.widgets import _style

BASE_RESOLUTION = 224  # EfficientNet-B0's input
PHIS = (0, 1, 2, 3)


@dataclass(frozen=True)
class ScaledNetwork:
    """EfficientNet-B0 scaled by compound coefficient ``phi``."""

    phi: float
    depth: float
    width: float
    resolution: int
    predicted: float  # cost multiplier the method predicts
    macs: int  # measured on the built network
    params: int


def scaled_resolution(phi: float, gamma: float = 1.15) -> int:
    """B0's 224 pixels times ``gamma**phi``, rounded to a multiple of 8."""
    return max(8, round(BASE_RESOLUTION * gamma**phi / 8) * 8)


def build(phi: float, alpha: float = 1.2, beta: float = 1.1, gamma: float = 1.15) -> ScaledNetwork:
    """Build EfficientNet-B0 scaled by ``phi`` (torchvision's definition, random weights) and profile it."""
    from torchvision.models import efficientnet

    from cvprep.cost import profile

    scale = compound_scale(phi, alpha, beta, gamma)
    # torchvision's own builder for B0..B7 takes exactly these two multipliers
    setting, last_channel = efficientnet._efficientnet_conf("efficientnet_b0", width_mult=scale.width,
                                                            depth_mult=scale.depth)
    model = efficientnet.EfficientNet(setting, dropout=0.2, last_channel=last_channel)
    resolution = scaled_resolution(phi, gamma)
    report = profile(model, (1, 3, resolution, resolution))
    return ScaledNetwork(phi, scale.depth, scale.width, resolution, scale.cost, report.macs, report.params)


def figure(networks: Sequence[ScaledNetwork], phi: float | None = None) -> go.Figure:
    """Multipliers (left) and predicted against measured MACs (right), a slider over phi.

    Args:
        networks: from :func:`build`, one per slider step, the first with ``phi = 0``.
        phi: the step shown first (default: the first).

    Raises:
        ValueError: no networks, the first is not ``phi = 0``, or ``phi`` is not among them.
    """
    if not networks or networks[0].phi != 0:
        raise ValueError("networks must start with the base network (phi = 0)")
    phis = [n.phi for n in networks]
    active = 0 if phi is None else phis.index(phi) if phi in phis else None
    if active is None:
        raise ValueError(f"phi must be one of {phis}, got {phi}")
    base = networks[0].macs
    measured = [n.macs / base for n in networks]
    predicted = [n.predicted for n in networks]

    def step(n: ScaledNetwork) -> tuple[list, list, str]:
        bars = [n.depth, n.width, n.resolution / BASE_RESOLUTION]
        title = (f"phi = {n.phi:g}: depth x{n.depth:.2f}, width x{n.width:.2f}, {n.resolution} px; "
                 f"{n.macs / 1e9:.2f} G MACs, x{n.macs / base:.2f} the base (predicted x{n.predicted:.2f})")
        return bars, [n.phi], title

    fig = make_subplots(rows=1, cols=2, subplot_titles=("multipliers of B0", "MACs relative to B0"))
    bars, marker_x, title = step(networks[active])
    fig.add_trace(go.Bar(x=["depth", "width", "resolution"], y=bars, marker_color=_style.BLUE,
                         texttemplate="x%{y:.2f}", textposition="outside"), 1, 1)
    fig.add_trace(go.Scatter(x=phis, y=predicted, mode="lines+markers", name="predicted",
                             line=dict(color=_style.GREY, dash="dash")), 1, 2)
    fig.add_trace(go.Scatter(x=phis, y=measured, mode="lines+markers", name="measured",
                             line=dict(color=_style.ORANGE)), 1, 2)
    fig.add_trace(go.Scatter(x=marker_x, y=[measured[active]], mode="markers", name="this phi",
                             marker=dict(size=14, color=_style.RED)), 1, 2)
    _style.base_layout(fig, title, height=440)
    fig.update_layout(showlegend=True, legend=dict(orientation="h", y=-0.25))
    fig.update_yaxes(range=[0, 1.25 * max(max(n.depth, n.width, n.resolution / BASE_RESOLUTION) for n in networks)],
                     row=1, col=1)
    fig.update_yaxes(type="log", row=1, col=2)
    fig.update_xaxes(title="phi", row=1, col=2)
    steps_args = []
    for n, ratio in zip(networks, measured):
        bars, marker_x, title = step(n)
        steps_args.append([{"y": [bars, [ratio]], "x": [["depth", "width", "resolution"], marker_x]},
                           {"title.text": title}, [0, 3]])
    fig.update_layout(sliders=[_style.slider([f"{p:g}" for p in phis], steps_args, "update", "phi: ", active)])
    return fig


def explorer():
    """Live explorer for JupyterLab: phi and the three bases; rebuilds and profiles the networks.

    Returns:
        An ``ipywidgets.VBox``; it redraws :func:`figure` (networks for phi = 0, 1, ...
        up to the chosen phi) when a control changes.
    """
    import ipywidgets as widgets
    from IPython.display import display

    phi = widgets.IntSlider(value=2, min=1, max=4, description="phi")
    alpha = widgets.FloatSlider(value=1.2, min=1.0, max=2.0, step=0.05, description="alpha (depth)")
    beta = widgets.FloatSlider(value=1.1, min=1.0, max=2.0, step=0.05, description="beta (width)")
    gamma = widgets.FloatSlider(value=1.15, min=1.0, max=2.0, step=0.05, description="gamma (res.)")
    output = widgets.Output()

    def redraw(*_) -> None:
        output.clear_output(wait=True)
        with output:
            networks = [build(p, alpha.value, beta.value, gamma.value) for p in range(phi.value + 1)]
            display(figure(networks, phi=phi.value))

    for control in (phi, alpha, beta, gamma):
        control.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox([phi, alpha]), widgets.HBox([beta, gamma]), output])
