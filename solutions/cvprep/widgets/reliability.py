"""Reliability diagrams before and after temperature scaling, with the ECE and the NLL.

:func:`figure` draws a classifier's reliability diagram twice: on the left with its
logits as they are (``T = 1``), on the right after dividing them by a temperature ``T``
chosen with a slider. In each diagram a blue bar is the accuracy of the predictions whose
confidence falls in that bin, a red bar joins it to the bin's mean confidence (the gap,
which the ECE averages), and the dashed diagonal is perfect calibration; under each
diagram a grey histogram counts the predictions per bin. A third panel plots the ECE and
the NLL against ``T`` over the slider's grid, with markers that follow the slider and a
dotted line at the fitted temperature. On the data it was fitted on, that line meets the
bottom of the NLL curve (the NLL is what :func:`cvprep.calibration.fit_temperature`
minimises), not necessarily the bottom of the ECE curve; on held-out data it lands close.

Every slider step is computed here with :mod:`cvprep.calibration`, so the static site
needs no kernel.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import plotly.graph_objects as go
import torch
import torch.nn.functional as F
from plotly.subplots import make_subplots

from cvprep._torch_validation import check_labels, check_positive, check_tensor
from cvprep._validation import check_int
from cvprep.calibration import (
    ReliabilityBins,
    apply_temperature,
    expected_calibration_error,
    fit_temperature,
    reliability_bins,
)
from cvprep.widgets import _style

# The slider's default grid: roughly even steps of log T from 0.1 (sharpen ten-fold) to 10.
TEMPERATURES = (0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0,
                1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 8.0, 10.0)
SAME_TEMPERATURE = 1e-9  # relative difference below which two temperatures are one grid point

# Trace order. Left diagram (T = 1), right diagram (T on the slider), then the T panel.
BEFORE_ACCURACY, BEFORE_GAP, BEFORE_COUNTS, BEFORE_DIAGONAL = 0, 1, 2, 3
AFTER_ACCURACY, AFTER_GAP, AFTER_COUNTS, AFTER_DIAGONAL = 4, 5, 6, 7
ECE_CURVE, NLL_CURVE, ECE_MARKER, NLL_MARKER, FITTED_LINE = 8, 9, 10, 11, 12
SLIDER_TRACES = (AFTER_ACCURACY, AFTER_GAP, AFTER_COUNTS, ECE_MARKER, NLL_MARKER)


class Calibration(NamedTuple):
    """How calibrated ``softmax(logits / temperature)`` is: one slider step."""

    temperature: float
    bins: ReliabilityBins
    ece: float  # expected calibration error with ``len(bins.counts)`` bins, a fraction
    nll: float  # mean cross-entropy of the targets


# Validation ------------------------------------------------------------------------------

def _check_data(logits: object, targets: object) -> tuple[torch.Tensor, torch.Tensor]:
    """``logits`` as a finite floating-point Tensor[N, C] (N >= 1, C >= 2), ``targets`` as int64 Tensor[N]."""
    if isinstance(logits, np.ndarray):
        logits = torch.from_numpy(np.ascontiguousarray(logits))
    if isinstance(targets, np.ndarray):
        targets = torch.from_numpy(np.ascontiguousarray(targets))
    logits = check_tensor(logits, "logits", "[N, C]")
    if logits.shape[0] < 1 or logits.shape[1] < 2:
        raise ValueError(f"logits must have shape [N, C] with N >= 1 and C >= 2, got {tuple(logits.shape)}")
    if not torch.isfinite(logits).all():
        raise ValueError(f"logits must be finite, got {int((~torch.isfinite(logits)).sum())} NaN or inf values")
    targets = check_labels(targets, "targets", logits.shape[0], logits.shape[1])
    return logits, targets.long()  # cross_entropy wants int64 class indices


def _check_temperatures(temperatures: object) -> list[float]:
    """A non-empty, strictly increasing grid of finite temperatures > 0 that contains 1."""
    if isinstance(temperatures, (str, bytes)):
        raise TypeError(f"temperatures must be a sequence of real numbers, got {temperatures!r}")
    try:
        values = np.asarray(temperatures, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"temperatures must be a sequence of real numbers, got {temperatures!r}") from None
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"temperatures must be a non-empty 1-D sequence, got shape {values.shape}")
    if not (np.isfinite(values) & (values > 0)).all():
        raise ValueError(f"temperatures must be finite and > 0, got {values.tolist()}")
    if (np.diff(values) <= 0).any():
        raise ValueError(f"temperatures must be strictly increasing (a sorted grid), got {values.tolist()}")
    if 1.0 not in values:
        raise ValueError(f"temperatures must contain 1 (the model as trained), got {values.tolist()}")
    return values.tolist()


def _index(grid: Sequence[float], value: float) -> int | None:
    """The position of ``value`` in ``grid`` (to :data:`SAME_TEMPERATURE`), or None."""
    matches = np.flatnonzero(np.isclose(grid, value, rtol=SAME_TEMPERATURE, atol=0.0))
    return int(matches[0]) if matches.size else None


def _with_fitted(grid: list[float], fitted: float | None) -> tuple[list[float], int | None]:
    """The grid with ``fitted`` in it (inserted in order unless already there), and its position."""
    if fitted is None:
        return grid, None
    fitted = check_positive(fitted, "fitted")
    at = _index(grid, fitted)
    if at is not None:
        return grid, at
    at = int(np.searchsorted(grid, fitted))
    return grid[:at] + [fitted] + grid[at:], at


# Computation -----------------------------------------------------------------------------

def measure(logits: torch.Tensor, targets: torch.Tensor, temperature: float, n_bins: int = 15) -> Calibration:
    """Reliability bins, ECE and NLL of ``softmax(logits / temperature)``.

    Args:
        logits (Tensor[N, C]): unnormalised class scores (an ndarray is converted).
        targets (Tensor[N]): true class indices, integers in ``[0, C)``.
        temperature: ``T > 0``.
        n_bins: equal-width confidence bins over (0, 1], >= 1.

    Returns:
        Calibration: the bins (:func:`cvprep.calibration.reliability_bins`), the ECE and
        the mean negative log-likelihood, computed in ``logits``' dtype.

    Raises:
        TypeError: ``logits`` is not a floating-point tensor or array, ``targets`` not
            integers, ``temperature`` not a real number or ``n_bins`` not an int.
        ValueError: a shape is wrong, ``logits`` is not finite, a target is out of range,
            ``temperature <= 0`` or ``n_bins < 1``.
    """
    logits, targets = _check_data(logits, targets)
    n_bins = check_int(n_bins, "n_bins", 1)
    probs = apply_temperature(logits, temperature)  # [N, C]
    nll = float(F.cross_entropy(logits / temperature, targets))
    return Calibration(float(temperature), reliability_bins(probs, targets, n_bins),
                       expected_calibration_error(probs, targets, n_bins), nll)


# Figure ----------------------------------------------------------------------------------

def _label(temperature: float, fitted: bool) -> str:
    return f"{temperature:.3g}" + (" (fitted)" if fitted else "")


def _title(before: Calibration, after: Calibration, label: str, accuracy: float, n: int) -> str:
    """ECE before and after, NLL before and after; ECE in percent to one decimal, NLL to three."""
    return (f"T = {label}: ECE {100 * before.ece:.1f} % → {100 * after.ece:.1f} %, "
            f"NLL {before.nll:.3f} → {after.nll:.3f}"
            f"<br><sup>{n} predictions, {len(after.bins.counts)} bins; accuracy {100 * accuracy:.1f} % at every T "
            f"(T never changes the predicted class)</sup>")


def _centres(edges: list[float]) -> list[float]:
    return [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])]


def _bars(bins: ReliabilityBins) -> tuple[list, list]:
    """Each bin's accuracy, and its mean confidence minus its accuracy; None (no bar) in an empty bin."""
    accuracy, gaps = [], []
    for count, a, p in zip(bins.counts.tolist(), bins.accuracy.tolist(), bins.confidence.tolist()):
        accuracy.append(a if count else None)
        gaps.append(p - a if count else None)
    return accuracy, gaps


