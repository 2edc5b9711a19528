"""The FLOP calculator: what one layer design costs, side by side with the others.

For a feature map of ``channels x resolution x resolution`` the figure compares the
designs a network can use to map it to the same number of channels: a standard
convolution, a grouped one, a 1x1, a depthwise-separable pair, a ResNet bottleneck, a
MobileNetV2 inverted residual, and a squeeze-and-excitation gate. Bars show parameters
and multiply-accumulates (log scale); the hover adds FLOPs, activation memory and the
formula. A slider steps through channel counts, every step computed here, so the
static site needs no kernel; :func:`explorer` adds kernel, stride and resolution.

Counts are of the convolution and linear weights (no biases, no batch norm), as in
:mod:`cvprep.cost`; activation memory is the float32 outputs of every layer of the
design for one image.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cvprep._validation import check_int
from cvprep.conv import conv_output_size
from cvprep.cost import conv2d_macs, conv2d_params, linear_macs, linear_params
from cvprep.widgets import _style

GROUPS = 8  # of the grouped convolution
BOTTLENECK_REDUCTION = 4  # ResNet's bottleneck works at a quarter of the channels
EXPANSION = 6  # MobileNetV2's inverted residual works at six times the channels
SE_REDUCTION = 4  # squeeze-and-excitation's hidden layer: a quarter of the channels
KINDS = ("standard", "grouped", "1x1", "depthwise-separable", "bottleneck", "inverted residual",
         "squeeze-excitation")
CHANNEL_STEPS = (16, 32, 64, 128, 256, 512)
BYTES_PER_VALUE = 4  # float32


class DesignCost(NamedTuple):
    """Cost of one layer design for one image."""

    params: int
    macs: int
    activation_bytes: int
    formula: str

    @property
    def flops(self) -> int:
        return 2 * self.macs


def _convs(convs: Sequence[tuple[int, int, int, int, int]], resolution: int) -> tuple[int, int, int]:
    """Params, MACs and output values of a chain of ``(c_in, c_out, kernel, stride, groups)`` convolutions."""
    params = macs = values = 0
    size = resolution
    for c_in, c_out, kernel, stride, groups in convs:
        size = conv_output_size(size, kernel, stride, kernel // 2)  # "same" padding, as the networks use
        params += conv2d_params(c_in, c_out, kernel, groups, bias=False)
        macs += conv2d_macs(c_in, c_out, kernel, size, groups)
        values += c_out * size * size
    return params, macs, values


def design_cost(kind: str, channels: int, kernel_size: int = 3, stride: int = 1, resolution: int = 56) -> DesignCost:
    """Parameters, MACs and activation memory of one layer design (``channels`` in and out).

    Args:
        kind: one of :data:`KINDS`.
        channels: C, the channels in and out (a multiple of 32 keeps every design whole).
        kernel_size: k of the spatial convolution (the 1x1 design ignores it).
        stride: of the spatial convolution.
        resolution: height and width of the input feature map.

    Raises:
        TypeError: a size is not an int.
        ValueError: an unknown ``kind``, a size below 1, or ``channels`` not divisible
            by what the design needs (8 groups, the reductions by 4).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    c = check_int(channels, "channels", 1)
    k = check_int(kernel_size, "kernel_size", 1)
    s = check_int(stride, "stride", 1)
    r = check_int(resolution, "resolution", 1)
    needs = {"grouped": GROUPS, "bottleneck": BOTTLENECK_REDUCTION, "squeeze-excitation": SE_REDUCTION}
    if kind in needs and c % needs[kind]:
        raise ValueError(f"channels must be divisible by {needs[kind]} for the {kind} design, got {c}")
    if kind == "squeeze-excitation":
        hidden = c // SE_REDUCTION
        params = linear_params(c, hidden, bias=False) + linear_params(hidden, c, bias=False)
        macs = linear_macs(c, hidden) + linear_macs(hidden, c)
        # the gate's output rescales the map: one map-sized output, plus two tiny vectors
        return DesignCost(params, macs, (c * r * r + hidden + c) * BYTES_PER_VALUE,
                          f"2 * C^2/{SE_REDUCTION} (two FC layers on the pooled vector; no H*W factor)")
    mid, wide = c // BOTTLENECK_REDUCTION, c * EXPANSION
    chains = {
        "standard": ([(c, c, k, s, 1)], "H*W * C * C * k^2"),
        "grouped": ([(c, c, k, s, GROUPS)], f"H*W * C * (C/{GROUPS}) * k^2"),
        "1x1": ([(c, c, 1, s, 1)], "H*W * C * C"),
        "depthwise-separable": ([(c, c, k, s, c), (c, c, 1, 1, 1)], "H*W * C * (k^2 + C)"),
        "bottleneck": ([(c, mid, 1, 1, 1), (mid, mid, k, s, 1), (mid, c, 1, 1, 1)],
                       "H*W * (C*C/4 + (C/4)^2 * k^2 + C/4*C), the last two at the output size"),
        "inverted residual": ([(c, wide, 1, 1, 1), (wide, wide, k, s, wide), (wide, c, 1, 1, 1)],
                              f"H*W * ({EXPANSION}C*C + {EXPANSION}C * k^2 + {EXPANSION}C*C)"),
    }
    convs, formula = chains[kind]
    params, macs, values = _convs(convs, r)
    return DesignCost(params, macs, values * BYTES_PER_VALUE, f"MACs = {formula}")


