"""Reliability diagrams: every slider step's bars, title and markers against cvprep.calibration and
torch computed directly, on synthetic logits of a known temperature; bad requests; the explorer's wiring."""

import re

import ipywidgets
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cvprep.calibration import apply_temperature, expected_calibration_error, fit_temperature, reliability_bins
from cvprep.widgets import reliability as widget

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny tensors: see conftest.py

GRID = (0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 3.5, 5.0)
TRUE_TEMPERATURE = 3.0


@pytest.fixture(scope="module")
def data():
    """Logits of a calibrated model (targets drawn from its softmax) multiplied by 3: over-confident,
    so temperature scaling should bring back T close to 3."""
    g = torch.Generator().manual_seed(0)
    calibrated = 1.5 * torch.randn(3000, 4, generator=g)
    targets = torch.multinomial(torch.softmax(calibrated, dim=1), 1, generator=g).squeeze(1)
    return TRUE_TEMPERATURE * calibrated, targets


@pytest.fixture(scope="module")
def fitted(data):
    return fit_temperature(*data)


@pytest.fixture(scope="module")
def fig(data, fitted):
    return widget.figure(*data, GRID, fitted=fitted, n_bins=10)


def bars(logits, targets, temperature, n_bins):
    """What the diagram should draw at ``temperature``: accuracy, gap and count per bin (None in empty bins)."""
    b = reliability_bins(apply_temperature(logits, temperature), targets, n_bins)
    counts = b.counts.tolist()
    accuracy = [a if n else None for a, n in zip(b.accuracy.tolist(), counts)]
    gaps = [p - a if n else None for p, a, n in zip(b.confidence.tolist(), b.accuracy.tolist(), counts)]
    return accuracy, gaps, counts


def title_numbers(title):
    """ECE before and after (percent) and NLL before and after, as written in the title."""
    match = re.search(r"ECE ([\d.]+) % → ([\d.]+) %, NLL ([\d.]+) → ([\d.]+)", title)
    return match.groups()


def test_the_synthetic_model_is_over_confident_by_its_known_temperature(data, fitted):
    assert fitted == pytest.approx(TRUE_TEMPERATURE, abs=0.25)
    logits, targets = data
    assert expected_calibration_error(torch.softmax(logits, 1), targets) > 0.1
    assert expected_calibration_error(torch.softmax(logits / TRUE_TEMPERATURE, 1), targets) < 0.03


def test_the_fitted_temperature_is_inserted_and_is_the_active_step(fig, fitted):
    grid = sorted([*GRID, fitted])
    slider = fig.layout.sliders[0]
    assert slider.active == grid.index(fitted)
    labels = [s.label for s in slider.steps]
    assert labels[slider.active] == f"{fitted:.3g} (fitted)"
    assert [label for label in labels if "fitted" in label] == [labels[slider.active]]
    assert [float(label) for i, label in enumerate(labels) if i != slider.active] == list(GRID)
    assert list(fig.data[widget.FITTED_LINE].x) == [fitted, fitted]


def test_every_slider_step_draws_the_bins_of_the_scaled_logits(data, fig, fitted):
    logits, targets = data
    grid = sorted([*GRID, fitted])
    steps = fig.layout.sliders[0].steps
    assert len(steps) == len(grid)
    for t, step in zip(grid, steps):
        update, layout, traces = step.args
        assert list(traces) == list(widget.SLIDER_TRACES)
        accuracy, gaps, counts = bars(logits, targets, t, 10)
        assert update["y"][:3] == [accuracy, gaps, counts]
        assert update["base"][1] == accuracy  # a gap bar starts at the accuracy
        assert update["x"][3:] == [[t], [t]]  # the markers sit at this step's T
        assert "T = " + step.label + ":" in layout["title.text"]