def _diagram(fig: go.Figure, c: Calibration, col: int, ranges: list[str], legend: bool) -> None:
    """Accuracy bars, gap bars, count histogram and diagonal of one reliability diagram (4 traces)."""
    centres = _centres(c.bins.edges.tolist())
    width = 1 / len(centres)
    accuracy, gaps = _bars(c.bins)
    fig.add_trace(go.Bar(x=centres, y=accuracy, width=width, name="accuracy of the bin", legendgroup="accuracy",
                         showlegend=legend, customdata=ranges, marker=dict(color=_style.BLUE, line=dict(width=0)),
                         hovertemplate="confidence %{customdata}: accuracy %{y:.3f}<extra></extra>"), 1, col)
    fig.add_trace(go.Bar(x=centres, y=gaps, base=accuracy, width=width,
                         name="gap to the mean confidence", legendgroup="gap", showlegend=legend, customdata=ranges,
                         marker=dict(color="rgba(225,87,89,0.3)", line=dict(color=_style.RED, width=1.5)),
                         hovertemplate="confidence %{customdata}: mean confidence − accuracy %{y:+.3f}"
                                       "<extra></extra>"), 1, col)
    fig.add_trace(go.Bar(x=centres, y=c.bins.counts.tolist(), width=width, name="predictions per bin",
                         legendgroup="counts", showlegend=legend, customdata=ranges,
                         marker=dict(color=_style.GREY, line=dict(color="white", width=1)),
                         hovertemplate="confidence %{customdata}: %{y} predictions<extra></extra>"), 2, col)
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration", legendgroup="diagonal",
                             showlegend=legend, line=dict(color="#444444", width=1.2, dash="dash"),
                             hoverinfo="skip"), 1, col)


