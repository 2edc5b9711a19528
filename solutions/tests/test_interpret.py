"""cvprep.interpret: Grad-CAM and saliency on hand-worked networks with fixed weights, the
batched Grad-CAM against its per-image loop version, saliency against finite
differences, and the promises about the model (hooks removed, nothing changed)."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cvprep.interpret import _activations_and_gradients, _cam, grad_cam, grad_cam_loops, saliency

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny tensors: see conftest.py

GRAD_CAMS = [grad_cam, grad_cam_loops]


@pytest.fixture(autouse=True)
def seed():
    """Same random weights and inputs on every run, whatever the test order."""
    torch.manual_seed(0)


def small_cnn(batchnorm: bool = True, inplace: bool = False, seed: int = 0) -> nn.Sequential:
    """3 -> 4 channels at full resolution, then 4 -> 6 at stride 2, pooled into 5 logits."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4) if batchnorm else nn.Identity(),
        nn.ReLU(inplace=inplace),
        nn.Conv2d(4, 6, 3, stride=2),
        nn.ReLU(inplace=inplace),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 5),
    ).eval()


class Scaled(nn.Module):
    """``inner``'s logits times ``factor``."""

    def __init__(self, inner: nn.Module, factor: float):
        super().__init__()
        self.inner, self.factor = inner, factor

    def forward(self, x):
        return self.inner(x) * self.factor


# A hand-worked network -------------------------------------------------------------------
# conv 1x1, 1 -> 2 channels: A_0 = 2x, A_1 = 1 - x; global average pool over the 4x4 map;
# linear with W = [[3, 1], [-1, 2]] (the bias does not change any gradient).
# y_c = sum_k W[c, k] * mean(A_k), so dy_c / dA_k[i, j] = W[c, k] / 16 everywhere and
# alpha = W[c] / 16:
#   class 0: alpha = (3/16, 1/16),  cam = ReLU(3/16 * 2x + 1/16 * (1 - x)) = ReLU((5x + 1) / 16)
#   class 1: alpha = (-1/16, 2/16), cam = ReLU(-1/16 * 2x + 2/16 * (1 - x)) = ReLU((2 - 4x) / 16)
# On pixels x = 3, 1, 0, -1:
#   class 0: 16/16, 6/16, 1/16, 0 (ReLU of -4/16); peak 1    -> normalised 1, 0.375, 0.0625, 0
#   class 1: 0, 0 (ReLU of -10/16, -2/16), 2/16, 6/16; peak 6/16 -> normalised 0, 0, 1/3, 1

HAND_X = torch.tensor([[3.0, 1, 0, -1], [1, 0, -1, 3], [0, -1, 3, 1], [-1, 3, 1, 0]])
HAND_CAM = {0: {3.0: 16 / 16, 1.0: 6 / 16, 0.0: 1 / 16, -1.0: 0.0},  # cam value of each pixel value x
            1: {3.0: 0.0, 1.0: 0.0, 0.0: 2 / 16, -1.0: 6 / 16}}


def hand_network() -> nn.Sequential:
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([2.0, -1.0]).view(2, 1, 1, 1))
        model[0].bias.copy_(torch.tensor([0.0, 1.0]))
        model[3].weight.copy_(torch.tensor([[3.0, 1.0], [-1.0, 2.0]]))
        model[3].bias.copy_(torch.tensor([0.5, -0.5]))
    return model


def hand_cam(target: int) -> torch.Tensor:
    """The table above applied to HAND_X, before normalisation; [4, 4]."""
    return HAND_X.clone().apply_(lambda x: HAND_CAM[target][x])


def test_grad_cam_channel_weights_are_the_averaged_gradients_by_hand():
    model = hand_network()
    images, targets = HAND_X.expand(2, 1, 4, 4), torch.tensor([0, 1])
    activations, gradients = _activations_and_gradients(model, model[0], images, targets)
    torch.testing.assert_close(activations[0], torch.stack([2 * HAND_X, 1 - HAND_X]))
    torch.testing.assert_close(gradients.mean(dim=(2, 3)), torch.tensor([[3.0, 1.0], [-1.0, 2.0]]) / 16)
    torch.testing.assert_close(_cam(activations, gradients), torch.stack([hand_cam(0), hand_cam(1)]))


