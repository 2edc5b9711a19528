"""The adversarial-epsilon slider: one image attacked by FGSM and by PGD under a growing budget.

:func:`compute` runs both attacks of :mod:`cvprep.adversarial` on one image at every
epsilon of a list (and, optionally, on a batch, for accuracy-against-epsilon curves);
:func:`figure` draws the result with one slider over epsilon: per attack, the perturbed
image, the perturbation ``adversarial - clean`` on a colour scale fixed to the largest
budget (so one sees it grow), and the model's class probabilities. Every slider step is
computed here, for the static site; :func:`explorer` recomputes for any image and budget
in JupyterLab.

The model is evaluated, and attacked, in eval mode (batch norm with its running
statistics, no dropout): the mode it is deployed in. :func:`compute` switches it to eval
mode for the run and puts its mode back afterwards.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import nn

from cvprep._torch_validation import check_labels, check_module, check_positive, check_tensor
from cvprep._validation import check_int
from cvprep.adversarial import fgsm, pgd
from cvprep.classifier import evaluating
from cvprep.widgets import _style

ATTACKS = ("FGSM", "PGD")
# The chapter's model is fragile: on its test images both attacks halve its accuracy by
# epsilon 0.0075 (2/255), push it below chance (25 %) by 0.0125 and to about 0 by 0.025.
EPSILONS = tuple(round(0.0025 * i, 4) for i in range(13))
ATTACK_COLORS = {"FGSM": _style.ORANGE, "PGD": _style.PURPLE}
TRUE_COLOR, OTHER_COLOR = _style.BLUE, _style.GREY
# The heatmaps are drawn in integer units (see _levels): images in thousandths (finer than
# 8-bit images' 1/255), perturbations in ten-thousandths (an epsilon of 0.0025 is 25).
IMAGE_LEVELS, PERTURBATION_LEVELS = 1000, 10000
ROW_PIXELS, CURVE_PIXELS, GAP_PIXELS = 230, 210, 80  # an attack's row, the accuracy row, between rows
TOP_PIXELS, BOTTOM_PIXELS = 100, 140  # the two-line title; the colour bar or axis title, and the slider


@dataclass(frozen=True)
class AttackSteps:
    """One attack at every epsilon of a sweep (``E`` epsilons, ``K`` classes)."""

    name: str  # "FGSM" or "PGD"
    images: np.ndarray  # [E, C, H, W] the adversarial image, within [0, 1]
    perturbations: np.ndarray  # [E, C, H, W] images - the clean image, within [-epsilon, epsilon]
    probabilities: np.ndarray  # [E, K] the model's softmax on each adversarial image
    accuracy: np.ndarray | None = None  # [E] on the sweep's batch, if it was given one


@dataclass(frozen=True)
class AttackSweep:
    """What :func:`compute` found; the arrays are read-only."""

    epsilons: np.ndarray  # [E], increasing, epsilons[0] = 0
    image: np.ndarray  # [C, H, W] the clean image
    label: int  # its true class
    class_names: tuple[str, ...]  # [K]
    clean_probabilities: np.ndarray  # [K]
    fgsm: AttackSteps
    pgd: AttackSteps
    pgd_steps: int
    pgd_alphas: np.ndarray  # [E] PGD's step size at each epsilon (no attack runs at epsilon 0)
    seed: int  # of PGD's random start
    batch_size: int = 0  # images behind the accuracy curves (0: no curves)

    def attack(self, name: str) -> AttackSteps:
        """The steps of attack ``name`` ("FGSM" or "PGD")."""
        return {"FGSM": self.fgsm, "PGD": self.pgd}[name]


# Argument checks ------------------------------------------------------------------------

def _check_epsilons(epsilons: object) -> np.ndarray:
    """``epsilons`` as a float array [E]: finite, >= 0, starting at 0, strictly increasing."""
    if isinstance(epsilons, (str, bytes)) or not isinstance(epsilons, (Sequence, np.ndarray)):
        raise TypeError(f"epsilons must be a sequence of real numbers, got {type(epsilons).__name__}")
    if any(isinstance(e, bool) or not isinstance(e, numbers.Real) for e in epsilons):
        raise TypeError(f"epsilons must hold real numbers, got {list(epsilons)!r}")
    values = np.asarray(epsilons, dtype=np.float64).reshape(-1)
    if values.size == 0:
        raise ValueError("epsilons must hold at least one value (starting with 0)")
    if not np.isfinite(values).all() or (values < 0).any():
        raise ValueError(f"epsilons must be finite and >= 0, got {values.tolist()}")
    if values[0] != 0:
        raise ValueError(f"epsilons must start at 0 (the clean image), got {values.tolist()}")
    if (np.diff(values) <= 0).any():
        raise ValueError(f"epsilons must be strictly increasing, got {values.tolist()}")
    return values


def _check_in_unit_range(images: torch.Tensor, name: str) -> torch.Tensor:
    if images.numel() and not (torch.isfinite(images).all() and images.min() >= 0 and images.max() <= 1):
        raise ValueError(f"{name} must hold values in [0, 1], got {images.min().item()} to {images.max().item()}")
    return images


def _check_class_names(class_names: object, num_classes: int) -> tuple[str, ...]:
    if isinstance(class_names, str) or not isinstance(class_names, Sequence) or \
            not all(isinstance(c, str) for c in class_names):
        raise TypeError(f"class_names must be a sequence of strings, got {class_names!r}")
    if len(class_names) != num_classes:
        raise ValueError(f"class_names must name each of the model's {num_classes} classes, "
                         f"got {len(class_names)} names")
    return tuple(class_names)


def _check_batch(batch: object, image: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise TypeError(f"batch must be None or a pair (images, labels), got {type(batch).__name__}")
    images = _check_in_unit_range(check_tensor(batch[0], "batch images", "[N, C, H, W]"), "batch images")
    if len(images) == 0 or images.shape[1] != image.shape[0]:
        raise ValueError(f"batch images must be [N, C, H, W] with N >= 1 and C = {image.shape[0]} (as image), "
                         f"got {tuple(images.shape)}")
    labels = check_labels(batch[1], "batch labels", len(images), num_classes)
    return images, labels


# The computation ------------------------------------------------------------------------

def _adversarial(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, epsilons: np.ndarray,
                 alphas: np.ndarray, steps: int, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(FGSM images, PGD images), each [N, C, H, W], for each epsilon in turn.

    PGD gets a fresh generator seeded with ``seed`` at every epsilon, so each step can be
    reproduced on its own. At epsilon 0 both attacks would return the images unchanged
    (and PGD's default step size would be 0, which it refuses), so none runs.
    """
    for epsilon, alpha in zip(epsilons.tolist(), alphas.tolist()):
        if epsilon == 0:
            yield images.clone(), images.clone()
            continue
        generator = torch.Generator(device=images.device).manual_seed(seed)
        yield (fgsm(model, images, targets, epsilon),
               pgd(model, images, targets, epsilon, alpha, steps, generator=generator))


