"""The IoU playground: box A stays put, box B moves, and IoU, GIoU, DIoU and CIoU follow.

The left panel draws A, B, their intersection, the smallest box C enclosing both (what
GIoU penalises) and the two lengths of DIoU: the distance rho between the centres and
the diagonal c of C. The right panel plots the four measures along the path B takes,
with a marker at the slider's position, so one sees IoU flat at 0 once the boxes part
while GIoU and DIoU keep falling (a gradient), and CIoU's aspect-ratio term when B is
stretched. Buttons choose the path; every slider step of every path is computed here,
with :mod:`cvprep.boxes`, so the static site needs no kernel. :func:`explorer` moves and
resizes B freely in JupyterLab.

Boxes are ``(x1, y1, x2, y2)`` in image coordinates: y grows downwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cvprep import boxes as ref
from cvprep.widgets import _style

BOX_A = (6.0, 4.0, 10.0, 8.0)
BOX_B = (8.0, 4.0, 12.0, 8.0)  # A moved two units to the right
PATHS = ("slide right", "slide diagonally", "small box inside A", "stretch")
MEASURES = ("IoU", "GIoU", "DIoU", "CIoU")
COLORS = (_style.BLUE, _style.ORANGE, _style.RED, _style.GREEN)
STEPS = 33  # positions per path (B's own position is added when it falls between them)
INSIDE_SCALE = 0.4  # the small box's sides, as a fraction of A's
FULL_RANGE = ("slide right", "slide diagonally")  # paths on which the measures span [-1, 1]
N_LEFT = 6  # traces of the left panel: A, B, intersection, C, rho, c
MOVING = list(range(1, N_LEFT)) + [N_LEFT + len(MEASURES)]  # what a slider step redraws: B .. c, the marker


class Overlap(NamedTuple):
    """The four measures of one pair of boxes, and the losses ``1 - measure``."""

    iou: float
    giou: float
    diou: float
    ciou: float
    iou_loss: float
    giou_loss: float
    diou_loss: float
    ciou_loss: float

    @property
    def values(self) -> tuple[float, float, float, float]:
        return self.iou, self.giou, self.diou, self.ciou

    @property
    def losses(self) -> tuple[float, float, float, float]:
        return self.iou_loss, self.giou_loss, self.diou_loss, self.ciou_loss


class Path(NamedTuple):
    """Where B goes: one box per slider step, and the x coordinate of each in the right panel."""

    name: str
    positions: np.ndarray  # [K], the right panel's x
    boxes: np.ndarray  # [K, 4]
    start: int  # the step shown first
    axis_title: str
    labels: list[str]  # the slider's label per step


def _box(value: Sequence[float], name: str) -> np.ndarray:
    box = np.asarray(value, dtype=float)
    if box.shape != (4,) or not np.isfinite(box).all() or box[2] <= box[0] or box[3] <= box[1]:
        raise ValueError(f"{name} must be four finite numbers (x1, y1, x2, y2) with x1 < x2 and y1 < y2, "
                         f"got {value!r}")
    return box


def overlaps(box_a: Sequence[float], boxes_b: np.ndarray) -> list[Overlap]:
    """The measures and losses of ``box_a`` against each of ``boxes_b`` (ndarray[K, 4]), from :mod:`cvprep.boxes`."""
    a = _box(box_a, "box_a")[None]  # [1, 4]
    b = np.asarray(boxes_b, dtype=float).reshape(-1, 4)  # [K, 4]
    pairs = np.repeat(a, len(b), axis=0)  # [K, 4], for the losses, which pair row i with row i
    iou = ref.box_iou(a, b)[0]  # [K]
    giou = ref.generalized_box_iou(a, b)[0]
    diou = ref.distance_box_iou(a, b)[0]
    ciou = ref.complete_box_iou(a, b)[0]
    giou_loss = np.asarray(ref.generalized_box_iou_loss(pairs, b, reduction="none")).reshape(-1)
    diou_loss = np.asarray(ref.distance_box_iou_loss(pairs, b, reduction="none")).reshape(-1)
    ciou_loss = np.asarray(ref.complete_box_iou_loss(pairs, b, reduction="none")).reshape(-1)
    return [Overlap(*(float(v) for v in row))
            for row in zip(iou, giou, diou, ciou, 1.0 - iou, giou_loss, diou_loss, ciou_loss)]


def overlap(box_a: Sequence[float], box_b: Sequence[float]) -> Overlap:
    """The measures and losses of one pair of boxes."""
    return overlaps(box_a, _box(box_b, "box_b")[None])[0]


def _centred(cx: np.ndarray, cy: np.ndarray, w: np.ndarray, h: np.ndarray) -> np.ndarray:
    centre = np.stack([cx, cy], axis=-1)  # [K, 2]
    half = np.stack([w, h], axis=-1) / 2  # [K, 2]
    return np.concatenate([centre - half, centre + half], axis=-1)  # [K, 4]


def _with(grid: np.ndarray, value: float) -> tuple[np.ndarray, int]:
    """``grid`` with ``value`` added (unless already on it), and the index of ``value``."""
    near = np.isclose(grid, value)
    if not near.any():
        grid = np.sort(np.append(grid, value))
        near = np.isclose(grid, value)
    return grid, int(np.argmax(near))


def paths(box_a: Sequence[float] = BOX_A, box_b: Sequence[float] = BOX_B) -> dict[str, Path]:
    """The paths B follows, built around A and B's size.

    - ``"slide right"``: B keeps its size and height and crosses A from left to right,
      starting and ending one box length clear of it; the first step shown is B itself.
    - ``"slide diagonally"``: the same, along the diagonal through A's centre.
    - ``"small box inside A"``: a box ``INSIDE_SCALE`` times A's size crosses A inside it
      (IoU and GIoU stay constant; only DIoU and CIoU see it move).
    - ``"stretch"``: B centred on A, its area fixed, its aspect ratio ``w / h`` from 1/8
      to 8 (shown first: B's own).

    Raises:
        ValueError: a box that is not ``(x1, y1, x2, y2)`` with ``x1 < x2`` and ``y1 < y2``.
    """
    a, b = _box(box_a, "box_a"), _box(box_b, "box_b")
    acx, acy, aw, ah = (a[0] + a[2]) / 2, (a[1] + a[3]) / 2, a[2] - a[0], a[3] - a[1]
    bcx, bcy, bw, bh = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2, b[2] - b[0], b[3] - b[1]
    result = {}

    span = (aw + bw) / 2 + max(aw, bw)
    t, start = _with(np.linspace(-span, span, STEPS), bcx - acx)
    result["slide right"] = Path("slide right", t, _centred(acx + t, np.full_like(t, bcy), bw, bh), start,
                                 "centre of B - centre of A, along x", [f"{v:+.2f}" for v in t])

    span_d = (max(aw, ah) + max(bw, bh)) / 2 + max(aw, ah, bw, bh) / 2  # clear by half a box at the ends
    t = np.linspace(-span_d, span_d, STEPS)
    result["slide diagonally"] = Path("slide diagonally", t, _centred(acx + t, acy + t, bw, bh),
                                      int(np.argmin(np.abs(t - (bcx - acx)))),
                                      "centre of B - centre of A, along x and along y", [f"{v:+.2f}" for v in t])

    sw, sh = INSIDE_SCALE * aw, INSIDE_SCALE * ah
    t = np.linspace(-(aw - sw) / 2, (aw - sw) / 2, STEPS)
    result["small box inside A"] = Path("small box inside A", t, _centred(acx + t, np.full_like(t, acy), sw, sh), 0,
                                        "centre of the small box - centre of A, along x", [f"{v:+.2f}" for v in t])

    s, start = _with(np.linspace(-3.0, 3.0, STEPS), float(np.log2(bw / bh)))
    ratio = 2.0**s
    area = bw * bh
    result["stretch"] = Path("stretch", ratio, _centred(np.full_like(s, acx), np.full_like(s, acy),
                                                        np.sqrt(area * ratio), np.sqrt(area / ratio)), start,
                             "aspect ratio w / h of B (area fixed, centred on A)", [f"{v:.2f}" for v in ratio])
    return result


def _rect(box: Sequence[float]) -> tuple[list, list]:
    x1, y1, x2, y2 = (float(v) for v in box)
    return [x1, x2, x2, x1, x1], [y1, y1, y2, y2, y1]


def _readout(box_b: np.ndarray, o: Overlap) -> str:
    values = " · ".join(f"{m} {v:.3f}" for m, v in zip(MEASURES, o.values))
    losses = " · ".join(f"{m} {v:.3f}" for m, v in zip(MEASURES, o.losses))
    corners = ", ".join(f"{v:g}" for v in np.round(box_b, 2))
    return f"B = ({corners}): {values}<br>losses (1 - value): {losses}"


def _step(a: np.ndarray, b: np.ndarray, o: Overlap, position: float) -> tuple[list, list, str]:
    """x and y of the left-panel traces after A (B, A∩B, C, rho, c) and of the marker, and the readout."""
    lo, hi = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
    inter = _rect([*lo, *hi]) if (hi > lo).all() else ([], [])
    c = np.concatenate([np.minimum(a[:2], b[:2]), np.maximum(a[2:], b[2:])])  # enclosing box C
    ca, cb = (a[:2] + a[2:]) / 2, (b[:2] + b[2:]) / 2
    rho = ([ca[0], (ca[0] + cb[0]) / 2, cb[0]], [ca[1], (ca[1] + cb[1]) / 2, cb[1]])
    diagonal = ([c[0], (c[0] + c[2]) / 2, c[2]], [c[1], (c[1] + c[3]) / 2, c[3]])
    parts = [_rect(b), inter, _rect(c), rho, diagonal, ([position] * 4, list(o.values))]
    xs = [[float(v) for v in p[0]] for p in parts]
    ys = [[float(v) for v in p[1]] for p in parts]
    return xs, ys, _readout(b, o)


def _path_state(a: np.ndarray, path: Path) -> tuple[list[tuple[list, list, str]], list[Overlap], dict]:
    measures = overlaps(a, path.boxes)
    steps = [_step(a, b, o, float(x)) for b, o, x in zip(path.boxes, measures, path.positions)]
    step_args = [[{"x": xs, "y": ys, "customdata": [None] * (N_LEFT - 1) + [list(o.losses)]},
                  {"title.text": title}, MOVING] for (xs, ys, title), o in zip(steps, measures)]
    slider = _style.slider(path.labels, step_args, "update", f"{path.name}: ", path.start)
    slider.update(y=-0.08)
    return steps, measures, slider


def figure(box_a: Sequence[float] = BOX_A, box_b: Sequence[float] = BOX_B, path: str = "slide right") -> go.Figure:
    """A against B moving along a path: the boxes (left), the four measures along the path (right).

    Args:
        box_a: the fixed box ``(x1, y1, x2, y2)``.
        box_b: the moving box where the "slide right" path starts; its size sets the
            size of B on the sliding paths and its area on the "stretch" path.
        path: the path shown first, one of :data:`PATHS`; buttons switch to the others.

    Returns:
        A plotly figure with a slider over B's positions, one button per path (each
        button installs its path's slider), and the measures and losses of every
        position in the title.

    Raises:
        ValueError: a box that is not ``(x1, y1, x2, y2)`` with ``x1 < x2``, ``y1 < y2``,
            or an unknown ``path``.
    """
    if path not in PATHS:
        raise ValueError(f"path must be one of {PATHS}, got {path!r}")
    a = _box(box_a, "box_a")
    all_paths = paths(a, box_b)
    states = {name: _path_state(a, p) for name, p in all_paths.items()}

    fig = make_subplots(rows=1, cols=2, column_widths=[0.46, 0.54], horizontal_spacing=0.1,
                        subplot_titles=("A, B, A∩B (green), enclosing box C, rho and c", ""))
    ax, ay = _rect(a)
    fig.add_trace(go.Scatter(x=ax, y=ay, mode="lines+text", fill="toself", fillcolor="rgba(78,121,167,0.15)",
                             line=dict(color=_style.BLUE, width=2), text=["A", "", "", "", ""],
                             textposition="top right", hoverinfo="skip", showlegend=False), 1, 1)
    left_styles = [
        dict(mode="lines+text", fill="toself", fillcolor="rgba(242,142,43,0.15)",
             line=dict(color=_style.ORANGE, width=2),
             text=["B", "", "", "", ""], textposition="top right"),
        dict(mode="lines", fill="toself", fillcolor="rgba(89,161,79,0.45)", line=dict(color=_style.GREEN, width=1)),
        dict(mode="lines+text", line=dict(color="#555555", width=1.5, dash="dash"), text=["C", "", "", "", ""],
             textposition="bottom right"),
        dict(mode="lines+markers+text", line=dict(color=_style.RED, width=2), marker=dict(size=6),
             text=["", "rho", ""], textposition="bottom center"),
        dict(mode="lines+text", line=dict(color=_style.PURPLE, width=1.5, dash="dot"), text=["", "c", ""],
             textposition="top center"),
    ]
    for style in left_styles:
        fig.add_trace(go.Scatter(x=[], y=[], hoverinfo="skip", showlegend=False, **style), 1, 1)
    for name, color in zip(MEASURES, COLORS):
        fig.add_trace(go.Scatter(x=[], y=[], mode="lines", name=name, line=dict(color=color, width=2),
                                 hovertemplate=f"{name} %{{y:.3f}} at %{{x:.2f}}<extra></extra>"), 1, 2)
    fig.add_trace(go.Scatter(x=[], y=[], mode="markers", marker=dict(color=list(COLORS), size=11,
                                                                       line=dict(color="white", width=1.5)),
                             text=list(MEASURES), showlegend=False,
                             hovertemplate="%{text} %{y:.3f} (loss %{customdata:.3f})<extra></extra>"), 1, 2)

    def view(name: str) -> tuple[dict, dict]:
        """Data (traces 1..) and layout that show path ``name`` at its first step."""
        p = all_paths[name]
        steps, measures, slider = states[name]
        xs, ys, title = steps[p.start]
        curves_x = [[float(v) for v in p.positions]] * len(MEASURES)
        curves_y = [[o.values[i] for o in measures] for i in range(len(MEASURES))]
        data = {"x": xs[:-1] + curves_x + xs[-1:], "y": ys[:-1] + curves_y + ys[-1:],
                "customdata": [None] * (N_LEFT - 1 + len(MEASURES)) + [list(measures[p.start].losses)]}
        layout = {"title.text": title, "sliders": [slider], "xaxis2.title.text": p.axis_title,
                  "xaxis2.type": "log" if name == "stretch" else "linear", "xaxis2.autorange": True}
        if name in FULL_RANGE:  # B leaves A: show the whole of [-1, 1]
            layout.update({"yaxis2.range": [-1.05, 1.05], "yaxis2.autorange": False})
        else:  # all measures stay close together: zoom in, so CIoU's aspect term shows
            layout.update({"yaxis2.autorange": True})
        return data, layout

    traces = list(range(1, N_LEFT + len(MEASURES) + 1))
    data, layout = view(path)
    for i, x, y, custom in zip(traces, data["x"], data["y"], data["customdata"]):
        fig.data[i].x, fig.data[i].y = x, y
        if custom is not None:
            fig.data[i].customdata = custom
    _style.base_layout(fig, layout["title.text"], height=560)
    fig.update_layout(sliders=layout["sliders"], showlegend=True, margin=dict(t=170, b=40),
                      title=dict(y=0.98, yanchor="top"),
                      legend=dict(orientation="h", x=0.56, xanchor="left", y=1.0, yanchor="bottom"))
    fig.update_layout(updatemenus=[dict(
        type="buttons", direction="right", x=0.0, xanchor="left", y=1.12, yanchor="bottom",
        active=PATHS.index(path), showactive=True,
        buttons=[dict(label=name, method="update", args=[*view(name), traces]) for name in PATHS])])
    fig.update_annotations(y=1.02, font_size=12)  # the subplot titles

    every = np.concatenate([a[None]] + [p.boxes for p in all_paths.values()])
    lo, hi = every[:, :2].min(axis=0) - 0.5, every[:, 2:].max(axis=0) + 0.5
    fig.update_xaxes(range=[lo[0], hi[0]], constrain="domain", zeroline=False, title="x", row=1, col=1)
    fig.update_yaxes(range=[hi[1], lo[1]], scaleanchor="x", scaleratio=1, constrain="domain", zeroline=False,
                     title="y (image rows, downwards)", row=1, col=1)
    fig.update_xaxes(title=layout["xaxis2.title.text"], type=layout["xaxis2.type"], row=1, col=2)
    fig.update_yaxes(title="value (loss = 1 - value)", zeroline=True, zerolinecolor="#999999", row=1, col=2)
    if path in FULL_RANGE:
        fig.update_yaxes(range=[-1.05, 1.05], row=1, col=2)
    return fig


def explorer(box_a: Sequence[float] = BOX_A, box_b: Sequence[float] = BOX_B):
    """Live playground for JupyterLab: sliders for B's centre, width and height.

    Returns:
        An ``ipywidgets.VBox``; it redraws :func:`figure` (B where the sliders put it,
        the "slide right" path through it) when a control changes.
    """
    import ipywidgets as widgets
    from IPython.display import display

    a, b = _box(box_a, "box_a"), _box(box_b, "box_b")
    low, high = a[:2] - 2 * (a[2:] - a[:2]), a[2:] + 2 * (a[2:] - a[:2])
    size = float(max(a[2] - a[0], a[3] - a[1]))
    slider = dict(step=0.25, continuous_update=False, readout_format=".2f")
    cx = widgets.FloatSlider(value=(b[0] + b[2]) / 2, min=low[0], max=high[0], description="B centre x", **slider)
    cy = widgets.FloatSlider(value=(b[1] + b[3]) / 2, min=low[1], max=high[1], description="B centre y", **slider)
    w = widgets.FloatSlider(value=b[2] - b[0], min=0.25, max=3 * size, description="B width", **slider)
    h = widgets.FloatSlider(value=b[3] - b[1], min=0.25, max=3 * size, description="B height", **slider)
    output = widgets.Output()

    def redraw(*_) -> None:
        output.clear_output(wait=True)
        with output:
            moved = (cx.value - w.value / 2, cy.value - h.value / 2, cx.value + w.value / 2, cy.value + h.value / 2)
            try:
                display(figure(tuple(a), moved))
            except ValueError as error:
                print(f"Cannot draw these boxes: {error}")

    for control in (cx, cy, w, h):
        control.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox([cx, cy]), widgets.HBox([w, h]), output])
