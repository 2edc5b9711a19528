"""Non-maximum suppression, step by step, on a crowded scene.

:func:`crowd_scene` generates (from a seed) four people, two of them standing close
together so that one hides part of the other, each with a cluster of noisy scored
detections. :func:`figure` walks greedy NMS through it, one slider step per kept box:
the box kept (bold), the boxes it suppresses (red, dashed, each labelled with its IoU
to the kept box), the candidates still waiting (grey), the boxes kept before (green);
a bar chart beside it compares each box's score with its Soft-NMS score.
:func:`threshold_figure` slides the IoU threshold instead: greedy NMS on the left,
Soft-NMS on the right, so one sees a low threshold delete the occluded person that
Soft-NMS keeps with a lower score. Every step is computed here; the kept boxes and the
Soft-NMS scores come from :mod:`cvprep.nms`, so the static site needs no kernel.

Boxes are ``(x1, y1, x2, y2)`` in image coordinates: y grows downwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cvprep import nms as ref
from cvprep._validation import check_choice, check_probability
from cvprep.boxes import box_iou, distance_box_iou
from cvprep.widgets import _style

# The people: (x1, y1, x2, y2) in a 300 x 260 image; the second stands behind the first.
PEOPLE = np.array([
    [100.0, 50.0, 160.0, 222.0],  # front
    [124.0, 56.0, 182.0, 214.0],  # behind the front person, partly hidden
    [22.0, 82.0, 70.0, 210.0],  # alone on the left
    [212.0, 96.0, 262.0, 226.0],  # alone on the right
])
NAMES = ("front person", "occluded person", "person on the left", "person on the right")
BEST_SCORES = (0.93, 0.80, 0.88, 0.85)  # of each person's best-placed detection
DETECTIONS = (8, 7, 6, 6)  # per person
JITTER = 0.06  # standard deviation of the detections' corners, as a fraction of the person's size
IMAGE = (300.0, 260.0)  # width, height
METHODS = ("nms", "diou_nms")
THRESHOLDS = tuple(round(0.1 + 0.05 * i, 2) for i in range(17))  # 0.1 .. 0.9
NEUTRAL = "#444444"


@dataclass(frozen=True)
class CrowdScene:
    """Ground truth and detections of one generated image (one class: person)."""

    objects: np.ndarray  # [K, 4] ground-truth boxes
    names: tuple[str, ...]  # [K]
    boxes: np.ndarray  # [N, 4] detections
    scores: np.ndarray  # [N]
    owner: np.ndarray  # [N] int64: the object each detection was generated around
    front_detection: int  # the best-scoring detection of the front person
    occluded_detection: int  # the best-scoring detection of the occluded person
    size: tuple[float, float] = IMAGE  # width, height


def crowd_scene(seed: int = 0) -> CrowdScene:
    """Four people, two overlapping, each with a cluster of noisy scored detections.

    Each person gets :data:`DETECTIONS` boxes: the first close to the person (its score
    is :data:`BEST_SCORES`), the others with corners moved by Gaussian noise of
    :data:`JITTER` times the person's size, scored lower the worse they fit. The
    detections are shuffled, as a detector's output is in no particular order.

    Returns:
        A :class:`CrowdScene`; the same seed gives the same scene.
    """
    rng = np.random.default_rng(seed)
    boxes, scores, owner = [], [], []
    for k, (person, best, count) in enumerate(zip(PEOPLE, BEST_SCORES, DETECTIONS)):
        scale = np.tile(person[2:] - person[:2], 2)  # [4]: width, height, width, height
        for j in range(count):
            box = person + rng.normal(0.0, JITTER * (0.3 if j == 0 else 1.0), 4) * scale
            box = np.concatenate([np.minimum(box[:2], box[2:]), np.maximum(box[:2], box[2:])])
            fit = box_iou(person[None], box[None])[0, 0]
            scores.append(best if j == 0 else best * (0.45 + 0.5 * fit) * rng.uniform(0.85, 1.0))
            boxes.append(box)
            owner.append(k)
    order = rng.permutation(len(boxes))
    boxes = np.round(np.array(boxes), 1)[order]
    scores = np.round(np.array(scores), 3)[order]
    owner = np.array(owner, dtype=np.int64)[order]

    def best_of(k: int) -> int:
        mine = np.flatnonzero(owner == k)
        return int(mine[np.argmax(scores[mine])])

    return CrowdScene(PEOPLE.copy(), NAMES, boxes, scores, owner, best_of(0), best_of(1))


class Step(NamedTuple):
    """What one round of greedy NMS did."""

    kept: int  # the box kept
    suppressed: tuple[int, ...]  # the boxes it removed, by decreasing score
    overlaps: tuple[float, ...]  # IoU (DIoU for "diou_nms") of each with the kept box
    candidates: tuple[int, ...]  # the boxes still waiting afterwards, by decreasing score


def greedy_steps(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, method: str = "nms") -> list[Step]:
    """Record greedy NMS round by round (the figure's steps; :func:`cvprep.nms.nms` gives the kept set).

    Args:
        boxes (ndarray[N, 4]): ``(x1, y1, x2, y2)``.
        scores (ndarray[N]): one per box; equal scores rank by index, as in :mod:`cvprep.nms`.
        iou_threshold: a box is suppressed when its overlap with the kept box is above it.
        method: ``"nms"`` (overlap = IoU) or ``"diou_nms"`` (overlap = DIoU, as
            :func:`cvprep.nms.diou_nms`).

    Returns:
        One :class:`Step` per kept box, in the order NMS keeps them.
    """
    check_choice(method, "method", METHODS)
    threshold = check_probability(iou_threshold, "iou_threshold")
    waiting = [int(i) for i in np.argsort(-scores, kind="stable")]
    steps = []
    while waiting:
        kept, rest = waiting[0], np.array(waiting[1:], dtype=np.int64)
        if method == "nms":
            overlap = box_iou(boxes[[kept]], boxes[rest])[0]  # [R]
        else:
            overlap = distance_box_iou(boxes[[kept]], boxes[rest], eps=0.0)[0]  # [R]
        removed = overlap > threshold
        steps.append(Step(kept, tuple(int(i) for i in rest[removed]), tuple(float(v) for v in overlap[removed]),
                          tuple(int(i) for i in rest[~removed])))
        waiting = list(steps[-1].candidates)
    return steps


def _outlines(boxes: np.ndarray, indices: Sequence[int], scores: np.ndarray) -> tuple[list, list, list]:
    """One polyline for many boxes (None between them), with a hover text per corner."""
    xs, ys, texts = [], [], []
    for i in indices:
        x1, y1, x2, y2 = (float(v) for v in boxes[i])
        xs += [x1, x2, x2, x1, x1, None]
        ys += [y1, y1, y2, y2, y1, None]
        texts += [f"#{i} score {scores[i]:.3f}"] * 5 + [None]
    return xs, ys, texts


def _soft(scene: CrowdScene, iou_threshold: float, soft_method: str, sigma: float) -> np.ndarray:
    """Every box's Soft-NMS score (0 for the boxes it dropped), from :func:`cvprep.nms.soft_nms`."""
    keep, new_scores = ref.soft_nms(scene.boxes, scene.scores, iou_threshold=iou_threshold, sigma=sigma,
                                    method=soft_method)
    soft = np.zeros(len(scene.boxes))
    soft[keep] = new_scores
    return soft


def _soft_label(soft_method: str, sigma: float, iou_threshold: float | str) -> str:
    if soft_method == "gaussian":
        return f"Gaussian Soft-NMS (sigma {sigma:g}, no threshold)"
    return f"linear Soft-NMS (N_t {iou_threshold if isinstance(iou_threshold, str) else format(iou_threshold, 'g')})"


STATUS_COLORS = {"candidate": _style.GREY, "kept before": _style.GREEN, "suppressed now": _style.RED,
                 "kept now": _style.BLUE, "suppressed before": _style.LIGHT}
# the left panel's traces, in order (the label trace comes after them)
LAYERS = ("suppressed before", "candidate", "kept before", "suppressed now", "kept now")
LINES = {"suppressed before": dict(color="#d5d5d5", width=1, dash="dot"),
         "candidate": dict(color=_style.GREY, width=1.2),
         "kept before": dict(color=_style.GREEN, width=3),
         "suppressed now": dict(color=_style.RED, width=1.8, dash="dash"),
         "kept now": dict(color=_style.BLUE, width=4.5)}
LABEL_X = IMAGE[0] + 8  # the column where the suppressed boxes' labels go, right of the image
LABEL_GAP = 12.5  # between labels, in image units


def _status(n: int, steps: list[Step], upto: int, last_is_now: bool = True) -> list[str]:
    """Each box's status after ``upto`` steps (0: before the first); the last of them "now" if ``last_is_now``."""
    status = ["candidate"] * n
    for number, step in enumerate(steps[:upto], start=1):
        now = last_is_now and number == upto
        status[step.kept] = "kept now" if now else "kept before"
        for i in step.suppressed:
            status[i] = "suppressed now" if now else "suppressed before"
    return status


def _labels(scene: CrowdScene, step: Step | None, what: str) -> list[dict]:
    """Annotations naming each suppressed box's overlap, in a column right of the image, arrows to the boxes."""
    if step is None or not step.suppressed:
        return []
    by_height = sorted(zip(step.suppressed, step.overlaps), key=lambda pair: scene.boxes[pair[0], 1])
    top = max(2 * LABEL_GAP, min(IMAGE[1] - LABEL_GAP * len(by_height), float(scene.boxes[step.kept, 1])))
    notes = [dict(x=LABEL_X, y=top - LABEL_GAP, xref="x", yref="y", text=f"removed by #{step.kept}:",
                  showarrow=False, xanchor="left", font=dict(size=11, color=_style.RED))]
    for row, (i, value) in enumerate(by_height):
        x2, y1 = float(scene.boxes[i, 2]), float(scene.boxes[i, 1])
        notes.append(dict(x=x2, y=y1, ax=LABEL_X, ay=top + row * LABEL_GAP, xref="x", yref="y", axref="x",
                          ayref="y", text=f"#{i} {what} {value:.2f}", showarrow=True, arrowhead=0, arrowwidth=0.8,
                          arrowcolor="rgba(225,87,89,0.5)", xanchor="left", font=dict(size=11, color=_style.RED),
                          bgcolor="white"))
    return notes


def figure(scene: CrowdScene | None = None, iou_threshold: float = 0.5, step: int | None = None,
           method: str = "nms", soft_method: str = "gaussian", sigma: float = 0.5) -> go.Figure:
    """Greedy NMS on ``scene``, one slider step per kept box; Soft-NMS scores beside it.

    Args:
        scene: from :func:`crowd_scene` (default: ``crowd_scene(0)``).
        iou_threshold: NMS's threshold (and linear Soft-NMS's ``N_t``).
        step: the step shown first: 0 is before the first round, ``len(kept) + 1`` the
            end (default: 1, the first box kept).
        method: ``"nms"`` or ``"diou_nms"``, the overlap that suppresses.
        soft_method: ``"gaussian"`` or ``"linear"``, the Soft-NMS of the bar chart.
        sigma: the Gaussian Soft-NMS width.

    Returns:
        A plotly figure: the boxes (left), each box's score against its Soft-NMS score
        (right, bars coloured like the boxes), a slider over the steps.

    Raises:
        ValueError: an unknown method, a threshold outside [0, 1], or ``step`` out of range.
    """
    scene = crowd_scene() if scene is None else scene
    check_choice(soft_method, "soft_method", ref.SOFT_NMS_METHODS)
    steps = greedy_steps(scene.boxes, scene.scores, iou_threshold, method)
    n_steps = len(steps) + 2  # the start, one per kept box, the end
    step = 1 if step is None else step
    if not 0 <= step < n_steps:
        raise ValueError(f"step must be in [0, {n_steps}) for this scene and threshold, got {step}")
    what = "IoU" if method == "nms" else "DIoU"
    soft = _soft(scene, iou_threshold, soft_method, sigma)
    n = len(scene.boxes)
    order = [int(i) for i in np.argsort(-scene.scores, kind="stable")]  # the bars' order
    categories = [f"#{i}" for i in order]

    def state(number: int) -> tuple[list, list, list, list, str, list[dict]]:
        """Traces 0..5 (x, y, hover text), the bars' colours and texts, title and labels after ``number`` steps."""
        upto = min(number, len(steps))
        status = _status(n, steps, upto, last_is_now=number <= len(steps))
        current = steps[upto - 1] if 1 <= number <= len(steps) else None
        parts = [_outlines(scene.boxes, [i for i in order if status[i] == layer], scene.scores) for layer in LAYERS]
        if current is not None:  # the label of the box just kept
            x1, y1 = (float(v) for v in scene.boxes[current.kept, :2])
            parts.append(([x1], [y1], [f"#{current.kept} kept ({scene.scores[current.kept]:.2f})"]))
        else:
            parts.append(([], [], []))
        xs, ys, texts = (list(column) for column in zip(*parts))
        colors = [STATUS_COLORS[status[i]] for i in order]
        overlap = {i: v for i, v in zip(current.suppressed, current.overlaps)} if current else {}
        bar_text = [f"{what} {overlap[i]:.2f}" if i in overlap else "kept" if current and i == current.kept else ""
                    for i in order]
        kept_so_far = [s.kept for s in steps[:upto]]
        if number == 0:
            title = (f"Greedy NMS ({what} threshold {iou_threshold:g}) on {n} detections: "
                     f"sort by score, then keep the best and remove what overlaps it")
        elif current is None:
            title = (f"Done: NMS keeps {len(steps)} of {n} boxes (" + ", ".join(f"#{i}" for i in kept_so_far)
                     + f") for {len(scene.objects)} people")
        else:
            title = (f"Step {number} of {len(steps)}: keep #{current.kept} (score {scene.scores[current.kept]:.2f}); "
                     f"remove {len(current.suppressed)} box(es) with {what} > {iou_threshold:g}; "
                     f"{len(current.candidates)} left")
        return xs, ys, texts, [colors, bar_text], title, _labels(scene, current, what)

    states = [state(k) for k in range(n_steps)]
    xs, ys, texts, (colors, bar_text), title, notes = states[step]

    fig = make_subplots(rows=1, cols=2, column_widths=[0.64, 0.36], horizontal_spacing=0.06)
    for layer, x, y, t in zip(LAYERS, xs, ys, texts):
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", line=LINES[layer], name=layer, text=t,
                                 hoverinfo="text", connectgaps=False), 1, 1)
    fig.add_trace(go.Scatter(x=xs[-1], y=ys[-1], mode="text", text=texts[-1], textposition="top right",
                             textfont=dict(color=_style.BLUE, size=12), hoverinfo="skip", showlegend=False), 1, 1)
    fig.add_trace(go.Bar(y=categories, x=[float(scene.scores[i]) for i in order], orientation="h",
                         name="score (colour: status)",
                         marker=dict(color=colors, line=dict(color="#666666", width=0.5)),
                         text=bar_text, textposition="outside", textfont=dict(size=10, color=NEUTRAL), cliponaxis=False,
                         hovertemplate="%{y}: score %{x:.3f}<extra></extra>"), 1, 2)
    fig.add_trace(go.Bar(y=categories, x=[float(soft[i]) for i in order], orientation="h",
                         name=f"score after {_soft_label(soft_method, sigma, iou_threshold)}",
                         marker=dict(color=_style.ORANGE, opacity=0.8),
                         hovertemplate="%{y}: Soft-NMS score %{x:.3f}<extra></extra>"), 1, 2)

    _style.base_layout(fig, title, height=580)
    fig.update_layout(annotations=notes, barmode="group", bargap=0.2, bargroupgap=0.0, showlegend=True,
                      legend=dict(orientation="h", x=0, y=1.0, yanchor="bottom", font=dict(size=11)),
                      margin=dict(t=90))
    fig.update_xaxes(range=[0, IMAGE[0] + 85], showgrid=False, zeroline=False, showticklabels=False, row=1, col=1)
    fig.update_yaxes(range=[IMAGE[1], 0], scaleanchor="x", scaleratio=1, showgrid=False, zeroline=False,
                     showticklabels=False, row=1, col=1)
    fig.add_shape(type="rect", x0=0, y0=0, x1=IMAGE[0], y1=IMAGE[1], line=dict(color="#999999", width=1),
                  layer="below", row=1, col=1)
    fig.update_yaxes(autorange="reversed", tickfont=dict(size=9), row=1, col=2)
    fig.update_xaxes(range=[0, 1.3], title="score", row=1, col=2)

    moving = list(range(len(LAYERS) + 2))
    steps_args = [[{"x": s[0] + [[float(scene.scores[i]) for i in order]], "y": s[1] + [categories],
                    "text": s[2] + [s[3][1]], "marker.color": [None] * (len(LAYERS) + 1) + [s[3][0]]},
                   {"title.text": s[4], "annotations": s[5]}, moving] for s in states]
    labels = ["start"] + [f"keep #{s.kept}" for s in steps] + ["end"]
    slider = _style.slider(labels, steps_args, "update", "step: ", step)
    slider.update(y=-0.08)
    fig.update_layout(sliders=[slider])
    return fig