@pytest.mark.parametrize("function", GRAD_CAMS)
def test_grad_cam_hand_worked_maps(function):
    """Each image explains its own class: class 0 peaks where x = 3, class 1 where x = -1."""
    model = hand_network()
    maps = function(model, model[0], HAND_X.expand(2, 1, 4, 4), torch.tensor([0, 1]))
    torch.testing.assert_close(maps, torch.stack([hand_cam(0) / (16 / 16), hand_cam(1) / (6 / 16)]))


@pytest.mark.parametrize("function", GRAD_CAMS)
def test_grad_cam_all_zero_map_stays_zero(function):
    """x = 3 everywhere, class 1: ReLU((2 - 12) / 16) = 0 on every pixel -> zeros, not 0 / 0 = NaN."""
    model = hand_network()
    maps = function(model, model[0], torch.full((1, 1, 4, 4), 3.0), torch.tensor([1]))
    torch.testing.assert_close(maps, torch.zeros(1, 4, 4))


@pytest.mark.parametrize("function", GRAD_CAMS)
def test_grad_cam_upsamples_bilinearly_with_half_pixel_centres(function):
    """A 1x1 stride-2 convolution keeps x[::2, ::2]; with x = 1 at (0, 0) and 0 at the other
    kept pixels the 2x2 map is [[1, 0], [0, 0]] / 4 (alpha = 1/4). Bilinear 2 -> 4 with
    align_corners=False samples source coordinates (i + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75,
    1.25, clamped to 0, 0.25, 0.75, 1: the weight of source pixel 0 is 1, 0.75, 0.25, 0 along
    each axis. The pixels the convolution skips (set to 5) do not matter."""
    model = nn.Sequential(nn.Conv2d(1, 1, 1, stride=2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1, 1))
    with torch.no_grad():
        for parameter, value in zip(model.parameters(), [1.0, 0.0, 1.0, 0.0]):
            parameter.fill_(value)
    x = torch.full((1, 1, 4, 4), 5.0)
    x[0, 0, ::2, ::2] = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    profile = torch.tensor([1.0, 0.75, 0.25, 0.0])
    maps = function(model, model[0], x, torch.tensor([0]))
    torch.testing.assert_close(maps, torch.outer(profile, profile)[None])


# Properties ------------------------------------------------------------------------------

@pytest.mark.parametrize("layer", [0, 3, 4], ids=["conv-full-res", "conv-stride2", "relu-stride2"])
def test_grad_cam_batched_equals_loops(layer):
    model = small_cnn()
    images, targets = torch.randn(4, 3, 9, 9), torch.tensor([0, 1, 4, 1])
    torch.testing.assert_close(grad_cam(model, model[layer], images, targets),
                               grad_cam_loops(model, model[layer], images, targets))


@settings(max_examples=15)
@given(seed=st.integers(0, 2**16), n=st.integers(1, 3), h=st.integers(5, 10), w=st.integers(5, 10),
       layer=st.sampled_from([0, 3]))
def test_grad_cam_maps_are_normalised_and_match_loops(seed, n, h, w, layer):
    model = small_cnn(seed=seed)
    images, targets = torch.randn(n, 3, h, w), torch.randint(0, 5, (n,))
    maps = grad_cam(model, model[layer], images, targets)
    assert maps.shape == (n, h, w) and maps.dtype == images.dtype and not maps.requires_grad
    assert maps.min() >= 0 and maps.max() <= 1
    peaks = maps.amax(dim=(1, 2))
    assert torch.all((peaks == 1) | (peaks == 0)), peaks  # max-normalised, or all zero
    torch.testing.assert_close(maps, grad_cam_loops(model, model[layer], images, targets))


