"""Where a network's MACs and parameters live: one bar per layer, in the order they run.

The figure shows the ``layers`` rows of a :class:`cvprep.cost.CostReport` (convolution,
linear and attention layers) as two bar charts sharing the layer axis: MACs on top,
parameters below; bars are coloured by stage (the first part of the layer's name). A
menu switches between networks, every one profiled here, so the static site needs no
kernel.
"""

from __future__ import annotations

from collections.abc import Mapping

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cvprep.cost import CostReport
from cvprep.widgets import _style

PALETTE = (_style.BLUE, _style.ORANGE, _style.RED, "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", _style.GREY)


def stage_of(name: str) -> str:
    """The top-level module a layer belongs to, e.g. ``"layer3"`` for ``"layer3.2.conv1"``."""
    return name.split(".")[0] or "(model)"


def _traces(report: CostReport) -> tuple[dict, str]:
    stages = list(dict.fromkeys(stage_of(r.name) for r in report.layers))
    colors = [PALETTE[stages.index(stage_of(r.name)) % len(PALETTE)] for r in report.layers]
    hover = [f"<b>{r.name}</b> ({r.kind})<br>output {r.output_shape}<br>{r.macs:,} MACs"
             f"<br>{r.params:,} parameters" for r in report.layers]
    data = {"x": list(range(len(report.layers))), "macs": [r.macs / 1e6 for r in report.layers],
            "params": [r.params / 1e6 for r in report.layers], "colors": colors, "hover": hover}
    title = (f"{len(report.layers)} layers, {report.macs / 1e9:.2f} G MACs, {report.params / 1e6:.1f} M parameters; "
             "colour = stage")
    return data, title


def figure(reports: Mapping[str, CostReport], shown: str | None = None) -> go.Figure:
    """Per-layer MACs and parameters, with a menu over ``reports`` (name -> report).

    Raises:
        ValueError: no reports, a report without layers, or ``shown`` not among them.
    """
    if not reports:
        raise ValueError("reports must contain at least one network")
    names = list(reports)
    shown = names[0] if shown is None else shown
    if shown not in reports:
        raise ValueError(f"shown must be one of {names}, got {shown!r}")
    for name, report in reports.items():
        if not report.layers:
            raise ValueError(f"reports[{name!r}] has no convolution, linear or attention layer")
    views = {name: _traces(report) for name, report in reports.items()}
    data, title = views[shown]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("M multiply-accumulates", "M parameters"))
    for row, key in ((1, "macs"), (2, "params")):
        fig.add_trace(go.Bar(x=data["x"], y=data[key], marker_color=data["colors"], hovertext=data["hover"],
                             hoverinfo="text"), row, 1)
    _style.base_layout(fig, f"{shown}: {title}", height=560)
    fig.update_xaxes(title="layer (in the order it runs)", row=2, col=1)
    buttons = [dict(label=name, method="update",
                    args=[{"x": [d["x"], d["x"]], "y": [d["macs"], d["params"]],
                           "marker.color": [d["colors"], d["colors"]], "hovertext": [d["hover"], d["hover"]]},
                          {"title.text": f"{name}: {t}"}])
               for name, (d, t) in views.items()]
    fig.update_layout(updatemenus=[dict(type="dropdown", buttons=buttons, active=names.index(shown), x=1.0,
                                        xanchor="right", y=1.12, yanchor="top")])
    return fig