def figure(logits: torch.Tensor | np.ndarray, targets: torch.Tensor | np.ndarray,
           temperatures: Sequence[float] = TEMPERATURES, fitted: float | None = None, n_bins: int = 15,
           temperature: float | None = None) -> go.Figure:
    """Reliability diagrams at ``T = 1`` and at a slider's ``T``, with ECE and NLL against ``T``.

    Args:
        logits (Tensor[N, C] or ndarray[N, C]): a classifier's logits, floating point,
            ``N >= 1``, ``C >= 2``.
        targets (Tensor[N] or ndarray[N]): true class indices, integers in ``[0, C)``.
        temperatures: the slider's grid: strictly increasing, all finite and > 0, and
            containing 1 (the model as trained).
        fitted: the temperature from :func:`cvprep.calibration.fit_temperature`, if any.
            It is **inserted** into the grid (in order) unless the grid already holds it
            (to a relative 1e-9), labelled "(fitted)" on the slider, and marked by a
            dotted line on the ECE/NLL panel.
        n_bins: equal-width confidence bins over (0, 1], >= 1.
        temperature: the step shown first, one of the grid's temperatures or ``fitted``
            (default: ``fitted`` if given, else 1).

    Returns:
        A plotly figure: reliability diagrams before (left) and after (middle) dividing
        the logits by ``T``, each above its histogram of predictions per bin; ECE and NLL
        against ``T`` (right, log ``T`` axis); a slider over the grid that redraws the
        middle diagram, the markers and the title (ECE and NLL before and after).

    Raises:
        TypeError: an argument of the wrong type, named in the message.
        ValueError: ``temperatures`` empty, unsorted, not positive or without 1;
            ``fitted`` not > 0; ``temperature`` not in the grid; a wrong shape; a target
            out of range; ``n_bins < 1``.
    """
    logits, targets = _check_data(logits, targets)
    n_bins = check_int(n_bins, "n_bins", 1)
    grid, fitted_at = _with_fitted(_check_temperatures(temperatures), fitted)
    if temperature is None:
        active = _index(grid, 1.0) if fitted_at is None else fitted_at
    else:
        active = _index(grid, check_positive(temperature, "temperature"))
        if active is None:
            raise ValueError(f"temperature must be one of the temperatures or fitted {grid}, got {temperature}")

    steps = [measure(logits, targets, t, n_bins) for t in grid]
    before = steps[_index(grid, 1.0)]
    labels = [_label(t, i == fitted_at) for i, t in enumerate(grid)]
    accuracy = float((logits.argmax(dim=1) == targets).double().mean())
    titles = [_title(before, s, label, accuracy, len(targets)) for s, label in zip(steps, labels)]
    edges = before.bins.edges.tolist()
    ranges = [f"({a:.3g}, {b:.3g}]" for a, b in zip(edges[:-1], edges[1:])]
    centres = _centres(edges)

    fig = make_subplots(rows=2, cols=3, row_heights=[0.74, 0.26], column_widths=[0.35, 0.35, 0.30],
                        vertical_spacing=0.05, horizontal_spacing=0.1, shared_xaxes=True,
                        specs=[[{}, {}, {"rowspan": 2, "secondary_y": True}], [{}, {}, None]],
                        # short titles: the book's text column is about 650 px wide
                        subplot_titles=("as trained (T = 1)", "logits / T", "ECE, NLL against T"))
    _diagram(fig, before, 1, ranges, legend=True)
    _diagram(fig, steps[active], 2, ranges, legend=False)
    eces, nlls = [100 * s.ece for s in steps], [s.nll for s in steps]
    fig.add_trace(go.Scatter(x=grid, y=eces, mode="lines", name="ECE (%, left axis)", line=dict(color=_style.BLUE),
                             hovertemplate="T %{x:.3g}: ECE %{y:.2f} %<extra></extra>"), 1, 3, secondary_y=False)
    fig.add_trace(go.Scatter(x=grid, y=nlls, mode="lines", name="NLL (right axis)", line=dict(color=_style.ORANGE),
                             hovertemplate="T %{x:.3g}: NLL %{y:.3f}<extra></extra>"), 1, 3, secondary_y=True)
    fig.add_trace(go.Scatter(x=[grid[active]], y=[eces[active]], mode="markers", showlegend=False,
                             marker=dict(size=11, color=_style.BLUE, line=dict(color="white", width=1.5)),
                             hovertemplate="T %{x:.3g}: ECE %{y:.2f} %<extra></extra>"), 1, 3, secondary_y=False)
    fig.add_trace(go.Scatter(x=[grid[active]], y=[nlls[active]], mode="markers", showlegend=False,
                             marker=dict(size=11, color=_style.ORANGE, line=dict(color="white", width=1.5)),
                             hovertemplate="T %{x:.3g}: NLL %{y:.3f}<extra></extra>"), 1, 3, secondary_y=True)
    fitted_x = [] if fitted_at is None else [grid[fitted_at]] * 2
    fitted_y = [] if fitted_at is None else [0, max(nlls) * 1.05]
    fig.add_trace(go.Scatter(x=fitted_x, y=fitted_y, mode="lines", name="fitted T (minimum NLL)",
                             showlegend=fitted_at is not None, line=dict(color="#444444", width=1.2, dash="dot"),
                             hovertemplate="fitted T %{x:.3g}<extra></extra>"), 1, 3, secondary_y=True)

    _style.base_layout(fig, titles[active], height=680)
    fig.update_layout(barmode="overlay", bargap=0, showlegend=True, margin=dict(t=90, b=30),
                      legend=dict(orientation="h", x=0, y=-0.12, yanchor="top", font=dict(size=11)))
    for col in (1, 2):
        fig.update_xaxes(range=[0, 1], row=1, col=col)
        fig.update_xaxes(range=[0, 1], title="confidence", row=2, col=col)
        fig.update_yaxes(range=[0, 1], title="accuracy" if col == 1 else None, row=1, col=col)
        fig.update_yaxes(title="count" if col == 1 else None, rangemode="tozero", row=2, col=col)
    fig.update_xaxes(type="log", title="temperature T", row=1, col=3)
    # each axis its own round ticks (plotly would otherwise align the NLL ticks to the ECE grid)
    fig.update_yaxes(title="ECE (%)", rangemode="tozero", tickmode="auto", row=1, col=3, secondary_y=False)
    fig.update_yaxes(title="NLL", rangemode="tozero", tickmode="auto", showgrid=False, row=1, col=3,
                     secondary_y=True)

    steps_args = []
    for s, title, t, ece, nll in zip(steps, titles, grid, eces, nlls):
        accuracy_bars, gaps = _bars(s.bins)
        steps_args.append([{"y": [accuracy_bars, gaps, s.bins.counts.tolist(), [ece], [nll]],
                            "base": [None, accuracy_bars, None, None, None],
                            "x": [centres, centres, centres, [t], [t]]},
                           {"title.text": title}, list(SLIDER_TRACES)])
    slider = _style.slider(labels, steps_args, "update", "T: ", active)
    slider.update(y=-0.24)
    fig.update_layout(sliders=[slider])
    return fig