@pytest.mark.parametrize("layer", [0, 3])
def test_grad_cam_invariant_to_positive_logit_scale(layer):
    """alpha scales by 3.7, so does the map before normalisation; the normalisation cancels it."""
    model = small_cnn()
    images, targets = torch.randn(3, 3, 8, 8), torch.tensor([2, 0, 3])
    torch.testing.assert_close(grad_cam(Scaled(model, 3.7), model[layer], images, targets),
                               grad_cam(model, model[layer], images, targets))


def test_grad_cam_float64_in_float64_out():
    model = small_cnn().double()
    maps = grad_cam(model, model[3], torch.randn(2, 3, 7, 7, dtype=torch.float64), torch.tensor([0, 1]))
    assert maps.dtype == torch.float64


def test_grad_cam_sees_the_activation_before_an_inplace_relu():
    """ReLU(inplace=True) after the target layer overwrites its output tensor; the map must
    still be computed from the convolution's own output, as with an out-of-place ReLU."""
    images, targets = torch.randn(3, 3, 9, 9), torch.tensor([0, 3, 1])
    inplace, out_of_place = small_cnn(inplace=True), small_cnn(inplace=False)
    torch.testing.assert_close(grad_cam(inplace, inplace[3], images, targets),
                               grad_cam(out_of_place, out_of_place[3], images, targets))


def test_grad_cam_under_no_grad_with_frozen_parameters():
    model = small_cnn()
    images, targets = torch.randn(2, 3, 8, 8), torch.tensor([1, 2])
    expected = grad_cam(model, model[3], images, targets)
    model.requires_grad_(False)
    with torch.no_grad():
        torch.testing.assert_close(grad_cam(model, model[3], images, targets), expected)
        torch.testing.assert_close(saliency(model, images, targets), saliency(small_cnn(), images, targets))


# The model and the inputs are left as they were ------------------------------------------

def assert_no_hooks(model: nn.Module):
    for name, module in model.named_modules():
        for hooks in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"):
            assert not getattr(module, hooks), f"{hooks} left on module {name!r}"


@pytest.mark.parametrize("function", GRAD_CAMS)
@pytest.mark.parametrize("mode, batchnorm", [("eval", True), ("train", False)])
def test_grad_cam_leaves_model_and_inputs_unchanged(function, mode, batchnorm):
    """Same parameters and buffers, no .grad, same mode on every submodule, no hooks. (In
    training mode BatchNorm would update its running statistics, as any forward pass does.)"""
    model = small_cnn(batchnorm=batchnorm).train(mode == "train")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    modes = [m.training for m in model.modules()]
    images, targets = torch.randn(2, 3, 8, 8), torch.tensor([4, 0])
    images_before, targets_before = images.clone(), targets.clone()
    function(model, model[3], images, targets)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, state[key], rtol=0, atol=0, msg=f"{key} changed")
    assert all(p.grad is None for p in model.parameters()), "gradients accumulated on the parameters"
    assert [m.training for m in model.modules()] == modes
    assert_no_hooks(model)
    assert torch.equal(images, images_before) and torch.equal(targets, targets_before)
    assert not images.requires_grad and images.grad is None


class FailsAfter(nn.Module):
    """Runs ``layer``, then raises, as a model with a bug after the target layer would."""

    def __init__(self):
        super().__init__()
        self.layer = nn.Conv2d(3, 2, 3)

    def forward(self, x):
        self.layer(x)
        raise RuntimeError("boom after the target layer")


@pytest.mark.parametrize("function", GRAD_CAMS)
def test_grad_cam_removes_hooks_when_the_model_raises(function):
    model = FailsAfter()
    with pytest.raises(RuntimeError, match="boom"):
        function(model, model.layer, torch.randn(1, 3, 5, 5), torch.tensor([0]))
    assert_no_hooks(model)


def test_grad_cam_removes_hooks_after_a_bad_target_class():
    model = small_cnn()
    with pytest.raises(ValueError, match="target_classes"):
        grad_cam(model, model[3], torch.randn(1, 3, 8, 8), torch.tensor([5]))
    assert_no_hooks(model)


