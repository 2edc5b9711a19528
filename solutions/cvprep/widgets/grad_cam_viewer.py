"""Grad-CAM viewer: where a trained classifier finds the evidence for each class.

:func:`compute` explains a handful of test images once: for every image, every class and
every chosen layer the Grad-CAM map of :mod:`cvprep.interpret`, and per image and class
the gradient saliency map, with the model's softmax probabilities. :func:`figure` lays
one image out as a grid -- a column per class, a row per layer with the Grad-CAM map over
the image, and a last row of saliency maps -- with a slider over the images; every step
is precomputed, so the static site needs no kernel. :func:`explorer` is the live version
for JupyterLab: pick the image, the class and the layer, and one map of each kind is
computed on demand and drawn by :func:`panel`.

Grad-CAM maps are kept at the layer's own resolution (8 x 8 for the chapter model's last
stage): :func:`cvprep.interpret.grad_cam` upsamples exactly this map bilinearly and
divides by the new maximum, and the figures let plotly smooth the coarse cells in the
browser instead of shipping 64 x 64 values per map. This keeps a figure of 6 images,
4 classes and 3 layers well under the page budget; saliency maps are at input resolution.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import Tensor, nn

from cvprep._torch_validation import check_labels, check_module, check_tensor
from cvprep._validation import check_choice, check_int
from cvprep.classifier import evaluating
from cvprep.interpret import _activations_and_gradients, _cam, _normalise, _upsample, saliency
from cvprep.widgets import _style

HEAT = "Inferno"  # colour-blind safe, and dark-to-bright reads as "more evidence"
OVERLAY_OPACITY = 0.55  # enough heat to read, enough image to see what it lies on
DECIMALS = 3  # map values in the figures: enough for the eye, a third of the JSON of full floats
CELL_PX = 150  # height of one grid row in pixels


@dataclass(frozen=True)
class GradCamSet:
    """Every map :func:`figure` can show, as NumPy arrays (``L`` layers, ``K`` classes).

    Attributes:
        images (ndarray[N, C, H, W]): the explained images, float32 as given.
        labels (ndarray[N]): true class of each image, int64.
        probabilities (ndarray[N, K]): the model's softmax probabilities.
        class_names (tuple[str, ...]): ``K`` names, in the model's output order.
        layer_names (tuple[str, ...]): ``L`` layer names, the keys of ``layers``.
        cams (tuple[ndarray, ...]): per layer, ``ndarray[N, K, h, w]`` float32: the
            Grad-CAM map of image ``n`` for class ``k`` at that layer's resolution
            ``h x w``, divided by its maximum (an all-zero map stays zero).
        saliency (ndarray[N, K, H, W]): :func:`cvprep.interpret.saliency` for each class.
    """

    images: np.ndarray
    labels: np.ndarray
    probabilities: np.ndarray
    class_names: tuple[str, ...]
    layer_names: tuple[str, ...]
    cams: tuple[np.ndarray, ...]
    saliency: np.ndarray

    def cam_at_input_resolution(self, layer: int) -> np.ndarray:
        """The maps of layer ``layer`` as :func:`cvprep.interpret.grad_cam` returns them,
        upsampled bilinearly to ``H x W`` and divided by their maximum; ndarray[N, K, H, W]."""
        cams = torch.from_numpy(self.cams[layer])  # [N, K, h, w]
        n, k = cams.shape[:2]
        maps = _normalise(_upsample(cams.flatten(0, 1), tuple(self.images.shape[2:])))  # [N * K, H, W]
        return maps.reshape(n, k, *self.images.shape[2:]).numpy()


# Checks and computation -------------------------------------------------------------------

def _check_layers(model: nn.Module, layers: object) -> dict[str, nn.Module]:
    if not isinstance(layers, Mapping):
        raise TypeError(f"layers must be a mapping name -> submodule of model, got {type(layers).__name__}")
    if not layers:
        raise ValueError("layers must name at least one layer, got an empty mapping")
    for name, layer in layers.items():
        if not isinstance(name, str):
            raise TypeError(f"layers must have str names as keys, got {type(name).__name__} {name!r}")
        check_module(layer, f"layers[{name!r}]")
        if not any(module is layer for module in model.modules()):
            raise ValueError(f"layers[{name!r}] must be a submodule of model (one of model.modules()), "
                             f"got a {type(layer).__name__} that model does not contain")
    return dict(layers)


def _checked(model, layers, images, labels, class_names) -> tuple[dict[str, nn.Module], Tensor]:
    """Validate the arguments shared by :func:`compute` and :func:`explorer`; return the layers
    and the model's logits [N, K] (eval mode, no gradient)."""
    model = check_module(model, "model")
    layers = _check_layers(model, layers)
    images = check_tensor(images, "images", "[N, C, H, W]")
    if len(images) == 0:
        raise ValueError("images must hold at least one image, got shape " + str(tuple(images.shape)))
    with evaluating(model), torch.no_grad():
        logits = model(images)  # [N, K]
    if logits.ndim != 2 or len(logits) != len(images):
        raise ValueError(f"model(images) must be logits [N, num_classes], got shape {tuple(logits.shape)}")
    if isinstance(class_names, str) or not isinstance(class_names, Sequence) \
            or not all(isinstance(name, str) for name in class_names):
        raise TypeError(f"class_names must be a sequence of str, got {class_names!r}")
    if len(class_names) != logits.shape[1]:
        raise ValueError(f"class_names must name each of the model's {logits.shape[1]} outputs, "
                         f"got {len(class_names)} names")
    check_labels(labels, "labels", len(images), logits.shape[1])
    return layers, logits


