"""Grad-CAM viewer: every slider step draws the maps cvprep.interpret computes for that image,
class and layer, the titles name the true and the predicted class with the softmax
probability, the model is left as it was, bad arguments are named, and the explorer
explains what its dropdowns select. A tiny seeded SmallCNN on 16 x 16 images."""

import base64
import copy
import io
import re

import ipywidgets
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from cvprep.classifier import SmallCNN
from cvprep.interpret import grad_cam, saliency
from cvprep.widgets import grad_cam_viewer as widget

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny tensors: see conftest.py

CLASSES = ("ring", "block", "wedge")
N, SIZE = 4, 16
NATIVE = {"stage 1": 8, "stage 2": 4, "stage 3": 2}  # 16 px halved by each stage's 2x2 max pool
TITLE = re.compile(r"Image (\d+): true class (\w+), predicted (\w+) \(p = ([0-9.]+), (right|wrong)\)")


def tiny_model() -> SmallCNN:
    torch.manual_seed(0)
    model = SmallCNN(num_classes=3, widths=(2, 3, 4))
    with torch.no_grad():  # running statistics that differ from a fresh BatchNorm's, so eval mode matters
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
    return model.eval()


def layers_of(model: SmallCNN) -> dict[str, nn.Module]:
    return {f"stage {i + 1}": stage for i, stage in enumerate(model.features)}


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def images():
    return torch.rand(N, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def labels(model, images):
    """Images 0 and 1 labelled as predicted, 2 and 3 not: both kinds of title occur."""
    predicted = model(images).argmax(1)
    return torch.cat([predicted[:2], (predicted[2:] + 1) % 3])


@pytest.fixture(scope="module")
def data(model, images, labels):
    return widget.compute(model, layers_of(model), images, labels, CLASSES)


def upsampled(native: np.ndarray) -> np.ndarray:
    """A native-resolution map as grad_cam returns it: bilinear to 16 x 16, then peak 1."""
    big = F.interpolate(torch.as_tensor(native, dtype=torch.float64)[None, None], size=(SIZE, SIZE),
                        mode="bilinear", align_corners=False)[0, 0].numpy()
    return big / big.max() if big.max() > 0 else big


def decoded(uri: str) -> np.ndarray:
    prefix = "data:image/png;base64,"
    assert uri.startswith(prefix)
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri[len(prefix):]))))


def test_stored_maps_are_cvprep_interprets_at_the_layers_resolution(model, images, data):
    assert data.layer_names == tuple(NATIVE) and data.class_names == CLASSES
    for index, (name, layer) in enumerate(layers_of(model).items()):
        assert data.cams[index].shape == (N, 3, NATIVE[name], NATIVE[name])
        assert data.cams[index].max() == pytest.approx(1.0)  # each map is divided by its own peak
        full = data.cam_at_input_resolution(index)
        for k in range(3):
            direct = grad_cam(model, layer, images, torch.full((N,), k)).numpy()
            np.testing.assert_allclose(full[:, k], direct, atol=1e-5)
            np.testing.assert_allclose(np.stack([upsampled(m) for m in data.cams[index][:, k]]), direct, atol=1e-5)
    for k in range(3):
        np.testing.assert_allclose(data.saliency[:, k], saliency(model, images, torch.full((N,), k)).numpy(),
                                   atol=1e-6)
    # the comparisons above are not between empty maps
    assert all((cams.reshape(N * 3, -1).max(1) > 0).mean() >= 0.5 for cams in data.cams)


def test_every_slider_step_draws_its_images_maps(model, images, data):
    fig = widget.figure(data, image=1)
    slider = fig.layout.sliders[0]
    assert slider.active == 1 and len(slider.steps) == N
    assert [s.label for s in slider.steps] == [f"{n}: {CLASSES[int(c)]}" for n, c in enumerate(data.labels)]
    overlays = [(name, layer, k) for name, layer in layers_of(model).items() for k in range(3)]
    assert len(fig.data) == len(overlays) + 3
    for n, step in enumerate(slider.steps):
        update, layout, traces = step.args
        assert list(traces) == list(range(len(fig.data)))
        for z, (name, layer, k) in zip(update["z"], overlays):
            z = np.array(z)
            assert z.shape == (NATIVE[name],) * 2
            direct = grad_cam(model, layer, images[n:n + 1], torch.tensor([k]))[0].numpy()
            # 3-decimal values, upsampled and renormalised by a peak of at least ~0.56: error < 2e-3
            np.testing.assert_allclose(upsampled(z), direct, atol=2e-3)
        for z, k in zip(update["z"][len(overlays):], range(3)):
            direct = saliency(model, images[n:n + 1], torch.tensor([k]))[0].numpy()
            np.testing.assert_allclose(np.array(z), np.round(direct, 3), atol=1.001e-3)  # a rounding tie may flip
            assert np.array(z).shape == (SIZE, SIZE)
        # the image under every Grad-CAM cell is image n, 8 bits
        expected = np.round(images[n, 0].numpy() * 255).astype(np.uint8)
        sources = {key: value for key, value in layout.items() if key.startswith("images[")}
        assert sorted(sources) == sorted(f"images[{i}].source" for i in range(len(overlays)))
        for uri in sources.values():
            np.testing.assert_array_equal(decoded(uri), expected)


