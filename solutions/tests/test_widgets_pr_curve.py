"""The PR / AP explorer: every point, table row and AP the figure shows equals an
independent computation (matching, precision, recall and interpolation redone here),
and the AP in the title is cvprep.detection_metrics.average_precision."""

import ipywidgets
import numpy as np
import pytest
import torch
from torchvision import ops

from cvprep.detection_metrics import average_precision
from cvprep.widgets import pr_curve as widget

BARS, AREA, ENVELOPE, WHOLE, FIRST_K, CURRENT, TABLE = range(7)


@pytest.fixture(scope="module")
def detections():
    return widget.detection_set(seed=0)


def greedy_tp(d, threshold):
    """Which detections, by decreasing score, are true positives: the matching written out again."""
    order = np.argsort(-d.scores, kind="stable")
    ious = ops.box_iou(torch.from_numpy(d.boxes), torch.from_numpy(d.objects)).numpy()
    taken, tp = set(), []
    for i in order:
        free = [(ious[i, g], g) for g in range(len(d.objects)) if g not in taken and ious[i, g] >= threshold]
        if free:
            taken.add(max(free)[1])
        tp.append(bool(free))
    return order, np.array(tp)


def curve(d, threshold):
    order, tp = greedy_tp(d, threshold)
    hits = np.cumsum(tp)
    return order, tp, hits / len(d.objects), hits / np.arange(1, len(tp) + 1)


def interpolated(recall, precision, r):
    """The best precision at recall >= r (0 if never reached)."""
    return max([p for q, p in zip(recall, precision) if q >= r], default=0.0)


def test_the_detection_set_is_seeded_and_mixed(detections):
    again = widget.detection_set(seed=0)
    np.testing.assert_array_equal(again.boxes, detections.boxes)
    assert not np.array_equal(widget.detection_set(seed=1).boxes, detections.boxes)
    assert len(detections.objects) == widget.OBJECTS
    reasons = widget.ranking(detections).reasons
    for kind in ("object", "duplicate", "misplaced", "background"):
        assert any(r.startswith(kind) for r in reasons), kind
    _, tp, _, _ = curve(detections, 0.5)
    assert 0 < tp.sum() < len(tp) and not tp[:tp.sum()].all()  # true and false positives interleave


@pytest.mark.parametrize("threshold", [0.5, 0.75])
def test_ranking_matches_an_independent_matching(detections, threshold):
    r = widget.ranking(detections, threshold)
    order, tp, recall, precision = curve(detections, threshold)
    np.testing.assert_array_equal(r.order, order)
    np.testing.assert_array_equal(r.is_tp, tp)
    np.testing.assert_allclose(r.recall, recall)
    np.testing.assert_allclose(r.precision, precision)


@pytest.mark.parametrize("threshold", [0.5, 0.75])
def test_every_slider_step_traces_the_first_k_detections(detections, threshold):
    fig = widget.figure(detections, iou_threshold=threshold)
    order, tp, recall, precision = curve(detections, threshold)
    slider = fig.layout.sliders[0]
    assert len(slider.steps) == len(order) and slider.active == len(order) - 1
    for k, step in enumerate(slider.steps, start=1):
        data, layout, traces = step.args
        assert list(traces) == [FIRST_K, CURRENT, TABLE] and step.label == str(k)
        np.testing.assert_allclose(data["x"][0], recall[:k])
        np.testing.assert_allclose(data["y"][0], precision[:k])
        assert (data["x"][1], data["y"][1]) == ([data["x"][0][-1]], [data["y"][0][-1]])
        text = layout["annotations[0].text"]
        assert f"precision {tp[:k].sum()}/{k} = {precision[k - 1]:.3f}" in text
        assert f"recall {tp[:k].sum()}/{len(detections.objects)} = {recall[k - 1]:.3f}" in text
        assert f"score {detections.scores[order[k - 1]]:.2f}, {'TP' if tp[k - 1] else 'FP'}" in text
        rows = data["cells.fill.color"][2][0]
        assert rows[k - 1] == widget.ROW_COLORS["current"]
        assert all(c == widget.ROW_COLORS["later"] for c in rows[k:])


