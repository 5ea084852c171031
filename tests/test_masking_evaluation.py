"""Masking checks on the evaluation's own results (M12-M15): known inputs, known answers."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from rlrobust.diagnostics.masking_checks import (
    ACCURACY_TOLERANCE,
    OVERSTATE_EVIDENCE_EXCESS,
    QUERY_ONLY_EVIDENCE_FRACTION,
)
from rlrobust.diagnostics.masking_evaluation import (
    check_autoattack_sanity,
    check_gradient_attack_overstates,
    check_no_usable_gradient,
    check_query_attack_only,
    column_excess,
)
from rlrobust.diagnostics.masking_inputs import masking_inputs
from rlrobust.errors import ConfigError
from rlrobust.evaluation.report import masking_lines

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def flags_with(n: int, robust: int, offset: int = 0) -> torch.Tensor:
    """n flags, ``robust`` of them True, starting at ``offset`` (wrapping)."""
    out = torch.zeros(n, dtype=torch.bool)
    out[(torch.arange(robust) + offset) % n] = True
    return out


def test_column_excess_is_the_paired_gap_to_the_worst_case():
    n = 200
    pgd = flags_with(n, 120)  # points 0-119 robust
    aa = flags_with(n, 100)  # points 0-99 robust: a subset of PGD's
    square = flags_with(n, 110, offset=10)  # points 10-119
    columns = column_excess({"pgd": pgd, "aa": aa, "square": square})
    # Worst case: points 10-99 (90 points). PGD's excess is points 0-9 and 100-119: 30.
    assert columns["pgd"]["worst_case"] == pytest.approx(90 / n)
    assert columns["pgd"]["excess_points"] == 30
    assert columns["pgd"]["excess"] == pytest.approx(columns["pgd"]["accuracy"] - 90 / n)
    assert columns["aa"]["excess_points"] == 10 and columns["square"]["excess_points"] == 20
    low, high = columns["pgd"]["excess_interval"]
    assert low < 30 / n < high
    with pytest.raises(ConfigError, match="same points"):
        column_excess({"pgd": pgd, "aa": aa[:-1]})


def test_m12_evidence_needs_the_interval_not_the_bare_gap():
    n = 360
    worst = flags_with(n, 200)

    def judged(excess_points: int) -> list:
        pgd = flags_with(n, 200 + excess_points)  # a superset of the worst case
        return check_gradient_attack_overstates(
            column_excess({"pgd": pgd, "aa": worst}), ["pgd", "aa"]
        )

    assert judged(0) == [] and judged(int(ACCURACY_TOLERANCE * n)) == []
    # A gap above the tolerance whose interval still reaches below the evidence line: warning.
    warn = judged(int(OVERSTATE_EVIDENCE_EXCESS * n) + 2)
    assert [f.severity for f in warn] == ["warning"]
    assert warn[0].details["excess_interval"][0] <= OVERSTATE_EVIDENCE_EXCESS
    big = judged(80)  # 22 %: the lower bound is about 18 %
    assert [(f.code, f.severity) for f in big] == [("M12", "evidence")]
    assert big[0].details["attack"] == "pgd" and "pgd" in big[0].message


def test_m12_judges_only_the_iterative_gradient_columns():
    n = 300
    fgsm, pgd, square = flags_with(n, 250), flags_with(n, 150), flags_with(n, 150)
    columns = column_excess({"fgsm": fgsm, "pgd": pgd, "square": square})
    assert columns["fgsm"]["overstates"]  # reported in the columns...
    assert check_gradient_attack_overstates(columns, ["pgd"]) == []  # ...but not judged


def test_m13_query_only_points_from_the_breakdown():
    clean = {"apgd-ce": 150, "apgd-t": 4, "fab-t": 0, "square": 0}
    assert check_query_attack_only(clean, 360) == []
    # pyautoattack's own check warns above 0.2 %; one point in 360 is 0.28 %.
    one = check_query_attack_only({**clean, "square": 1}, 360)
    assert [f.severity for f in one] == ["warning"]
    many = check_query_attack_only({**clean, "square": 23}, 200)
    assert [(f.code, f.severity) for f in many] == [("M13", "evidence")]
    assert many[0].details["interval"][0] > QUERY_ONLY_EVIDENCE_FRACTION
    assert many[0].details["query_only_points"] == 23
    # Square alone in a custom ensemble has no gradient member to beat.
    assert check_query_attack_only({"square": 30}, 100) == []
    assert check_query_attack_only(clean, 0) == []


def test_m14_and_m15_flags():
    (flag,) = check_no_usable_gradient("element 0 of tensors does not require grad")
    assert flag.code == "M14" and flag.severity == "evidence" and "require grad" in flag.message
    flags = check_autoattack_sanity({"autoattack": ["it seems to be a randomized defense!"] * 2})
    assert [(f.code, f.severity) for f in flags] == [("M15", "warning")]


def record(breakdown: dict | None, clean_correct: list[int]) -> dict:
    aa_entry = {"label": "autoattack", "attack": {"name": "autoattack"}, "accuracy": 0.0}
    if breakdown is not None:
        aa_entry["breakdown"] = breakdown
    n = len(clean_correct)
    return {
        "n_examples": n,
        "attacks": [
            {"label": "fgsm", "attack": {"name": "fgsm"}},
            {"label": "pgd40-ce", "attack": {"name": "pgd"}},
            aa_entry,
            {"label": "square-x", "attack": {"name": "square"}},
        ],
        "per_sample": {
            "clean_correct": clean_correct,
            **{k: [0] * n for k in ("fgsm", "pgd40-ce", "autoattack", "square-x")},
        },
    }


def test_masking_inputs_from_a_record_and_why_a_breakdown_is_missing():
    inputs = masking_inputs(record({"apgd-ce": 1, "square": 0}, [1, 0]))
    assert inputs["whitebox"] == ["fgsm", "pgd40-ce", "autoattack"]
    assert inputs["one_step"] == ["fgsm"]
    assert inputs["ensembles"]["autoattack"]["n_points"] == 2
    assert inputs["ensembles"]["autoattack"]["reason"] is None
    empty = masking_inputs(record(None, [0, 0]))["ensembles"]["autoattack"]
    assert "no clean-correct point" in empty["reason"]
    mismatch = masking_inputs(record(None, [1, 0]))["ensembles"]["autoattack"]
    assert "batches did not match" in mismatch["reason"]


def test_report_lines_name_the_overstating_columns():
    masking = {
        "verdict": "evidence of masking",
        "flags": [],
        "skipped": {"M13": "autoattack: no point was attacked"},
        "measurements": {
            "columns": {
                "pgd40-ce": {"overstates": True, "excess": 0.178, "worst_case": 0.633},
                "autoattack": {"overstates": False, "excess": 0.0, "worst_case": 0.633},
                "pgd (diagnostic)": {"overstates": True, "excess": 0.2, "worst_case": 0.633},
            }
        },
    }
    text = "\n".join(masking_lines(masking))
    assert "`pgd40-ce` (+17.8 points over 63.3)" in text
    assert "autoattack` (+" not in text and "diagnostic" not in text
    assert "M13 not checked: autoattack: no point was attacked" in text


# --------------------------------------------------------------------------- pyautoattack


class Probabilities(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(64, 10)

    def forward(self, x):
        return self.linear(x.flatten(1)).softmax(dim=1)


class GradInForward(nn.Module):
    """Calls torch.autograd.grad in its forward: pyautoattack's dynamic-defence check fires."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(64, 10)

    def forward(self, x):
        with torch.enable_grad():
            z = x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(z.square().sum(), z)
        return self.linear((x + 0 * g).flatten(1))