def test_initial_figure_is_the_active_step(data):
    fig = widget.figure(data, image=2)
    update, layout, _ = fig.layout.sliders[0].steps[2].args
    for trace, z in zip(fig.data, update["z"]):
        assert np.array_equal(np.array(trace.z), np.array(z))
    assert fig.layout.title.text == layout["title.text"]
    assert [a.text for a in fig.layout.annotations[:3]] == [layout[f"annotations[{k}].text"] for k in range(3)]
    assert {image.source for image in fig.layout.images} == {layout["images[0].source"]}


def test_titles_name_true_and_predicted_class_with_softmax_probability(model, images, labels, data):
    probabilities = torch.softmax(model(images).double(), dim=1).detach().numpy()
    fig = widget.figure(data)
    verdicts = []
    for n, step in enumerate(fig.layout.sliders[0].steps):
        layout = step.args[1]
        number, true, predicted, p, verdict = TITLE.fullmatch(layout["title.text"]).groups()
        assert int(number) == n and true == CLASSES[int(labels[n])]
        assert predicted == CLASSES[probabilities[n].argmax()]
        assert float(p) == pytest.approx(probabilities[n].max(), abs=5e-4)
        verdicts.append(verdict)
        for k in range(3):
            text = layout[f"annotations[{k}].text"]
            assert ("true" in text) == (k == labels[n]) and ("predicted" in text) == (k == probabilities[n].argmax())
            assert float(text.split("p = ")[1]) == pytest.approx(probabilities[n, k], abs=5e-4)
    assert verdicts == ["right", "right", "wrong", "wrong"]  # as the labels fixture arranged


def test_layout_squares_untick_and_places_coarse_maps_on_the_pixel_grid(data):
    fig = widget.figure(data)
    assert fig.layout.paper_bgcolor == "white"
    rows = len(NATIVE) + 1
    for axis in range(1, rows * 3 + 1):
        suffix = "" if axis == 1 else str(axis)
        x, y = fig.layout[f"xaxis{suffix}"], fig.layout[f"yaxis{suffix}"]
        assert y.scaleanchor == f"x{suffix}" and x.showticklabels is False and y.showticklabels is False
        assert list(x.range) == [-0.5, SIZE - 0.5] and list(y.range) == [SIZE - 0.5, -0.5]  # y downwards
    for trace in fig.data:
        assert trace.colorscale == widget.go.Heatmap(colorscale="Inferno").colorscale
    # stage 3 is 2 x 2 on a 16 px image: each cell covers 8 pixels, pixels 0..7 centred at 3.5
    stage3 = fig.data[6]
    assert (stage3.x0, stage3.dx, stage3.y0, stage3.dy) == (3.5, 8.0, 3.5, 8.0)
    saliency_trace = fig.data[9]
    assert (saliency_trace.x0, saliency_trace.dx) == (0.0, 1.0) and saliency_trace.opacity == 1
    # every Grad-CAM cell has the image under it, in its own axes
    for image, trace in zip(fig.layout.images, fig.data[:9]):
        assert (image.xref, image.yref) == (trace.xaxis, trace.yaxis) and image.layer == "below"
    assert [fig.layout[f"yaxis{3 * r + 1 if r else ''}"].title.text for r in range(rows)] == [*NATIVE, "saliency"]


def test_panel_shows_one_image_class_and_layer(model, images, data):
    fig = widget.panel(data, 3, 2, "stage 2", number=7)
    layer = layers_of(model)["stage 2"]
    np.testing.assert_allclose(upsampled(np.array(fig.data[0].z)),
                               grad_cam(model, layer, images[3:4], torch.tensor([2]))[0].numpy(), atol=2e-3)
    np.testing.assert_allclose(np.array(fig.data[1].z),
                               np.round(saliency(model, images[3:4], torch.tensor([2]))[0].numpy(), 3), atol=1.001e-3)
    assert TITLE.fullmatch(fig.layout.title.text).group(1) == "7"
    assert "wedge" in fig.layout.annotations[1].text and "stage 2" in fig.layout.annotations[1].text


def hooks(model: nn.Module) -> int:
    kinds = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    return sum(len(getattr(module, kind)) for module in model.modules() for kind in kinds)


