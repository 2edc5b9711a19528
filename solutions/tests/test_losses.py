"""cvprep.losses against torch.nn.functional and torchvision.ops, on hand-worked cases,
through gradcheck, and on bad input."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.ops as tv
from hypothesis import given, settings
from hypothesis import strategies as st

from cvprep.losses import class_balanced_weights, distillation_loss, focal_loss, softmax_cross_entropy

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny tensors: see conftest.py

SMOOTHINGS = [0.0, 0.05, 0.1, 0.3, 1.0]


@st.composite
def classification_batches(draw, dtype=torch.float64, min_rows=1):
    """Random logits [N, C] (scale up to 20, so some rows are confident) and labels [N]."""
    n, c = draw(st.integers(min_rows, 9)), draw(st.integers(1, 7))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    scale = draw(st.sampled_from([0.1, 1.0, 20.0]))
    logits = scale * torch.randn(n, c, generator=gen, dtype=dtype)
    return logits, torch.randint(0, c, (n,), generator=gen)


@st.composite
def binary_batches(draw, dtype=torch.float64):
    """Random logits of any shape (up to 3-D, possibly empty) and 0/1 targets of the same shape."""
    shape = draw(st.lists(st.integers(0, 5), min_size=0, max_size=3))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    logits = draw(st.sampled_from([1.0, 5.0, 40.0])) * torch.randn(shape, generator=gen, dtype=dtype)
    return logits, torch.randint(0, 2, shape, generator=gen).to(dtype)


def seeded(*shape, seed=0, dtype=torch.float64, requires_grad=False):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen, dtype=dtype).requires_grad_(requires_grad)


def reference_distillation(student, teacher, targets, temperature, alpha):
    """The same loss from F.kl_div (log_target) and F.cross_entropy, for comparison."""
    soft = F.kl_div(
        F.log_softmax(student / temperature, dim=1),
        F.log_softmax(teacher / temperature, dim=1),
        reduction="batchmean",
        log_target=True,
    )
    return alpha * temperature**2 * soft + (1 - alpha) * F.cross_entropy(student, targets)


# softmax_cross_entropy ----------------------------------------------------------------------

@pytest.mark.parametrize("eps", SMOOTHINGS)
def test_cross_entropy_matches_torch_on_seeded_logits(eps):
    logits, targets = seeded(16, 10, seed=1), torch.randint(0, 10, (16,), generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(
        softmax_cross_entropy(logits, targets, label_smoothing=eps),
        F.cross_entropy(logits, targets, label_smoothing=eps),
        rtol=1e-12, atol=1e-12,
    )


@settings(max_examples=60)
@given(batch=classification_batches(), eps=st.sampled_from(SMOOTHINGS))
def test_cross_entropy_matches_torch(batch, eps):
    logits, targets = batch
    torch.testing.assert_close(
        softmax_cross_entropy(logits, targets, label_smoothing=eps),
        F.cross_entropy(logits, targets, label_smoothing=eps),
        rtol=1e-10, atol=1e-12,
    )


@settings(max_examples=20)
@given(batch=classification_batches(dtype=torch.float32))
def test_cross_entropy_float32_matches_torch_and_keeps_dtype(batch):
    logits, targets = batch
    got = softmax_cross_entropy(logits, targets, label_smoothing=0.1)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, F.cross_entropy(logits, targets, label_smoothing=0.1), rtol=1e-5, atol=1e-5)


def test_cross_entropy_hand_worked():
    # Logits [0, ln 3]: softmax [1/4, 3/4]. Target class 1: loss -ln(3/4).
    # With eps = 0.5 and C = 2 the target is [0.25, 0.75]: loss -(0.25 ln(1/4) + 0.75 ln(3/4)).
    logits, targets = torch.tensor([[0.0, math.log(3)]], dtype=torch.float64), torch.tensor([1])
    assert softmax_cross_entropy(logits, targets).item() == pytest.approx(-math.log(0.75), rel=1e-12)
    expected = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert softmax_cross_entropy(logits, targets, 0.5).item() == pytest.approx(expected, rel=1e-12)


def test_cross_entropy_is_finite_for_huge_logits():
    logits = torch.tensor([[1e4, -1e4, 0.0]])  # softmax underflows to exact zeros in float32
    loss = softmax_cross_entropy(logits, torch.tensor([1]), label_smoothing=0.1)
    assert torch.isfinite(loss)
    torch.testing.assert_close(loss, F.cross_entropy(logits, torch.tensor([1]), label_smoothing=0.1))


def test_cross_entropy_of_empty_batch_is_nan_as_torch():
    logits, targets = torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)
    assert torch.isnan(softmax_cross_entropy(logits, targets))
    assert torch.isnan(F.cross_entropy(logits, targets))


@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_cross_entropy_gradcheck(eps):
    logits, targets = seeded(5, 4, seed=3, requires_grad=True), torch.tensor([0, 3, 1, 1, 2])
    assert torch.autograd.gradcheck(lambda x: softmax_cross_entropy(x, targets, eps), (logits,))


# focal_loss -----------------------------------------------------------------------------

FOCAL_SETTINGS = [(0.25, 2.0), (0.5, 0.0), (0.9, 1.0), (-1.0, 2.0), (-1.0, 0.5), (0.0, 2.0), (1.0, 3.0)]  # (alpha, gamma)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("alpha, gamma", FOCAL_SETTINGS)
@settings(max_examples=15)
@given(batch=binary_batches())
def test_focal_matches_torchvision(reduction, alpha, gamma, batch):
    logits, targets = batch
    got = focal_loss(logits, targets, alpha=alpha, gamma=gamma, reduction=reduction)
    expected = tv.sigmoid_focal_loss(logits, targets, alpha=alpha, gamma=gamma, reduction=reduction)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12, equal_nan=True)  # NaN: mean of nothing


def test_focal_defaults_match_torchvision_defaults():
    logits, targets = seeded(4, 6, seed=4), (seeded(4, 6, seed=5) > 0).double()
    torch.testing.assert_close(focal_loss(logits, targets), tv.sigmoid_focal_loss(logits, targets))


def test_focal_float32_and_soft_targets_match_torchvision():
    logits = seeded(50, seed=6, dtype=torch.float32) * 4
    targets = torch.linspace(0, 1, 50)  # soft labels: the same formulas, interpolated
    got = focal_loss(logits, targets, reduction="none")
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, tv.sigmoid_focal_loss(logits, targets), rtol=1e-5, atol=1e-6)


@settings(max_examples=40)
@given(batch=binary_batches())
def test_focal_with_gamma_zero_and_no_alpha_is_bce(batch):
    logits, targets = batch
    torch.testing.assert_close(
        focal_loss(logits, targets, alpha=-1, gamma=0.0),
        F.binary_cross_entropy_with_logits(logits, targets, reduction="none"),
        rtol=1e-12, atol=1e-12,
    )


@settings(max_examples=40)
@given(batch=binary_batches(), alpha=st.sampled_from([-1.0, 0.0, 0.25, 1.0]), gamma=st.floats(0.0, 5.0))
def test_focal_is_at_most_alpha_weighted_bce(batch, alpha, gamma):
    """(1 - p_t)^gamma <= 1 for gamma >= 0, so the focal term only ever shrinks the BCE."""
    logits, targets = batch
    weighted_bce = focal_loss(logits, targets, alpha=alpha, gamma=0.0)
    assert (focal_loss(logits, targets, alpha=alpha, gamma=gamma) <= weighted_bce * (1 + 1e-12)).all()


def test_focal_hand_worked():
    # x = 0: p = 1/2 for both targets, p_t = 1/2, BCE = ln 2, (1 - p_t)^2 = 1/4.
    # Positive: 0.25 * 1/4 * ln 2; negative: 0.75 * 1/4 * ln 2.
    got = focal_loss(torch.zeros(2, dtype=torch.float64), torch.tensor([1.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(got, torch.tensor([0.0625, 0.1875], dtype=torch.float64) * math.log(2))


def test_focal_is_finite_for_huge_logits():
    """log(sigmoid(-100)) in float32 is log(0) = -inf; logsigmoid keeps it finite (= -100)."""
    logits, targets = torch.tensor([100.0, -100.0, 100.0]), torch.tensor([0.0, 1.0, 1.0])
    loss = focal_loss(logits, targets, alpha=-1, gamma=0.0)
    torch.testing.assert_close(loss, torch.tensor([100.0, 100.0, 0.0]))
    logits.requires_grad_(True)
    focal_loss(logits, targets, reduction="sum").backward()
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("alpha, gamma", [(0.25, 2.0), (-1.0, 1.5), (0.6, 0.0)])
def test_focal_gradcheck(reduction, alpha, gamma):
    logits = seeded(3, 4, seed=7, requires_grad=True)
    targets = (seeded(3, 4, seed=8) > 0).double()
    assert torch.autograd.gradcheck(lambda x: focal_loss(x, targets, alpha, gamma, reduction), (logits,))


# class_balanced_weights -------------------------------------------------------------------

def test_class_balanced_weights_hand_worked():
    # beta = 0.5: effective numbers (1 - 0.5^1) / 0.5 = 1 and (1 - 0.5^2) / 0.5 = 1.5,
    # weights proportional to 1 and 2/3 (sum 5/3), scaled to sum 2: 6/5 and 4/5.
    for counts in ([1, 2], (1, 2), np.array([1, 2]), torch.tensor([1, 2], dtype=torch.int32)):
        torch.testing.assert_close(class_balanced_weights(counts, 0.5), torch.tensor([1.2, 0.8]))


def test_class_balanced_weights_beta_zero_is_all_ones():
    torch.testing.assert_close(class_balanced_weights([1, 10, 1000, 7], 0.0), torch.ones(4))
    torch.testing.assert_close(class_balanced_weights([5], 0.0), torch.ones(1))


@pytest.mark.parametrize("beta", [1 - 1e-9, 1 - 1e-12])
def test_class_balanced_weights_approach_inverse_frequency_as_beta_tends_to_one(beta):
    counts = torch.tensor([1, 10, 1000, 50_000])
    inverse = 1.0 / counts.double()
    expected = (inverse * len(counts) / inverse.sum()).float()
    torch.testing.assert_close(class_balanced_weights(counts, beta), expected, rtol=1e-4, atol=0)


@settings(max_examples=60)
@given(
    counts=st.lists(st.integers(1, 10**6), min_size=1, max_size=12),
    beta=st.floats(0.0, 1.0, exclude_max=True),
)
def test_class_balanced_weights_sum_to_c_and_favour_rare_classes(counts, beta):
    weights = class_balanced_weights(counts, beta)
    assert weights.shape == (len(counts),) and weights.dtype == torch.get_default_dtype()
    assert (weights > 0).all()
    assert weights.double().sum().item() == pytest.approx(len(counts), rel=1e-5)
    order = np.argsort(counts, kind="stable")
    assert (np.diff(weights.numpy()[order]) <= 1e-6).all()  # more samples, no more weight


# distillation_loss ------------------------------------------------------------------------

def test_distillation_hand_worked():
    # T = 2, teacher logits [2 ln 3, 0] -> [ln 3, 0] -> softmax [3/4, 1/4]; student [0, 0] -> [1/2, 1/2].
    # KL = 3/4 ln(3/2) + 1/4 ln(1/2) ~= 0.304099 - 0.173287 = 0.130812; times T^2 = 4 -> 0.523248.
    # CE(student, class 0) = ln 2 ~= 0.693147. alpha = 0.5: 0.5 * 0.523248 + 0.5 * 0.693147 ~= 0.608198.
    student = torch.zeros(1, 2, dtype=torch.float64)
    teacher = torch.tensor([[2 * math.log(3), 0.0]], dtype=torch.float64)
    got = distillation_loss(student, teacher, torch.tensor([0]), temperature=2.0, alpha=0.5)
    kl = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    assert got.item() == pytest.approx(0.5 * 4 * kl + 0.5 * math.log(2), rel=1e-12)
    assert got.item() == pytest.approx(0.608198, abs=1e-6)


@settings(max_examples=40)
@given(
    batch=classification_batches(),
    temperature=st.sampled_from([0.5, 1.0, 2.0, 4.0, 10.0]),
    alpha=st.sampled_from([0.0, 0.3, 0.9, 1.0]),
    seed=st.integers(0, 2**31 - 1),
)
def test_distillation_matches_kl_div_formula(batch, temperature, alpha, seed):
    student, targets = batch
    teacher = 3 * torch.randn(student.shape, generator=torch.Generator().manual_seed(seed), dtype=student.dtype)
    torch.testing.assert_close(
        distillation_loss(student, teacher, targets, temperature, alpha),
        reference_distillation(student, teacher, targets, temperature, alpha),
        rtol=1e-10, atol=1e-12,
    )


@settings(max_examples=30)
@given(batch=classification_batches(), temperature=st.sampled_from([0.5, 1.0, 3.0]))
def test_distillation_with_alpha_zero_is_cross_entropy(batch, temperature):
    student, targets = batch
    teacher = torch.randn(student.shape, dtype=student.dtype)
    torch.testing.assert_close(
        distillation_loss(student, teacher, targets, temperature, alpha=0.0),
        F.cross_entropy(student, targets), rtol=1e-12, atol=1e-12,
    )


def test_distillation_soft_term_is_zero_when_student_equals_teacher():
    logits, targets = seeded(6, 5, seed=9), torch.arange(6) % 5
    torch.testing.assert_close(distillation_loss(logits, logits.clone(), targets, 3.0, alpha=1.0),
                               torch.tensor(0.0, dtype=torch.float64))


def test_distillation_gradcheck():
    student = seeded(4, 3, seed=10, requires_grad=True)
    teacher, targets = seeded(4, 3, seed=11), torch.tensor([2, 0, 1, 1])
    assert torch.autograd.gradcheck(lambda s: distillation_loss(s, teacher, targets, 2.5, 0.7), (student,))


def test_distillation_gives_the_teacher_no_gradient():
    student = seeded(4, 3, seed=12, requires_grad=True)
    teacher, targets = seeded(4, 3, seed=13, requires_grad=True), torch.tensor([0, 1, 2, 0])
    distillation_loss(student, teacher, targets, 2.0, 0.5).backward()
    assert teacher.grad is None
    assert student.grad is not None and student.grad.abs().sum() > 0


def soft_gradient(student, teacher, temperature):
    """Gradient of the soft (alpha = 1) term with respect to the student logits."""
    student = student.clone().requires_grad_(True)
    distillation_loss(student, teacher, torch.zeros(len(student), dtype=torch.long), temperature, 1.0).backward()
    return student.grad


def test_distillation_soft_gradient_tends_to_logit_matching():
    """Hinton et al. eq. (3)-(4): for large T with zero-mean logits the T^2-scaled gradient
    tends to (z - v) / (C N), independent of T. Without T^2 it would shrink like 1 / T^2."""
    n, c = 3, 5
    student, teacher = seeded(n, c, seed=14), seeded(n, c, seed=15)
    student, teacher = student - student.mean(1, keepdim=True), teacher - teacher.mean(1, keepdim=True)
    limit = (student - teacher) / (c * n)
    # The next term of the expansion is O(1 / T): at T = 10^4 it is about 10^-4 of the limit.
    torch.testing.assert_close(soft_gradient(student, teacher, 1e4), limit, rtol=1e-3, atol=1e-6)
    # Already at T = 4 and T = 8 the gradient sizes agree within 25% (they would differ 4x without T^2).
    ratio = soft_gradient(student, teacher, 8.0).norm() / soft_gradient(student, teacher, 4.0).norm()
    assert 0.8 < ratio.item() < 1.25


# Bad input --------------------------------------------------------------------------------

LOGITS, LABELS = torch.zeros(2, 3), torch.tensor([0, 2])


@pytest.mark.parametrize(
    "args, error, pattern",
    [
        ((LOGITS.numpy(), LABELS), TypeError, "logits must be a torch.Tensor .*convert it with torch.as_tensor"),
        ((LOGITS.long(), LABELS), TypeError, "logits must be a floating-point tensor, got torch.int64"),
        ((torch.zeros(2, 3, 1), LABELS), ValueError, r"logits must have shape \[N, C\], got \(2, 3, 1\)"),
        ((LOGITS, LABELS.float()), TypeError, "targets must hold integer class indices, got torch.float32"),
        ((LOGITS, [0, 2]), TypeError, "targets must be a torch.Tensor"),
        ((LOGITS, torch.tensor([0, 1, 2])), ValueError, r"targets must have shape \[2\]"),
        ((LOGITS, torch.tensor([0, 3])), ValueError, r"targets must be class indices in \[0, 3\)"),
        ((LOGITS, torch.tensor([-1, 0])), ValueError, r"targets must be class indices in \[0, 3\)"),
        ((LOGITS, LABELS, -0.1), ValueError, r"label_smoothing must be finite and >= 0, got -0.1"),
        ((LOGITS, LABELS, 1.5), ValueError, r"label_smoothing must be in \[0, 1\], got 1.5"),
        ((LOGITS, LABELS, "0.1"), TypeError, "label_smoothing must be a real number, got str"),
    ],
)
def test_cross_entropy_rejects_bad_arguments(args, error, pattern):
    """Check that softmax_cross_entropy names the bad argument and what it got."""
    with pytest.raises(error, match=pattern):
        softmax_cross_entropy(*args)


BINARY = torch.zeros(2, 3)


@pytest.mark.parametrize(
    "args, kwargs, error, pattern",
    [
        ((BINARY.tolist(), BINARY), {}, TypeError, "logits must be a torch.Tensor, got builtins.list"),
        ((BINARY.long(), BINARY), {}, TypeError, "logits must be a floating-point tensor"),
        ((BINARY, BINARY.long()), {}, TypeError, "targets must be a floating-point tensor, got torch.int64"),
        ((BINARY, torch.zeros(3, 2)), {}, ValueError,
         r"targets must have the same shape as logits, got \(3, 2\) and \(2, 3\)"),
        ((BINARY, BINARY + 2), {}, ValueError, r"targets must be in \[0, 1\]"),
        ((BINARY, BINARY), {"alpha": 1.5}, ValueError,
         r"alpha must be in \[0, 1\], or negative for no weighting, got 1.5"),
        ((BINARY, BINARY), {"alpha": float("nan")}, ValueError, "alpha must be in"),
        ((BINARY, BINARY), {"alpha": None}, TypeError, "alpha must be a real number, got NoneType"),
        ((BINARY, BINARY), {"gamma": -1.0}, ValueError, "gamma must be finite and >= 0, got -1.0"),
        ((BINARY, BINARY), {"gamma": True}, TypeError, "gamma must be a real number, got bool"),
        ((BINARY, BINARY), {"reduction": "avg"}, ValueError,
         "reduction must be one of 'none', 'mean', 'sum', got 'avg'"),
        ((BINARY, BINARY), {"reduction": None}, ValueError, "reduction must be one of .* got None"),
    ],
)
def test_focal_rejects_bad_arguments(args, kwargs, error, pattern):
    """Check that focal_loss names the bad argument and what it got."""
    with pytest.raises(error, match=pattern):
        focal_loss(*args, **kwargs)


@pytest.mark.parametrize(
    "counts, beta, error, pattern",
    [
        ([1.0, 2.0], 0.9, TypeError, "counts must hold integers, got float 1.0"),
        ([True, 2], 0.9, TypeError, "counts must hold integers, got bool"),
        (np.array([1.5, 2.0]), 0.9, TypeError, "counts must hold integers, got torch.float64"),
        (torch.tensor([1.0]), 0.9, TypeError, "counts must hold integers, got torch.float32"),
        ("12", 0.9, TypeError, "counts must be a sequence, ndarray or tensor of integers, got str"),
        ([], 0.9, ValueError, r"counts must be a non-empty 1-D sequence \[C\], got shape \(0,\)"),
        (np.ones((2, 2), dtype=int), 0.9, ValueError, r"counts must be a non-empty 1-D .* got shape \(2, 2\)"),
        ([3, 0, 2], 0.9, ValueError, r"counts must be >= 1 .* got \[3, 0, 2\]"),
        ([3, 2], 1.0, ValueError, r"beta must be in \[0, 1\), got 1.0"),
        ([3, 2], -0.5, ValueError, "beta must be finite and >= 0, got -0.5"),
        ([3, 2], "0.9", TypeError, "beta must be a real number, got str"),
    ],
)
def test_class_balanced_weights_rejects_bad_arguments(counts, beta, error, pattern):
    """Check that class_balanced_weights names the bad argument and what it got."""
    with pytest.raises(error, match=pattern):
        class_balanced_weights(counts, beta)


TEACHER = torch.ones(2, 3)


@pytest.mark.parametrize(
    "args, error, pattern",
    [
        ((LOGITS.numpy(), TEACHER, LABELS, 2.0, 0.5), TypeError, "student_logits must be a torch.Tensor"),
        ((LOGITS, TEACHER.long(), LABELS, 2.0, 0.5), TypeError, "teacher_logits must be a floating-point tensor"),
        ((LOGITS, torch.ones(2, 4), LABELS, 2.0, 0.5), ValueError,
         r"teacher_logits must have the same shape as student_logits, got \(2, 4\) and \(2, 3\)"),
        ((LOGITS, torch.ones(3), LABELS, 2.0, 0.5), ValueError, r"teacher_logits must have shape \[N, C\]"),
        ((LOGITS, TEACHER, torch.tensor([0, 5]), 2.0, 0.5), ValueError, r"targets must be class indices in \[0, 3\)"),
        ((LOGITS, TEACHER, LABELS.float(), 2.0, 0.5), TypeError, "targets must hold integer class indices"),
        ((LOGITS, TEACHER, LABELS, 0.0, 0.5), ValueError, "temperature must be finite and > 0, got 0.0"),
        ((LOGITS, TEACHER, LABELS, -2.0, 0.5), ValueError, "temperature must be finite and > 0"),
        ((LOGITS, TEACHER, LABELS, float("inf"), 0.5), ValueError, "temperature must be finite and > 0, got inf"),
        ((LOGITS, TEACHER, LABELS, torch.tensor(2.0), 0.5), TypeError, "temperature must be a real number, got Tensor"),
        ((LOGITS, TEACHER, LABELS, 2.0, 1.1), ValueError, r"alpha must be in \[0, 1\], got 1.1"),
        ((LOGITS, TEACHER, LABELS, 2.0, -0.1), ValueError, "alpha must be finite and >= 0, got -0.1"),
    ],
)
def test_distillation_rejects_bad_arguments(args, error, pattern):
    """Check that distillation_loss names the bad argument and what it got."""
    with pytest.raises(error, match=pattern):
        distillation_loss(*args)