def _layer_cams(model: nn.Module, layer: nn.Module, name: str, images: Tensor, num_classes: int) -> np.ndarray:
    """Grad-CAM at the layer's resolution for every class, each map divided by its maximum; [N, K, h, w]."""
    maps = []
    for target in range(num_classes):
        targets = torch.full((len(images),), target, dtype=torch.long)
        try:
            activations, gradients = _activations_and_gradients(model, layer, images, targets)
        except ValueError as error:  # say which entry of layers could not be explained
            raise ValueError(f"layers[{name!r}] cannot be explained: {error}") from error
        maps.append(_normalise(_cam(activations, gradients)))  # [N, h, w]
    return torch.stack(maps, dim=1).numpy().astype(np.float32)


def compute(model: nn.Module, layers: Mapping[str, nn.Module], images: Tensor, labels: Tensor,
            class_names: Sequence[str]) -> GradCamSet:
    """Grad-CAM for every image, class and layer, and saliency for every image and class.

    The model runs in eval mode (as for any inference: in training mode batch norm would
    mix the images of the batch and update its statistics); afterwards every submodule
    has its own training flag back, and parameters, buffers and hooks are as they were.
    Cost: ``K * (L + 1)`` forward and backward passes over the ``N`` images.

    Args:
        model (nn.Module): a classifier, ``model(images)`` -> logits ``Tensor[N, K]``.
        layers (Mapping[str, nn.Module]): display name -> submodule of ``model`` whose
            output ``Tensor[N, k, h, w]`` is explained, e.g. ``{"stage 3": model.features[2]}``.
        images (Tensor[N, C, H, W]): float images, ``N >= 1``.
        labels (Tensor[N]): true class of each image (integers in ``[0, K)``).
        class_names (Sequence[str]): one name per model output.

    Returns:
        GradCamSet: the maps, with Grad-CAM at each layer's resolution.

    Raises:
        TypeError: ``model`` or a layer is not an ``nn.Module``, ``layers`` is not a
            mapping with str keys, ``images`` not a float tensor, ``labels`` not an integer
            tensor, ``class_names`` not a sequence of str.
        ValueError: ``layers`` is empty or holds a module that is not part of ``model``
            (or one that does not output a feature map once per pass), ``images`` is not
            [N, C, H, W] with ``N >= 1``, ``labels`` has the wrong length or a class out of
            range, ``class_names`` does not have one name per model output.
    """
    layers, logits = _checked(model, layers, images, labels, class_names)
    num_classes = logits.shape[1]
    images = images.detach()
    with evaluating(model):
        cams = tuple(_layer_cams(model, layer, name, images, num_classes) for name, layer in layers.items())
        saliencies = [saliency(model, images, torch.full((len(images),), k, dtype=torch.long))
                      for k in range(num_classes)]
    return GradCamSet(
        images=images.numpy().astype(np.float32),
        labels=labels.numpy().astype(np.int64),
        probabilities=torch.softmax(logits.double(), dim=1).numpy(),
        class_names=tuple(class_names),
        layer_names=tuple(layers),
        cams=cams,
        saliency=torch.stack(saliencies, dim=1).numpy().astype(np.float32),
    )


# Drawing ----------------------------------------------------------------------------------

def image_uri(image: np.ndarray) -> str:
    """A PNG data URI of one image ``ndarray[C, H, W]`` (1 or 3 channels; others are averaged).

    Images with values in [0, 1] are drawn as they are; others are stretched from their
    minimum to their maximum. A PNG is far smaller in the page than the pixel values.
    """
    from PIL import Image  # torchvision's dependency, so always installed alongside torch

    pixels = image if image.shape[0] in (1, 3) else image.mean(axis=0, keepdims=True)
    low, high = float(pixels.min()), float(pixels.max())
    if low < 0 or high > 1:
        pixels = (pixels - low) / (high - low if high > low else 1.0)
    pixels = np.round(pixels * 255).astype(np.uint8).transpose(1, 2, 0)  # [H, W, C]
    buffer = io.BytesIO()
    Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels).save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _round(values: np.ndarray) -> list:
    return np.round(values.astype(np.float64), DECIMALS).tolist()