def test_pyautoattack_sanity_warnings_are_recorded_and_the_dynamic_count_is_reset():
    from rlrobust.attacks.autoattack import AutoAttack, sanity_warnings

    torch.manual_seed(0)
    x, y = torch.rand(6, 1, 8, 8), torch.arange(6)
    found = sanity_warnings(Probabilities(), x, y)
    assert any("probability distribution" in w for w in found)
    assert any("dynamic defense" in w for w in sanity_warnings(GradInForward(), x, y))
    # pyautoattack never resets its call counts; a plain model checked next must not inherit.
    plain = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    assert not any("dynamic" in w for w in sanity_warnings(plain, x, y))
    attack = AutoAttack(eps=0.1, version="custom", attacks=["apgd-ce"], n_iter=2)
    attack(Probabilities(), x, y)
    assert any("probability distribution" in w for w in attack.last_sanity_warnings)
    assert attack.last_breakdown is not None and attack.last_breakdown_reason is None
    logger = logging.getLogger("auto-attack")
    assert not logger.handlers and logger.level == logging.NOTSET


def test_m16_adversarial_not_kept():
    from rlrobust.diagnostics.masking_checks import NOT_KEPT_EVIDENCE_FRACTION
    from rlrobust.diagnostics.masking_evaluation import check_adversarial_not_kept

    assert check_adversarial_not_kept(0, 360) == [] and check_adversarial_not_kept(1, 360) == []
    assert check_adversarial_not_kept(1, 120) == []  # 0.8 %, but a single point
    assert [f.severity for f in check_adversarial_not_kept(3, 360)] == ["warning"]
    (flag,) = check_adversarial_not_kept(13, 360)  # the weakest noise model of the zoo
    assert flag.code == "M16" and flag.severity == "evidence"
    assert flag.details["interval"][0] > NOT_KEPT_EVIDENCE_FRACTION
    assert check_adversarial_not_kept(5, 0) == []


