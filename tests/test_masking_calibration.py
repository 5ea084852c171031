"""The masking verdict's calibration holds: honest models get no evidence, evasive ones do.

Two halves. The recorded zoo (docs/masking_zoo.json, written by ``python -m
rlrobust.diagnostics.zoo``) is judged again with the current thresholds, so moving a threshold
until an honest zoo model gets evidence, or an evasive one slips, fails here. A small live zoo
(MLPs trained here on digits, the ``standard`` preset through ``run_suite``) checks that the two
evasive families of the issue, rebuilt in ``diagnostics/evasive.py``, get "evidence" with the
right codes, an honest model does not, and a model without a gradient path gets a verdict.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from rlrobust.data import load_dataset
from rlrobust.diagnostics import evasive
from rlrobust.diagnostics.masking import VERDICT_CLEAN, VERDICT_NO_GRADIENT, MaskingBudget
from rlrobust.diagnostics.masking_checks import (
    UNCONVERGED_LARGE_DROP,
    UNSTABLE_EVIDENCE_FRACTION,
)
from rlrobust.diagnostics.masking_evaluation import (
    check_adversarial_not_kept,
    check_gradient_attack_overstates,
    check_query_attack_only,
)
from rlrobust.evaluation.presets import preset_attacks
from rlrobust.evaluation.suite import run_suite
from rlrobust.models import build_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ZOO = Path(__file__).resolve().parents[1] / "docs" / "masking_zoo.json"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "masking_flags.md"
# The evasive families the calibrated evaluation checks (M12, M13) exist for.
SWAP, NOISE = "swap:", "input-seeded noise"


def zoo_rows() -> list[dict]:
    return json.loads(ZOO.read_text())["rows"]


def judged_again(row: dict) -> dict[str, str]:
    """Code -> worst severity that M12, M13 and M16 give, with today's thresholds, to a
    recorded zoo row (the diagnostic's PGD gets no M12 warning, as in ``diagnose_masking``)."""
    stats = row["statistics"]
    columns = stats["m12_columns"]
    flags = check_gradient_attack_overstates(columns, list(columns), ["pgd (diagnostic)"])
    if stats["m16_not_kept"] is not None:
        flags += check_adversarial_not_kept(stats["m16_not_kept"], stats["n_points"])
    for label, info in stats["m13"].items():
        if info.get("breakdown"):
            flags += check_query_attack_only(info["breakdown"], info["n_points"], label)
    out: dict[str, str] = {}
    for f in flags:
        if out.get(f.code) != "evidence":
            out[f.code] = f.severity
    return out


def evidence_again(row: dict) -> set[str]:
    return {code for code, severity in judged_again(row).items() if severity == "evidence"}


def test_recorded_zoo_has_both_kinds_and_the_docs_show_it():
    rows = zoo_rows()
    kinds = {r["kind"] for r in rows}
    assert kinds == {"honest", "evasive"}
    assert sum(r["kind"] == "honest" for r in rows) >= 10
    text = DOCS.read_text()
    for row in rows:  # the docs table is the record's table
        assert f"| {row['model']} | {row['kind']} | {row['eps']:g} |" in text


@pytest.mark.parametrize("row", zoo_rows(), ids=lambda r: f"{r['model']}@{r['eps']}")
def test_recorded_zoo_is_judged_as_calibrated(row):
    again = evidence_again(row)
    if row["kind"] == "honest":
        assert row["verdict"] == VERDICT_CLEAN, row["codes"]
        assert not again, f"an honest model would now get evidence {again}"
        stats = row["statistics"]
        assert stats["m10_drop"] <= UNCONVERGED_LARGE_DROP
        assert stats["m11_changed_fraction"] <= UNSTABLE_EVIDENCE_FRACTION
    elif row["known_miss"]:  # documented misses must still be named by warnings
        assert row["verdict"] == VERDICT_CLEAN and {"M12", "M13"} <= set(judged_again(row))
    else:
        assert row["verdict"] != VERDICT_CLEAN, row
    if row["model"].startswith(SWAP) and "pgd-at" in row["model"]:
        assert "M13" in again, f"the gradient-swap model would now slip: {again}"
        assert "M12" in judged_again(row), "its PGD column is no longer named as overstating"
    if row["model"].startswith(NOISE):
        assert "M16" in again, f"the input-seeded noise model would now slip: {again}"


# --------------------------------------------------------------------------- a live zoo

N_POINTS = 120
EPS = 0.1
AA_ITERATIONS, AA_QUERIES = 20, 1000
BUDGET = MaskingBudget(
    n_points=N_POINTS,
    pgd_steps=10,
    long_steps=40,
    restarts=2,
    unbounded_steps=40,
    eps_multipliers=(1.0, 2.0),
    forward_repeats=3,
    noise_draws=3,
)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", "train"), load_dataset("digits", "test").take(N_POINTS, seed=0)


def train(data, adversarial: bool, steps: int) -> torch.nn.Module:
    from rlrobust.attacks.pgd import PGD

    torch.manual_seed(0)
    model = build_model(
        "mlp", num_classes=10, in_channels=1, image_size=8, mean=data.mean, std=data.std
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    x, y = data.images.float() / 255, data.labels
    pgd = PGD(eps=EPS, norm="linf", steps=3, step_size=2.5 * EPS / 3, seed=0)
    for _ in range(steps):
        if adversarial:
            model.eval()
            x_in = pgd(model, x, y)
            model.train()
        else:
            x_in = x
        loss = F.cross_entropy(model(x_in), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return model.eval()


@pytest.fixture(scope="module")
def models(digits):
    train_data, _ = digits
    return {"ce": train(train_data, False, 150), "at": train(train_data, True, 60)}


def standard(model, data) -> dict:
    """The ``standard`` preset's attacks (FGSM, PGD-40, AutoAttack standard) with AutoAttack's
    iterations and Square's queries cut five-fold so the live zoo fits in CI; the recorded zoo
    above holds the full preset's numbers."""
    specs = preset_attacks("standard", EPS)
    specs[-1]["settings"].update(n_iter=AA_ITERATIONS, n_queries=AA_QUERIES)
    return run_suite(model, data, attacks=specs, eps=EPS, masking=True, masking_budget=BUDGET)


def evidence(result: dict) -> set[str]:
    return {f["code"] for f in result["masking"]["flags"] if f["severity"] == "evidence"}


def test_live_honest_model_gets_no_evidence(models, digits):
    result = standard(models["ce"], digits[1])
    assert result["masking"]["verdict"] == VERDICT_CLEAN, result["masking"]["codes"]


def test_live_gradient_swap_is_caught_by_m13_and_named_by_m12(models, digits):
    model = evasive.GradientSwap(models["ce"], models["at"])
    x = digits[1].images.float() / 255
    with torch.no_grad():  # the output is the honest model's, so the true robustness is its
        assert torch.equal(model(x).argmax(1), models["ce"](x).argmax(1))
    result = standard(model, digits[1])
    assert "M13" in evidence(result) and "M12" in result["masking"]["codes"], result["masking"]
    columns = result["masking"]["measurements"]["columns"]
    assert columns["pgd40-ce"]["overstates"] and not columns["autoattack"]["overstates"]


def test_live_input_seeded_noise_is_caught_by_m16(models, digits):
    model = evasive.InputSeededNoise(models["at"], 0.1)
    x = digits[1].images.float() / 255
    with torch.no_grad():  # deterministic: the randomness checks cannot see it
        assert torch.equal(model(x), model(x.clone()))
    result = standard(model, digits[1])
    assert "M16" in evidence(result), result["masking"]["codes"]
    assert "M05" not in result["masking"]["codes"]


def test_live_model_without_gradient_gets_a_verdict_not_a_traceback(models, digits):
    result = standard(evasive.NoGradientPath(models["ce"]), digits[1])
    masking = result["masking"]
    assert masking["verdict"] == VERDICT_NO_GRADIENT and "M14" in masking["codes"]
    assert masking["attacks_not_run"]["dropped"] == ["fgsm", "pgd40-ce", "autoattack"]
    assert result["evaluation"]["attacks"] == []
