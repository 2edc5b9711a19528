"""The receptive-field figure: every slider step shows what cvprep.receptive_field computes."""

import ipywidgets
import pytest
import torchvision

from cvprep.receptive_field import back_projection, receptive_field
from cvprep.widgets import receptive_field as widget


def steps_of(fig):
    return fig.layout.sliders[0].steps


@pytest.mark.parametrize("name", list(widget.PRESETS))
def test_each_step_highlights_the_back_projection(name):
    layers = widget.PRESETS[name]
    fig = widget.figure(layers)
    last = receptive_field(layers)[-1]
    assert len(steps_of(fig)) == len([x for x, y in zip(fig.data[0].x, fig.data[0].y) if y == len(layers)])
    for unit, step in enumerate(steps_of(fig)):
        data, layout, traces = step.args
        assert list(traces) == [1, 2, 3]
        input_x = sorted(x for x, y in zip(data["x"][0] + data["x"][1], data["y"][0] + data["y"][1]) if y == 0)
        assert input_x == back_projection(layers, unit)[0]
        band = layout["shapes"][0]
        assert band["x1"] - band["x0"] == last.size  # the shaded band is the receptive field
        assert f"a receptive field of {last.size}" in layout["title.text"]


def test_padding_pixels_are_drawn_apart():
    fig = widget.figure([(3, 1, 1, 1)], input_size=5, unit=0)
    # unit 0 of a padded 3x3 reads pixels -1, 0, 1; -1 is padding
    assert list(fig.data[1].x) == [0, 1, 0]  # inside: input pixels 0, 1 and the output unit itself (x = 0)
    assert list(fig.data[2].x) == [-1]


def test_initial_state_is_the_active_step():
    fig = widget.figure(widget.PRESETS["3x3, 3x3 with stride 2, 3x3"], unit=2)
    slider = fig.layout.sliders[0]
    assert slider.active == 2
    data, layout, _ = slider.steps[2].args
    assert list(fig.data[1].x) == data["x"][0] and fig.layout.title.text == layout["title.text"]


def test_units_sit_at_the_centre_of_what_they_see():
    layers = [(2, 2, 0, 1), (3, 1, 0, 1)]
    fig = widget.figure(layers, input_size=10)
    fields = receptive_field(layers)
    row1 = [x for x, y in zip(fig.data[0].x, fig.data[0].y) if y == 1]
    assert row1 == [fields[0].start + u * fields[0].jump for u in range(5)]  # 0.5, 2.5, ...


def test_figure_accepts_a_torch_model():
    fig = widget.figure(torchvision.models.alexnet().features, input_size=227)
    assert "a receptive field of 195" in fig.layout.title.text


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"layers": [(3, 1, 0, 1)] * 3, "input_size": 6}, "covers 3 pixels but the padded input has only 2"),
        ({"layers": [(3, 1, 1, 1)], "input_size": 5, "unit": 5}, r"unit must be in \[0, 5\)"),
        ({"layers": [(3, 1, 1, 1)], "names": ["a", "b"]}, "names must have one entry per layer"),
        ({"layers": []}, "at least one layer"),
    ],
)
def test_figure_rejects_bad_arguments(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        widget.figure(**kwargs)


def test_parse_layers():
    assert widget.parse_layers("3,1,1,1; 3,2\n5") == [(3, 1, 1, 1), (3, 2, 0, 1), (5, 1, 0, 1)]
    with pytest.raises(ValueError, match="layer 2 .'x'. must be integers"):
        widget.parse_layers("3; x")
    with pytest.raises(ValueError, match="must be kernel"):
        widget.parse_layers("1,2,3,4,5")


def test_explorer_redraws_on_change():
    box = widget.explorer()
    assert isinstance(box, ipywidgets.VBox)
    preset, size = box.children[0].children
    text, out = box.children[1], box.children[2]
    preset.value = "one 7x7 convolution"
    assert text.value == "7,1,3,1"
    size.value = 20
    text.value = "not a stack"  # an error is shown, not raised