def _heat(z: np.ndarray, size: tuple[int, int], overlay: bool, scale: bool = False) -> go.Heatmap:
    """A map on the image's pixel grid (pixel ``i`` centred at ``i``), however coarse ``z`` is.

    A cell of an ``h x w`` map covers ``H / h x W / w`` pixels, placed as bilinear upsampling
    with ``align_corners=False`` places it; ``zsmooth`` interpolates between cell centres.
    """
    (height, width), (h, w) = size, z.shape
    label = "Grad-CAM" if overlay else "saliency"
    return go.Heatmap(z=_round(z), x0=width / w / 2 - 0.5, dx=width / w, y0=height / h / 2 - 0.5, dy=height / h,
                      zmin=0, zmax=1, colorscale=HEAT, zsmooth="best", opacity=OVERLAY_OPACITY if overlay else 1,
                      showscale=scale, colorbar=dict(title="map value", len=0.5, thickness=12),
                      hovertemplate=f"{label} %{{z:.2f}}<extra></extra>")


def _backdrop(uri: str, axis: int, size: tuple[int, int]) -> dict:
    """A layout image filling subplot ``axis`` (1-based) under its traces."""
    suffix = "" if axis == 1 else str(axis)
    return dict(source=uri, xref=f"x{suffix}", yref=f"y{suffix}", x=-0.5, y=-0.5, sizex=size[1], sizey=size[0],
                xanchor="left", yanchor="top", sizing="stretch", layer="below")


def _frame_axes(fig: go.Figure, size: tuple[int, int], cells: int) -> None:
    """Square cells showing exactly the image, y downwards, no ticks."""
    fig.update_xaxes(range=[-0.5, size[1] - 0.5], showticklabels=False, ticks="", showgrid=False, zeroline=False,
                     constrain="domain")
    fig.update_yaxes(range=[size[0] - 0.5, -0.5], showticklabels=False, ticks="", showgrid=False, zeroline=False,
                     constrain="domain")
    for axis in range(1, cells + 1):
        fig.layout[f"yaxis{axis if axis > 1 else ''}"].scaleanchor = f"x{axis if axis > 1 else ''}"


def _title(data: GradCamSet, image: int, number: int | None = None) -> str:
    """``number`` (default ``image``) is the image's number to print."""
    true, predicted = int(data.labels[image]), int(data.probabilities[image].argmax())
    names, verdict = data.class_names, "right" if true == predicted else "wrong"
    return (f"Image {image if number is None else number}: true class {names[true]}, predicted {names[predicted]} "
            f"(p = {data.probabilities[image, predicted]:.3f}, {verdict})")


def _column_titles(data: GradCamSet, image: int) -> list[str]:
    true, predicted = int(data.labels[image]), int(data.probabilities[image].argmax())
    titles = []
    for k, name in enumerate(data.class_names):
        roles = [role for role, index in (("true", true), ("predicted", predicted)) if index == k]
        head = f"<b>{name} ({', '.join(roles)})</b>" if roles else name
        titles.append(f"{head}<br>p = {data.probabilities[image, k]:.3f}")
    return titles


def _check_image(data: object, image: object) -> int:
    if not isinstance(data, GradCamSet):
        raise TypeError(f"data must be a GradCamSet from compute(), got {type(data).__name__}")
    image = check_int(image, "image", 0)
    if image >= len(data.images):
        raise ValueError(f"image must be in [0, {len(data.images)}), got {image}")
    return image