# --------------------------------------------------------------------------- evasive models


def small_models():
    torch.manual_seed(0)
    inner = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    proxy = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    return inner.eval(), proxy.eval()


def input_grad(model, x, y):
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(torch.nn.functional.cross_entropy(model(x), y), x)
    return g


def test_gradient_swap_shows_one_model_and_differentiates_the_other():
    from rlrobust.diagnostics.evasive import GradientSwap

    inner, proxy = small_models()
    x = torch.rand(5, 1, 8, 8)
    swap = GradientSwap(inner, proxy)
    with torch.no_grad():
        torch.testing.assert_close(swap(x), inner(x))
    # The values are inner's, the Jacobian of the logits is proxy's.
    x_req = x.clone().requires_grad_(True)
    logits = swap(x_req)
    (g,) = torch.autograd.grad(logits[:, 3].sum(), x_req)
    torch.testing.assert_close(g, input_grad_of_logit(proxy, x, 3))


def input_grad_of_logit(model, x, k):
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(x)[:, k].sum(), x)
    return g


def test_sign_scrambled_gradient_flips_the_chosen_pixels_only():
    from rlrobust.diagnostics.evasive import SignScrambledGradient

    inner, _ = small_models()
    model = SignScrambledGradient(inner, (1, 8, 8), fraction=0.4, seed=0)
    x, y = torch.rand(4, 1, 8, 8), torch.arange(4)
    with torch.no_grad():
        torch.testing.assert_close(model(x), inner(x))
    torch.testing.assert_close(input_grad(model, x, y), input_grad(inner, x, y) * model.signs)
    assert 0.25 < (model.signs < 0).float().mean() < 0.55


def test_input_seeded_noise_is_deterministic_batch_free_and_bounded():
    from rlrobust.diagnostics.evasive import InputSeededNoise, input_hash_noise

    x = torch.rand(6, 1, 8, 8)
    noise = input_hash_noise(x, 0.1)
    assert noise.abs().max() <= 0.1 and noise.std() > 0.03  # roughly uniform on [-0.1, 0.1]
    # One sample alone gets the noise it gets in a batch (exact integer hashing).
    torch.testing.assert_close(input_hash_noise(x[2:3], 0.1), noise[2:3], rtol=0, atol=0)
    moved = x.clone()
    moved[0, 0, 0, 0] += 2 / 4096
    assert not torch.equal(input_hash_noise(moved, 0.1)[0], noise[0])
    inner, _ = small_models()
    model = InputSeededNoise(inner, 0.1)
    with torch.no_grad():
        assert torch.equal(model(x), model(x.clone()))
        torch.testing.assert_close(model(x), inner((x + noise).clamp(0, 1)))


def test_diagnose_masking_without_a_gradient_path_gives_a_verdict():
    from rlrobust.diagnostics.evasive import NoGradientPath
    from rlrobust.diagnostics.masking import (
        GRADIENT_CHECKS,
        VERDICT_NO_GRADIENT,
        MaskingBudget,
        diagnose_masking,
    )

    inner, _ = small_models()
    x, y = torch.rand(30, 1, 8, 8), torch.arange(30) % 10
    budget = MaskingBudget(n_points=30, pgd_steps=2, long_steps=3, restarts=2, unbounded_steps=3)
    square = torch.zeros(30, dtype=torch.bool)
    report = diagnose_masking(
        NoGradientPath(inner), x, y, 0.1, budget=budget, extra_results={"square": square}
    )
    assert report.verdict == VERDICT_NO_GRADIENT and report.masked and "M14" in report.codes
    assert set(GRADIENT_CHECKS) <= set(report.skipped)
    assert "require grad" in report.measurements["gradient_problem"]
    assert report.measurements["columns"]["square"]["accuracy"] == 0.0
