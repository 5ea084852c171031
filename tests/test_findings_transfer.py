"""The ``transfer`` rule (Zou's README: examples transferred from SL drop plain RL to about 8 %)
and the transfer evidence of the ``paired`` rule: numbers against hand computation from the
records, each verdict reached, planted failures caught, and the shared-records claims."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hand_stats import hand_summary
from rlrobust.errors import RLRobustError
from rlrobust.findings import rules
from rlrobust.findings.claims import get_claim
from rlrobust.findings.collect import collect
from rlrobust.findings.transfer import HOLDS, transfer_verdict

CLAIM = get_claim("zou-transfer")
N = 200  # test images
RESULTS = Path(__file__).resolve().parents[1] / "results"


def flags(k: int) -> list[int]:
    return [1] * k + [0] * (N - k)


def write_run(run_dir: Path, arm: str, seed: int, aa: int, moved: int | None) -> None:
    """A zou reproduction run: its standard evaluation (PGD-40 and AutoAttack) and, unless
    ``moved`` is None, the transfer record the reproduction writes (crafted on SL)."""
    run_dir.mkdir(parents=True)
    config = {"objective": {"name": "zou_pg"}, "train": {"seed": seed}}
    (run_dir / "config.json").write_text(json.dumps(config))
    record = {
        "n_examples": N,
        "clean_accuracy": 0.8,
        "attacks": [
            {"label": "pgd40-ce", "attack": {"name": "pgd", "steps": 40}, "accuracy": (aa + 6) / N},
            {"label": "autoattack", "attack": {"name": "autoattack"}, "accuracy": aa / N},
        ],
        "config": config,
        "masking": {"verdict": "no evidence of masking"},
    }
    per_sample = {
        "labels": [i % 10 for i in range(N)],
        "clean_correct": flags(160),
        "pgd40-ce": flags(aa + 6),
        "autoattack": flags(aa),
        "robust": flags(aa),
    }
    (run_dir / "standard.json").write_text(json.dumps(record))
    (run_dir / "standard-per-sample.json").write_text(json.dumps(per_sample))
    if moved is not None:
        transfer = {"source": f"SL__s{seed}", "n_examples": N, "robust_accuracy": moved / N}
        (run_dir / "transfer.json").write_text(json.dumps(transfer))


def write_results(tmp_path: Path, cells: dict) -> Path:
    """``cells``: (arm, seed) -> (AutoAttack correct, transfer correct or None), out of N; filed
    under the zou claim, whose records the transfer claim reads."""
    results = tmp_path / "results"
    root = results / CLAIM.records / "synthetic"
    points = {}
    for (arm, seed), (aa, moved) in cells.items():
        slug = f"{arm}__s{seed}"
        write_run(root / "runs" / slug, arm, seed, aa, moved)
        points[slug] = {"variant": arm, "seed": seed, "run_dir": f"runs/{slug}"}
    (root / "sweep.json").write_text(json.dumps({"points": points}))
    (root / "provenance.json").write_text(
        json.dumps({"claim": CLAIM.records, "command": "synthetic", "date": "2026-01-01"})
    )
    return results


# RL: AutoAttack 40 / 44 / 42 % and transfer 10 / 8 / 12 %: transfer far stronger (as Zou)
MASKED = {("RL", s): (aa, moved) for s, (aa, moved) in enumerate([(80, 20), (88, 16), (84, 24)])}


def test_transfer_stronger_than_white_box_holds_with_hand_numbers(tmp_path):
    finding = rules.find(CLAIM, write_results(tmp_path, MASKED))
    gaps = [100 * (moved - aa) / N for aa, moved in MASKED.values()]
    mean, std, low, high = hand_summary(gaps)
    gap = finding.numbers["arms"]["RL"]["gap"]
    assert gap["mean"] == pytest.approx(mean) and gap["std"] == pytest.approx(std)
    assert gap["interval"] == pytest.approx([low, high])
    assert high < 0 and finding.verdict == rules.HOLDS
    assert "white-box (autoattack)" in finding.our_number and "(paper 8)" in finding.our_number


def test_a_white_box_attack_stronger_than_transfer_does_not_hold(tmp_path):
    # the zou records' shape: AutoAttack leaves RL near 7 %, transfer near 60 %
    cells = {("RL", s): (14, 120 + 2 * s) for s in range(3)}
    finding = rules.find(CLAIM, write_results(tmp_path, cells))
    assert finding.verdict == rules.FAILS
    assert finding.numbers["arms"]["RL"]["gap"]["mean"] == pytest.approx(100 * (122 - 14) / N)


def test_one_seed_or_an_interval_reaching_zero_holds_only_weakly(tmp_path):
    one = rules.find(CLAIM, write_results(tmp_path / "one", {("RL", 0): (80, 20)}))
    assert one.verdict == rules.WEAK and "one seed" in one.reason
    # gaps -30, +2, -4 points: mean below 0, interval across 0
    spread = {("RL", 0): (80, 20), ("RL", 1): (80, 84), ("RL", 2): (80, 72)}
    wide = rules.find(CLAIM, write_results(tmp_path / "wide", spread))
    assert wide.verdict == rules.WEAK and "reaches 0" in wide.reason


def test_without_transfer_records_the_claim_cannot_be_answered(tmp_path):
    cells = {("RL", s): (80, None) for s in range(3)}
    finding = rules.find(CLAIM, write_results(tmp_path, cells))
    assert finding.verdict == rules.UNTESTABLE and "transfer.json" in finding.reason


def test_a_transfer_record_on_other_test_images_is_not_compared(tmp_path):
    results = write_results(tmp_path, MASKED)
    for path in results.glob("*/synthetic/runs/RL__s*/transfer.json"):
        path.write_text(json.dumps(json.loads(path.read_text()) | {"n_examples": N // 2}))
    finding = rules.find(CLAIM, results)
    assert finding.verdict == rules.UNTESTABLE


def test_the_white_box_side_is_autoattack_else_the_longest_pgd():
    from rlrobust.findings.records import RunRecords
    from rlrobust.findings.transfer import white_box

    def run(attacks):
        return RunRecords("c", "p", "RL", 0, {}, evaluation={"attacks": attacks})

    pgd20 = {"label": "pgd-20", "attack": {"name": "pgd", "steps": 20}, "accuracy": 0.3}
    pgd100 = {"label": "pgd-100", "attack": {"name": "pgd", "steps": 100}, "accuracy": 0.2}
    aa = {"label": "autoattack", "attack": {"name": "autoattack"}, "accuracy": 0.1}
    assert white_box(run([pgd20, pgd100, aa])) == ("autoattack", pytest.approx(10.0))
    assert white_box(run([pgd20, pgd100])) == ("pgd-100", pytest.approx(20.0))
    assert white_box(run([])) is None


def test_the_verdict_boundaries():
    assert transfer_verdict({"mean": 0.0, "interval": [-1.0, 1.0], "n": 3})[0] == rules.FAILS
    assert transfer_verdict({"mean": -5.0, "interval": [-9.0, -1.0], "n": 3})[0] == HOLDS
    assert transfer_verdict({"mean": -5.0, "interval": None, "n": 1})[0] == rules.WEAK


def test_the_paired_rule_names_transfer_only_when_recorded(tmp_path):
    claim = get_claim("zou")
    cells = {("RL", s): (80, 120) for s in range(2)} | {("SL", s): (20, None) for s in range(2)}
    finding = rules.find(claim, write_results(tmp_path / "with", cells))
    text = "; ".join(finding.evidence)
    assert "A under transfer from SL__s0, SL__s1: 60.00 % vs white-box 40.00 % (2 runs)" in text
    cells = {k: (aa, None) for k, (aa, _) in cells.items()}
    finding = rules.find(claim, write_results(tmp_path / "without", cells))
    assert "transfer: not run" in "; ".join(finding.evidence)


def test_a_claim_that_shares_records_refuses_its_own_collection(tmp_path):
    source = tmp_path / "run"
    source.mkdir()
    with pytest.raises(RLRobustError, match="collect with --claim zou"):
        collect(source, "zou-transfer", command="x", results=tmp_path / "results")


def test_the_committed_zou_records_give_the_rows_numbers_by_hand():
    """The transfer claim's numbers, recomputed from the committed JSON files directly."""
    finding = rules.find(CLAIM, RESULTS)
    for arm, numbers in finding.numbers["arms"].items():
        gaps = []
        for run_dir in sorted((RESULTS / "zou").glob(f"*/runs/{arm}__s*")):
            moved = json.loads((run_dir / "transfer.json").read_text())["robust_accuracy"]
            attacks = json.loads((run_dir / "standard.json").read_text())["attacks"]
            aa = next(a["accuracy"] for a in attacks if a["label"] == "autoattack")
            gaps.append(100 * (moved - aa))
        assert len(gaps) == numbers["gap"]["n"] >= 3
        assert numbers["gap"]["mean"] == pytest.approx(sum(gaps) / len(gaps))
