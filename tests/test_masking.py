"""Gradient-masking diagnostics: planted masked models are flagged, a plain model is not, and
every check answers known inputs correctly."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rlrobust.data import load_dataset
from rlrobust.diagnostics import Flag, MaskingReport, diagnose_masking
from rlrobust.diagnostics.masking import (
    BUDGETS,
    MaskingBudget,
    measure_forward_randomness,
    measure_noise_stability,
)
from rlrobust.diagnostics.masking_checks import (
    ACCURACY_TOLERANCE,
    FLAG_NAMES,
    NO_COLLAPSE_ACCURACY,
    VANISHING_ULPS,
    check_blackbox_beats_whitebox,
    check_eps_no_collapse,
    check_nan_gradients,
    check_one_step_beats_iterative,
    check_probabilities_not_logits,
    check_random_forward,
    check_unbounded_attack,
    check_unconverged_attack,
    check_unstable_under_noise,
    check_vanishing_gradients,
    check_zero_gradients,
    summarize_gradients,
    summarize_outputs,
)
from rlrobust.errors import ConfigError
from rlrobust.models import build_model

DOCS = Path(__file__).resolve().parents[1] / "docs" / "masking_flags.md"
EPS = 0.1
# A small budget: the checks are the same as "quick", on fewer points with shorter attacks.
BUDGET = MaskingBudget(
    n_points=120,
    pgd_steps=10,
    long_steps=30,
    restarts=2,
    unbounded_steps=30,
    eps_multipliers=(1.0, 2.0, 4.0),
    forward_repeats=3,
    noise_draws=3,
)

# Tiny tensors: one torch thread avoids start-up and contention costs (see conftest.py).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digits():
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    return train, test.images.float() / 255, test.labels


@pytest.fixture(scope="module")
def plain_model(digits):
    """An MLP trained on digits with plain cross-entropy (full batch, 150 Adam steps)."""
    train, _, _ = digits
    torch.manual_seed(0)
    model = build_model(
        "mlp", num_classes=10, in_channels=1, image_size=8, mean=train.mean, std=train.std
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    x = train.images.float() / 255
    for _ in range(150):
        loss = F.cross_entropy(model(x), train.labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return model.eval()


class Quantised(nn.Module):
    """Shattered gradients: inputs rounded to 5 grey levels before the model (zero gradient)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(torch.round(x * 4) / 4)


class SaturatedSoftmax(nn.Module):
    """Returns softmax(1e4 * logits) as its "logits": probabilities, saturated to one-hot."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return torch.softmax(1e4 * self.inner(x), dim=1)


class DropoutInEval(nn.Module):
    """A random forward pass: input dropout that stays active in eval mode."""

    def __init__(self, inner: nn.Module, p: float = 0.3) -> None:
        super().__init__()
        self.inner, self.p = inner, p

    def forward(self, x):
        return self.inner(F.dropout(x, self.p, training=True))


class NaNOutputs(nn.Module):
    """log of negative numbers: NaN outputs on every point."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return torch.log(self.inner(x) - 1e6)


def run(model, digits, **kwargs) -> MaskingReport:
    _, x, y = digits
    return diagnose_masking(model, x, y, EPS, budget=BUDGET, **kwargs)


# --------------------------------------------------------------------------- whole models


@pytest.fixture(scope="module")
def plain_report(plain_model, digits):
    return run(plain_model, digits)


def test_plain_cross_entropy_model_is_not_flagged(plain_report):
    evidence = [f.message for f in plain_report.flags if f.severity == "evidence"]
    assert plain_report.verdict == "no evidence of masking", evidence
    assert not plain_report.masked
    m = plain_report.measurements
    # The report holds the numbers behind the verdict, and they are the expected ones.
    assert m["clean_accuracy"] > 0.9
    assert m["pgd_accuracy"] <= m["fgsm_accuracy"] + ACCURACY_TOLERANCE
    assert m["eps_sweep"]["accuracy"][-1] <= NO_COLLAPSE_ACCURACY
    assert m["unbounded"]["success_rate"] == 1.0
    assert m["gradients"]["zero_fraction"] == {"ce": 0.0, "margin": 0.0}
    assert m["forward_randomness"]["max_relative_difference"] == 0.0


def test_report_is_json_and_records_settings(plain_report):
    record = json.loads(json.dumps(plain_report.to_dict()))
    assert record["verdict"] == plain_report.verdict
    assert record["settings"]["n_points"] == BUDGET.n_points
    assert record["settings"]["eps"] == EPS
    assert record["thresholds"]["accuracy_tolerance"] == ACCURACY_TOLERANCE
    assert record["measurements"]["n_points"] == BUDGET.n_points
    assert "Masking diagnostics" in plain_report.to_markdown()


