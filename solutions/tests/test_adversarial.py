"""cvprep.adversarial: FGSM worked by hand on a linear model, FGSM and PGD against a plain
loop written with .backward(), PGD's budget and range as properties, PGD weakening a fitted
classifier, and the promises about the model and the inputs (left as they were found)."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cvprep.adversarial import fgsm, pgd


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny tensors: see conftest.py


def tiny_convnet(batch_norm: bool = False, dropout: bool = False) -> nn.Module:
    """A fixed-weight conv net, [N, 1, 8, 8] -> logits [N, 3], in eval mode."""
    with torch.random.fork_rng():  # its own weights, whatever ran before; global RNG untouched
        torch.manual_seed(0)
        model = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1),
            *([nn.BatchNorm2d(4)] if batch_norm else []),
            nn.ReLU(),
            nn.MaxPool2d(2),  # [N, 4, 4, 4]
            nn.Flatten(),
            *([nn.Dropout(0.5)] if dropout else []),
            nn.Linear(64, 3),
        )
    return model.eval()


def batch(seed: int, n: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """Images [n, 1, 8, 8] in [0, 1] with about 30% of the values exactly 0 or 1, and labels [n]."""
    g = torch.Generator().manual_seed(seed)
    images = (torch.rand(n, 1, 8, 8, generator=g) * 1.4 - 0.2).clamp(0.0, 1.0)
    return images, torch.randint(0, 3, (n,), generator=g)


def reference_pgd(model, images, targets, epsilon, alpha, steps):
    """PGD without random start, written as a plain loop with .backward() (the oracle)."""
    x = images.clone()
    for _ in range(steps):
        x.requires_grad_(True)
        F.cross_entropy(model(x), targets, reduction="sum").backward()
        with torch.no_grad():
            x = x + alpha * x.grad.sign()
            x = torch.min(torch.max(x, images - epsilon), images + epsilon)  # back into the ball
            x = x.clamp(0.0, 1.0)  # and into the valid range
    model.zero_grad(set_to_none=True)
    return x.detach()


MODEL = tiny_convnet()


# Hand-worked FGSM ------------------------------------------------------------------------

def test_fgsm_hand_worked_linear_model_steps_along_the_sign_and_clips():
    # logits z = W x (no bias). For CE with true class y, dCE/dz = p - e_y, so
    # grad_x = W^T (p - e_y). With two classes and y = 0: p - e_0 = (p0 - 1, p1) = p1 * (-1, 1),
    # grad_x = p1 * (W1 - W0) = p1 * (-1, 2, 1, -3, 0), and as 0 < p1 < 1,
    # sign = (-1, +1, +1, -1, 0). For y = 1 the signs flip: (+1, -1, -1, +1, 0).
    # The fifth input has weight 0 in both rows, so its gradient is exactly 0 and it stays.
    # (Equal nonzero weights w would not do: w * (p0 - 1) + w * p1 rounds to about 1e-17,
    # whose sign is +-1, so the input would move by epsilon.)
    model = nn.Linear(5, 2, bias=False, dtype=torch.float64)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -1.0, 0.0, 2.0, 0.0],
                                         [0.0, 1.0, 1.0, -1.0, 0.0]]))
    images = torch.tensor([[0.5, 0.5, 0.95, 0.02, 0.3],
                           [0.05, 0.5, 0.5, 0.95, 1.0]], dtype=torch.float64)
    targets = torch.tensor([0, 1])
    # epsilon = 0.1:
    # row 0: (0.5 - 0.1, 0.5 + 0.1, 0.95 + 0.1 = 1.05 -> 1, 0.02 - 0.1 = -0.08 -> 0, 0.3 unmoved)
    # row 1: (0.05 + 0.1, 0.5 - 0.1, 0.5 - 0.1, 0.95 + 0.1 = 1.05 -> 1, 1.0 unmoved: gradient 0)
    expected = torch.tensor([[0.4, 0.6, 1.0, 0.0, 0.3],
                             [0.15, 0.4, 0.4, 1.0, 1.0]], dtype=torch.float64)
    result = fgsm(model, images, targets, epsilon=0.1)
    assert result.dtype == torch.float64
    torch.testing.assert_close(result, expected, rtol=0, atol=1e-12)


# FGSM and PGD against the loop oracle ------------------------------------------------------

@pytest.mark.parametrize("epsilon", [0.01, 0.1, 0.3])
def test_fgsm_matches_one_oracle_step(epsilon):
    images, targets = batch(1)
    expected = reference_pgd(MODEL, images, targets, epsilon, alpha=epsilon, steps=1)
    assert torch.equal(fgsm(MODEL, images, targets, epsilon), expected)


@pytest.mark.parametrize("steps", [1, 3, 7])
def test_pgd_without_random_start_matches_the_oracle(steps):
    images, targets = batch(2)
    expected = reference_pgd(MODEL, images, targets, epsilon=0.1, alpha=0.03, steps=steps)
    result = pgd(MODEL, images, targets, epsilon=0.1, alpha=0.03, steps=steps, random_start=False)
    torch.testing.assert_close(result, expected, rtol=0, atol=0)


@given(epsilon=st.floats(0.0, 0.5), seed=st.integers(0, 2**16))
@settings(max_examples=20)
def test_pgd_one_step_of_size_epsilon_without_random_start_is_fgsm(epsilon, seed):
    images, targets = batch(seed)
    one_step = pgd(MODEL, images, targets, epsilon, alpha=max(epsilon, 1e-9), steps=1, random_start=False)
    if epsilon == 0.0:  # alpha must be > 0, and the zero ball holds only the images anyway
        assert torch.equal(one_step, images)
    else:
        assert torch.equal(one_step, fgsm(MODEL, images, targets, epsilon))


# PGD's properties ---------------------------------------------------------------------------

@given(epsilon=st.floats(0.0, 0.5), alpha=st.floats(1e-3, 0.5), steps=st.integers(0, 4),
       random_start=st.booleans(), seed=st.integers(0, 2**16))
@settings(max_examples=40)
def test_pgd_stays_in_the_epsilon_ball_and_the_valid_range(epsilon, alpha, steps, random_start, seed):
    images, targets = batch(seed)
    generator = torch.Generator().manual_seed(seed)
    result = pgd(MODEL, images, targets, epsilon, alpha, steps, random_start, generator)
    assert result.shape == images.shape and result.dtype == images.dtype
    assert (result - images).abs().max() <= epsilon + 1e-6
    assert result.min() >= 0.0 and result.max() <= 1.0


def test_pgd_without_clamp_stays_in_the_ball_but_may_leave_zero_one():
    images, targets = batch(3)
    result = pgd(MODEL, images, targets, epsilon=0.1, alpha=0.05, steps=3, clamp=None,
                 generator=torch.Generator().manual_seed(0))
    assert (result - images).abs().max() <= 0.1 + 1e-6
    assert result.min() < 0.0 and result.max() > 1.0  # a third of the values sit on the edges


def test_pgd_with_a_narrower_clamp_stays_inside_it():
    images, targets = batch(4)
    images = images * 0.5 + 0.25  # in [0.25, 0.75]
    result = pgd(MODEL, images, targets, epsilon=0.2, alpha=0.1, steps=3, clamp=(0.25, 0.75))
    assert result.min() >= 0.25 and result.max() <= 0.75


def fitted_logistic_model() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A logistic regression on [N, 1, 8, 8], fitted for a few steps to tell left-bright
    images (class 0) from right-bright ones (class 1); returns it with held-out data."""
    g = torch.Generator().manual_seed(0)

    def data(n):
        labels = torch.randint(0, 2, (n,), generator=g)
        images = 0.3 + 0.2 * torch.rand(n, 1, 8, 8, generator=g)  # [n, 1, 8, 8] in [0.3, 0.5]
        bright = torch.where(labels[:, None] == 0, torch.arange(8) < 4, torch.arange(8) >= 4)  # [n, 8] columns
        return (images + 0.3 * bright[:, None, None, :]).clamp(0, 1), labels

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    optimiser = torch.optim.SGD(model.parameters(), lr=0.5)
    train_images, train_labels = data(128)
    for _ in range(30):
        optimiser.zero_grad()
        F.cross_entropy(model(train_images), train_labels).backward()
        optimiser.step()
    model.zero_grad(set_to_none=True)
    return model.eval(), *data(64)


