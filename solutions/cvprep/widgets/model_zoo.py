"""Accuracy against cost for torchvision's classification networks.

Cost is computed here, with :func:`cvprep.cost.profile`, on the model definitions
(random weights; no download). Accuracy is what torchvision publishes for its trained
weights, read from the weights' metadata that ships with torchvision: ImageNet-1K top-1
on the validation set, at the weights' own evaluation resolution, each with its own
training recipe (newer recipes raise older architectures by several points, so compare
architectures trained the same way before drawing conclusions).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import plotly.graph_objects as go

from cvprep.widgets import _style

# (family, torchvision model name), cheap to profile on a CPU at build time.
MODELS: tuple[tuple[str, str], ...] = (
    ("VGG", "vgg11"), ("VGG", "vgg16"),
    ("ResNet", "resnet18"), ("ResNet", "resnet34"), ("ResNet", "resnet50"), ("ResNet", "resnet101"),
    ("ResNeXt / Wide ResNet", "resnext50_32x4d"), ("ResNeXt / Wide ResNet", "wide_resnet50_2"),
    ("DenseNet", "densenet121"), ("DenseNet", "densenet169"),
    ("MobileNet", "mobilenet_v2"), ("MobileNet", "mobilenet_v3_small"), ("MobileNet", "mobilenet_v3_large"),
    ("EfficientNet", "efficientnet_b0"), ("EfficientNet", "efficientnet_b1"), ("EfficientNet", "efficientnet_b2"),
    ("EfficientNet", "efficientnet_b3"),
)
FAMILY_COLORS = {"VGG": _style.GREY, "ResNet": _style.BLUE, "ResNeXt / Wide ResNet": "#76b7b2",
                 "DenseNet": "#b07aa1", "MobileNet": _style.ORANGE, "EfficientNet": _style.RED}


@dataclass(frozen=True)
class ModelCost:
    """One point of the chart."""

    family: str
    name: str
    resolution: int  # the evaluation crop of torchvision's weights
    params: int
    macs: int
    top1: float  # published ImageNet-1K top-1 (%) of torchvision's weights
    weights: str  # which published weights the accuracy belongs to


def model_costs(models: Sequence[tuple[str, str]] = MODELS, weights: str = "IMAGENET1K_V1") -> list[ModelCost]:
    """Profile each model at its evaluation resolution and pair it with its published accuracy.

    Args:
        models: ``(family, name)`` pairs of ``torchvision.models`` names.
        weights: which published weights to read accuracy from (``"IMAGENET1K_V1"``, the
            original recipes, or ``"DEFAULT"``, torchvision's best).

    Raises:
        ValueError: an unknown model name, or weights the model does not have.
    """
    import torchvision

    rows = []
    for family, name in models:
        try:
            enum = torchvision.models.get_model_weights(name)
        except ValueError as error:
            raise ValueError(f"models: {name!r} is not a torchvision classification model ({error})") from None
        try:
            chosen = enum.DEFAULT if weights == "DEFAULT" else enum[weights]
        except KeyError:
            raise ValueError(f"weights must be DEFAULT or one of {[w.name for w in enum]} for {name}, "
                             f"got {weights!r}") from None
        resolution = chosen.transforms().crop_size[0]
        params, macs = _cost(name, resolution)
        top1 = chosen.meta["_metrics"]["ImageNet-1K"]["acc@1"]
        rows.append(ModelCost(family, name, resolution, params, macs, top1, chosen.name))
    return rows


@lru_cache(maxsize=None)
def _cost(name: str, resolution: int) -> tuple[int, int]:
    """Parameters and MACs of a torchvision model (cached: the explorer asks again and again)."""
    import torchvision

    from cvprep.cost import profile

    report = profile(torchvision.models.get_model(name, weights=None), (1, 3, resolution, resolution))
    return report.params, report.macs


def figure(rows: Sequence[ModelCost]) -> go.Figure:
    """Top-1 against MACs (or parameters: the buttons switch), bubble area = parameters.

    Raises:
        ValueError: no rows.
    """
    if not rows:
        raise ValueError("rows must contain at least one model")
    largest = max(r.params for r in rows)
    fig = go.Figure()
    by_family = {family: [r for r in rows if r.family == family] for family in dict.fromkeys(r.family for r in rows)}
    for family, mine in by_family.items():
        fig.add_trace(go.Scatter(
            x=[r.macs / 1e9 for r in mine], y=[r.top1 for r in mine], mode="markers+text", name=family,
            text=[r.name for r in mine], textposition="top center", textfont=dict(size=10),
            marker=dict(size=[8 + 42 * (r.params / largest) ** 0.5 for r in mine],
                        color=FAMILY_COLORS.get(family, _style.BLUE), opacity=0.75, line=dict(width=1, color="white")),
            customdata=[[r.params / 1e6, r.macs / 1e9, r.resolution, r.weights] for r in mine],
            hovertemplate=("<b>%{text}</b><br>top-1 %{y:.1f}%<br>%{customdata[1]:.2f} G MACs"
                           "<br>%{customdata[0]:.1f} M parameters<br>%{customdata[2]} px, %{customdata[3]}"
                           "<extra></extra>")))
    _style.base_layout(fig, "ImageNet top-1 against cost (bubble area: parameters)", height=520)
    fig.update_layout(showlegend=True, legend=dict(orientation="h", y=-0.18))
    fig.update_xaxes(type="log", title="G multiply-accumulates per image (log)")
    fig.update_yaxes(title="published top-1 (%)")
    groups = list(by_family.values())
    views = {
        "MACs": ([[r.macs / 1e9 for r in group] for group in groups], "G multiply-accumulates per image (log)"),
        "parameters": ([[r.params / 1e6 for r in group] for group in groups], "M parameters (log)"),
    }
    buttons = [dict(label=f"x: {label}", method="update", args=[{"x": xs}, {"xaxis.title.text": title}])
               for label, (xs, title) in views.items()]
    fig.update_layout(updatemenus=[dict(type="buttons", direction="right", buttons=buttons, x=0.0, y=1.12,
                                        xanchor="left", yanchor="top")])
    return fig


def explorer():
    """Live chart for JupyterLab: pick the families, and original or best published weights.

    Returns:
        An ``ipywidgets.VBox``; it redraws :func:`figure` when a control changes.
    """
    import ipywidgets as widgets
    from IPython.display import display

    families = widgets.SelectMultiple(options=list(FAMILY_COLORS), value=tuple(FAMILY_COLORS),
                                      description="families", rows=len(FAMILY_COLORS))
    weights = widgets.ToggleButtons(options=[("original recipes", "IMAGENET1K_V1"), ("best published", "DEFAULT")],
                                    description="accuracy of")
    output = widgets.Output()

    def redraw(*_) -> None:
        output.clear_output(wait=True)
        with output:
            chosen = tuple(m for m in MODELS if m[0] in families.value)
            if not chosen:
                print("Pick at least one family.")
                return
            display(figure(model_costs(chosen, weights.value)))

    families.observe(redraw, names="value")
    weights.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox([families, weights]), output])