def _hover(kind: str, cost: DesignCost) -> str:
    return (f"<b>{kind}</b><br>parameters {cost.params:,}<br>MACs {cost.macs:,}<br>FLOPs {cost.flops:,}"
            f"<br>activations {cost.activation_bytes / 2**20:.2f} MiB<br>{cost.formula}")


def _step(channels: int, kernel_size: int, stride: int, resolution: int) -> tuple[list, list, list, str]:
    costs = [design_cost(kind, channels, kernel_size, stride, resolution) for kind in KINDS]
    standard = costs[0].macs
    title = (f"C = {channels} channels, {kernel_size}x{kernel_size} kernel, stride {stride}, "
             f"{resolution}x{resolution} input: a depthwise-separable layer costs "
             f"{costs[KINDS.index('depthwise-separable')].macs / standard:.1%} of a standard one's MACs")
    hovers = [_hover(kind, cost) for kind, cost in zip(KINDS, costs)]
    return [c.params for c in costs], [c.macs for c in costs], hovers, title


def figure(channels: int = 64, kernel_size: int = 3, stride: int = 1, resolution: int = 56,
           channel_steps: Sequence[int] = CHANNEL_STEPS) -> go.Figure:
    """Parameters and MACs of every design, with a slider over the channel count.

    Args:
        channels: the channel count shown first; must be one of ``channel_steps``.
        kernel_size, stride, resolution: as for :func:`design_cost`, fixed for all steps.
        channel_steps: the slider's channel counts (multiples of 8).

    Returns:
        A plotly figure with two bar charts (parameters, MACs) and a channel slider.

    Raises:
        ValueError: ``channels`` is not among ``channel_steps``, or a size is invalid.
    """
    steps_list = list(channel_steps)
    if channels not in steps_list:
        raise ValueError(f"channels must be one of channel_steps {steps_list}, got {channels}")
    steps = [_step(c, kernel_size, stride, resolution) for c in steps_list]
    params, macs, hovers, title = steps[steps_list.index(channels)]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("parameters", "multiply-accumulates"),
                        horizontal_spacing=0.12)
    colors = [_style.BLUE] * len(KINDS)
    fig.add_trace(go.Bar(x=list(KINDS), y=params, marker_color=colors, hovertext=hovers, hoverinfo="text"), 1, 1)
    fig.add_trace(go.Bar(x=list(KINDS), y=macs, marker_color=_style.ORANGE, hovertext=hovers, hoverinfo="text"), 1, 2)
    _style.base_layout(fig, title, height=470)
    fig.update_yaxes(type="log")
    fig.update_xaxes(tickangle=-35)
    steps_args = [[{"y": [p, m], "hovertext": [h, h]}, {"title.text": t}, [0, 1]] for p, m, h, t in steps]
    fig.update_layout(sliders=[_style.slider([str(c) for c in steps_list], steps_args, "update", "channels: ",
                                             steps_list.index(channels))])
    return fig


def explorer():
    """Live calculator for JupyterLab: channels, kernel, stride and resolution.

    Returns:
        An ``ipywidgets.VBox``; it redraws :func:`figure` when a control changes.
    """
    import ipywidgets as widgets
    from IPython.display import display

    channels = widgets.Dropdown(options=list(CHANNEL_STEPS), value=64, description="channels")
    kernel = widgets.IntSlider(value=3, min=1, max=7, step=2, description="kernel")
    stride = widgets.IntSlider(value=1, min=1, max=2, description="stride")
    resolution = widgets.IntSlider(value=56, min=7, max=224, step=7, description="resolution")
    output = widgets.Output()

    def redraw(*_) -> None:
        output.clear_output(wait=True)
        with output:
            try:
                display(figure(channels.value, kernel.value, stride.value, resolution.value))
            except (ValueError, TypeError) as error:
                print(f"Cannot compute this layer: {error}")

    for control in (channels, kernel, stride, resolution):
        control.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox([channels, kernel]), widgets.HBox([stride, resolution]), output])