def true_class_probability(model, images, targets) -> torch.Tensor:
    with torch.no_grad():
        return model(images).softmax(dim=1)[torch.arange(len(targets)), targets]


def test_pgd_and_fgsm_lower_the_true_class_probability_of_a_fitted_model():
    model, images, targets = fitted_logistic_model()
    clean = true_class_probability(model, images, targets)
    assert clean.mean() > 0.9  # the model has learnt the task
    attacked = pgd(model, images, targets, epsilon=0.15, alpha=0.03, steps=10,
                   generator=torch.Generator().manual_seed(0))
    one_step = fgsm(model, images, targets, epsilon=0.15)
    pgd_probability = true_class_probability(model, attacked, targets)
    fgsm_probability = true_class_probability(model, one_step, targets)
    assert pgd_probability.mean() < clean.mean() - 0.3, (clean.mean(), pgd_probability.mean())
    assert fgsm_probability.mean() < clean.mean() - 0.3, (clean.mean(), fgsm_probability.mean())
    assert (pgd_probability <= clean + 1e-6).float().mean() > 0.9  # lowered for (nearly) every image


def test_pgd_with_the_same_generator_seed_is_reproducible():
    images, targets = batch(5)

    def attack(seed):
        return pgd(MODEL, images, targets, 0.1, 0.02, steps=2, generator=torch.Generator().manual_seed(seed))

    assert torch.equal(attack(7), attack(7))
    assert not torch.equal(attack(7), attack(8))  # the generator is what the start comes from