class _Panel(NamedTuple):
    """One side of :func:`threshold_figure` at one threshold."""

    x: list  # the boxes shown, as one polyline
    y: list
    hover: list
    label_x: list  # a label at each box's top-left corner
    label_y: list
    labels: list[str]
    missed: list[str]  # the people no box shown finds


def threshold_figure(scene: CrowdScene | None = None, thresholds: Sequence[float] = THRESHOLDS,
                     iou_threshold: float = 0.5, soft_method: str = "gaussian", sigma: float = 0.5,
                     min_score: float = 0.3) -> go.Figure:
    """Greedy NMS (left) against Soft-NMS (right) on the same boxes, a slider over the IoU threshold.

    Both panels outline the people (dotted) and draw the boxes each method keeps with a
    score of at least ``min_score``, labelled with their score (Soft-NMS: "score →
    decayed score");
    the title says which people each method finds (a kept box with IoU >= 0.5 with them).

    Args:
        scene: from :func:`crowd_scene` (default: ``crowd_scene(0)``).
        thresholds: the slider's IoU thresholds.
        iou_threshold: the one shown first; must be one of ``thresholds``.
        soft_method, sigma: the Soft-NMS variant (the Gaussian one ignores the threshold).
        min_score: the score below which a box is not shown (a deployed detector's cut).

    Raises:
        ValueError: ``iou_threshold`` not among ``thresholds``, or an unknown ``soft_method``.
    """
    scene = crowd_scene() if scene is None else scene
    check_choice(soft_method, "soft_method", ref.SOFT_NMS_METHODS)
    values = [float(t) for t in thresholds]
    matches = [i for i, t in enumerate(values) if np.isclose(t, iou_threshold)]
    if not matches:
        raise ValueError(f"iou_threshold must be one of thresholds {values}, got {iou_threshold}")
    fits = box_iou(scene.objects, scene.boxes) >= 0.5  # [K, N]: which box would find which person

    def label(i: int, score: float) -> str:
        before = f"{scene.scores[i]:.2f}"
        return before if f"{score:.2f}" == before else f"{before} → {score:.2f}"

    def panel(kept: np.ndarray, shown_scores: np.ndarray) -> _Panel:
        shown = [int(i) for i in kept if shown_scores[i] >= min_score]
        x, y, hover = _outlines(scene.boxes, shown, shown_scores)
        return _Panel(x, y, hover, [float(scene.boxes[i, 0]) for i in shown], [float(scene.boxes[i, 1]) for i in shown],
                      [label(i, shown_scores[i]) for i in shown],
                      [scene.names[k] for k in range(len(scene.objects)) if not fits[k, shown].any()])

    def state(t: float) -> tuple[list[_Panel], str]:
        hard = np.zeros(len(scene.boxes))
        kept = ref.nms(scene.boxes, scene.scores, t)
        hard[kept] = scene.scores[kept]
        soft = _soft(scene, t, soft_method, sigma)
        panels = [panel(kept, hard), panel(np.flatnonzero(soft > 0), soft)]
        said = [f"{len(p.labels)} boxes, " + (f"misses the {', '.join(p.missed)}" if p.missed
                                               else f"finds all {len(scene.objects)} people") for p in panels]
        title = (f"IoU threshold {t:g}. NMS: {said[0]}. {_soft_label(soft_method, sigma, t)}: {said[1]}"
                 f"<br><sup>boxes with score >= {min_score:g}, labelled with their score (score → decayed score); "
                 f"dotted: the people</sup>")
        return panels, title

    states = [state(t) for t in values]
    panels, title = states[matches[0]]
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.04,
                        subplot_titles=("greedy NMS", _soft_label(soft_method, sigma, "= the threshold")))
    people_x, people_y, _ = _outlines(scene.objects, range(len(scene.objects)), np.zeros(len(scene.objects)))
    for col, p in ((1, panels[0]), (2, panels[1])):
        fig.add_trace(go.Scatter(x=people_x, y=people_y, mode="lines", line=dict(color=NEUTRAL, width=1, dash="dot"),
                                 hoverinfo="skip"), 1, col)
        fig.add_trace(go.Scatter(x=p.x, y=p.y, text=p.hover, mode="lines", hoverinfo="text",
                                 line=dict(color=_style.GREEN if col == 1 else _style.ORANGE, width=2.5)), 1, col)
        fig.add_trace(go.Scatter(x=p.label_x, y=p.label_y, text=p.labels, mode="text", textposition="top right",
                                 textfont=dict(size=11, color=NEUTRAL), hoverinfo="skip"), 1, col)
    for col in (1, 2):
        fig.add_shape(type="rect", x0=0, y0=0, x1=IMAGE[0], y1=IMAGE[1], line=dict(color="#999999", width=1),
                      layer="below", row=1, col=col)
    _style.base_layout(fig, title, height=440)
    fig.update_layout(margin=dict(t=90))
    fig.update_xaxes(range=[0, IMAGE[0]], showgrid=False, zeroline=False, showticklabels=False)
    fig.update_yaxes(range=[IMAGE[1], 0], showgrid=False, zeroline=False, showticklabels=False)
    fig.update_yaxes(scaleanchor="x", scaleratio=1, row=1, col=1)
    fig.update_yaxes(scaleanchor="x2", scaleratio=1, row=1, col=2)
    steps_args = [[{"x": [p.x, p.label_x, q.x, q.label_x], "y": [p.y, p.label_y, q.y, q.label_y],
                    "text": [p.hover, p.labels, q.hover, q.labels]},
                   {"title.text": s_title}, [1, 2, 4, 5]] for (p, q), s_title in states]
    slider = _style.slider([f"{t:g}" for t in values], steps_args, "update", "IoU threshold: ", matches[0])
    fig.update_layout(sliders=[slider])
    return fig