def test_the_model_is_left_as_it_was(images, labels):
    model = tiny_model()
    model.train()
    model.features[1].eval()  # a mixed model: each submodule must get its own flag back
    flags = [module.training for module in model.modules()]
    before = copy.deepcopy(model.state_dict())
    data = widget.compute(model, layers_of(model), images, labels, CLASSES)
    assert [module.training for module in model.modules()] == flags
    after = model.state_dict()
    assert all(torch.equal(before[key], after[key]) for key in before)  # batch norm statistics too
    assert hooks(model) == 0 and all(p.grad is None for p in model.parameters())
    # and the maps are those of the model in eval mode
    reference = tiny_model()
    np.testing.assert_allclose(data.saliency[:, 0], saliency(reference, images, torch.zeros(N, dtype=torch.long)),
                               atol=1e-6)


def test_a_failing_layer_leaves_no_hook(model, images, labels):
    with pytest.raises(ValueError, match=r"layers\['head'\] cannot be explained: target_layer must output"):
        widget.compute(model, {"head": model.head}, images, labels, CLASSES)
    assert hooks(model) == 0


@pytest.mark.parametrize("change, error, pattern", [
    (dict(layers={}), ValueError, "layers must name at least one layer"),
    (dict(layers=[None]), TypeError, "layers must be a mapping"),
    (dict(layers={"elsewhere": nn.Conv2d(1, 2, 3)}), ValueError, r"layers\['elsewhere'\] must be a submodule of model"),
    (dict(layers={"x": "features"}), TypeError, r"layers\['x'\] must be a torch.nn.Module"),
    (dict(images=torch.rand(N, SIZE, SIZE)), ValueError, r"images must have shape \[N, C, H, W\]"),
    (dict(images=torch.rand(0, 1, SIZE, SIZE)), ValueError, "images must hold at least one image"),
    (dict(labels=torch.zeros(N - 1, dtype=torch.long)), ValueError, r"labels must have shape \[4\]"),
    (dict(labels=torch.full((N,), 3)), ValueError, r"labels must be class indices in \[0, 3\)"),
    (dict(class_names=CLASSES[:2]), ValueError, "class_names must name each of the model's 3 outputs, got 2"),
    (dict(class_names="abc"), TypeError, "class_names must be a sequence of str"),
])
@pytest.mark.parametrize("call", ["compute", "explorer"])
def test_bad_arguments_are_named(model, images, labels, call, change, error, pattern):
    arguments = dict(model=model, layers=layers_of(model), images=images, labels=labels, class_names=CLASSES) | change
    with pytest.raises(error, match=pattern):
        getattr(widget, call)(**arguments)


@pytest.mark.parametrize("call, error, pattern", [
    (lambda d: widget.figure(d, image=N), ValueError, r"image must be in \[0, 4\)"),
    (lambda d: widget.figure(d, image=-1), ValueError, "image must be >= 0"),
    (lambda d: widget.figure("data"), TypeError, "data must be a GradCamSet"),
    (lambda d: widget.panel(d, 0, 3, "stage 1"), ValueError, r"target must be in \[0, 3\)"),
    (lambda d: widget.panel(d, 0, 0, "stage 9"), ValueError, "layer must be one of"),
    (lambda d: widget.panel(d, N, 0, "stage 1"), ValueError, r"image must be in \[0, 4\)"),
])
def test_bad_requests_to_the_builders_are_named(data, call, error, pattern):
    with pytest.raises(error, match=pattern):
        call(data)


def test_explorer_explains_what_the_dropdowns_select(monkeypatch, model, images, labels):
    computed, drawn = [], []
    real_compute, real_panel = widget.compute, widget.panel

    def spy_compute(model_, layers, images_, labels_, class_names):
        computed.append((dict(layers), images_, labels_))
        return real_compute(model_, layers, images_, labels_, class_names)

    def spy_panel(data, image, target, layer, number=None):
        drawn.append((image, target, layer, number, data.layer_names))
        return real_panel(data, image, target, layer, number)

    monkeypatch.setattr(widget, "compute", spy_compute)
    monkeypatch.setattr(widget, "panel", spy_panel)
    layers = layers_of(model)
    box = widget.explorer(model, layers, images, labels, CLASSES)
    assert isinstance(box, ipywidgets.VBox)
    image, target, layer = box.children[0].children
    assert [value for _, value in image.options] == list(range(N)) and layer.options == tuple(NATIVE)
    image.value = 2
    target.value = 0
    layer.value = "stage 1"
    first_class = int(labels[0])
    assert [d[:4] for d in drawn] == [(0, first_class, "stage 3", 0), (0, first_class, "stage 3", 2),
                                      (0, 0, "stage 3", 2), (0, 0, "stage 1", 2)]
    assert [d[4] for d in drawn] == [("stage 3",)] * 3 + [("stage 1",)]
    for (chosen, image_batch, label_batch), n, name in zip(computed, (0, 2, 2, 2), ("stage 3",) * 3 + ("stage 1",)):
        assert list(chosen) == [name] and chosen[name] is layers[name]  # only the chosen layer is explained
        assert torch.equal(image_batch, images[n:n + 1]) and torch.equal(label_batch, labels[n:n + 1])