def test_pgd_zero_steps_returns_the_start():
    images, targets = batch(6)
    start = pgd(MODEL, images, targets, 0.1, 0.02, steps=0, random_start=False)
    assert torch.equal(start, images) and start.data_ptr() != images.data_ptr()  # a copy
    noisy = pgd(MODEL, images, targets, 0.1, 0.02, steps=0, generator=torch.Generator().manual_seed(0))
    assert 0 < (noisy - images).abs().max() <= 0.1 + 1e-6


@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
def test_epsilon_zero_returns_the_images(attack):
    images, targets = batch(7)
    if attack == "fgsm":
        result = fgsm(MODEL, images, targets, epsilon=0.0)
    else:
        result = pgd(MODEL, images, targets, epsilon=0.0, alpha=0.1, steps=3, random_start=True)
    assert torch.equal(result, images)
    assert result.data_ptr() != images.data_ptr()  # a new tensor, not the input itself


# Model and inputs left as they were -----------------------------------------------------------

ATTACKS = {
    "fgsm": lambda model, images, targets: fgsm(model, images, targets, 0.1),
    "pgd": lambda model, images, targets: pgd(model, images, targets, 0.1, 0.03, steps=3,
                                              generator=torch.Generator().manual_seed(0)),
}


def snapshot(model: nn.Module) -> dict:
    return {name: value.clone() for name, value in model.state_dict().items()}


@pytest.mark.parametrize("attack", ATTACKS)
@pytest.mark.parametrize("training", [False, True])
def test_attack_leaves_model_state_and_mode_unchanged(attack, training):
    # batch norm in train mode updates its running statistics on every forward pass
    model = tiny_convnet(batch_norm=True, dropout=True).train(training)
    before = snapshot(model)
    images, targets = batch(8)
    ATTACKS[attack](model, images, targets)
    assert model.training is training and all(m.training is training for m in model.modules())
    after = model.state_dict()
    assert before.keys() == after.keys()
    for name, value in before.items():
        assert torch.equal(value, after[name]), f"{name} changed"
    assert all(p.grad is None for p in model.parameters()), "a parameter received a gradient"


