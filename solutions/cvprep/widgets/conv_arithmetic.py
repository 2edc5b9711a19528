"""Convolution arithmetic: a kernel sliding over a padded input, one output at a time.

Left: the padded input (padding grey, values printed), with the kernel's taps on it at
the current position (orange, the weight printed beside the pixel value; dilation
leaves gaps between taps). Right: the output, filled in as the kernel moves, its
values computed by :func:`cvprep.conv.conv2d`. The animation frames are computed here,
so the play button and slider work on the static site without a kernel.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cvprep._validation import pair
from cvprep.conv import conv2d
from cvprep.widgets import _style

IntOrPair = int | tuple[int, int]
PADDING, INPUT, TAP = 0, 1, 2  # input cell categories
PENDING, DONE, CURRENT = 0, 1, 2  # output cell categories


def example(input_size: IntOrPair, kernel_size: IntOrPair, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A small integer image (0 to 9) and kernel (-1, 0, 1), so sums can be checked by hand."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 10, size=pair(input_size, "input_size", 1)).astype(float)
    kernel = rng.integers(-1, 2, size=pair(kernel_size, "kernel_size", 1)).astype(float)
    return image, kernel


def tap_positions(i: int, j: int, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int]) -> list[tuple[int, int]]:
    """Padded-input coordinates ``(row, col)`` that the kernel reads for output ``(i, j)``, tap by tap."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    return [(i * sh + a * dh, j * sw + b * dw) for a in range(kh) for b in range(kw)]


def figure(
    input_size: IntOrPair = 5,
    kernel_size: IntOrPair = 3,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
    seed: int = 0,
) -> go.Figure:
    """Build the animated convolution-arithmetic figure, one frame per output position.

    Args:
        input_size, kernel_size, stride, padding, dilation: ints or (height, width) pairs,
            with the meaning they have in ``torch.nn.functional.conv2d``.
        seed: seed of the example image and kernel.

    Returns:
        A plotly figure with frames, a slider and a play button.

    Raises:
        TypeError, ValueError: invalid sizes, or a kernel larger than the padded input.
    """
    size, kernel = pair(input_size, "input_size", 1), pair(kernel_size, "kernel_size", 1)
    stride, padding, dilation = pair(stride, "stride", 1), pair(padding, "padding", 0), pair(dilation, "dilation", 1)
    image, weights = example(size, kernel, seed)
    output = conv2d(image[None, None], weights[None, None], stride=stride, padding=padding, dilation=dilation)[0, 0]
    out_h, out_w = output.shape

    padded = np.pad(image, [(padding[0],) * 2, (padding[1],) * 2])  # [H + 2ph, W + 2pw]
    base = np.full(padded.shape, PADDING)
    base[padding[0]:padding[0] + size[0], padding[1]:padding[1] + size[1]] = INPUT
    values = padded.astype(int).astype(str)

    def input_state(i, j):
        z, text = base.copy(), values.astype(object).copy()
        for (r, c), w in zip(tap_positions(i, j, kernel, stride, dilation), weights.flatten()):
            z[r, c] = TAP
            text[r, c] = f"{values[r, c]}<br>×{w:g}"
        return z, text

    def output_state(step):
        z = np.full((out_h, out_w), PENDING)
        z.flat[:step] = DONE
        z.flat[step] = CURRENT
        text = np.where(z == PENDING, "", output.astype(int).astype(str))
        return z, text

    def traces(step):
        i, j = divmod(step, out_w)
        (z_in, text_in), (z_out, text_out) = input_state(i, j), output_state(step)
        return [
            go.Heatmap(z=z_in, text=text_in, texttemplate="%{text}", textfont=dict(size=14), zmin=0, zmax=2,
                       showscale=False, xgap=2, ygap=2,
                       colorscale=_style.categories([_style.LIGHT, "#fbfbfb", _style.ORANGE]), hoverinfo="skip"),
            go.Heatmap(z=z_out, text=text_out, texttemplate="%{text}", textfont=dict(size=14), zmin=0, zmax=2,
                       showscale=False, xgap=2, ygap=2,
                       colorscale=_style.categories([_style.LIGHT, "#a0cbe8", _style.BLUE]), hoverinfo="skip"),
        ]

    def title(step):
        i, j = divmod(step, out_w)
        top, left = i * stride[0], j * stride[1]
        return (f"output[{i}, {j}] = {output[i, j]:g}: kernel's top-left tap at padded row {top}, column {left}"
                f"<br><sub>{size[0]}x{size[1]} input, padding {padding}, kernel {kernel}, stride {stride}, "
                f"dilation {dilation} → {out_h}x{out_w} output</sub>")

    n_steps = out_h * out_w
    fig = make_subplots(rows=1, cols=2, column_widths=[padded.shape[1], max(out_w, 2)], horizontal_spacing=0.08,
                        subplot_titles=("padded input (× kernel weight on the taps)", "output"))
    for col, trace in enumerate(traces(0), start=1):
        fig.add_trace(trace, row=1, col=col)
    fig.frames = [go.Frame(data=traces(k), traces=[0, 1], name=str(k), layout=dict(title_text=title(k)))
                  for k in range(n_steps)]
    _style.base_layout(fig, title(0), height=max(420, 55 * padded.shape[0] + 260))  # cells big enough to read
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, constrain="domain")
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, autorange="reversed")
    fig.update_yaxes(scaleanchor="x", row=1, col=1)
    fig.update_yaxes(scaleanchor="x2", row=1, col=2)
    play, steps = _style.animation_controls([str(k) for k in range(n_steps)], "output position: ")
    fig.update_layout(updatemenus=[play], sliders=[steps], margin=dict(t=125, b=20), plot_bgcolor="#cccccc")
    return fig


def explorer():
    """Live explorer for JupyterLab: sliders for every argument, redrawing :func:`figure`.

    Returns:
        An ``ipywidgets.VBox``.
    """
    import ipywidgets as widgets
    from IPython.display import display

    controls = {
        "input_size": widgets.IntSlider(value=5, min=1, max=9, description="input"),
        "kernel_size": widgets.IntSlider(value=3, min=1, max=5, description="kernel"),
        "stride": widgets.IntSlider(value=1, min=1, max=3, description="stride"),
        "padding": widgets.IntSlider(value=0, min=0, max=3, description="padding"),
        "dilation": widgets.IntSlider(value=1, min=1, max=3, description="dilation"),
    }
    out = widgets.Output()

    def redraw(*_):
        out.clear_output(wait=True)
        with out:
            try:
                display(figure(**{name: control.value for name, control in controls.items()}))
            except ValueError as error:
                print(f"No output: {error}")

    for control in controls.values():
        control.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox(list(controls.values())[:3]), widgets.HBox(list(controls.values())[3:]), out])