@pytest.mark.parametrize(
    ("wrapper", "expected"),
    [
        (Quantised, {"M01", "M09"}),
        (SaturatedSoftmax, {"M04", "M01"}),
        (DropoutInEval, {"M05"}),
    ],
    ids=["quantised-input", "saturated-softmax", "dropout-in-eval"],
)
def test_planted_masked_models_are_flagged(plain_model, digits, wrapper, expected):
    torch.manual_seed(0)  # the dropout model draws from the global generator
    report = run(wrapper(plain_model).eval(), digits)
    assert report.verdict == "evidence of masking"
    assert expected <= set(report.codes), report.to_markdown()
    for flag in report.flags:
        if flag.code in expected:
            assert flag.severity == "evidence"


def test_l2_threat_model_separates_plain_from_quantised(plain_model, digits):
    _, x, y = digits
    plain = diagnose_masking(plain_model, x, y, 1.0, "l2", budget=BUDGET)
    assert plain.verdict == "no evidence of masking", plain.to_markdown()
    # The l2 sweep ends at 0.5 sqrt(d) = 4 (the grey image), the unbounded attack at sqrt(d) = 8.
    assert plain.measurements["eps_sweep"]["eps"][-1] == pytest.approx(4.0)
    assert plain.measurements["unbounded"]["eps"] == pytest.approx(8.0)
    quantised = diagnose_masking(Quantised(plain_model), x, y, 1.0, "l2", budget=BUDGET)
    assert quantised.masked and {"M01", "M09"} <= set(quantised.codes)


def test_nan_model_is_flagged_and_attack_checks_are_skipped(plain_model, digits):
    report = run(NaNOutputs(plain_model), digits)
    assert report.masked and "M02" in report.codes
    assert set(report.skipped) == {"M06", "M07", "M08", "M09", "M10", "M12"}


def test_blackbox_results_enter_the_report(plain_model, digits):
    _, x, y = digits
    broken_everywhere = torch.zeros(len(x), dtype=torch.bool)
    report = run(plain_model, digits, extra_results={"square": broken_everywhere})
    flags = [f for f in report.flags if f.code == "M07"]
    assert report.masked and len(flags) == 1
    assert flags[0].details["blackbox_accuracy"] == 0.0
    # The white-box worst case is per sample over the diagnostic's own FGSM and PGD.
    m = report.measurements
    assert 0 < flags[0].details["whitebox_accuracy"] <= min(m["fgsm_accuracy"], m["pgd_accuracy"])
    with pytest.raises(ConfigError, match="one robust flag per point"):
        run(plain_model, digits, extra_results={"square": broken_everywhere[:-1]})


def test_model_is_left_as_found(plain_model, digits):
    _, x, y = digits
    plain_model.train()
    flags = [p.requires_grad for p in plain_model.parameters()]
    small = MaskingBudget(n_points=20, pgd_steps=2, long_steps=3, restarts=2, unbounded_steps=3)
    diagnose_masking(plain_model, x, y, EPS, budget=small)
    assert plain_model.training
    assert [p.requires_grad for p in plain_model.parameters()] == flags
    assert all(p.grad is None for p in plain_model.parameters())
    plain_model.eval()


def test_bad_arguments_are_refused(plain_model, digits):
    _, x, y = digits
    with pytest.raises(ConfigError, match="quick"):
        diagnose_masking(plain_model, x, y, EPS, budget="thorough")
    with pytest.raises(ConfigError, match="eps must be > 0"):
        diagnose_masking(plain_model, x, y, 0.0)
    with pytest.raises(ConfigError, match="unknown flag code"):
        Flag("M99", "evidence", "no such code")
    with pytest.raises(ConfigError, match="severity"):
        Flag("M01", "fatal", "no such severity")


def test_budgets_state_their_cost():
    assert BUDGETS["quick"].gradient_passes() < BUDGETS["standard"].gradient_passes()
    # 2 gradients + FGSM + PGD-10 keeping fooling iterates + PGD-10 at 4 radii + PGD-50 + 3
    # restarts of PGD-10 + unbounded PGD-50.
    assert BUDGETS["quick"].gradient_passes() == 2 + 1 + 10 + 40 + 50 + 30 + 50


# --------------------------------------------------------------------------- single checks