@pytest.mark.parametrize("attack", ATTACKS)
def test_attack_between_a_forward_and_its_backward_pass_as_in_adversarial_training(attack):
    # adversarial training: the clean forward pass in train mode saves batch norm's buffers
    # for backward; attacking before that backward must not invalidate the graph
    model = tiny_convnet(batch_norm=True).train()
    images, targets = batch(8)
    clean_loss = F.cross_entropy(model(images), targets)
    adversarial = ATTACKS[attack](model, images, targets)
    (clean_loss + F.cross_entropy(model(adversarial), targets)).backward()
    assert all(p.grad is not None for p in model.parameters())
    # the attack's own forward passes left no trace in the running statistics
    reference = tiny_convnet(batch_norm=True).train()
    reference(images)
    reference(adversarial)
    for got, expected in zip(model.buffers(), reference.buffers()):
        torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("attack", ATTACKS)
def test_attack_does_not_add_to_existing_parameter_gradients(attack):
    model = tiny_convnet()
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.5)
    images, targets = batch(9)
    ATTACKS[attack](model, images, targets)
    assert all(torch.equal(p.grad, torch.full_like(p, 0.5)) for p in model.parameters())


@pytest.mark.parametrize("attack", ATTACKS)
def test_attack_leaves_inputs_unchanged_and_returns_a_detached_tensor(attack):
    images, targets = batch(10)
    images.requires_grad_(True)
    images_before, targets_before = images.detach().clone(), targets.clone()
    result = ATTACKS[attack](MODEL, images, targets)
    assert torch.equal(images.detach(), images_before) and torch.equal(targets, targets_before)
    assert images.grad is None
    assert not result.requires_grad and result.grad_fn is None


@pytest.mark.parametrize("attack", ATTACKS)
def test_attack_works_inside_no_grad(attack):
    images, targets = batch(11)
    expected = ATTACKS[attack](MODEL, images, targets)
    with torch.no_grad():
        assert torch.equal(ATTACKS[attack](MODEL, images, targets), expected)


# Bad arguments -----------------------------------------------------------------------------------

GOOD = dict(model=MODEL, images=batch(0)[0], targets=batch(0)[1], epsilon=0.1)
PGD_GOOD = dict(GOOD, alpha=0.02, steps=2)

SHARED_BAD = [  # (argument, bad value, error)
    ("model", lambda x: x, TypeError),
    ("model", nn.Identity(), ValueError),  # returns [N, 1, 8, 8], not logits [N, K]
    ("images", GOOD["images"].numpy(), TypeError),
    ("images", (GOOD["images"] * 255).to(torch.uint8), TypeError),
    ("images", GOOD["images"].flatten(), ValueError),
    ("images", GOOD["images"] + 1.0, ValueError),  # outside the clamp range
    ("images", torch.full((6, 1, 8, 8), float("nan")), ValueError),
    ("targets", GOOD["targets"].float(), TypeError),
    ("targets", GOOD["targets"][:3], ValueError),
    ("targets", torch.full((6,), 3), ValueError),  # the model has 3 classes: 0, 1, 2
    ("targets", torch.full((6,), -1), ValueError),
    ("epsilon", -0.1, ValueError),
    ("epsilon", float("nan"), ValueError),
    ("epsilon", "0.1", TypeError),
    ("clamp", (1.0, 0.0), ValueError),
    ("clamp", (0.0,), TypeError),
    ("clamp", ("0", "1"), TypeError),
]
PGD_BAD = [
    ("alpha", 0.0, ValueError),
    ("alpha", -0.01, ValueError),
    ("steps", -1, ValueError),
    ("steps", 1.5, TypeError),
    ("steps", True, TypeError),
    ("generator", 0, TypeError),
]


@pytest.mark.parametrize("argument, value, error", SHARED_BAD)
def test_fgsm_rejects_bad_arguments_naming_them(argument, value, error):
    with pytest.raises(error, match=argument):
        fgsm(**{**GOOD, argument: value})


@pytest.mark.parametrize("argument, value, error", SHARED_BAD + PGD_BAD)
def test_pgd_rejects_bad_arguments_naming_them(argument, value, error):
    with pytest.raises(error, match=argument):
        pgd(**{**PGD_GOOD, argument: value})


def test_pgd_checks_the_targets_even_with_zero_steps():
    with pytest.raises(ValueError, match="targets"):
        pgd(**{**PGD_GOOD, "steps": 0, "targets": torch.full((6,), 3)})