@pytest.mark.parametrize("mode, batchnorm", [("eval", True), ("train", False)])
def test_saliency_leaves_model_and_inputs_unchanged(mode, batchnorm):
    model = small_cnn(batchnorm=batchnorm).train(mode == "train")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    images = torch.randn(2, 3, 8, 8)
    images_before = images.clone()
    saliency(model, images, torch.tensor([1, 1]))
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, state[key], rtol=0, atol=0, msg=f"{key} changed")
    assert all(p.grad is None for p in model.parameters()), "gradients accumulated on the parameters"
    assert all(m.training == (mode == "train") for m in model.modules())
    assert torch.equal(images, images_before) and not images.requires_grad and images.grad is None


# Saliency --------------------------------------------------------------------------------

def test_saliency_of_a_linear_model_is_its_weight_row():
    """y = W x on the flattened 2x2x3 image, so dy_1 / dx = W[1] whatever x is:
        channel 0: [[1, -4, 2], [0, 0.5, -1]]     max over channels of |.|: [[2, 4, 2], [3, 0.5, 1]]
        channel 1: [[-2, 1, 0], [3, -0.5, 0]]     divided by the peak 4:    [[0.5, 1, 0.5], [0.75, 0.125, 0.25]]
    """
    row = torch.tensor([[[1.0, -4, 2], [0, 0.5, -1]], [[-2, 1, 0], [3, -0.5, 0]]])
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    with torch.no_grad():
        model[1].weight[1] = row.flatten()
    maps = saliency(model, torch.randn(2, 2, 2, 3), torch.tensor([1, 1]))
    expected = torch.tensor([[0.5, 1, 0.5], [0.75, 0.125, 0.25]])
    torch.testing.assert_close(maps, torch.stack([expected, expected]))


def test_saliency_all_zero_gradient_stays_zero():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    with torch.no_grad():
        model[1].weight[2] = 0.0
    torch.testing.assert_close(saliency(model, torch.randn(1, 2, 2, 3), torch.tensor([2])), torch.zeros(1, 2, 3))


def finite_difference_saliency(model, image: torch.Tensor, target: int, step: float = 1e-6) -> torch.Tensor:
    """max_c |dy / dx[c, i, j]| by central differences, normalised; [H, W]. Every pixel's
    two nudged copies of ``image`` go through the model in one batch."""
    nudges = step * torch.eye(image.numel(), dtype=image.dtype).view(-1, *image.shape)  # [C*H*W, C, H, W]
    scores = model(torch.cat([image + nudges, image - nudges]))[:, target]  # [2*C*H*W]
    plus, minus = scores.chunk(2)
    magnitude = ((plus - minus) / (2 * step)).view(image.shape).abs().amax(dim=0)  # [H, W]
    return magnitude / magnitude.max()


@torch.no_grad()
def test_saliency_matches_finite_differences():
    """A smooth (tanh) CNN in float64; the finite differences never call autograd."""
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.Tanh(), nn.Conv2d(3, 4, 3), nn.Tanh(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).double()
    images, targets = torch.randn(2, 2, 5, 5, dtype=torch.float64), torch.tensor([2, 0])
    expected = torch.stack([finite_difference_saliency(model, image, int(t)) for image, t in zip(images, targets)])
    torch.testing.assert_close(saliency(model, images, targets), expected, rtol=1e-6, atol=1e-7)


def test_saliency_invariant_to_positive_logit_scale():
    model = small_cnn()
    images, targets = torch.randn(2, 3, 8, 8), torch.tensor([3, 3])
    torch.testing.assert_close(saliency(Scaled(model, 3.7), images, targets), saliency(model, images, targets))


# Bad arguments -----------------------------------------------------------------------------

class UnusedLayer(nn.Module):
    """A classifier with a layer it never calls."""

    def __init__(self):
        super().__init__()
        self.conv, self.spare = nn.Conv2d(1, 2, 1), nn.Conv2d(2, 2, 1)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 2))

    def forward(self, x):
        return self.head(self.conv(x))


