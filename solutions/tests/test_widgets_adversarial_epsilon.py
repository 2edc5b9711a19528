"""Adversarial-epsilon slider: every step is what cvprep.adversarial's fgsm and pgd return for
that epsilon (and, on a two-class linear model, what the closed form says), the budget and
the range hold, the accuracy curves are direct counts, and the figure draws each step."""

import ipywidgets
import numpy as np
import pytest
import torch
from torch import nn

from cvprep.adversarial import fgsm, pgd
from cvprep.classifier import SmallCNN
from cvprep.widgets import adversarial_epsilon as widget

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny tensors: see conftest.py

NAMES = ("ring", "block", "wedge")
EPSILONS = (0.0, 0.02, 0.05, 0.1)
STEPS, SEED = 4, 3


def tiny_cnn() -> nn.Module:
    """A fixed-weight conv net with batch norm, [N, 1, 16, 16] -> logits [N, 3], in eval mode.

    Not an untrained SmallCNN: after its global average pooling the logits of random
    weights barely depend on the input, and no small budget changes a prediction.
    """
    with torch.random.fork_rng():  # its own weights; the global generator is left alone
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Flatten(), nn.Linear(4 * 8 * 8, 3))
    return model.eval()


MODEL = tiny_cnn()
# 12 images [1, 16, 16] in [0, 1], about 15 % of the values exactly 0 or 1 (so clipping happens)
IMAGES = (torch.rand(12, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 1.3 - 0.15).clamp(0.0, 1.0)
# labels: the untrained model's own predictions, except every fourth: clean accuracy 9 / 12
with torch.no_grad():
    LABELS = MODEL(IMAGES).argmax(1)
LABELS[3::4] = (LABELS[3::4] + 1) % 3
IMAGE, LABEL = IMAGES[0], int(LABELS[0])


def softmax(model, x):
    with torch.no_grad():
        return torch.softmax(model(x), dim=1)


def direct(epsilon: float, images=IMAGE[None], labels=torch.tensor([LABEL]), steps=STEPS, alpha=None):
    """FGSM and PGD images for one epsilon, called straight from cvprep.adversarial."""
    if epsilon == 0:
        return images, images
    alpha = 2.5 * epsilon / steps if alpha is None else alpha
    generator = torch.Generator().manual_seed(SEED)
    return fgsm(MODEL, images, labels, epsilon), pgd(MODEL, images, labels, epsilon, alpha, steps, generator=generator)


@pytest.fixture(scope="module")
def sweep():
    return widget.compute(MODEL, IMAGE, LABEL, EPSILONS, NAMES, pgd_steps=STEPS, seed=SEED, batch=(IMAGES, LABELS))


# compute ---------------------------------------------------------------------------------

def test_every_step_is_what_fgsm_and_pgd_return_for_that_epsilon(sweep):
    np.testing.assert_array_equal(sweep.epsilons, EPSILONS)
    for i, epsilon in enumerate(EPSILONS):
        for steps, adversarial in zip((sweep.fgsm, sweep.pgd), direct(epsilon)):
            np.testing.assert_array_equal(steps.images[i], adversarial[0].numpy())
            np.testing.assert_allclose(steps.probabilities[i], softmax(MODEL, adversarial)[0].numpy(), atol=1e-6)
    np.testing.assert_allclose(sweep.pgd_alphas, [2.5 * e / STEPS for e in EPSILONS])
    # the attacks do move the image, and PGD (random start, 4 steps) lands elsewhere than FGSM
    assert np.abs(sweep.fgsm.perturbations[-1]).max() == pytest.approx(0.1)
    assert not np.array_equal(sweep.fgsm.images[-1], sweep.pgd.images[-1])


def test_a_given_pgd_step_size_is_used_at_every_epsilon():
    swept = widget.compute(MODEL, IMAGE, LABEL, EPSILONS, NAMES, pgd_steps=2, pgd_alpha=0.01, seed=SEED)
    np.testing.assert_array_equal(swept.pgd_alphas, [0.01] * len(EPSILONS))
    for i, epsilon in enumerate(EPSILONS[1:], start=1):
        _, expected = direct(epsilon, steps=2, alpha=0.01)
        np.testing.assert_array_equal(swept.pgd.images[i], expected[0].numpy())


def test_fgsm_on_a_linear_model_is_the_closed_form():
    # Two classes, logits W x + b. The input gradient of CE(., y) is sum_k (p_k - [k = y]) w_k
    # = p_o (w_o - w_y) (o: the other class, p_y - 1 = -p_o), so its sign is sign(w_o - w_y)
    # wherever x is: FGSM and a converged PGD both step to the corner x + eps sign(w_o - w_y),
    # no clipping since x stays in [0.2, 0.8] and eps <= 0.1.
    g = torch.Generator().manual_seed(5)
    weights, bias = torch.randn(2, 36, generator=g), torch.randn(2, generator=g)
    linear = nn.Sequential(nn.Flatten(), nn.Linear(36, 2))
    with torch.no_grad():
        linear[1].weight.copy_(weights)
        linear[1].bias.copy_(bias)
    image = 0.2 + 0.6 * torch.rand(1, 6, 6, generator=g)
    epsilons = (0.0, 0.05, 0.1)
    swept = widget.compute(linear, image, 1, epsilons, ("zero", "one"), pgd_steps=8)
    w, b, x = weights.double().numpy(), bias.double().numpy(), image.double().numpy().ravel()
    for i, epsilon in enumerate(epsilons):
        delta = epsilon * np.sign(w[0] - w[1])
        logits = w @ (x + delta) + b
        expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        for steps in (swept.fgsm, swept.pgd):
            np.testing.assert_allclose(steps.perturbations[i].ravel(), delta, atol=1e-6)
            np.testing.assert_allclose(steps.probabilities[i], expected, atol=1e-5)


def test_epsilon_zero_is_the_clean_image_and_its_softmax(sweep):
    clean = softmax(MODEL, IMAGE[None])[0].numpy()
    np.testing.assert_allclose(sweep.clean_probabilities, clean, atol=1e-6)
    np.testing.assert_array_equal(sweep.image, IMAGE.numpy())
    for steps in (sweep.fgsm, sweep.pgd):
        np.testing.assert_array_equal(steps.images[0], IMAGE.numpy())
        assert not steps.perturbations[0].any()
        np.testing.assert_allclose(steps.probabilities[0], clean, atol=1e-6)


def test_perturbations_keep_the_budget_and_images_the_range(sweep):
    for steps in (sweep.fgsm, sweep.pgd):
        np.testing.assert_array_equal(steps.perturbations, steps.images - sweep.image[None])
        assert steps.images.min() >= 0 and steps.images.max() <= 1
        np.testing.assert_allclose(steps.probabilities.sum(axis=1), 1.0, atol=1e-6)
        for i, epsilon in enumerate(EPSILONS):
            assert np.abs(steps.perturbations[i]).max() <= epsilon + 1e-6
    # clipping happened: a pixel at 0 pushed down stays at 0, so some perturbation is below the budget
    assert (np.abs(sweep.fgsm.perturbations[-1]) < 0.1 - 1e-6).any()


def test_accuracy_curves_count_correct_predictions_under_each_attack(sweep):
    clean_accuracy = (softmax(MODEL, IMAGES).argmax(1) == LABELS).double().mean().item()
    assert clean_accuracy == 0.75  # as the labels were made
    assert sweep.fgsm.accuracy[0] == sweep.pgd.accuracy[0] == pytest.approx(clean_accuracy)
    assert sweep.batch_size == len(IMAGES)
    for i, epsilon in enumerate(EPSILONS):
        for steps, adversarial in zip((sweep.fgsm, sweep.pgd), direct(epsilon, IMAGES, LABELS)):
            right = (softmax(MODEL, adversarial).argmax(1) == LABELS).double().mean().item()
            assert steps.accuracy[i] == pytest.approx(right)
    assert sweep.pgd.accuracy[-1] < clean_accuracy  # the attack does something on this batch


def test_pgd_is_seeded_and_no_batch_means_no_curves(sweep):
    again = widget.compute(MODEL, IMAGE, LABEL, EPSILONS, NAMES, pgd_steps=STEPS, seed=SEED)
    np.testing.assert_array_equal(again.pgd.images, sweep.pgd.images)
    assert again.pgd.accuracy is None and again.batch_size == 0
    other = widget.compute(MODEL, IMAGE, LABEL, EPSILONS, NAMES, pgd_steps=STEPS, seed=SEED + 1)
    np.testing.assert_array_equal(other.fgsm.images, sweep.fgsm.images)
    assert not np.array_equal(other.pgd.images[1:], sweep.pgd.images[1:])  # another random start


def test_the_model_is_evaluated_in_eval_mode_and_left_as_it_was(sweep):
    model = tiny_cnn().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    swept = widget.compute(model, IMAGE, LABEL, EPSILONS, NAMES, pgd_steps=STEPS, seed=SEED)
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # no running-stat updates
    np.testing.assert_array_equal(swept.fgsm.images, sweep.fgsm.images)  # the same as in eval mode
    np.testing.assert_array_equal(swept.pgd.probabilities, sweep.pgd.probabilities)


def test_the_sweep_is_read_only(sweep):
    with pytest.raises(ValueError, match="read-only"):
        sweep.fgsm.images[0, 0, 0, 0] = 0.5


# figure ----------------------------------------------------------------------------------

def test_every_slider_step_draws_its_epsilon(sweep):
    fig = widget.figure(sweep, epsilon_index=2)
    slider = fig.layout.sliders[0]
    assert slider.active == 2 and [s.label for s in slider.steps] == ["0", "0.02", "0.05", "0.1"]
    for i, step in enumerate(slider.steps):
        update, layout, traces = step.args
        assert list(traces) == [0, 1, 2, 3, 4, 5, 8]  # images, perturbations, bars; the accuracy marker
        for row, steps in enumerate((sweep.fgsm, sweep.pgd)):
            image, perturbation = (np.array(z) for z in update["z"][3 * row:3 * row + 2])
            np.testing.assert_allclose(image / 1000, steps.images[i, 0], atol=0.5e-3)
            np.testing.assert_allclose(perturbation / 10000, steps.perturbations[i, 0], atol=0.5e-4)
            np.testing.assert_allclose(update["x"][3 * row + 2], steps.probabilities[i], atol=0.5e-4)
            assert update["y"][3 * row + 2] == list(NAMES)
            predicted = NAMES[int(np.argmax(steps.probabilities[i]))]
            assert f"{steps.name}{f' ({STEPS} steps)' if steps.name == 'PGD' else ''} → {predicted}" \
                in layout["title.text"]
        assert update["x"][-1] == [EPSILONS[i]] * 2
        assert update["y"][-1] == [sweep.fgsm.accuracy[i], sweep.pgd.accuracy[i]]
        assert layout["title.text"].startswith(f"epsilon = {EPSILONS[i]:g} ")
    # the figure opens on the active step
    data, layout, _ = slider.steps[2].args
    np.testing.assert_array_equal(np.array(fig.data[1].z), np.array(data["z"][1]))
    np.testing.assert_array_equal(fig.data[5].x, data["x"][5])
    assert list(fig.data[8].x) == data["x"][-1] and fig.layout.title.text == layout["title.text"]


def test_scales_are_fixed_and_the_true_class_stands_out(sweep):
    fig = widget.figure(sweep)
    assert (fig.layout.coloraxis.cmin, fig.layout.coloraxis.cmax) == (0, 1000)  # images: 0..1
    assert (fig.layout.coloraxis2.cmin, fig.layout.coloraxis2.cmax) == (-1000, 1000)  # +-0.1 in 1e-4 units
    assert list(fig.layout.coloraxis2.colorbar.ticktext) == ["-0.1", "0", "+0.1"]
    for bars in (fig.data[2], fig.data[5]):
        colors = list(bars.marker.color)
        assert colors[LABEL] != colors[(LABEL + 1) % 3] == colors[(LABEL + 2) % 3]
        assert tuple(fig.layout[bars.xaxis.replace("x", "xaxis")].range) == (0, 1)
    for trace in (fig.data[i] for i in (0, 1, 3, 4)):  # square pixels, no ticks
        x, y = fig.layout[trace.xaxis.replace("x", "xaxis")], fig.layout[trace.yaxis.replace("y", "yaxis")]
        assert y.scaleanchor == trace.xaxis and x.showticklabels is False and y.showticklabels is False
    curves = {t.name: list(t.y) for t in fig.data[6:8]}
    assert curves == {"under FGSM": list(sweep.fgsm.accuracy), "under PGD": list(sweep.pgd.accuracy)}
    assert fig.layout.paper_bgcolor == "white"


def test_one_attack_and_no_curves_draw_one_row(sweep):
    swept = widget.compute(MODEL, IMAGE, LABEL, EPSILONS, NAMES, pgd_steps=STEPS, seed=SEED)
    fig = widget.figure(swept, 3, ("PGD",))
    assert [t.type for t in fig.data] == ["heatmap", "heatmap", "bar"]
    update, layout, traces = fig.layout.sliders[0].steps[3].args
    assert list(traces) == [0, 1, 2]
    np.testing.assert_allclose(np.array(update["z"][1]) / 10000, swept.pgd.perturbations[3, 0], atol=0.5e-4)
    assert "FGSM" not in layout["title.text"] and "PGD (4 steps)" in layout["title.text"]
    assert len(fig.to_json()) < 60_000
    assert all(isinstance(v, int) for v in update["z"][0][0])  # integer levels keep the page light


@pytest.mark.parametrize("change, error, pattern", [
    (dict(epsilons=()), ValueError, "epsilons must hold at least one value"),
    (dict(epsilons=(0.01, 0.02)), ValueError, "epsilons must start at 0"),
    (dict(epsilons=(0.0, 0.05, 0.02)), ValueError, "epsilons must be strictly increasing"),
    (dict(epsilons=(0.0, 0.0, 0.1)), ValueError, "epsilons must be strictly increasing"),
    (dict(epsilons=(0.0, -0.1)), ValueError, "epsilons must be finite and >= 0"),
    (dict(epsilons=0.1), TypeError, "epsilons must be a sequence"),
    (dict(label=3), ValueError, r"label must be a class index in \[0, 3\)"),
    (dict(label=-1), ValueError, "label must be >= 0"),
    (dict(label=1.0), TypeError, "label must be an int"),
    (dict(image=IMAGE[None]), ValueError, r"image must have shape \[C, H, W\]"),
    (dict(image=IMAGE.numpy()), TypeError, "image must be a torch.Tensor"),
    (dict(image=IMAGE + 1), ValueError, r"image must hold values in \[0, 1\]"),
    (dict(class_names=NAMES[:2]), ValueError, "class_names must name each of the model's 3 classes"),
    (dict(pgd_steps=0), ValueError, "pgd_steps must be >= 1"),
    (dict(pgd_alpha=0.0), ValueError, "pgd_alpha must be finite and > 0"),
    (dict(seed=-1), ValueError, "seed must be >= 0"),
    (dict(batch=IMAGES), TypeError, "batch must be None or a pair"),
    (dict(batch=(IMAGES, LABELS[:3])), ValueError, r"batch labels must have shape \[12\]"),
    (dict(batch=(IMAGES, LABELS + 3)), ValueError, r"batch labels must be class indices in \[0, 3\)"),
    (dict(model=lambda x: x), TypeError, "model must be a torch.nn.Module"),
])
def test_bad_arguments_to_compute_are_named(change, error, pattern):
    arguments = dict(model=MODEL, image=IMAGE, label=LABEL, epsilons=EPSILONS, class_names=NAMES) | change
    with pytest.raises(error, match=pattern):
        widget.compute(**arguments)


@pytest.mark.parametrize("call, error, pattern", [
    (lambda s: widget.figure(s, 4), ValueError, r"epsilon_index must be in \[0, 4\)"),
    (lambda s: widget.figure(s, -1), ValueError, "epsilon_index must be >= 0"),
    (lambda s: widget.figure(s, 0, ("CW",)), ValueError, "attacks must be a non-empty sequence"),
    (lambda s: widget.figure(s, 0, ("PGD", "PGD")), ValueError, "attacks must be a non-empty sequence"),
    (lambda s: widget.figure(s.fgsm), TypeError, "sweep must be an AttackSweep"),
])
def test_bad_arguments_to_figure_are_named(sweep, call, error, pattern):
    with pytest.raises(error, match=pattern):
        call(sweep)


def test_figure_draws_grayscale_images_only():
    with torch.random.fork_rng():
        torch.manual_seed(1)
        rgb_model = SmallCNN(num_classes=3, in_channels=3, widths=(2, 2, 2)).eval()
    rgb = widget.compute(rgb_model, torch.full((3, 8, 8), 0.5), 0, (0.0, 0.1), NAMES)  # compute takes any C
    assert rgb.fgsm.images.shape == (2, 3, 8, 8)
    with pytest.raises(ValueError, match=r"sweep must hold a grayscale image \[1, H, W\]"):
        widget.figure(rgb)


# explorer --------------------------------------------------------------------------------

def test_explorer_recomputes_the_chosen_image_budget_and_steps(figure_calls, monkeypatch):
    computed = []
    real = widget.compute

    def spy(*args):  # records the request, then computes for real (a tiny model: fast)
        computed.append(args)
        return real(*args)

    monkeypatch.setattr(widget, "compute", spy)
    drawn = figure_calls(widget)
    box = widget.explorer(MODEL, IMAGES, LABELS, NAMES)
    assert isinstance(box, ipywidgets.VBox)
    (index, epsilon), (attack, steps) = box.children[0].children, box.children[1].children
    index.value = 5
    epsilon.value = 0.05
    attack.value = "FGSM"
    steps.value = 3
    epsilon.value = 0.0
    requests = [(int(torch.equal(image, IMAGES[5])), label, budgets, names, pgd_steps)
                for _, image, label, budgets, names, pgd_steps in computed]
    assert requests == [(0, LABEL, [0.0, 0.01], NAMES, 10), (1, int(LABELS[5]), [0.0, 0.01], NAMES, 10),
                        (1, int(LABELS[5]), [0.0, 0.05], NAMES, 10), (1, int(LABELS[5]), [0.0, 0.05], NAMES, 10),
                        (1, int(LABELS[5]), [0.0, 0.05], NAMES, 3), (1, int(LABELS[5]), [0.0], NAMES, 3)]
    assert [(args[1], args[2]) for args in drawn] == [(1, ("PGD",))] * 3 + [(1, ("FGSM",))] * 2 + [(0, ("FGSM",))]
    assert all(args[0].pgd_steps == request[-1] for args, request in zip(drawn, requests))
