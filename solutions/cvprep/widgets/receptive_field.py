"""Receptive-field explorer: which units of every layer one output unit depends on.

The figure draws a stack along one spatial axis: the input at the bottom, one row per
layer above it, each unit placed at the centre of what it sees in the input. A slider
picks an output unit of the last layer; the units it depends on light up layer by
layer, down to the input pixels (padding in red), with the receptive field shaded.
Every slider step is computed here, in Python, so the static site needs no kernel.
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from cvprep.conv import conv_output_size
from cvprep.receptive_field import LayerSpec, back_projection, layer_specs, receptive_field
from cvprep.widgets import _style

PRESETS: dict[str, list[tuple[int, int, int, int]]] = {
    "three 3x3 convolutions": [(3, 1, 1, 1)] * 3,
    "3x3, 3x3 with stride 2, 3x3": [(3, 1, 1, 1), (3, 2, 1, 1), (3, 1, 1, 1)],
    "conv, 2x2 max pool, conv, pool": [(3, 1, 1, 1), (2, 2, 0, 1), (3, 1, 1, 1), (2, 2, 0, 1)],
    "dilated 3x3: rates 1, 2, 4": [(3, 1, 1, 1), (3, 1, 2, 2), (3, 1, 4, 4)],
    "one 7x7 convolution": [(7, 1, 3, 1)],
}


def layer_label(index: int, spec: LayerSpec) -> str:
    """A short description of a layer, e.g. ``"2: k3 s2 p1"``."""
    dilation = f" d{spec.dilation}" if spec.dilation != 1 else ""
    return f"{index}: k{spec.kernel_size} s{spec.stride} p{spec.padding}{dilation}"


def layer_sizes(specs: Sequence[LayerSpec], input_size: int) -> list[int]:
    """Number of units in the input and after every layer."""
    sizes = [input_size]
    for k, s, p, d in specs:
        sizes.append(conv_output_size(sizes[-1], k, s, p, d))
    return sizes


def _step(specs, starts, jumps, sizes, unit):
    """Trace data and layout for one selected output unit (``starts``, ``jumps`` per layer, input first)."""
    seen = back_projection(specs, unit)  # units per layer, input first
    inside_x, inside_y, padding_x, padding_y, edges_x, edges_y = [], [], [], [], [], []
    for layer, indices in enumerate(seen):
        for index in indices:
            x = starts[layer] + index * jumps[layer]
            is_padding = not 0 <= index < sizes[layer]
            (padding_x if is_padding else inside_x).append(x)
            (padding_y if is_padding else inside_y).append(layer)
        if layer + 1 < len(seen):  # lines from each unit of the next layer to the units it reads here
            k, s, p, d = specs[layer]
            for q in seen[layer + 1]:
                for t in range(k):
                    edges_x += [starts[layer + 1] + q * jumps[layer + 1], starts[layer] + (q * s - p + t * d) * jumps[layer], None]
                    edges_y += [layer + 1, layer, None]
    first, last = seen[0][0], seen[0][-1]
    title = (f"Output unit {unit} sees input pixels {first} to {last}: "
             f"a receptive field of {last - first + 1} (centre {(first + last) / 2:g})")
    band = dict(type="rect", x0=first - 0.5, x1=last + 0.5, y0=-0.45, y1=0.45, fillcolor=_style.ORANGE,
                opacity=0.18, line=dict(width=0), layer="below")
    return [inside_x, padding_x, edges_x], [inside_y, padding_y, edges_y], title, band


def figure(
    layers: Sequence[Sequence[int]] | object,
    input_size: int | None = None,
    unit: int | None = None,
    names: Sequence[str] | None = None,
) -> go.Figure:
    """Build the receptive-field figure for a layer stack, with one slider step per output unit.

    Args:
        layers: ``(kernel_size, stride, padding, dilation)`` tuples or a torch module,
            as for :func:`cvprep.receptive_field.receptive_field` (height axis).
        input_size: input length; by default room for the receptive field plus a few jumps.
        unit: the output unit selected at first (default: the middle one).
        names: a label per layer (default ``"i: k3 s1 p1"``).

    Returns:
        A plotly figure whose slider changes the selected unit without a kernel.

    Raises:
        ValueError: an invalid stack, ``input_size`` too small for it, ``unit`` out of
            range, or ``names`` of the wrong length.
    """
    specs = layer_specs(layers)
    if not specs:
        raise ValueError("layers must contain at least one layer")
    fields = receptive_field(specs)
    if input_size is None:
        input_size = max(12, fields[-1].size + 3 * fields[-1].jump)
    sizes = layer_sizes(specs, input_size)
    unit = sizes[-1] // 2 if unit is None else unit
    if not 0 <= unit < sizes[-1]:
        raise ValueError(f"unit must be in [0, {sizes[-1]}) for input_size={input_size}, got {unit}")
    labels = [layer_label(i + 1, spec) for i, spec in enumerate(specs)] if names is None else list(names)
    if len(labels) != len(specs):
        raise ValueError(f"names must have one entry per layer ({len(specs)}), got {len(labels)}")

    starts = [0.0] + [f.start for f in fields]
    jumps = [1] + [f.jump for f in fields]
    all_x = [starts[l] + u * jumps[l] for l, n in enumerate(sizes) for u in range(n)]
    all_y = [l for l, n in enumerate(sizes) for _ in range(n)]
    steps = [_step(specs, starts, jumps, sizes, u) for u in range(sizes[-1])]
    xs, ys, title, band = steps[unit]

    marker = dict(symbol="square", size=11, line=dict(width=1, color="white"))
    fig = go.Figure([
        go.Scatter(x=all_x, y=all_y, mode="markers", marker=dict(marker, color=_style.LIGHT), hoverinfo="skip"),
        go.Scatter(x=xs[0], y=ys[0], mode="markers", marker=dict(marker, color=_style.ORANGE), name="seen",
                   hovertemplate="x = %{x}<extra></extra>"),
        go.Scatter(x=xs[1], y=ys[1], mode="markers", marker=dict(marker, color="white", line=dict(width=2, color=_style.RED)),
                   name="padding", hovertemplate="padding at x = %{x}<extra></extra>"),
        go.Scatter(x=xs[2], y=ys[2], mode="lines", line=dict(width=1, color=_style.BLUE), opacity=0.35, hoverinfo="skip"),
    ])
    _style.base_layout(fig, title, height=170 + 55 * len(specs))
    fig.update_layout(shapes=[band], margin=dict(l=130))
    fig.update_yaxes(tickvals=list(range(len(sizes))), ticktext=["input"] + labels, range=[-0.7, len(specs) + 0.5],
                     showgrid=False, zeroline=False)
    fig.update_xaxes(title="input pixel", zeroline=False, showgrid=False)
    steps_args = [[{"x": [s[0][0], s[0][1], s[0][2]], "y": [s[1][0], s[1][1], s[1][2]]},
                   {"title.text": s[2], "shapes": [s[3]]}, [1, 2, 3]] for s in steps]
    fig.update_layout(sliders=[_style.slider([str(u) for u in range(sizes[-1])], steps_args, "update", "output unit: ", unit)])
    return fig


def parse_layers(text: str) -> list[tuple[int, int, int, int]]:
    """Parse ``"3,1,1,1; 3,2,1,1"`` into layer tuples (missing entries default to s=1, p=0, d=1)."""
    layers = []
    for index, chunk in enumerate(part for part in text.replace("\n", ";").split(";") if part.strip()):
        try:
            numbers = [int(value) for value in chunk.replace(" ", "").split(",") if value]
        except ValueError:
            raise ValueError(f"layer {index + 1} ({chunk.strip()!r}) must be integers separated by commas") from None
        if not 1 <= len(numbers) <= 4:
            raise ValueError(f"layer {index + 1} ({chunk.strip()!r}) must be kernel[, stride[, padding[, dilation]]]")
        layers.append(tuple(numbers + [1, 0, 1][len(numbers) - 1:]))
    return layers


def explorer(layers: Sequence[Sequence[int]] | None = None):
    """Live explorer for JupyterLab: pick a preset or type a stack, and an input size.

    Returns:
        An ``ipywidgets.VBox``; it redraws :func:`figure` when a control changes.
    """
    import ipywidgets as widgets
    from IPython.display import display

    preset = widgets.Dropdown(options=list(PRESETS), description="preset")
    text = widgets.Text(description="layers", placeholder="k,s,p,d; k,s,p,d",
                        layout=widgets.Layout(width="420px"))
    size = widgets.IntSlider(value=0, min=0, max=64, description="input size", tooltip="0: automatic")
    out = widgets.Output()

    def layers_text(stack):
        return "; ".join(",".join(str(v) for v in layer) for layer in stack)

    text.value = layers_text(layers if layers is not None else PRESETS[preset.value])

    def redraw(*_):
        out.clear_output(wait=True)
        with out:
            try:
                display(figure(parse_layers(text.value), input_size=size.value or None))
            except (ValueError, TypeError) as error:
                print(f"Cannot draw this stack: {error}")

    preset.observe(lambda change: setattr(text, "value", layers_text(PRESETS[change["new"]])), names="value")
    text.observe(redraw, names="value")
    size.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox([preset, size]), text, out])