def explorer(scene: CrowdScene | None = None):
    """Live NMS for JupyterLab: the threshold, the step and the suppression method.

    Returns:
        An ``ipywidgets.VBox``; it redraws :func:`figure` when a control changes (the
        step slider's range follows the number of boxes kept).
    """
    import ipywidgets as widgets
    from IPython.display import display

    scene = crowd_scene() if scene is None else scene
    threshold = widgets.FloatSlider(value=0.5, min=0.05, max=0.95, step=0.05, description="IoU threshold",
                                    continuous_update=False, readout_format=".2f")
    step = widgets.IntSlider(value=1, min=0, max=1, description="step", continuous_update=False)
    method = widgets.Dropdown(options=[("greedy NMS (IoU)", "nms"), ("DIoU-NMS", "diou_nms")], value="nms",
                              description="method")
    output = widgets.Output()

    def redraw(*_) -> None:
        last = len(greedy_steps(scene.boxes, scene.scores, threshold.value, method.value)) + 1
        if step.max != last:
            clamped = step.value > last
            step.max = last  # lowers step.value if it is beyond the end, which redraws on its own
            if clamped:
                return
        output.clear_output(wait=True)
        with output:
            display(figure(scene, threshold.value, step.value, method.value))

    for control in (threshold, step, method):
        control.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox([threshold, step]), method, output])