def explorer(logits: torch.Tensor | np.ndarray, targets: torch.Tensor | np.ndarray,
             temperatures: Sequence[float] = TEMPERATURES):
    """Live reliability diagrams for JupyterLab: the number of bins, ``T`` and a "fit" button.

    Args:
        logits (Tensor[N, C] or ndarray[N, C]), targets (Tensor[N] or ndarray[N]): as :func:`figure`.
        temperatures: the grid of the ECE/NLL curves; the current ``T`` is added to it.

    Returns:
        An ``ipywidgets.VBox``; it redraws :func:`figure` when the bins or ``T`` change.
        The button runs :func:`cvprep.calibration.fit_temperature` on these logits, sets
        ``T`` to the result and marks it on the curves from then on.

    Raises:
        TypeError, ValueError: as :func:`figure`.
    """
    import ipywidgets as widgets
    from IPython.display import display

    logits, targets = _check_data(logits, targets)
    grid = _check_temperatures(temperatures)
    n_bins = widgets.IntSlider(value=15, min=2, max=30, description="bins", continuous_update=False)
    temperature = widgets.FloatLogSlider(value=1.0, base=10, min=np.log10(grid[0]), max=np.log10(grid[-1]),
                                         step=0.01, description="T", readout_format=".3g", continuous_update=False)
    fit = widgets.Button(description="fit T (minimum NLL)")
    fitted: list[float] = []  # filled by the button, then passed to every redraw
    output = widgets.Output()

    def redraw(*_) -> None:
        t = float(temperature.value)
        output.clear_output(wait=True)
        with output:
            display(figure(logits, targets, sorted({*grid, t}), fitted[0] if fitted else None, n_bins.value, t))

    def on_fit(_) -> None:
        fitted[:] = [fit_temperature(logits, targets)]
        exponent, margin = float(np.log10(fitted[0])), temperature.step
        # the slider clamps values outside its range (10 ** log10(x) may round below x): widen it first
        temperature.min = min(temperature.min, exponent - margin)
        temperature.max = max(temperature.max, exponent + margin)
        if temperature.value == fitted[0]:
            redraw()
        else:
            temperature.value = fitted[0]  # redraws through the observer

    n_bins.observe(redraw, names="value")
    temperature.observe(redraw, names="value")
    fit.on_click(on_fit)
    redraw()
    return widgets.VBox([widgets.HBox([n_bins, temperature, fit]), output])