def test_titles_and_markers_state_ece_and_nll_of_each_step(data, fig, fitted):
    logits, targets = data
    ece_before = expected_calibration_error(torch.softmax(logits, 1), targets, 10)
    nll_before = float(F.cross_entropy(logits, targets))
    for t, step in zip(sorted([*GRID, fitted]), fig.layout.sliders[0].steps):
        update, layout, _ = step.args
        ece = expected_calibration_error(torch.softmax(logits / t, 1), targets, 10)
        nll = float(F.cross_entropy(logits / t, targets))
        assert title_numbers(layout["title.text"]) == (f"{100 * ece_before:.1f}", f"{100 * ece:.1f}",
                                                       f"{nll_before:.3f}", f"{nll:.3f}")
        assert update["y"][3][0] == pytest.approx(100 * ece, abs=1e-9)
        assert update["y"][4][0] == pytest.approx(nll, rel=1e-6)


def test_the_curves_are_ece_and_nll_over_the_grid_and_nll_is_lowest_at_the_fit(data, fig, fitted):
    logits, targets = data
    grid = sorted([*GRID, fitted])
    ece = [100 * expected_calibration_error(torch.softmax(logits / t, 1), targets, 10) for t in grid]
    nll = [float(F.cross_entropy(logits / t, targets)) for t in grid]
    assert list(fig.data[widget.ECE_CURVE].x) == grid == list(fig.data[widget.NLL_CURVE].x)
    np.testing.assert_allclose(fig.data[widget.ECE_CURVE].y, ece, atol=1e-9)
    np.testing.assert_allclose(fig.data[widget.NLL_CURVE].y, nll, rtol=1e-6)
    assert int(np.argmin(nll)) == grid.index(fitted)


def test_the_left_diagram_is_the_model_as_trained_and_the_start_is_the_active_step(data, fig):
    logits, targets = data
    accuracy, gaps, counts = bars(logits, targets, 1.0, 10)
    assert list(fig.data[widget.BEFORE_ACCURACY].y) == accuracy
    assert list(fig.data[widget.BEFORE_GAP].y) == gaps
    assert list(fig.data[widget.BEFORE_COUNTS].y) == counts
    # hand-worked: 10 bins over (0, 1] have centres 0.05, 0.15, ..., 0.95
    np.testing.assert_allclose(fig.data[widget.BEFORE_ACCURACY].x, np.arange(10) / 10 + 0.05)
    slider = fig.layout.sliders[0]
    update, layout, _ = slider.steps[slider.active].args
    shown = [list(fig.data[i].y) for i in widget.SLIDER_TRACES]
    assert shown == update["y"]
    assert fig.layout.title.text == layout["title.text"]


def test_without_a_fit_the_slider_starts_at_one_and_numpy_inputs_work(data):
    logits, targets = data
    fig = widget.figure(logits.numpy(), targets.numpy(), GRID, n_bins=10)
    slider = fig.layout.sliders[0]
    assert [s.label for s in slider.steps] == [f"{t:g}" for t in GRID]
    assert slider.steps[slider.active].label == "1"
    assert list(fig.data[widget.FITTED_LINE].x) == []
    assert slider.steps[GRID.index(2.0)].args[0]["y"][:3] == list(bars(logits, targets, 2.0, 10))


def test_a_fitted_temperature_already_on_the_grid_is_labelled_not_duplicated(data):
    fig = widget.figure(*data, GRID, fitted=2.5, n_bins=10)
    labels = [s.label for s in fig.layout.sliders[0].steps]
    assert len(labels) == len(GRID) and labels[GRID.index(2.5)] == "2.5 (fitted)"
    assert fig.layout.sliders[0].active == GRID.index(2.5)
    assert widget.figure(*data, GRID, fitted=2.5, temperature=0.5).layout.sliders[0].active == GRID.index(0.5)


def test_the_figure_is_small(fig):
    assert len(fig.to_json()) < 200_000


