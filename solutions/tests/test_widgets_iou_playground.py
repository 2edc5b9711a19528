"""The IoU playground: every step of every path shows the measures torchvision computes
for the boxes drawn at that step, and the lessons the figure teaches hold."""

import ipywidgets
import numpy as np
import pytest
import torch
from torchvision import ops

from cvprep.widgets import iou_playground as widget

B, INTER, C, RHO, DIAG = range(1, 6)  # trace indices of the left panel; then 4 curves and the marker


def views(fig):
    """Per path: the data and layout its button installs."""
    return {b.label: (b.args[0], b.args[1]) for b in fig.layout.updatemenus[0].buttons}


def box_of(xs, ys):
    return [min(xs), min(ys), max(xs), max(ys)]


def torchvision_measures(a, b):
    """IoU, GIoU, DIoU, CIoU and the four losses of one pair, from torchvision."""
    ta, tb = torch.tensor([a], dtype=torch.float64), torch.tensor([b], dtype=torch.float64)
    values = [float(f(ta, tb)[0, 0]) for f in (ops.box_iou, ops.generalized_box_iou, ops.distance_box_iou,
                                               ops.complete_box_iou)]
    losses = [1 - values[0]] + [float(f(ta, tb)[0]) for f in (ops.generalized_box_iou_loss,
                                                               ops.distance_box_iou_loss, ops.complete_box_iou_loss)]
    return values, losses


@pytest.fixture(scope="module")
def fig():
    return widget.figure()


def test_one_button_per_path_each_with_its_slider(fig):
    assert list(views(fig)) == list(widget.PATHS)
    for name, (data, layout) in views(fig).items():
        slider = layout["sliders"][0]
        assert len(slider["steps"]) >= widget.STEPS
        assert slider["currentvalue"]["prefix"] == f"{name}: "


@pytest.mark.parametrize("path", widget.PATHS)
def test_every_step_shows_torchvision_measures_of_the_boxes_drawn(fig, path):
    a = box_of(fig.data[0].x, fig.data[0].y)
    assert a == list(widget.BOX_A)
    data, layout = views(fig)[path]
    for step in layout["sliders"][0]["steps"]:
        step_data, step_layout, traces = step["args"]
        assert list(traces) == [B, INTER, C, RHO, DIAG, len(fig.data) - 1]
        xs, ys = step_data["x"], step_data["y"]
        b = box_of(xs[0], ys[0])
        values, losses = torchvision_measures(a, b)
        np.testing.assert_allclose(ys[-1], values, atol=1e-6)
        np.testing.assert_allclose(step_data["customdata"][-1], losses, atol=1e-6)
        assert all(f"{m} {v:.3f}" in step_layout["title.text"] for m, v in zip(widget.MEASURES, values))
        # the enclosing box C, and the intersection (drawn only when the boxes overlap)
        assert box_of(xs[2], ys[2]) == [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
        if values[0] > 0:
            assert box_of(xs[1], ys[1]) == [max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])]
        else:
            assert xs[1] == []
        # rho joins the centres; c is C's diagonal
        assert (xs[3][0], ys[3][0], xs[3][-1], ys[3][-1]) == ((a[0] + a[2]) / 2, (a[1] + a[3]) / 2,
                                                              (b[0] + b[2]) / 2, (b[1] + b[3]) / 2)
        assert (xs[4][0], ys[4][0], xs[4][-1], ys[4][-1]) == tuple(box_of(xs[2], ys[2]))


@pytest.mark.parametrize("path", widget.PATHS)
def test_curves_pass_through_every_step(fig, path):
    data, layout = views(fig)[path]
    curves_x = data["x"][widget.N_LEFT - 1:-1]
    curves_y = data["y"][widget.N_LEFT - 1:-1]
    for i, step in enumerate(layout["sliders"][0]["steps"]):
        marker_x, marker_y = step["args"][0]["x"][-1], step["args"][0]["y"][-1]
        assert [cx[i] for cx in curves_x] == marker_x
        assert [cy[i] for cy in curves_y] == marker_y


def steps_of(fig, path):
    """B and the four measures at every step of a path."""
    boxes, measures = [], []
    for step in views(fig)[path][1]["sliders"][0]["steps"]:
        xs, ys = step["args"][0]["x"], step["args"][0]["y"]
        boxes.append(box_of(xs[0], ys[0]))
        measures.append(ys[-1])
    return np.array(boxes), np.array(measures)


def test_sliding_apart_iou_stays_at_zero_while_giou_and_diou_keep_falling(fig):
    boxes, m = steps_of(fig, "slide right")
    apart = (boxes[:, 0] >= widget.BOX_A[2]) & (np.arange(len(boxes)) > len(boxes) // 2)  # B right of A
    assert apart.sum() >= 5
    assert (m[apart, 0] == 0).all()
    assert (np.diff(m[apart, 1]) < 0).all() and (np.diff(m[apart, 2]) < 0).all()


def test_inside_a_only_diou_sees_the_small_box_move(fig):
    boxes, m = steps_of(fig, "small box inside A")
    assert np.ptp(m[:, 0]) < 1e-9 and np.ptp(m[:, 1]) < 1e-9  # IoU = GIoU = area ratio, everywhere
    assert np.ptp(m[:, 2]) > 0.03
    assert m[len(m) // 2, 2] == pytest.approx(m[len(m) // 2, 0])  # centred: no distance penalty


def test_stretching_at_constant_area_only_ciou_has_an_aspect_term(fig):
    boxes, m = steps_of(fig, "stretch")
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    np.testing.assert_allclose(areas, areas[0])
    np.testing.assert_allclose(m[:, 2], m[:, 0], atol=1e-6)  # same centre: DIoU = IoU
    stretched = np.abs(np.log((boxes[:, 2] - boxes[:, 0]) / (boxes[:, 3] - boxes[:, 1]))) > 0.5
    assert (m[stretched, 3] < m[stretched, 2] - 1e-4).all()


def test_initial_state_is_the_chosen_path_at_b(fig):
    menu = fig.layout.updatemenus[0]
    assert menu.active == widget.PATHS.index("slide right")
    slider = fig.layout.sliders[0]
    data, layout, _ = slider.steps[slider.active].args
    assert box_of(fig.data[B].x, fig.data[B].y) == list(widget.BOX_B)
    assert list(fig.data[-1].y) == data["y"][-1] and fig.layout.title.text == layout["title.text"]
    stretched = widget.figure(path="stretch")
    assert stretched.layout.updatemenus[0].active == widget.PATHS.index("stretch")
    assert stretched.layout.xaxis2.type == "log"


def test_figure_is_small(fig):
    assert len(fig.to_json()) < 400_000


@pytest.mark.parametrize("kwargs, pattern", [
    ({"path": "spiral"}, "path must be one of"),
    ({"box_b": (5, 5, 4, 6)}, "box_b must be four finite numbers"),
    ({"box_a": (0, 0, 1)}, "box_a must be four finite numbers"),
])
def test_bad_arguments_are_clear_errors(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        widget.figure(**kwargs)


def test_explorer_redraws_when_a_control_changes(figure_calls):
    drawn = figure_calls(widget)
    box = widget.explorer()
    assert isinstance(box, ipywidgets.VBox)
    cx, cy = box.children[0].children
    w, h = box.children[1].children
    cx.value = 12.0
    w.value = 2.0
    assert drawn[-1] == (widget.BOX_A, (11.0, 4.0, 13.0, 8.0))
    assert len(drawn) == 3