@torch.no_grad()
def _probabilities(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    return torch.softmax(model(images), dim=1)  # [N, K]


def _accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, epsilons: np.ndarray,
              alphas: np.ndarray, steps: int, seed: int) -> np.ndarray:
    """Fraction of ``images`` classified as ``labels`` under FGSM (column 0) and PGD (column 1): [E, 2]."""
    found = [[(_probabilities(model, x).argmax(1) == labels).double().mean().item() for x in pair]
             for pair in _adversarial(model, images.detach(), labels, epsilons, alphas, steps, seed)]
    return np.array(found)


def _frozen(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def compute(model: nn.Module, image: torch.Tensor, label: int, epsilons: Sequence[float], class_names: Sequence[str],
            pgd_steps: int = 10, pgd_alpha: float | None = None, seed: int = 0,
            batch: tuple[torch.Tensor, torch.Tensor] | None = None) -> AttackSweep:
    """Attack one image with FGSM and PGD at each epsilon; optionally, measure both on a batch.

    Args:
        model (nn.Module): classifier, ``[N, C, H, W] -> logits [N, K]``; run in eval mode
            (its own mode is restored afterwards) and otherwise left unchanged.
        image (Tensor[C, H, W]): one image (no batch dimension, e.g. ``images[i]``), values in [0, 1].
        label: its true class, an int in ``[0, K)``.
        epsilons: the L-infinity budgets, starting at 0 (the clean image), strictly increasing.
        class_names: one name per class, ``K`` in all.
        pgd_steps: PGD's number of gradient steps, >= 1.
        pgd_alpha: PGD's step size, > 0, the same at every epsilon; default
            ``2.5 * epsilon / pgd_steps``, enough to cross the ball from side to side.
        seed: seeds PGD's random start (a fresh ``torch.Generator`` at every epsilon, so
            step ``i`` equals ``pgd(..., generator=torch.Generator().manual_seed(seed))``).
        batch: optional ``(images [N, C, H, W] in [0, 1], labels [N])``: the accuracy of the
            model under each attack at each epsilon is measured on it (the curves of the figure).

    Returns:
        An :class:`AttackSweep`.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``; ``image`` or the batch images are not
            floating tensors; ``label``, ``pgd_steps`` or ``seed`` is not an int; ``epsilons``
            or ``class_names`` hold the wrong kind of values; ``batch`` is not a pair.
        ValueError: ``image`` is not ``[C, H, W]`` or leaves [0, 1]; ``epsilons`` is empty,
            negative, does not start at 0 or is not strictly increasing; ``label`` is not in
            ``[0, K)``; ``class_names`` does not have ``K`` names; ``pgd_steps < 1``,
            ``pgd_alpha <= 0``, ``seed < 0``; the batch's shapes or labels are wrong.
    """
    model = check_module(model, "model", "a torch.nn.Module returning logits [N, K]")
    image = _check_in_unit_range(check_tensor(image, "image", "[C, H, W]"), "image").detach()
    epsilons = _check_epsilons(epsilons)
    steps, seed = check_int(pgd_steps, "pgd_steps", 1), check_int(seed, "seed", 0)
    if pgd_alpha is None:
        alphas = 2.5 * epsilons / steps
    else:
        alphas = np.full(len(epsilons), check_positive(pgd_alpha, "pgd_alpha"))
    clean = image[None]  # [1, C, H, W]
    with evaluating(model):
        clean_probabilities = _probabilities(model, clean)[0]  # [K]
        names = _check_class_names(class_names, len(clean_probabilities))
        label = check_int(label, "label", 0)
        if label >= len(names):
            raise ValueError(f"label must be a class index in [0, {len(names)}), got {label}")
        batch = None if batch is None else _check_batch(batch, image, len(names))
        target = torch.tensor([label], device=image.device)
        pairs = list(_adversarial(model, clean, target, epsilons, alphas, steps, seed))
        accuracy = None if batch is None else _accuracy(model, *batch, epsilons, alphas, steps, seed)
        found = {}
        for k, name in enumerate(ATTACKS):
            adversarial = torch.cat([pair[k] for pair in pairs])  # [E, C, H, W]
            found[name] = AttackSteps(
                name, _frozen(adversarial.cpu().numpy()), _frozen((adversarial - clean).cpu().numpy()),
                _frozen(_probabilities(model, adversarial).cpu().numpy()),
                None if accuracy is None else _frozen(accuracy[:, k].copy()))
    return AttackSweep(_frozen(epsilons), _frozen(image.cpu().numpy()), label, names,
                       _frozen(clean_probabilities.cpu().numpy()), found["FGSM"], found["PGD"], steps,
                       _frozen(alphas), seed, 0 if batch is None else len(batch[0]))


# The figure -----------------------------------------------------------------------------

def _check_attacks(attacks: object) -> tuple[str, ...]:
    if isinstance(attacks, str) or not isinstance(attacks, Sequence) or not attacks or \
            any(a not in ATTACKS for a in attacks) or len(set(attacks)) != len(attacks):
        raise ValueError(f"attacks must be a non-empty sequence of distinct names from {ATTACKS}, got {attacks!r}")
    return tuple(attacks)


def _verdict(sweep: AttackSweep, name: str, index: int) -> str:
    """What the model says under attack ``name`` at step ``index``, for the title."""
    probabilities = sweep.attack(name).probabilities[index]
    predicted = int(np.argmax(probabilities))
    outcome = "right" if predicted == sweep.label else "fooled"
    steps = f" ({sweep.pgd_steps} steps)" if name == "PGD" else ""
    return f"{name}{steps} → {sweep.class_names[predicted]} ({probabilities[predicted]:.2f}, {outcome})"


def _title(sweep: AttackSweep, index: int, attacks: tuple[str, ...]) -> str:
    epsilon = float(sweep.epsilons[index])
    return (f"epsilon = {epsilon:g} (≈ {255 * epsilon:.1f}/255); true class: {sweep.class_names[sweep.label]}"
            f"<br><sup>{' · '.join(_verdict(sweep, name, index) for name in attacks)}</sup>")


def _levels(values: np.ndarray, scale: int) -> list:
    """``values * scale`` as nested lists of ints: the figure's JSON is embedded in the page.

    An int like ``482`` takes 4 characters where ``0.482`` takes 6 (and a float32 0.482
    prints as 0.48199999332427979): in these units the 13-step figure of a 64-pixel image
    is a third lighter. The colour axes are in the same units.
    """
    return np.rint(values.astype(np.float64) * scale).astype(np.int64).tolist()


def _step_data(sweep: AttackSweep, index: int, attacks: tuple[str, ...]) -> dict[str, list]:
    """The moving traces' new values at step ``index``, in trace order.

    None stands where a trace has no such attribute (a heatmap's x, a bar's z): plotly
    resets it to its default, which is no value.
    """
    z, x, y = [], [], []
    for name in attacks:
        steps = sweep.attack(name)
        z += [_levels(steps.images[index, 0], IMAGE_LEVELS),
              _levels(steps.perturbations[index, 0], PERTURBATION_LEVELS), None]
        x += [None, None, np.round(steps.probabilities[index].astype(np.float64), 4).tolist()]
        y += [None, None, list(sweep.class_names)]
    if sweep.batch_size:  # the marker at the current epsilon on the accuracy curves
        z.append(None)
        x.append([float(sweep.epsilons[index])] * len(attacks))
        y.append([float(sweep.attack(name).accuracy[index]) for name in attacks])
    return {"z": z, "x": x, "y": y}


def _layout_grid(sweep: AttackSweep, attacks: tuple[str, ...]) -> tuple[go.Figure, int]:
    """Subplots: a row per attack (image, perturbation, bars), then the accuracy row across; and the height."""
    curves = bool(sweep.batch_size)
    rows = len(attacks) + curves
    plot = ROW_PIXELS * len(attacks) + CURVE_PIXELS * curves + GAP_PIXELS * (rows - 1)
    titles = [f"{name}: {what}" for name in attacks for what in ("perturbed image", "perturbation", "probabilities")]
    specs = [[{}, {}, {}]] * len(attacks) + [[{"colspan": 3}, None, None]] * curves
    fig = make_subplots(rows=rows, cols=3, specs=specs, column_widths=[0.3, 0.3, 0.4], subplot_titles=titles,
                        row_heights=[ROW_PIXELS] * len(attacks) + [CURVE_PIXELS] * curves,
                        horizontal_spacing=0.07, vertical_spacing=GAP_PIXELS / plot if rows > 1 else 0.0)
    return fig, plot + TOP_PIXELS + BOTTOM_PIXELS


def _style_image_axes(fig: go.Figure, trace: go.BaseTraceType, height: int, width: int) -> None:
    """Square pixels, y downwards, no ticks: an image, not a chart."""
    axis = dict(showticklabels=False, ticks="", showgrid=False, zeroline=False, constrain="domain")
    fig.layout[f"xaxis{trace.xaxis[1:]}"].update(axis, range=[-0.5, width - 0.5])
    fig.layout[f"yaxis{trace.yaxis[1:]}"].update(axis, range=[height - 0.5, -0.5], scaleanchor=trace.xaxis)


def _perturbation_colorbar(fig: go.Figure, limit: float, row: int) -> dict:
    """A horizontal colour bar under the perturbation of the last attack's ``row``.

    Under, not beside: a vertical bar would cover the probability bars' class names.
    """
    axes = fig.get_subplot(row, 2)
    start, end = axes.xaxis.domain  # the image is centred in its domain
    ticks = (-1, 0, 1)
    return dict(orientation="h", x=(start + end) / 2, xanchor="center", len=0.8 * (end - start),
                y=axes.yaxis.domain[0] - 0.01, yanchor="top", thickness=10,
                title=dict(text="adv − clean", side="top"),
                tickvals=[v * limit * PERTURBATION_LEVELS for v in ticks],
                ticktext=[f"{v * limit:+.4g}" if v else "0" for v in ticks])


def _add_curves(fig: go.Figure, sweep: AttackSweep, attacks: tuple[str, ...], data: dict[str, list]) -> None:
    """Accuracy against epsilon for each attack, a marker per attack at the current epsilon."""
    row = len(attacks) + 1
    for name in attacks:
        fig.add_trace(go.Scatter(x=sweep.epsilons.tolist(), y=sweep.attack(name).accuracy.tolist(),
                                 mode="lines+markers", name=f"under {name}",
                                 line=dict(color=ATTACK_COLORS[name], width=2),
                                 marker=dict(size=5), hovertemplate="epsilon %{x:g}: accuracy %{y:.3f}<extra></extra>"),
                      row, 1)
    fig.add_trace(go.Scatter(x=data["x"][-1], y=data["y"][-1], mode="markers", name="this epsilon", showlegend=False,
                             marker=dict(size=14, color=[ATTACK_COLORS[n] for n in attacks],
                                         line=dict(color="black", width=1.5)), hoverinfo="skip"), row, 1)
    fig.update_xaxes(title=dict(text="epsilon", standoff=4), row=row, col=1)
    fig.update_yaxes(title=f"accuracy on {sweep.batch_size} images", range=[-0.02, 1.02], row=row, col=1)
    top = fig.get_subplot(row, 1).yaxis.domain[1]
    fig.update_layout(legend=dict(x=1, xanchor="right", y=top, yanchor="top", bgcolor="rgba(255,255,255,0.8)"))


def figure(sweep: AttackSweep, epsilon_index: int = 0, attacks: Sequence[str] = ATTACKS) -> go.Figure:
    """One row per attack (perturbed image, perturbation, class probabilities), a slider over epsilon.

    With batch accuracies in the sweep, a last panel draws accuracy against epsilon for
    each attack, with a marker at the current epsilon. Every slider step is an ``update``
    carrying the new images, bars, marker and title, so it works without a kernel.

    Args:
        sweep: from :func:`compute`, of a grayscale image (``C = 1``).
        epsilon_index: the step shown first, in ``[0, E)``.
        attacks: the rows to draw, among ``"FGSM"`` and ``"PGD"``, in that order.

    Returns:
        A plotly figure: images on a fixed 0..1 grey scale, perturbations on a diverging
        scale fixed to ``[-max epsilon, max epsilon]``, probability bars on 0..1 with the
        true class in blue.

    Raises:
        TypeError: ``sweep`` is not an :class:`AttackSweep`; ``epsilon_index`` is not an int.
        ValueError: ``epsilon_index`` out of range; the image is not grayscale; bad ``attacks``.
    """
    if not isinstance(sweep, AttackSweep):
        raise TypeError(f"sweep must be an AttackSweep from compute(), got {type(sweep).__name__}")
    count = len(sweep.epsilons)
    index = check_int(epsilon_index, "epsilon_index", 0)
    if index >= count:
        raise ValueError(f"epsilon_index must be in [0, {count}) for this sweep, got {index}")
    if sweep.image.shape[0] != 1:
        raise ValueError(f"sweep must hold a grayscale image [1, H, W] to draw, got {sweep.image.shape}")
    attacks = _check_attacks(attacks)
    height, width = sweep.image.shape[1:]
    limit = float(sweep.epsilons[-1]) or 1.0  # a sweep of epsilon 0 alone has nothing to scale to
    data = _step_data(sweep, index, attacks)
    bar_colors = [TRUE_COLOR if k == sweep.label else OTHER_COLOR for k in range(len(sweep.class_names))]

    fig, figure_height = _layout_grid(sweep, attacks)
    for row, name in enumerate(attacks, start=1):
        image, perturbation, probabilities = data["z"][3 * row - 3], data["z"][3 * row - 2], data["x"][3 * row - 1]
        fig.add_trace(go.Heatmap(z=image, coloraxis="coloraxis", hoverinfo="skip"), row, 1)
        _style_image_axes(fig, fig.data[-1], height, width)
        fig.add_trace(go.Heatmap(z=perturbation, coloraxis="coloraxis2", hoverinfo="skip"), row, 2)
        _style_image_axes(fig, fig.data[-1], height, width)
        fig.add_trace(go.Bar(x=probabilities, y=list(sweep.class_names), orientation="h", marker_color=bar_colors,
                             texttemplate="%{x:.2f}", textposition="outside", cliponaxis=False, showlegend=False,
                             hovertemplate="%{y}: %{x:.4f}<extra></extra>"), row, 3)
        fig.update_xaxes(range=[0, 1], tickvals=[0, 0.5, 1], row=row, col=3)
        fig.update_yaxes(autorange="reversed", row=row, col=3)
    moving = list(range(len(fig.data)))
    if sweep.batch_size:
        _add_curves(fig, sweep, attacks, data)
        moving.append(len(fig.data) - 1)
    _style.base_layout(fig, _title(sweep, index, attacks), height=figure_height)
    fig.update_layout(
        coloraxis=dict(colorscale="gray", cmin=0, cmax=IMAGE_LEVELS, showscale=False),
        coloraxis2=dict(colorscale="RdBu_r", cmin=-limit * PERTURBATION_LEVELS, cmax=limit * PERTURBATION_LEVELS,
                        colorbar=_perturbation_colorbar(fig, limit, len(attacks))),
        margin=dict(t=TOP_PIXELS, b=BOTTOM_PIXELS), showlegend=bool(sweep.batch_size),
    )
    steps_args = [[_step_data(sweep, i, attacks), {"title.text": _title(sweep, i, attacks)}, moving]
                  for i in range(count)]
    slider = _style.slider([f"{e:g}" for e in sweep.epsilons], steps_args, "update", "epsilon: ", index)
    slider.update(y=0, yanchor="top", pad=dict(t=BOTTOM_PIXELS - 75))  # below the colour bar or the curves' axis
    fig.update_layout(sliders=[slider])
    return fig


def explorer(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str]):
    """Live attacks for JupyterLab: pick the image, the budget, the attack and PGD's steps.

    Args:
        model: the classifier, as for :func:`compute`.
        images (Tensor[N, C, H, W]): images in [0, 1] to pick from.
        labels (Tensor[N]): their true classes.
        class_names: one name per class.

    Returns:
        An ``ipywidgets.VBox``; when a control changes it reruns :func:`compute` on the
        chosen image for epsilons ``[0, epsilon]`` and redraws :func:`figure` at that
        epsilon, one row for the chosen attack.
    """
    import ipywidgets as widgets
    from IPython.display import display

    images = check_tensor(images, "images", "[N, C, H, W]")
    labels = check_labels(labels, "labels", len(images), len(class_names))
    index = widgets.IntSlider(value=0, min=0, max=len(images) - 1, description="image", continuous_update=False)
    epsilon = widgets.FloatSlider(value=0.01, min=0.0, max=0.05, step=0.0025, description="epsilon",
                                  readout_format=".4f", continuous_update=False)
    attack = widgets.ToggleButtons(options=list(ATTACKS), value="PGD", description="attack")
    steps = widgets.IntSlider(value=10, min=1, max=50, description="PGD steps", continuous_update=False)
    output = widgets.Output()

    def redraw(*_) -> None:
        budgets = [0.0] if epsilon.value == 0 else [0.0, epsilon.value]
        sweep = compute(model, images[index.value], int(labels[index.value]), budgets, class_names, steps.value)
        output.clear_output(wait=True)
        with output:
            display(figure(sweep, len(budgets) - 1, (attack.value,)))

    for control in (index, epsilon, attack, steps):
        control.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox([index, epsilon]), widgets.HBox([attack, steps]), output])