def test_the_table_lists_the_ranked_detections(detections):
    fig = widget.figure(detections)
    order, tp, recall, precision = curve(detections, 0.5)
    k, score, flag, _, prec, rec = fig.data[TABLE].cells.values
    assert list(k) == list(range(1, len(order) + 1))
    assert list(score) == [f"{s:.2f}" for s in detections.scores[order]]
    assert list(flag) == ["TP" if t else "FP" for t in tp]
    assert list(prec) == [f"{p:.3f}" for p in precision] and list(rec) == [f"{r:.3f}" for r in recall]


@pytest.mark.parametrize("threshold", [0.5, 0.75])
def test_each_button_shades_what_its_ap_computes(detections, threshold):
    fig = widget.figure(detections, iou_threshold=threshold)
    _, _, recall, precision = curve(detections, threshold)
    buttons = {b.label: b.args for b in fig.layout.updatemenus[0].buttons}
    assert list(buttons) == list(widget.METHOD_LABELS.values())
    for method, label in widget.METHOD_LABELS.items():
        data, layout, traces = buttons[label]
        ap = average_precision(recall, precision, method)
        assert f"= {ap:.3f} at IoU {threshold:g}" in layout["title.text"]
        if method == "voc_all":
            x, y = np.array(data["x"][1]), np.array(data["y"][1])  # drawn as "vh" steps
            assert np.sum(np.diff(x) * y[1:]) == pytest.approx(ap)
            assert data["x"][0] == []
        else:
            # pycocotools' np.linspace for COCO; VOC's k / 10 (linspace would give 0.7000000000000001)
            points = np.linspace(0, 1, 101) if method == "coco101" else np.arange(11) / 10
            np.testing.assert_allclose(data["x"][0], points)
            heights = [interpolated(recall, precision, r) for r in points]
            np.testing.assert_allclose(data["y"][0], heights)
            assert np.sum(np.array(data["y"][0]) * data["width"][0]) == pytest.approx(ap)  # bar areas add up to AP
            assert data["x"][1] == []


def test_initial_state_is_the_chosen_method_and_rank(detections):
    fig = widget.figure(detections, method="voc11", rank=3)
    menu, slider = fig.layout.updatemenus[0], fig.layout.sliders[0]
    assert menu.active == 1 and slider.active == 2
    data, layout, _ = menu.buttons[1].args
    assert fig.layout.title.text == layout["title.text"] and list(fig.data[BARS].y) == data["y"][0]
    step_data, step_layout, _ = slider.steps[2].args
    assert list(fig.data[FIRST_K].x) == step_data["x"][0]
    assert fig.layout.annotations[0].text == step_layout["annotations[0].text"]


def test_a_stricter_threshold_lowers_ap(detections):
    aps = [widget.ap_view(widget.ranking(detections, t), "coco101")["ap"] for t in (0.5, 0.75, 0.9)]
    assert aps[0] > aps[1] > aps[2]


def test_figure_is_small(detections):
    assert len(widget.figure(detections).to_json()) < 200_000


@pytest.mark.parametrize("kwargs, pattern", [
    ({"method": "voc12"}, "method must be one of"),
    ({"rank": 0}, r"rank must be in \[1, "),
    ({"iou_threshold": 1.2}, "iou_threshold must be in"),
])
def test_bad_arguments_are_clear_errors(detections, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        widget.figure(detections, **kwargs)


def test_explorer_redraws_when_a_control_changes(figure_calls, detections):
    calls = figure_calls(widget)
    box = widget.explorer(detections)
    assert isinstance(box, ipywidgets.VBox)
    threshold, method = box.children[0].children
    threshold.value = 0.75
    method.value = "voc_all"
    drawn = [args[1:] for args in calls]  # after the detections: IoU threshold, method
    assert drawn == [(0.5, "coco101"), (0.75, "coco101"), (0.75, "voc_all")]