def figure(data: GradCamSet, image: int = 0) -> go.Figure:
    """A grid for one image: a column per class; per layer a row of Grad-CAM maps over the
    image; a last row of saliency maps. A slider switches the image (every map, the image,
    the column titles and the title).

    Column titles give each class's probability and mark the true and the predicted
    class; the title names both and the predicted probability. Map values are rounded
    to 3 decimals; Grad-CAM is drawn at the layer's resolution, smoothed by plotly.

    Args:
        data: from :func:`compute`.
        image: the image shown first.

    Raises:
        TypeError: ``data`` is not a GradCamSet, ``image`` not an int.
        ValueError: ``image`` is not in ``[0, N)``.
    """
    image = _check_image(data, image)
    rows, cols, size = len(data.layer_names) + 1, len(data.class_names), data.images.shape[2:]
    fig = make_subplots(rows=rows, cols=cols, column_titles=_column_titles(data, image), horizontal_spacing=0.02,
                        vertical_spacing=0.02)
    overlays = [(layer, k) for layer in range(rows - 1) for k in range(cols)]  # row by row, as the axes
    for layer, k in overlays:
        fig.add_trace(_heat(data.cams[layer][image, k], size, overlay=True, scale=(layer, k) == (0, 0)),
                      row=layer + 1, col=k + 1)
    for k in range(cols):
        fig.add_trace(_heat(data.saliency[image, k], size, overlay=False), row=rows, col=k + 1)
    uris = [image_uri(picture) for picture in data.images]
    for axis in range(1, len(overlays) + 1):
        fig.add_layout_image(_backdrop(uris[image], axis, size))
    for row, name in enumerate([*data.layer_names, "saliency"], start=1):
        fig.update_yaxes(title_text=name, row=row, col=1)
    _style.base_layout(fig, _title(data, image), height=CELL_PX * rows + 200)
    fig.update_layout(margin=dict(t=110))  # room for the title above two-line column titles
    _frame_axes(fig, size, rows * cols)

    steps_args = []
    for n in range(len(data.images)):
        z = [_round(data.cams[layer][n, k]) for layer, k in overlays] + [_round(s) for s in data.saliency[n]]
        layout = {"title.text": _title(data, n)}
        layout |= {f"annotations[{k}].text": text for k, text in enumerate(_column_titles(data, n))}
        layout |= {f"images[{i}].source": uris[n] for i in range(len(overlays))}
        steps_args.append([{"z": z}, layout, list(range(len(fig.data)))])
    labels = [f"{n}: {data.class_names[int(data.labels[n])]}" for n in range(len(data.images))]
    fig.update_layout(sliders=[_style.slider(labels, steps_args, "update", "image ", image)])
    return fig


def panel(data: GradCamSet, image: int, target: int, layer: str, number: int | None = None) -> go.Figure:
    """One image, its Grad-CAM map for class ``target`` at ``layer``, and its saliency map, side by side.

    ``number`` is the image's number in the title (default ``image``): the explorer
    explains one image at a time and gives its place in the whole set.

    Raises:
        TypeError: ``data`` is not a GradCamSet, ``image`` or ``target`` not an int.
        ValueError: ``image`` or ``target`` out of range, ``layer`` not in ``data.layer_names``.
    """
    image = _check_image(data, image)
    target = check_int(target, "target", 0)
    if target >= len(data.class_names):
        raise ValueError(f"target must be in [0, {len(data.class_names)}), got {target}")
    index = data.layer_names.index(check_choice(layer, "layer", data.layer_names))
    size, name = data.images.shape[2:], data.class_names[target]
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.03, subplot_titles=(
        "image", f"Grad-CAM for {name} at {layer}", f"saliency for {name}"))
    fig.add_trace(_heat(data.cams[index][image, target], size, overlay=True, scale=True), row=1, col=2)
    fig.add_trace(_heat(data.saliency[image, target], size, overlay=False), row=1, col=3)
    uri = image_uri(data.images[image])
    for axis in (1, 2):
        fig.add_layout_image(_backdrop(uri, axis, size))
    _style.base_layout(fig, _title(data, image, number), height=340)
    _frame_axes(fig, size, 3)
    return fig


def explorer(model: nn.Module, layers: Mapping[str, nn.Module], images: Tensor, labels: Tensor,
             class_names: Sequence[str]):
    """Live Grad-CAM for JupyterLab: dropdowns for the image, the class and the layer.

    Arguments as for :func:`compute`. Each change computes the maps of the chosen image at
    the chosen layer (:func:`compute` on that one image) and draws them with :func:`panel`.

    Returns:
        An ``ipywidgets.VBox``.

    Raises:
        TypeError, ValueError: as :func:`compute`, checked before anything is drawn.
    """
    import ipywidgets as widgets
    from IPython.display import display

    layers, _ = _checked(model, layers, images, labels, class_names)
    picks = [(f"{n}: {class_names[int(label)]}", n) for n, label in enumerate(labels)]
    image = widgets.Dropdown(options=picks, value=0, description="image")
    target = widgets.Dropdown(options=[(name, k) for k, name in enumerate(class_names)],
                              value=int(labels[0]), description="class")
    layer = widgets.Dropdown(options=list(layers), value=list(layers)[-1], description="layer")
    output = widgets.Output()

    def redraw(*_) -> None:
        n = image.value
        data = compute(model, {layer.value: layers[layer.value]}, images[n:n + 1], labels[n:n + 1], class_names)
        output.clear_output(wait=True)
        with output:
            display(panel(data, 0, target.value, layer.value, n))

    for control in (image, target, layer):
        control.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox([image, target, layer]), output])
