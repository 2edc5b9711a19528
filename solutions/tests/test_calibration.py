"""cvprep.calibration: ECE on predictors of known calibration, hand-worked bins, the loop
version against the vectorised one, and temperature scaling on problems of known temperature."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from cvprep.calibration import (
    apply_temperature,
    expected_calibration_error,
    expected_calibration_error_loops,
    fit_temperature,
    reliability_bins,
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny tensors: see conftest.py


def generator(seed):
    return torch.Generator().manual_seed(seed)


def nll(logits, targets, temperature):
    return float(F.cross_entropy(logits.double() / temperature, targets))


def calibrated_problem(seed, n=20_000, classes=5, scale=2.0):
    """Logits [n, classes] and targets drawn from softmax(logits): T = 1 is the true temperature."""
    g = generator(seed)
    logits = scale * torch.randn(n, classes, generator=g, dtype=torch.float64)
    targets = torch.multinomial(torch.softmax(logits, dim=1), 1, generator=g).squeeze(1)
    return logits, targets


@st.composite
def probs_and_targets(draw):
    """(probs [N, C], targets [N], n_bins). Half the time the rows are small integers over
    their sum, so that many confidences lie exactly on a bin edge (e.g. 3 / 10 with 10 bins)."""
    n, classes, n_bins = draw(st.integers(1, 40)), draw(st.integers(1, 5)), draw(st.integers(1, 20))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if draw(st.booleans()):
        weights = rng.integers(0, 5, size=(n, classes)).astype(np.float64)
        weights[:, 0] += weights.sum(axis=1) == 0  # no all-zero row
    else:
        weights = np.exp(rng.normal(scale=draw(st.sampled_from([0.1, 1.0, 5.0])), size=(n, classes)))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    probs = torch.from_numpy(weights / weights.sum(axis=1, keepdims=True)).to(dtype)
    return probs, torch.from_numpy(rng.integers(0, classes, size=n)), n_bins


# ECE on predictors whose calibration is known --------------------------------------------

def test_ece_of_a_calibrated_predictor_is_near_zero():
    """Each prediction is right with probability equal to its confidence."""
    g, n, classes = generator(0), 200_000, 10
    confidence = 0.15 + 0.85 * torch.rand(n, generator=g, dtype=torch.float64)  # > 1 / classes
    predicted = torch.randint(classes, (n,), generator=g)
    probs = ((1 - confidence) / (classes - 1)).unsqueeze(1).repeat(1, classes)  # the rest shared evenly
    probs[torch.arange(n), predicted] = confidence
    correct = torch.rand(n, generator=g, dtype=torch.float64) < confidence
    wrong_class = (predicted + torch.randint(1, classes, (n,), generator=g)) % classes
    targets = torch.where(correct, predicted, wrong_class)
    assert expected_calibration_error(probs, targets) < 0.01
    # The same predictions claiming 0.2 more confidence (where they can) are measurably off.
    sharper = probs.clone()
    sharper[torch.arange(n), predicted] = (confidence + 0.2).clamp(max=1.0)
    sharper /= sharper.sum(dim=1, keepdim=True)
    assert expected_calibration_error(sharper, targets) > 0.05


@pytest.mark.parametrize("classes", [2, 3])
def test_ece_of_an_overconfident_predictor_is_the_gap(classes):
    # Ten samples, all with confidence 0.9, six of them right: every sample is in one bin,
    # accuracy 6 / 10 = 0.6, so ECE = 1.0 * |0.6 - 0.9| = 0.3.
    row = [0.9] + [0.1 / (classes - 1)] * (classes - 1)
    probs = torch.tensor([row] * 10, dtype=torch.float64)
    targets = torch.tensor([0] * 6 + [1] * 4)
    for ece in (expected_calibration_error, expected_calibration_error_loops):
        assert ece(probs, targets) == pytest.approx(0.3, abs=1e-12)


# Hand-worked bins and the edge rule -------------------------------------------------------

HAND_PROBS = torch.tensor(
    [
        [0.25, 0.25, 0.25, 0.25],  # confidence 0.25 on the edge -> bin 0; tie -> predicts 0; target 0: right
        [0.5, 0.5, 0.0, 0.0],  # 0.5 on the edge -> bin 1; predicts 0; target 1: wrong
        [0.1, 0.6, 0.2, 0.1],  # 0.6 -> bin 2; predicts 1; target 1: right
        [0.0, 0.0, 0.75, 0.25],  # 0.75 on the edge -> bin 2; predicts 2; target 3: wrong
        [0.0, 0.0, 0.0, 1.0],  # 1.0 -> bin 3; predicts 3; target 3: right
        [0.8, 0.2, 0.0, 0.0],  # 0.8 -> bin 3; predicts 0; target 0: right
    ],
    dtype=torch.float64,
)
HAND_TARGETS = torch.tensor([0, 1, 1, 3, 3, 0])


def test_reliability_bins_hand_worked():
    # Four bins: (0, .25], (.25, .5], (.5, .75], (.75, 1].
    # counts:     1, 1, 2, 2
    # confidence: .25, .5, (.6 + .75) / 2 = .675, (1 + .8) / 2 = .9
    # accuracy:   1 / 1, 0 / 1, 1 / 2, 2 / 2
    bins = reliability_bins(HAND_PROBS, HAND_TARGETS, n_bins=4)
    torch.testing.assert_close(bins.edges, torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0], dtype=torch.float64))
    assert bins.counts.tolist() == [1, 1, 2, 2]
    torch.testing.assert_close(bins.confidence, torch.tensor([0.25, 0.5, 0.675, 0.9], dtype=torch.float64))
    torch.testing.assert_close(bins.accuracy, torch.tensor([1.0, 0.0, 0.5, 1.0], dtype=torch.float64))


def test_ece_hand_worked():
    # From the bins above: (1 * .75 + 1 * .5 + 2 * .175 + 2 * .1) / 6 = 1.8 / 6 = 0.3.
    for ece in (expected_calibration_error, expected_calibration_error_loops):
        assert ece(HAND_PROBS, HAND_TARGETS, n_bins=4) == pytest.approx(0.3, abs=1e-12)


def row_with_confidence(confidence):
    """A row of probabilities whose largest value (first) is ``confidence``: [c, c, ..., rest]."""
    row, rest = [confidence], 1.0 - confidence
    while rest > confidence:
        row.append(confidence)
        rest -= confidence
    return row + [rest]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("k", [1, 3, 5, 6, 9, 10])
def test_confidence_on_an_edge_falls_in_the_bin_below(dtype, k):
    """With 10 bins a confidence of exactly k / 10 is in bin k - 1: (k-1)/10 < c <= k/10.
    In float32 too, where 0.3 and 0.6 round above their float64 values."""
    probs = torch.tensor([row_with_confidence(k / 10)], dtype=dtype)
    counts = reliability_bins(probs, torch.tensor([0]), n_bins=10).counts
    assert counts.tolist() == [int(b == k - 1) for b in range(10)]
    ece = expected_calibration_error_loops(probs, torch.tensor([0]), n_bins=10)
    assert ece == pytest.approx(1 - float(probs[0, 0]))  # one right sample: |1 - c|


def test_empty_bins_are_zero_and_do_not_count():
    bins = reliability_bins(torch.tensor([[0.95, 0.05]]), torch.tensor([0]), n_bins=10)
    assert bins.counts.tolist() == [0] * 9 + [1]
    assert bins.confidence[:9].eq(0).all() and bins.accuracy[:9].eq(0).all()
    assert expected_calibration_error(torch.tensor([[0.95, 0.05]]), torch.tensor([0]), n_bins=10) == pytest.approx(0.05)


def test_confidence_a_rounding_error_above_one_is_in_the_last_bin():
    probs = torch.tensor([[1.00005, 0.0]], dtype=torch.float64)  # within the row-sum tolerance
    assert reliability_bins(probs, torch.tensor([0]), n_bins=5).counts.tolist() == [0, 0, 0, 0, 1]
    assert expected_calibration_error_loops(probs, torch.tensor([0]), n_bins=5) == pytest.approx(5e-5)


# Loop version against the vectorised one ---------------------------------------------------

@settings(max_examples=150)
@given(case=probs_and_targets())
def test_ece_loops_match_vectorised(case):
    probs, targets, n_bins = case
    expected = expected_calibration_error_loops(probs, targets, n_bins)
    assert expected_calibration_error(probs, targets, n_bins) == pytest.approx(expected, abs=1e-12)
    assert 0.0 <= expected <= 1.0


@settings(max_examples=60)
@given(case=probs_and_targets())
def test_reliability_bins_count_every_sample_once_and_stay_in_range(case):
    probs, targets, n_bins = case
    bins = reliability_bins(probs, targets, n_bins)
    assert bins.counts.sum() == len(targets)
    filled = bins.counts > 0
    lower, upper = bins.edges[:-1][filled], bins.edges[1:][filled]
    assert ((bins.confidence[filled] > lower) & (bins.confidence[filled] <= upper + 1e-12)).all()
    assert ((bins.accuracy >= 0) & (bins.accuracy <= 1)).all()


# Temperature scaling -----------------------------------------------------------------------

@pytest.mark.parametrize("factor", [3.0, 1 / 3])
def test_fit_temperature_recovers_the_generating_temperature(factor):
    """Calibrated logits multiplied by ``factor`` need T = factor to be calibrated again:
    over-confident (factor 3) gives T > 1, under-confident (factor 1/3) T < 1."""
    logits, targets = calibrated_problem(seed=1)
    temperature = fit_temperature(logits * factor, targets)
    assert temperature == pytest.approx(factor, rel=0.05)
    assert (temperature > 1) == (factor > 1)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("factor", [0.2, 1.0, 5.0])
def test_fit_temperature_never_raises_nll_and_beats_a_grid(seed, factor):
    logits, targets = calibrated_problem(seed, n=2_000, classes=4)
    logits = (logits * factor).float()
    temperature = fit_temperature(logits, targets)
    fitted = nll(logits, targets, temperature)
    assert fitted <= nll(logits, targets, 1.0) + 1e-12
    grid = torch.from_numpy(np.geomspace(0.01, 100, 400))  # [400] temperatures
    scaled = logits.double().unsqueeze(0) / grid[:, None, None]  # [400, N, C]
    grid_nll = F.cross_entropy(scaled.transpose(1, 2), targets.expand(len(grid), -1), reduction="none").mean(dim=1)
    assert fitted <= float(grid_nll.min()) + 1e-12
    if factor != 1.0:  # over-confident logits need T > 1, under-confident ones T < 1
        assert (temperature > 1) == (factor > 1)


def test_fit_temperature_is_deterministic():
    logits, targets = calibrated_problem(seed=2, n=1_000)
    assert fit_temperature(logits * 2, targets) == fit_temperature(logits * 2, targets)


def test_fit_temperature_stops_at_the_bound_on_separable_data():
    # Every sample right with a margin: the NLL falls all the way to T -> 0.
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, -1.0]])
    targets = torch.tensor([0, 1, 0])
    assert fit_temperature(logits, targets, bounds=(0.05, 20.0)) == pytest.approx(0.05, rel=1e-6)


def test_fit_temperature_calibrates_ece():
    logits, targets = calibrated_problem(seed=3)
    overconfident = logits * 3
    before = expected_calibration_error(torch.softmax(overconfident, dim=1), targets)
    after = expected_calibration_error(apply_temperature(overconfident, fit_temperature(overconfident, targets)),
                                       targets)
    assert after < 0.02 < 0.1 < before


def test_apply_temperature_matches_softmax_and_keeps_predictions():
    logits = torch.randn(8, 5, generator=generator(4))
    probs = apply_temperature(logits, 2.5)
    torch.testing.assert_close(probs, F.softmax(logits / 2.5, dim=1))
    assert torch.equal(probs.argmax(dim=1), logits.argmax(dim=1))
    assert probs.max(dim=1).values.lt(F.softmax(logits, dim=1).max(dim=1).values).all()  # T > 1 softens


# Bad input ---------------------------------------------------------------------------------

GOOD_PROBS = torch.tensor([[0.7, 0.3], [0.4, 0.6]])
GOOD_TARGETS = torch.tensor([0, 1])


@pytest.mark.parametrize(
    "probs, targets, kwargs, error, pattern",
    [
        ([[0.7, 0.3]], GOOD_TARGETS, {}, TypeError, "probs must be a torch.Tensor"),
        (GOOD_PROBS.numpy(), GOOD_TARGETS, {}, TypeError, "probs must be a torch.Tensor .* torch.as_tensor"),
        (GOOD_PROBS[0], GOOD_TARGETS, {}, ValueError, r"probs must have shape \[N, C\], got \(2,\)"),
        (torch.tensor([[1, 0], [0, 1]]), GOOD_TARGETS, {}, TypeError, "probs must be a floating-point"),
        (torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), {}, ValueError, "probs must have shape .* N >= 1"),
        (torch.tensor([[1.2, -0.2], [0.4, 0.6]]), GOOD_TARGETS, {}, ValueError, "probs must be non-negative"),
        (torch.tensor([[0.7, 0.2], [0.4, 0.6]]), GOOD_TARGETS, {}, ValueError, "probs rows must sum to 1 .* row 0"),
        (torch.tensor([[math.nan, 1.0], [0.4, 0.6]]), GOOD_TARGETS, {}, ValueError, "probs must be finite"),
        (GOOD_PROBS, GOOD_TARGETS.float(), {}, TypeError, "targets must hold integer"),
        (GOOD_PROBS, [0, 1], {}, TypeError, "targets must be a torch.Tensor"),
        (GOOD_PROBS, GOOD_TARGETS[:1], {}, ValueError, r"targets must have shape \[2\]"),
        (GOOD_PROBS, torch.tensor([0, 2]), {}, ValueError, r"targets must be class indices in \[0, 2\)"),
        (GOOD_PROBS, GOOD_TARGETS, {"n_bins": 0}, ValueError, "n_bins must be >= 1, got 0"),
        (GOOD_PROBS, GOOD_TARGETS, {"n_bins": 2.5}, TypeError, "n_bins must be an int, got float"),
        (GOOD_PROBS, GOOD_TARGETS, {"n_bins": True}, TypeError, "n_bins must be an int, got bool"),
    ],
)
def test_ece_functions_reject_bad_input(probs, targets, kwargs, error, pattern):
    for function in (reliability_bins, expected_calibration_error, expected_calibration_error_loops):
        with pytest.raises(error, match=pattern):
            function(probs, targets, **kwargs)


GOOD_LOGITS = torch.tensor([[2.0, 0.0], [0.5, 1.0]])


@pytest.mark.parametrize(
    "logits, targets, kwargs, error, pattern",
    [
        (GOOD_LOGITS.numpy(), GOOD_TARGETS, {}, TypeError, "logits must be a torch.Tensor"),
        (GOOD_LOGITS.long(), GOOD_TARGETS, {}, TypeError, "logits must be a floating-point"),
        (GOOD_LOGITS[:, :1], GOOD_TARGETS, {}, ValueError, r"logits must have shape \[N, C\] with N >= 1 and C >= 2"),
        (torch.tensor([[math.inf, 0.0], [0.5, 1.0]]), GOOD_TARGETS, {}, ValueError, "logits must be finite"),
        (GOOD_LOGITS, torch.tensor([0, 5]), {}, ValueError, "targets must be class indices"),
        (GOOD_LOGITS, GOOD_TARGETS, {"bounds": (0.0, 10.0)}, ValueError, "bounds must be finite and > 0"),
        (GOOD_LOGITS, GOOD_TARGETS, {"bounds": (10.0, 1.0)}, ValueError, r"bounds must satisfy low < high"),
        (GOOD_LOGITS, GOOD_TARGETS, {"bounds": 10.0}, TypeError, r"bounds must be a pair"),
        (GOOD_LOGITS, GOOD_TARGETS, {"bounds": ("a", 10.0)}, TypeError, "bounds must be a real number"),
        (GOOD_LOGITS, GOOD_TARGETS, {"tol": -1.0}, ValueError, "tol must be finite and > 0"),
    ],
)
def test_fit_temperature_rejects_bad_input(logits, targets, kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        fit_temperature(logits, targets, **kwargs)


@pytest.mark.parametrize(
    "logits, temperature, error, pattern",
    [
        (GOOD_LOGITS.tolist(), 1.0, TypeError, "logits must be a torch.Tensor"),
        (GOOD_LOGITS[0], 1.0, ValueError, r"logits must have shape \[N, C\]"),
        (GOOD_LOGITS, 0.0, ValueError, "temperature must be finite and > 0, got 0.0"),
        (GOOD_LOGITS, math.inf, ValueError, "temperature must be finite and > 0"),
        (GOOD_LOGITS, torch.tensor(2.0), TypeError, "temperature must be a real number, got Tensor"),
    ],
)
def test_apply_temperature_rejects_bad_input(logits, temperature, error, pattern):
    with pytest.raises(error, match=pattern):
        apply_temperature(logits, temperature)
