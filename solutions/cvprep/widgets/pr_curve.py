"""The precision-recall curve and average precision, built one detection at a time.

:func:`detection_set` generates (from a seed) one image's ground truth and a detector's
scored boxes: well placed, badly placed, duplicates and background. :func:`ranking`
matches them to the ground truth with :func:`cvprep.detection_metrics.assign_detections`
and computes precision and recall after each with
:func:`cvprep.detection_metrics.precision_recall`. :func:`figure` draws the curve, its
interpolated envelope and the area each AP definition computes (buttons: COCO's
101 points, VOC's 11 points, VOC's all-point area; the AP, from
:func:`cvprep.detection_metrics.average_precision`, in the title), and a slider over
the rank k that traces the curve point by point and highlights the k-th detection in
a table. Every step is computed here, so the static site needs no kernel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cvprep import detection_metrics as ref
from cvprep._validation import check_choice, check_probability
from cvprep.boxes import box_iou
from cvprep.widgets import _style

OBJECTS = 10
BACKGROUND = 4  # false positives on nothing
IMAGE = (400.0, 300.0)  # width, height
METHOD_LABELS = {"coco101": "COCO, 101 points", "voc11": "VOC 2007, 11 points", "voc_all": "VOC 2010+, all points"}
METHOD_NOTES = {
    "coco101": "the mean of the envelope at recall 0, 0.01, ..., 1 (the bars' total area)",
    "voc11": "the mean of the envelope at recall 0, 0.1, ..., 1 (the bars' total area)",
    "voc_all": "the area under the envelope",
}
ROW_COLORS = {"TP": "#e3f0df", "FP": "#fbe0e0", "later": "#f7f7f7", "current": "#ffe9a8"}


@dataclass(frozen=True)
class DetectionSet:
    """One image, one class: ground truth and scored detections."""

    objects: np.ndarray  # [G, 4] ground-truth boxes
    boxes: np.ndarray  # [D, 4] detections
    scores: np.ndarray  # [D]
    size: tuple[float, float] = IMAGE  # width, height


def detection_set(seed: int = 0) -> DetectionSet:
    """:data:`OBJECTS` objects that do not overlap, 0 to 2 detections each, plus :data:`BACKGROUND` on nothing.

    A detection's corners are the object's moved by Gaussian noise (2 to 15 % of its
    size; more for a second detection); its score grows with its IoU with the object,
    plus noise, so good and bad boxes interleave in the ranking as with a real detector.

    Returns:
        A :class:`DetectionSet`; the same seed gives the same set.
    """
    rng = np.random.default_rng(seed)
    width, height = IMAGE
    objects: list[np.ndarray] = []
    while len(objects) < OBJECTS:
        w, h = rng.uniform(30, 90, 2)
        x1, y1 = rng.uniform(0, width - w), rng.uniform(0, height - h)
        box = np.array([x1, y1, x1 + w, y1 + h])
        if not objects or box_iou(np.array(objects), box[None]).max() <= 0.1:
            objects.append(box)
    gt = np.round(np.array(objects), 1)
    boxes, scores = [], []
    for obj in gt:
        scale = np.tile(obj[2:] - obj[:2], 2)  # [4]: width, height, width, height
        for j in range(rng.choice([0, 1, 1, 1, 2, 2])):
            box = obj + rng.normal(0.0, rng.uniform(0.03, 0.15) * (1.0 if j == 0 else 1.5), 4) * scale
            box = np.concatenate([np.minimum(box[:2], box[2:]), np.maximum(box[:2], box[2:])])
            fit = box_iou(obj[None], box[None])[0, 0]
            scores.append(np.clip(0.3 + 0.6 * fit + rng.normal(0.0, 0.15), 0.05, 0.99) * (1.0 if j == 0 else 0.85))
            boxes.append(box)
    for _ in range(BACKGROUND):
        w, h = rng.uniform(25, 70, 2)
        x1, y1 = rng.uniform(0, width - w), rng.uniform(0, height - h)
        boxes.append(np.array([x1, y1, x1 + w, y1 + h]))
        scores.append(rng.uniform(0.3, 0.85))
    return DetectionSet(gt, np.round(np.array(boxes), 1), np.round(np.array(scores), 3))


class Ranking(NamedTuple):
    """The detections by decreasing score, matched, with precision and recall after each."""

    order: np.ndarray  # [D] detection indices, by decreasing score
    scores: np.ndarray  # [D] in that order
    is_tp: np.ndarray  # [D] bool
    reasons: list[str]  # [D] what each one matched, or why it is a false positive
    recall: np.ndarray  # [D]
    precision: np.ndarray  # [D]
    num_gt: int


def ranking(detections: DetectionSet, iou_threshold: float = 0.5) -> Ranking:
    """Match ``detections`` at ``iou_threshold`` and rank them (all numbers from :mod:`cvprep.detection_metrics`).

    Raises:
        ValueError: ``iou_threshold`` outside [0, 1].
    """
    threshold = check_probability(iou_threshold, "iou_threshold")
    d = detections
    assigned = ref.assign_detections(d.objects, d.boxes, d.scores, threshold)  # [D], input order
    recall, precision = ref.precision_recall(d.scores, assigned >= 0, len(d.objects))  # by decreasing score
    order = np.argsort(-d.scores, kind="stable")  # the order precision_recall sorts into
    ious = box_iou(d.boxes, d.objects)  # [D, G]
    reasons = []
    for i in order:
        g, best = int(assigned[i]), int(np.argmax(ious[i]))
        if g >= 0:
            reasons.append(f"object {g} (IoU {ious[i, g]:.2f})")
        elif ious[i, best] >= threshold:
            reasons.append(f"duplicate of object {best}")
        elif ious[i, best] > 0:
            shown = f"{ious[i, best]:.2f}" if round(ious[i, best], 2) < threshold else f"{ious[i, best]:.4f}"
            reasons.append(f"misplaced (IoU {shown} < {threshold:g})")
        else:
            reasons.append("background")
    return Ranking(order, d.scores[order], assigned[order] >= 0, reasons, recall, precision, len(d.objects))


def ap_view(r: Ranking, method: str) -> dict:
    """What one AP definition computes on the curve: the AP, and the bars or area to shade.

    Returns:
        ``{"ap", "bars_x", "bars_y", "bar_width", "area_x", "area_y"}``: the sampled
        methods fill bars (recall point, interpolated precision, width ``1 / points``, so
        their areas add up to the AP); ``"voc_all"`` fills the area under the envelope.
    """
    check_choice(method, "method", ref.AP_METHODS)
    ap = ref.average_precision(r.recall, r.precision, method)
    view = {"ap": ap, "bars_x": [], "bars_y": [], "bar_width": 0.0, "area_x": [], "area_y": []}
    if method == "voc_all":
        view["area_x"], view["area_y"] = _envelope_line(r)
    else:
        points = ref.COCO_RECALL_POINTS if method == "coco101" else ref.VOC11_RECALL_POINTS
        heights = ref._sampled_envelope(r.recall[None], r.precision[None], points)[0]  # the envelope AP samples
        view.update(bars_x=[float(p) for p in points], bars_y=[float(h) for h in heights], bar_width=1 / len(points))
    return view


def _envelope_line(r: Ranking) -> tuple[list[float], list[float]]:
    """The interpolated precision as a step line from recall 0 to 1 (drawn with ``line_shape="vh"``)."""
    x = np.concatenate([[0.0], r.recall, [1.0]])
    y = ref._envelope(np.concatenate([[0.0], r.precision, [0.0]]))  # the envelope AP is computed on
    return [float(v) for v in x], [float(v) for v in y]


def _row_colors(r: Ranking, k: int) -> list[list[str]]:
    rows = [ROW_COLORS["current"] if i == k - 1 else ROW_COLORS["later"] if i >= k
            else ROW_COLORS["TP" if tp else "FP"] for i, tp in enumerate(r.is_tp)]
    return [rows] * 6


def _readout(r: Ranking, k: int) -> str:
    tp = int(r.is_tp[:k].sum())
    return (f"k = {k}: score {r.scores[k - 1]:.2f}, {'TP' if r.is_tp[k - 1] else 'FP'} ({r.reasons[k - 1]}); "
            f"precision {tp}/{k} = {r.precision[k - 1]:.3f}, recall {tp}/{r.num_gt} = {r.recall[k - 1]:.3f}")


def _title(method: str, view: dict, iou_threshold: float) -> str:
    return (f"AP ({METHOD_LABELS[method]}) = {view['ap']:.3f} at IoU {iou_threshold:g}"
            f"<br><sup>{METHOD_NOTES[method]}</sup>")


def figure(detections: DetectionSet | None = None, iou_threshold: float = 0.5, method: str = "coco101",
           rank: int | None = None) -> go.Figure:
    """The precision-recall curve of ``detections``, the area of an AP definition, a slider over the rank.

    Args:
        detections: from :func:`detection_set` (default: ``detection_set(0)``).
        iou_threshold: matching threshold.
        method: the AP definition shown first (``"coco101"``, ``"voc11"``, ``"voc_all"``);
            buttons switch between them.
        rank: the slider's first position, k in 1..D (default: D, the whole list).

    Returns:
        A plotly figure: the curve (left; TP markers green, FP red), the ranked
        detections (right, as a table), method buttons and a slider over k.

    Raises:
        ValueError: an unknown ``method``, a threshold outside [0, 1], ``rank`` out of
            range, or no detections.
    """
    detections = detection_set() if detections is None else detections
    check_choice(method, "method", ref.AP_METHODS)
    r = ranking(detections, iou_threshold)
    n = len(r.order)
    if n == 0:
        raise ValueError("detections must contain at least one detection")
    rank = n if rank is None else rank
    if not 1 <= rank <= n:
        raise ValueError(f"rank must be in [1, {n}], got {rank}")
    views = {m: ap_view(r, m) for m in ref.AP_METHODS}
    view = views[method]
    recall, precision = [float(v) for v in r.recall], [float(v) for v in r.precision]
    colors = [_style.GREEN if tp else _style.RED for tp in r.is_tp]

    fig = make_subplots(rows=1, cols=2, column_widths=[0.5, 0.5], horizontal_spacing=0.06,
                        specs=[[{"type": "xy"}, {"type": "table"}]])
    fig.add_trace(go.Bar(x=view["bars_x"], y=view["bars_y"], width=view["bar_width"], name="what AP adds up",
                         legendgroup="ap",
                         marker=dict(color="rgba(78,121,167,0.35)", line=dict(width=0)),
                         hovertemplate="interpolated precision at recall %{x:.2f}: %{y:.3f}<extra></extra>"), 1, 1)
    fig.add_trace(go.Scatter(x=view["area_x"], y=view["area_y"], mode="lines", line_shape="vh", fill="tozeroy",
                             fillcolor="rgba(78,121,167,0.35)", line=dict(width=0), hoverinfo="skip",
                             name="what AP adds up", legendgroup="ap", showlegend=False), 1, 1)
    envelope_x, envelope_y = _envelope_line(r)
    fig.add_trace(go.Scatter(x=envelope_x, y=envelope_y, mode="lines", line_shape="vh", name="envelope",
                             line=dict(color=_style.BLUE, width=2, dash="dash"),
                             hovertemplate="envelope: %{y:.3f}<extra></extra>"), 1, 1)
    fig.add_trace(go.Scatter(x=recall, y=precision, mode="lines+markers", line=dict(color=_style.GREY, width=1),
                             marker=dict(color=colors, size=5, opacity=0.5), hoverinfo="skip", name="whole curve"),
                  1, 1)

    def step(k: int) -> tuple[dict, str]:
        data = {"x": [recall[:k], [recall[k - 1]], None], "y": [precision[:k], [precision[k - 1]], None],
                "marker.color": [colors[:k], [colors[k - 1]], None],
                "cells.fill.color": [None, None, _row_colors(r, k)]}
        return data, _readout(r, k)

    data, readout = step(rank)
    fig.add_trace(go.Scatter(x=data["x"][0], y=data["y"][0], mode="lines+markers", name="first k",
                             line=dict(color="#444444", width=2), marker=dict(color=data["marker.color"][0], size=8),
                             hovertemplate="recall %{x:.3f}, precision %{y:.3f}<extra></extra>"), 1, 1)
    fig.add_trace(go.Scatter(x=data["x"][1], y=data["y"][1], mode="markers", showlegend=False, hoverinfo="skip",
                             marker=dict(color=data["marker.color"][1], size=16, line=dict(color="#222222", width=2))),
                  1, 1)
    cells = [list(range(1, n + 1)), [f"{s:.2f}" for s in r.scores], ["TP" if tp else "FP" for tp in r.is_tp],
             r.reasons, [f"{p:.3f}" for p in precision], [f"{v:.3f}" for v in recall]]
    fig.add_trace(go.Table(
        columnwidth=[0.5, 0.7, 0.55, 2.0, 0.9, 0.8],
        header=dict(values=["k", "score", "", "matched", "precision", "recall"], fill_color="#dddddd",
                    align="left", font=dict(size=11)),
        cells=dict(values=cells, fill_color=data["cells.fill.color"][2], align="left", font=dict(size=11), height=20)),
        1, 2)

    _style.base_layout(fig, _title(method, view, iou_threshold), height=620)
    fig.update_layout(showlegend=True, legend=dict(orientation="h", x=0, y=-0.14, yanchor="top", font=dict(size=11)),
                      title=dict(y=0.98, yanchor="top"), margin=dict(t=125, b=130), bargap=0,
                      annotations=[dict(text=readout, x=0, y=1.0, xref="paper", yref="paper", xanchor="left",
                                        yanchor="bottom", showarrow=False, font=dict(size=12))])
    fig.update_xaxes(range=[-0.03, 1.03], title="recall")
    fig.update_yaxes(range=[0, 1.05], title="precision")
    moving = [4, 5, 6]
    steps_args = []
    for k in range(1, n + 1):
        data, readout = step(k)
        steps_args.append([data, {"annotations[0].text": readout}, moving])
    slider = _style.slider([str(k) for k in range(1, n + 1)], steps_args, "update", "detections taken, k = ", rank - 1)
    slider.update(y=-0.22)
    buttons = [dict(label=METHOD_LABELS[m], method="update",
                    args=[{"x": [v["bars_x"], v["area_x"]], "y": [v["bars_y"], v["area_y"]],
                           "width": [v["bar_width"], None]},
                          {"title.text": _title(m, v, iou_threshold)}, [0, 1]])
               for m, v in views.items()]
    fig.update_layout(sliders=[slider], updatemenus=[dict(
        type="buttons", direction="right", buttons=buttons, active=list(views).index(method), showactive=True,
        x=0.0, xanchor="left", y=1.07, yanchor="bottom")])
    return fig


def explorer(detections: DetectionSet | None = None):
    """Live PR curve for JupyterLab: the matching IoU threshold (0.5 to 0.95) and the AP definition.

    Returns:
        An ``ipywidgets.VBox``; it redraws :func:`figure` when a control changes.
    """
    import ipywidgets as widgets
    from IPython.display import display

    detections = detection_set() if detections is None else detections
    threshold = widgets.FloatSlider(value=0.5, min=0.5, max=0.95, step=0.05, description="IoU threshold",
                                    continuous_update=False, readout_format=".2f")
    method = widgets.Dropdown(options=[(label, m) for m, label in METHOD_LABELS.items()], value="coco101",
                              description="AP")
    output = widgets.Output()

    def redraw(*_) -> None:
        output.clear_output(wait=True)
        with output:
            display(figure(detections, round(threshold.value, 2), method.value))

    threshold.observe(redraw, names="value")
    method.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox([threshold, method]), output])