def test_m04_probability_and_log_probability_rows_but_not_logits():
    logits = torch.randn(50, 10, generator=torch.Generator().manual_seed(0)) * 3

    def codes(outputs):
        s = summarize_outputs(outputs)
        flags = check_probabilities_not_logits(
            s["probability_rows_fraction"], s["log_probability_rows_fraction"]
        )
        return [(f.code, f.details["kind"]) for f in flags]

    assert codes(logits.softmax(1)) == [("M04", "probabilities")]
    assert codes(logits.log_softmax(1)) == [("M04", "log-probabilities")]
    assert codes(logits) == []
    assert codes(logits.softmax(1) * 2) == []  # rows sum to 2: not probabilities


def test_m01_zero_gradients_evidence_warning_and_none():
    logits = torch.randn(100, 10)
    grad = torch.randn(100, 1, 8, 8)
    half = grad.clone()
    half[:50] = 0
    one = grad.clone()
    one[0] = 0

    def check(grads):
        s = summarize_gradients(grads, logits, EPS, "linf")
        return check_zero_gradients(s["zero_fraction"], s["zero_all_losses_fraction"])

    [flag] = check({"ce": half, "margin": half})
    assert (flag.code, flag.severity) == ("M01", "evidence")
    assert flag.details["zero_fraction"]["ce"] == 0.5 and flag.details["zero_all_losses"] == 0.5
    [flag] = check({"ce": half, "margin": grad})  # CE saturates, margin still works
    assert flag.severity == "evidence" and "margin or DLR" in flag.message
    [flag] = check({"ce": one, "margin": one})
    assert flag.severity == "warning"
    assert check({"ce": grad, "margin": grad}) == []


def test_m02_nan_in_gradients_or_outputs():
    logits = torch.randn(10, 10)
    grad = torch.randn(10, 64)
    bad = grad.clone()
    bad[3, 5] = float("nan")
    s = summarize_gradients({"ce": bad, "margin": grad}, logits, EPS, "linf")
    assert s["nonfinite_fraction"] == {"ce": 0.1, "margin": 0.0}
    [flag] = check_nan_gradients(0.0, s["nonfinite_fraction"])
    assert flag.code == "M02" and flag.severity == "evidence"
    inf_outputs = logits.clone()
    inf_outputs[0, 0] = float("inf")
    assert summarize_outputs(inf_outputs)["nonfinite_fraction"] == 0.1
    assert len(check_nan_gradients(0.1, {"ce": 0.0})) == 1
    assert check_nan_gradients(0.0, {"ce": 0.0, "margin": 0.0}) == []


def test_m03_vanishing_is_judged_relative_to_the_logits_scale():
    grad = torch.full((20, 64), 1e-12)  # eps * ||g||_1 = 0.1 * 64e-12 = 6.4e-12
    big_logits = torch.full((20, 10), 10.0)  # resolution 1.19e-7 * 10 = 1.2e-6
    s = summarize_gradients({"ce": grad, "margin": grad}, big_logits, EPS, "linf")
    assert s["median_change_over_ball"]["margin"] == pytest.approx(6.4e-12)
    assert s["vanishing_fraction"] == 1.0
    [flag] = check_vanishing_gradients(s["vanishing_fraction"])
    assert flag.code == "M03"
    # Logits as small as their gradients: proportionate, not vanishing.
    tiny_logits = torch.full((20, 10), 1e-12)
    s = summarize_gradients({"ce": grad, "margin": grad}, tiny_logits, EPS, "linf")
    assert s["vanishing_fraction"] == 0.0 and check_vanishing_gradients(0.0) == []
    # Just above the threshold on one loss is enough to count as usable.
    usable = torch.full((20, 64), 2 * VANISHING_ULPS * 1.2e-6 / (EPS * 64))
    s = summarize_gradients({"ce": grad, "margin": usable}, big_logits, EPS, "linf")
    assert s["vanishing_fraction"] == 0.0


def test_m05_random_forward(plain_model, digits):
    _, x, _ = digits
    measured = measure_forward_randomness(plain_model, x[:50])
    assert measured["max_relative_difference"] == 0.0
    assert check_random_forward(0.0, 0.0) == []
    torch.manual_seed(0)
    measured = measure_forward_randomness(DropoutInEval(plain_model), x[:50])
    assert measured["max_relative_difference"] > 0.01
    flags = check_random_forward(
        measured["max_relative_difference"], measured["prediction_change_fraction"]
    )
    assert [f.code for f in flags] == ["M05"]
    assert check_random_forward(1e-7, 0.0) == []  # float non-determinism is tolerated
    assert len(check_random_forward(0.0, 0.01)) == 1  # any flipped prediction is not


