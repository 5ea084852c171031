"""The ``breaks`` rule (Gupta: without adversarial training AutoAttack breaks the RL model that
FGSM did not): numbers against hand computation, each verdict reached, planted failures caught."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hand_stats import hand_summary
from rlrobust.findings import document, rules
from rlrobust.findings.claims import get_claim

CLAIM = get_claim("gupta-no-at")
N = 200  # test images
OBJECTIVES = {"RL": "gupta_vpg", "CE": "cross_entropy"}


def flags(k: int) -> list[int]:
    return [1] * k + [0] * (N - k)


def write_run(run_dir: Path, arm: str, seed: int, fgsm: int, aa: int, masking: str | None) -> None:
    """A run as `rlrobust evaluate --name standard` leaves it: FGSM, PGD and AutoAttack."""
    run_dir.mkdir(parents=True)
    config = {"objective": {"name": OBJECTIVES[arm]}, "train": {"seed": seed}}
    (run_dir / "config.json").write_text(json.dumps(config))
    record = {
        "n_examples": N,
        "clean_accuracy": 0.9,
        "attacks": [
            {"label": "fgsm", "attack": {"name": "fgsm"}, "accuracy": fgsm / N},
            {"label": "pgd40-ce", "attack": {"name": "pgd"}, "accuracy": aa / N},
            {"label": "autoattack", "attack": {"name": "autoattack"}, "accuracy": aa / N},
        ],
        "config": config,
    }
    if masking:
        record["masking"] = {"verdict": masking}
    per_sample = {
        "labels": [i % 10 for i in range(N)],
        "clean_correct": flags(180),
        "fgsm": flags(fgsm),
        "pgd40-ce": flags(aa),
        "autoattack": flags(aa),
        "robust": flags(aa),
    }
    (run_dir / "standard.json").write_text(json.dumps(record))
    (run_dir / "standard-per-sample.json").write_text(json.dumps(per_sample))


def write_results(tmp_path: Path, cells: dict, *, manifest: bool = False) -> Path:
    """``cells``: (arm, seed) -> (FGSM correct, AutoAttack correct) out of N."""
    results = tmp_path / "results"
    root = results / CLAIM.id / "synthetic"
    points = {}
    for (arm, seed), (fgsm, aa) in cells.items():
        slug = f"{arm}__s{seed}"
        write_run(root / "runs" / slug, arm, seed, fgsm, aa, "no evidence of masking")
        points[slug] = {"variant": arm, "seed": seed, "run_dir": f"runs/{slug}"}
    if manifest:
        (root / "sweep.json").write_text(json.dumps({"points": points}))
    (root / "provenance.json").write_text(
        json.dumps({"claim": CLAIM.id, "command": "synthetic", "date": "2026-01-01"})
    )
    return results


# RL: FGSM 60 / 62 / 64 %, AutoAttack 5 / 4 / 6 %; CE: FGSM 40 / 41 / 42 %, AutoAttack 6 / 6 / 7 %
BROKEN = {
    ("RL", 0): (120, 10),
    ("RL", 1): (124, 8),
    ("RL", 2): (128, 12),
    ("CE", 0): (80, 12),
    ("CE", 1): (82, 12),
    ("CE", 2): (84, 14),
}


def test_autoattack_breaking_rl_holds_with_hand_computed_numbers(tmp_path):
    f = rules.find(CLAIM, write_results(tmp_path, BROKEN))
    assert f.verdict == rules.HOLDS, f.reason
    gaps = [60 - 5, 62 - 4, 64 - 6]  # 55, 58, 58
    edges = [5 - 6, 4 - 6, 6 - 7]  # -1, -2, -1
    for key, values in (("gap", gaps), ("aa_edge", edges)):
        mean, std, low, high = hand_summary(values)
        assert f.numbers[key]["mean"] == pytest.approx(mean)
        assert f.numbers[key]["std"] == pytest.approx(std)
        assert f.numbers[key]["interval"] == pytest.approx([low, high])
    assert f.numbers["fgsm_edge"]["mean"] == pytest.approx(21.0)  # 20, 21, 22
    assert "RL: FGSM 62.00 vs AutoAttack 5.00" in f.our_number
    row = next(
        line
        for line in document.markdown(tmp_path / "results").splitlines()
        if line.startswith("| [gupta-no-at]")
    )
    assert "**holds**" in row and "masking RL: no evidence of masking x3" in row


def test_rl_still_more_robust_under_autoattack_does_not_hold(tmp_path):
    planted = {**BROKEN, ("RL", 0): (120, 60), ("RL", 1): (124, 62), ("RL", 2): (128, 64)}
    f = rules.find(CLAIM, write_results(tmp_path, planted, manifest=True))
    assert f.verdict == rules.FAILS and "stays more robust than CE" in f.reason


def test_autoattack_taking_nothing_more_than_fgsm_does_not_hold(tmp_path):
    planted = {**BROKEN, ("RL", 0): (20, 20), ("RL", 1): (20, 20), ("RL", 2): (22, 22)}
    f = rules.find(CLAIM, write_results(tmp_path, planted))
    assert f.verdict == rules.FAILS and "no more of the RL model than FGSM" in f.reason


def test_one_seed_or_a_missing_premise_holds_weakly(tmp_path):
    one = {k: v for k, v in BROKEN.items() if k[1] == 0}
    f = rules.find(CLAIM, write_results(tmp_path / "one", one))
    assert f.verdict == rules.WEAK and "one seed" in f.reason
    assert "(1 seed)" in f.our_number  # the interval is over test images, and says so
    no_premise = {**BROKEN, ("CE", 0): (150, 12), ("CE", 1): (150, 12), ("CE", 2): (150, 14)}
    g = rules.find(CLAIM, write_results(tmp_path / "premise", no_premise))
    assert g.verdict == rules.WEAK and "premise is not seen here" in g.reason


def test_records_without_autoattack_are_not_testable(tmp_path):
    results = write_results(tmp_path, BROKEN)
    for path in (results / CLAIM.id / "synthetic" / "runs").glob("*/standard-per-sample.json"):
        record = json.loads(path.read_text())
        del record["autoattack"]
        path.write_text(json.dumps(record))
    f = rules.find(CLAIM, results)
    assert f.verdict == rules.UNTESTABLE and "FGSM and AutoAttack" in f.reason
