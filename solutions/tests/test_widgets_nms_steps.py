"""NMS step by step: the rounds the figure records keep exactly what cvprep.nms keeps (and
torchvision), every label is the IoU torchvision computes, and the crowd story holds."""

import ipywidgets
import numpy as np
import pytest
import torch
from torchvision import ops

from cvprep import nms as ref
from cvprep.widgets import nms_steps as widget

LAYERS = {name: i for i, name in enumerate(widget.LAYERS)}
BARS = len(widget.LAYERS) + 1  # the score bars' trace
SOFT_BARS = BARS + 1


@pytest.fixture(scope="module")
def scene():
    return widget.crowd_scene(seed=0)


def outlined(scene, xs):
    """The scene's box indices drawn by a None-separated polyline (5 corners per box)."""
    corners = [[]]
    for x in xs:
        corners.append([]) if x is None else corners[-1].append(x)
    found = []
    for group in (g for g in corners if g):
        x1, x2 = min(group), max(group)
        found += [int(i) for i in np.flatnonzero((scene.boxes[:, 0] == x1) & (scene.boxes[:, 2] == x2))]
    return found


def torch_iou(a, b):
    return ops.box_iou(torch.from_numpy(a), torch.from_numpy(b)).numpy()


def test_the_scene_is_seeded_and_crowded(scene):
    again = widget.crowd_scene(seed=0)
    np.testing.assert_array_equal(again.boxes, scene.boxes)
    np.testing.assert_array_equal(again.scores, scene.scores)
    assert not np.array_equal(widget.crowd_scene(seed=1).boxes, scene.boxes)
    assert len(scene.objects) == 4 and len(scene.boxes) == sum(widget.DETECTIONS)
    assert np.bincount(scene.owner).tolist() == list(widget.DETECTIONS)
    for k, best in ((0, scene.front_detection), (1, scene.occluded_detection)):
        assert scene.owner[best] == k and scene.scores[best] == scene.scores[scene.owner == k].max()
    # the two best boxes of the overlapping people overlap between the usual low and high thresholds
    between = torch_iou(scene.boxes[[scene.front_detection]], scene.boxes[[scene.occluded_detection]])[0, 0]
    assert 0.3 < between < 0.5


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
@pytest.mark.parametrize("method", widget.METHODS)
def test_recorded_rounds_keep_what_cvprep_nms_keeps(scene, threshold, method):
    steps = widget.greedy_steps(scene.boxes, scene.scores, threshold, method)
    expected = (ref.nms if method == "nms" else ref.diou_nms)(scene.boxes, scene.scores, threshold)
    assert [s.kept for s in steps] == expected.tolist()
    if method == "nms":
        torch_kept = ops.nms(torch.from_numpy(scene.boxes), torch.from_numpy(scene.scores), threshold)
        assert [s.kept for s in steps] == torch_kept.tolist()
    # every box is kept or suppressed exactly once
    seen = [s.kept for s in steps] + [i for s in steps for i in s.suppressed]
    assert sorted(seen) == list(range(len(scene.boxes)))


@pytest.mark.parametrize("threshold", [0.3, 0.5])
def test_every_step_draws_the_round_and_labels_torchvision_iou(scene, threshold):
    fig = widget.figure(scene, iou_threshold=threshold)
    kept = ref.nms(scene.boxes, scene.scores, threshold).tolist()
    slider = fig.layout.sliders[0]
    assert [s.label for s in slider.steps] == ["start"] + [f"keep #{k}" for k in kept] + ["end"]
    for number, step in enumerate(slider.steps):
        data, layout, traces = step.args
        assert list(traces) == list(range(BARS + 1))
        drawn = {name: outlined(scene, data["x"][i]) for name, i in LAYERS.items()}
        assert sorted(sum(drawn.values(), [])) == list(range(len(scene.boxes)))
        assert drawn["kept now"] == ([kept[number - 1]] if 1 <= number <= len(kept) else [])
        before = [] if number == 0 else kept[:number - 1] if number <= len(kept) else kept
        assert sorted(drawn["kept before"]) == sorted(before)
        if drawn["kept now"]:
            best = drawn["kept now"][0]
            ious = torch_iou(scene.boxes[[best]], scene.boxes)[0]
            labels = [a for a in layout["annotations"] if a.get("showarrow")]
            assert len(labels) == len(drawn["suppressed now"])
            for note in labels:
                index, value = note["text"].split(" IoU ")
                assert float(value) == pytest.approx(ious[int(index[1:])], abs=0.005)
                assert ious[int(index[1:])] > threshold
            # the candidates left overlap no kept box above the threshold
            if drawn["candidate"]:
                kept_now = drawn["kept before"] + drawn["kept now"]
                assert torch_iou(scene.boxes[kept_now], scene.boxes[drawn["candidate"]]).max() <= threshold
            assert f"keep #{best}" in layout["title.text"]
    done = slider.steps[-1].args[0]
    assert sorted(outlined(scene, done["x"][LAYERS["kept before"]])) == sorted(kept)