@pytest.mark.parametrize("change, error, pattern", [
    (dict(temperatures=[]), ValueError, "temperatures must be a non-empty"),
    (dict(temperatures=[-1.0, 0.5, 1.0]), ValueError, "temperatures must be finite and > 0"),
    (dict(temperatures=[0.0, 1.0]), ValueError, "temperatures must be finite and > 0"),
    (dict(temperatures=[2.0, 1.0]), ValueError, "temperatures must be strictly increasing"),
    (dict(temperatures=[1.0, 1.0, 2.0]), ValueError, "temperatures must be strictly increasing"),
    (dict(temperatures=[0.5, 2.0]), ValueError, "temperatures must contain 1"),
    (dict(temperatures="1"), TypeError, "temperatures must be a sequence of real numbers"),
    (dict(temperatures=["a", "b"]), TypeError, "temperatures must be a sequence of real numbers"),
    (dict(fitted=-2.0), ValueError, "fitted must be finite and > 0"),
    (dict(fitted="3"), TypeError, "fitted must be a real number"),
    (dict(temperature=0.7), ValueError, "temperature must be one of the temperatures"),
    (dict(n_bins=0), ValueError, "n_bins must be >= 1"),
    (dict(n_bins=2.5), TypeError, "n_bins must be an int"),
    (dict(logits=torch.zeros(6)), ValueError, r"logits must have shape \[N, C\]"),
    (dict(logits=torch.zeros(6, 1)), ValueError, "logits must have shape .* C >= 2"),
    (dict(logits=torch.zeros(6, 3, dtype=torch.int64)), TypeError, "logits must be a floating-point tensor"),
    (dict(logits=torch.tensor([[0.0, float("nan"), 1.0]] * 6)), ValueError, "logits must be finite"),
    (dict(logits=[[0.0, 1.0, 2.0]] * 6), TypeError, "logits must be a torch.Tensor"),
    (dict(targets=torch.zeros(5, dtype=torch.int64)), ValueError, r"targets must have shape \[6\]"),
    (dict(targets=torch.zeros(6)), TypeError, "targets must hold integer class indices"),
    (dict(targets=torch.full((6,), 3)), ValueError, r"targets must be class indices in \[0, 3\)"),
])
def test_bad_arguments_are_clear_errors(change, error, pattern):
    arguments = dict(logits=torch.zeros(6, 3), targets=torch.zeros(6, dtype=torch.int64), temperatures=GRID)
    arguments.update(change)
    with pytest.raises(error, match=pattern):
        widget.figure(**arguments)


def test_explorer_redraws_for_bins_and_t_and_the_fit_button_sets_t(figure_calls, data):
    logits, targets = data
    calls = figure_calls(widget)
    box = widget.explorer(logits, targets, GRID)
    assert isinstance(box, ipywidgets.VBox)
    n_bins, temperature, fit = box.children[0].children
    assert isinstance(temperature, ipywidgets.FloatLogSlider) and isinstance(fit, ipywidgets.Button)
    n_bins.value = 8
    temperature.value = 2.0
    fit.click()
    expected = fit_temperature(logits, targets)
    assert temperature.value == expected
    drawn = [args[2:] for args in calls]  # after logits and targets: grid, fitted, n_bins, T
    assert drawn == [(list(GRID), None, 15, 1.0), (list(GRID), None, 8, 1.0), (list(GRID), None, 8, 2.0),
                     (sorted([*GRID, expected]), expected, 8, expected)]
    assert calls[-1][0] is logits and calls[-1][1] is targets


def test_explorer_widens_the_t_slider_for_a_fit_outside_it(monkeypatch, figure_calls, data):
    monkeypatch.setattr(widget, "fit_temperature", lambda logits, targets: 40.0)  # the wiring, not the fit
    calls = figure_calls(widget)
    box = widget.explorer(*data, GRID)
    _, temperature, fit = box.children[0].children
    fit.click()
    assert temperature.value == 40.0 and temperature.max >= np.log10(40.0)
    assert calls[-1][2:] == ([*GRID, 40.0], 40.0, 15, 40.0)