def test_m06_one_step_beats_iterative():
    [flag] = check_one_step_beats_iterative(fgsm_accuracy=0.3, pgd_accuracy=0.5)
    assert flag.code == "M06" and flag.details == {"fgsm_accuracy": 0.3, "pgd_accuracy": 0.5}
    assert check_one_step_beats_iterative(0.5, 0.3) == []
    assert check_one_step_beats_iterative(0.49, 0.5) == []  # within the tolerance


def test_m07_blackbox_beats_whitebox():
    pgd = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    square = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    [flag] = check_blackbox_beats_whitebox({"pgd": pgd, "square": square}, whitebox=["pgd"])
    assert flag.severity == "evidence"
    assert flag.details["whitebox_accuracy"] == 0.4 and flag.details["blackbox_accuracy"] == 0.1
    assert flag.details["broken_only_by_blackbox"] == pytest.approx(0.3)
    # Same accuracy but different points broken: a warning, not evidence.
    shifted = [0, 0, 1, 1, 1, 1, 0, 0, 0, 0]
    [flag] = check_blackbox_beats_whitebox({"pgd": pgd, "square": shifted}, whitebox=["pgd"])
    assert flag.severity == "warning"
    # The worst case over several white-box attacks is what a black-box attack must beat.
    fgsm = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    results = {"pgd": pgd, "fgsm": fgsm, "square": square}
    assert check_blackbox_beats_whitebox(results, whitebox=["pgd", "fgsm"]) == []
    assert check_blackbox_beats_whitebox({"pgd": pgd}, whitebox=["pgd"]) == []
    with pytest.raises(ConfigError, match="same points"):
        check_blackbox_beats_whitebox({"pgd": pgd, "square": square[:5]}, whitebox=["pgd"])
    with pytest.raises(ConfigError, match="no results"):
        check_blackbox_beats_whitebox({"square": square}, whitebox=["apgd"])


def test_m08_eps_no_collapse():
    radii = [0.1, 0.2, 0.5]
    assert check_eps_no_collapse(radii, [0.5, 0.1, 0.0], majority_share=0.1) == []
    [flag] = check_eps_no_collapse(radii, [0.5, 0.4, 0.35], majority_share=0.1)
    assert flag.code == "M08" and flag.details["limit"] == NO_COLLAPSE_ACCURACY
    [flag] = check_eps_no_collapse(radii, [0.3, 0.5, 0.0], majority_share=0.1)
    assert "rises" in flag.message
    # Two balanced classes: an optimal attack can leave half the points at eps = 0.5.
    assert check_eps_no_collapse(radii, [0.6, 0.45, 0.3], majority_share=0.5) == []


def test_m09_unbounded_attack_fails():
    [flag] = check_unbounded_attack(success_rate=0.9, n_attacked=100)
    assert flag.code == "M09"
    assert check_unbounded_attack(1.0, 100) == []
    assert check_unbounded_attack(math.nan, 0) == []  # nothing to attack


def test_m10_unconverged_attack():
    assert check_unconverged_attack(0.5, 0.49, 0.5) == []
    [flag] = check_unconverged_attack(0.5, more_steps_accuracy=0.45)
    assert (flag.code, flag.severity) == ("M10", "warning")
    assert flag.details["drop"] == pytest.approx(0.05)
    [flag] = check_unconverged_attack(0.5, 0.45, more_restarts_accuracy=0.3)
    assert flag.severity == "evidence" and "more restarts" in flag.message
    assert check_unconverged_attack(0.5) == []


def test_m11_unstable_under_noise(plain_model, digits):
    _, x, _ = digits
    stable = measure_noise_stability(plain_model, x[:100], noise=0.01, norm="linf", draws=3)
    assert stable["changed_fraction"] < 0.05 and check_unstable_under_noise(0.0) == []
    [flag] = check_unstable_under_noise(0.1, noise=0.01)
    assert (flag.code, flag.severity) == ("M11", "warning")
    [flag] = check_unstable_under_noise(0.5, noise=0.01)
    assert flag.severity == "evidence"
    torch.manual_seed(0)
    noisy = measure_noise_stability(DropoutInEval(plain_model, p=0.5), x[:100], 0.01, "linf")
    assert noisy["changed_fraction"] > 0.2


def test_every_flag_code_is_documented():
    text = DOCS.read_text()
    for code, name in FLAG_NAMES.items():
        match = re.search(rf"^## {code} {name}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
        assert match, f"{code} {name} has no section in {DOCS.name}"
        section = match.group(1)
        for part in ("Raised if", "What it means", "What to do"):
            assert f"**{part}**" in section, f"{code}: missing {part}"