def test_bars_show_scores_and_cvprep_soft_nms_scores(scene):
    fig = widget.figure(scene, iou_threshold=0.5)
    keep, new_scores = ref.soft_nms(scene.boxes, scene.scores, sigma=0.5)
    soft = dict(zip(keep.tolist(), new_scores.tolist()))
    for label, score, soft_score in zip(fig.data[BARS].y, fig.data[BARS].x, fig.data[SOFT_BARS].x):
        index = int(label[1:])
        assert score == scene.scores[index]
        assert soft_score == pytest.approx(soft.get(index, 0.0))
    assert list(fig.data[BARS].x) == sorted(fig.data[BARS].x, reverse=True)


def test_initial_state_is_the_active_step(scene):
    fig = widget.figure(scene, iou_threshold=0.5, step=2)
    slider = fig.layout.sliders[0]
    assert slider.active == 2
    data, layout, _ = slider.steps[2].args
    assert list(fig.data[LAYERS["kept now"]].x) == data["x"][LAYERS["kept now"]]
    assert fig.layout.title.text == layout["title.text"]
    assert list(fig.data[BARS].marker.color) == data["marker.color"][BARS]


def test_threshold_figure_shows_what_each_method_keeps(scene):
    fig = widget.threshold_figure(scene)
    steps = fig.layout.sliders[0].steps
    assert [float(s.label) for s in steps] == list(widget.THRESHOLDS)
    for t, step in zip(widget.THRESHOLDS, steps):
        data, layout, traces = step.args
        assert list(traces) == [1, 2, 4, 5]
        assert sorted(outlined(scene, data["x"][0])) == sorted(ref.nms(scene.boxes, scene.scores, t).tolist())
        keep, new_scores = ref.soft_nms(scene.boxes, scene.scores, iou_threshold=t, sigma=0.5)
        shown = sorted(i for i, s in zip(keep.tolist(), new_scores) if s >= 0.3)
        assert sorted(outlined(scene, data["x"][2])) == shown
        assert f"IoU threshold {t:g}" in layout["title.text"]


def test_at_a_low_threshold_nms_loses_the_occluded_person_and_soft_nms_keeps_it(scene):
    fig = widget.threshold_figure(scene)
    low = fig.layout.sliders[0].steps[widget.THRESHOLDS.index(0.3)].args
    hidden = scene.occluded_detection
    assert hidden not in outlined(scene, low[0]["x"][0])
    assert not (scene.owner[outlined(scene, low[0]["x"][0])] == 1).any()  # no box left on that person
    assert "NMS: 3 boxes, misses the occluded person" in low[1]["title.text"]
    assert hidden in outlined(scene, low[0]["x"][2])
    keep, new_scores = ref.soft_nms(scene.boxes, scene.scores, sigma=0.5)
    decayed = new_scores[keep.tolist().index(hidden)]
    assert decayed < scene.scores[hidden]
    labels = dict(zip(zip(low[0]["x"][3], low[0]["y"][3]), low[0]["text"][3]))
    assert labels[tuple(scene.boxes[hidden, :2])] == f"{scene.scores[hidden]:.2f} → {decayed:.2f}"
    high = fig.layout.sliders[0].steps[widget.THRESHOLDS.index(0.5)].args
    assert hidden in outlined(scene, high[0]["x"][0])


def test_figures_are_small(scene):
    assert len(widget.figure(scene, 0.3).to_json()) < 300_000
    assert len(widget.threshold_figure(scene).to_json()) < 300_000


@pytest.mark.parametrize("call, pattern", [
    (lambda s: widget.figure(s, step=9), r"step must be in \[0, 6\)"),
    (lambda s: widget.figure(s, method="fast"), "method must be one of"),
    (lambda s: widget.figure(s, iou_threshold=1.5), "iou_threshold must be in"),
    (lambda s: widget.threshold_figure(s, iou_threshold=0.33), "iou_threshold must be one of thresholds"),
    (lambda s: widget.threshold_figure(s, soft_method="hard"), "soft_method must be one of"),
])
def test_bad_arguments_are_clear_errors(scene, call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call(scene)


def test_explorer_redraws_and_fits_the_step_slider_to_the_threshold(figure_calls, scene):
    calls = figure_calls(widget)
    box = widget.explorer(scene)
    assert isinstance(box, ipywidgets.VBox)
    threshold, step = box.children[0].children
    method = box.children[1]
    assert step.max == len(ref.nms(scene.boxes, scene.scores, 0.5)) + 1
    step.value = step.max
    threshold.value = 0.3  # fewer boxes kept: the step slider shrinks and the end step is clamped
    assert step.max == len(ref.nms(scene.boxes, scene.scores, 0.3)) + 1 == step.value
    method.value = "diou_nms"
    drawn = [args[1:] for args in calls]  # after the scene: threshold, step, method
    assert drawn == [(0.5, 1, "nms"), (0.5, 5, "nms"), (0.3, 4, "nms"), (0.3, 4, "diou_nms")]