class SharedLayer(UnusedLayer):
    """Calls ``conv`` twice."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 1)

    def forward(self, x):
        return self.head(self.conv(self.conv(x.expand(-1, 2, -1, -1))))


BAD_MODEL, UNUSED, SHARED = hand_network(), UnusedLayer(), SharedLayer()
BAD_GRAD_CAM_ARGUMENTS = [  # changes to the hand network's arguments, error type, name in the message
    pytest.param({"model": lambda x: x}, TypeError, "model", id="model-not-module"),
    pytest.param({"target_layer": "conv"}, TypeError, "target_layer", id="layer-not-module"),
    pytest.param({"target_layer": nn.Conv2d(1, 2, 1)}, ValueError, "target_layer must be a submodule",
                 id="layer-not-in-model"),
    pytest.param({"model": UNUSED, "target_layer": UNUSED.spare}, ValueError, "target_layer must run exactly once",
                 id="layer-never-runs"),
    pytest.param({"model": SHARED, "target_layer": SHARED.conv}, ValueError, "target_layer must run exactly once",
                 id="layer-runs-twice"),
    pytest.param({"target_layer": BAD_MODEL[3]}, ValueError, "target_layer", id="layer-not-a-feature-map"),
    pytest.param({"model": BAD_MODEL[:1]}, ValueError, "model", id="logits-not-2d"),
    pytest.param({"images": np.zeros((1, 1, 4, 4))}, TypeError, "images", id="images-numpy"),
    pytest.param({"images": torch.zeros(1, 1, 4, 4, dtype=torch.int64)}, TypeError, "images", id="images-int"),
    pytest.param({"images": torch.zeros(1, 4, 4)}, ValueError, "images", id="images-3d"),
    pytest.param({"target_classes": [0]}, TypeError, "target_classes", id="classes-list"),
    pytest.param({"target_classes": torch.tensor([0.0])}, TypeError, "target_classes", id="classes-float"),
    pytest.param({"target_classes": torch.tensor([2])}, ValueError, "target_classes", id="classes-too-large"),
    pytest.param({"target_classes": torch.tensor([-1])}, ValueError, "target_classes", id="classes-negative"),
    pytest.param({"target_classes": torch.tensor([0, 1])}, ValueError, "target_classes", id="classes-wrong-length"),
]


@pytest.mark.parametrize("function", GRAD_CAMS)
@pytest.mark.parametrize("changes, error, name", BAD_GRAD_CAM_ARGUMENTS)
def test_grad_cam_bad_arguments(function, changes, error, name):
    """Each bad argument raises the documented error type with the argument's name in it."""
    arguments = {"model": BAD_MODEL, "target_layer": BAD_MODEL[0], "images": torch.ones(1, 1, 4, 4),
                 "target_classes": torch.tensor([0]), **changes}
    with pytest.raises(error, match=name):
        function(**arguments)


@pytest.mark.parametrize("changes, error, name", [
    ({"model": lambda x: x}, TypeError, "model"),
    ({"images": torch.zeros(1, 12, dtype=torch.float32)}, ValueError, "images"),
    ({"images": torch.zeros(1, 2, 2, 3, dtype=torch.int32)}, TypeError, "images"),
    ({"target_classes": torch.tensor([3])}, ValueError, "target_classes"),
    ({"target_classes": torch.tensor([[0]])}, ValueError, "target_classes"),
    ({"target_classes": torch.tensor([True])}, TypeError, "target_classes"),
], ids=["model-not-module", "images-2d", "images-int", "classes-too-large", "classes-2d", "classes-bool"])
def test_saliency_bad_arguments(changes, error, name):
    arguments = {"model": nn.Sequential(nn.Flatten(), nn.Linear(12, 3)), "images": torch.ones(1, 2, 2, 3),
                 "target_classes": torch.tensor([0]), **changes}
    with pytest.raises(error, match=name):
        saliency(**arguments)


def test_saliency_refuses_a_model_without_autograd():
    class Detached(nn.Module):
        def forward(self, x):
            return x.flatten(1).detach()

    with pytest.raises(ValueError, match="differentiable"):
        saliency(Detached(), torch.ones(1, 1, 2, 2), torch.tensor([0]))
