"""The ``cost`` rule (Dai et al.: L2L gives PGD-AT's robustness at a lower training cost):
numbers against hand computation, each verdict reached, planted failures caught, and the claim's
own command at smoke scale read back."""

from __future__ import annotations

import csv
import json
import math
import re
import shlex
from pathlib import Path

import pytest

from rlrobust.findings import cost, rules
from rlrobust.findings.claims import get_claim

CLAIM = get_claim("l2l")
N = 200  # test images
PGD_AT, PLAIN, GRADIENT, TWO_STEP = "PGD-AT", "L2L plain", "L2L gradient", "L2L 2-step"
SLUGS = {PGD_AT: "PGD-AT", PLAIN: "L2L-plain", GRADIENT: "L2L-gradient", TWO_STEP: "L2L-2-step"}
#: t_{1 - 0.05 / (2 m), df 2} from a printed table (scipy.stats.t.ppf agrees): the Bonferroni
#: quantiles of 3 seeds with m = 3 and m = 2 variants
T_BONFERRONI = {3: 7.648803937915553, 2: 6.205346816570706}
#: the metrics.csv columns training writes (a PGD-AT run's, as `rlrobust reproduce l2l` leaves it)
COLUMNS = [
    "epoch",
    "stage",
    "lr",
    "train_loss",
    "train_adv_accuracy",
    "train_adv_entropy",
    "train_adv_max_perturbation",
    "train_adv_violation_rate",
    "test_accuracy",
    "monitor_fgsm_accuracy",
    "monitor_pgd_accuracy",
    "catastrophic_overfitting",
    "epoch_seconds",
]


def flags(k: int) -> list[int]:
    return [1] * k + [0] * (N - k)


def pgd(steps: int) -> dict:
    return {"name": "pgd", "eps": 0.3, "norm": "linf", "steps": steps, "step_size": 0.01}


def write_evaluation(run_dir: Path, name: str, config: dict, attacks: dict[str, tuple]) -> None:
    """``NAME.json`` and ``NAME-per-sample.json`` as `rlrobust evaluate` writes them;
    ``attacks``: label -> (attack settings, correct images)."""
    record = {
        "n_examples": N,
        "cascade": False,
        "seed": 0,
        "clean_accuracy": 0.95,
        "attacks": [
            {"label": label, "attack": spec, "accuracy": k / N}
            for label, (spec, k) in attacks.items()
        ],
        "robust_accuracy": min(k for _, k in attacks.values()) / N,
        "config": config,
    }
    if name == "standard":
        record["masking"] = {"verdict": "no evidence of masking", "codes": [], "flags": []}
    per_sample = {"labels": [i % 10 for i in range(N)], "clean_correct": flags(190)}
    per_sample |= {label: flags(k) for label, (_, k) in attacks.items()}
    per_sample["robust"] = flags(min(k for _, k in attacks.values()))
    (run_dir / f"{name}.json").write_text(json.dumps(record))
    (run_dir / f"{name}-per-sample.json").write_text(json.dumps(per_sample))


def write_metrics(run_dir: Path, seconds: list[float], backward: list[int] | None) -> None:
    columns = list(COLUMNS)
    if backward is not None:  # the column the training adds beside its other train_ stats
        columns.insert(columns.index("test_accuracy"), cost.BACKWARD)
    with (run_dir / "metrics.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for epoch, s in enumerate(seconds):
            row = {c: 0.5 for c in columns} | {"epoch": epoch + 1, "stage": "main"}
            row["epoch_seconds"] = s
            if backward is not None:
                row[cost.BACKWARD] = backward[epoch]
            writer.writerow(row)


def write_run(
    run_dir: Path, arm: str, seed: int, aa: int, cost_per_epoch: tuple, *, standard: bool = True
) -> None:
    """One run of the reproduce folder: its config, the preset's evaluation (PGD-20 and PGD-100
    at laptop scale), ``standard`` (FGSM, PGD-40, AutoAttack) when evaluated, and metrics.csv."""
    run_dir.mkdir(parents=True)
    method = "pgd_at" if arm == PGD_AT else "l2l"
    config = {
        "data": {"name": "mnist", "test_subset": None},
        "train": {"seed": seed, "epochs": 2},
        "eval": {"n_examples": N, "seed": 0},
        "adversarial": {"method": method, "eps": 0.3},
    }
    (run_dir / "config.json").write_text(json.dumps(config))
    # the preset's PGD: PGD-100 (the strongest) leaves one image fewer than PGD-20
    write_evaluation(
        run_dir, "evaluation", config, {"pgd-20": (pgd(20), aa + 3), "pgd-100": (pgd(100), aa + 2)}
    )
    if standard:
        attacks = {
            "fgsm": ({"name": "fgsm", "eps": 0.3}, aa + 10),
            "pgd40-ce": (pgd(40), aa + 1),
            "autoattack": ({"name": "autoattack", "eps": 0.3}, aa),
        }
        write_evaluation(run_dir, "standard", config, attacks)
    seconds, backward = cost_per_epoch
    write_metrics(run_dir, seconds, backward)


# AutoAttack correct images out of N, per seed: PGD-AT 100 / 104 / 108 (50 / 52 / 54 %)
AA = {
    PGD_AT: {0: 100, 1: 104, 2: 108},
    PLAIN: {0: 102, 1: 107, 2: 112},  # +1.0 / +1.5 / +2.0 points: non-inferior
    GRADIENT: {0: 90, 1: 92, 2: 100},  # -5.0 / -6.0 / -4.0 points: inferior
    TWO_STEP: {0: 101, 1: 105, 2: 109},  # +0.5 / +0.5 / +0.5 points
}
# (epoch seconds, backward passes per epoch) of each arm's two epochs, per seed
COST = {
    PGD_AT: {s: ([10.0 + s, 12.0], [1100, 1100]) for s in (0, 1, 2)},
    PLAIN: {s: ([4.0, 5.0 + s], [300, 300]) for s in (0, 1, 2)},
    GRADIENT: {s: ([6.0, 6.0], [400, 400]) for s in (0, 1, 2)},
    TWO_STEP: {s: ([30.0, 30.0], [2400, 2400]) for s in (0, 1, 2)},  # dearer than PGD-AT
}


def write_results(
    tmp_path: Path,
    aa: dict = AA,
    costs: dict = COST,
    *,
    arms=(PGD_AT, PLAIN, GRADIENT, TWO_STEP),
    seeds=(0, 1, 2),
    standard: bool = True,
    backward: bool = True,
) -> Path:
    """A collected reproduce folder: sweep manifest, reproduce.json, runs, provenance."""
    results = tmp_path / "results"
    root = results / CLAIM.id / "l2l-laptop"
    points = {}
    for arm in arms:
        for seed in seeds:
            slug = f"{SLUGS[arm]}__s{seed}"
            seconds, passes = costs[arm][seed]
            write_run(
                root / "runs" / slug,
                arm,
                seed,
                aa[arm][seed],
                (seconds, passes if backward else None),
                standard=standard,
            )
            points[slug] = {"status": "finished", "variant": arm, "seed": seed, "values": {}}
            points[slug]["run_dir"] = f"runs/{slug}"
    (root / "sweep.json").write_text(json.dumps({"spec": {}, "points": points}))
    (root / "reproduce.json").write_text(json.dumps({"difference_lines": [], "notes": []}))
    provenance = {"claim": CLAIM.id, "command": "synthetic", "date": "2026-01-01"}
    (root / "provenance.json").write_text(json.dumps({**provenance, "machine": {"cpus": 2}}))
    return results


def hand_interval(values: list[float], t: float) -> tuple[float, float, float, float]:
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, std, mean - t * std / math.sqrt(n), mean + t * std / math.sqrt(n)


def test_a_cheaper_non_inferior_variant_holds_with_hand_computed_numbers(tmp_path):
    f = rules.find(CLAIM, write_results(tmp_path))
    assert f.verdict == rules.HOLDS, f.reason
    assert f.numbers["level"] == pytest.approx(1 - 0.05 / 3)  # Bonferroni over three variants
    plain = f.numbers["variants"][PLAIN]
    assert plain["metric"] == "autoattack" and plain["seeds"] == [0, 1, 2]
    mean, std, low, high = hand_interval([1.0, 1.5, 2.0], T_BONFERRONI[3])
    assert plain["difference"]["mean"] == pytest.approx(mean)  # 1.5
    assert plain["difference"]["std"] == pytest.approx(std)  # 0.5
    assert plain["interval"] == pytest.approx([low, high])  # 1.5 -/+ 2.208: [-0.71, 3.71]
    assert plain["non_inferior"] and low > -cost.MARGIN
    # costs summed over two epochs and three seeds: 1800 / 6600 passes, 30 / 69 seconds
    assert plain["ratios"][cost.BACKWARD] == pytest.approx(3 * 600 / (3 * 2200))
    assert plain["ratios"][cost.SECONDS] == pytest.approx((9 + 10 + 11) / (22 + 23 + 24))
    assert plain["basis"] == "backward passes" and plain["cheaper"]
    gradient, two_step = f.numbers["variants"][GRADIENT], f.numbers["variants"][TWO_STEP]
    assert gradient["difference"]["mean"] == pytest.approx(-5.0) and not gradient["non_inferior"]
    assert two_step["non_inferior"] and not two_step["cheaper"]
    assert two_step["ratios"][cost.BACKWARD] == pytest.approx(4800 / 2200)
    assert "L2L plain - PGD-AT +1.50 points under autoattack" in f.reason
    assert "at 0.27 x PGD-AT's backward passes, over 3 seeds" in f.reason
    assert (
        "L2L plain - PGD-AT under autoattack +1.50 ± 0.50 [-0.71, 3.71] (98.33 %, 3 seeds), "
        "cost 0.27 x (backward passes), 0.43 x (wall time)" in f.our_number
    )
    assert any("masking L2L plain: no evidence of masking x3" in e for e in f.evidence)


def test_without_backward_passes_the_claim_holds_only_on_wall_time(tmp_path):
    f = rules.find(CLAIM, write_results(tmp_path, backward=False))
    plain = f.numbers["variants"][PLAIN]
    assert plain["ratios"][cost.BACKWARD] is None and plain["basis"] == "wall time"
    assert f.verdict == rules.WEAK and "cheaper only on wall time" in f.reason
    assert "not recorded (backward passes)" in f.our_number


def test_without_autoattack_the_strongest_preset_pgd_decides_weakly(tmp_path):
    f = rules.find(CLAIM, write_results(tmp_path, standard=False))
    plain = f.numbers["variants"][PLAIN]
    assert plain["metric"] == "pgd-100" and plain["kind"] == "pgd"  # 100 steps beat 20
    # PGD-100 leaves 2 images more than AutoAttack on both arms: the same differences
    assert plain["difference"]["mean"] == pytest.approx(1.5)
    assert f.verdict == rules.WEAK and "only under PGD" in f.reason


def test_one_seed_uses_its_bonferroni_bootstrap_interval_and_holds_weakly(tmp_path):
    from rlrobust.stats import paired_bootstrap

    f = rules.find(CLAIM, write_results(tmp_path, seeds=(0,)))
    plain = f.numbers["variants"][PLAIN]
    expected = paired_bootstrap(flags(102), flags(100), n_resamples=10_000, level=1 - 0.05 / 3)
    assert plain["interval"] == pytest.approx([100 * v for v in expected["interval"]])
    wider = paired_bootstrap(flags(102), flags(100), n_resamples=10_000, level=0.95)
    assert plain["interval"][0] <= 100 * wider["interval"][0]  # Bonferroni: not narrower
    assert f.verdict == rules.WEAK and "one seed" in f.reason


def test_planted_inferior_or_dearer_variants_do_not_hold(tmp_path):
    planted = {**AA, PLAIN: {0: 90, 1: 94, 2: 98}}  # plain now 5 points worse on every seed
    f = rules.find(CLAIM, write_results(tmp_path, planted))
    assert f.verdict == rules.FAILS
    assert "L2L plain: not non-inferior" in f.reason
    assert "L2L gradient: not non-inferior" in f.reason
    assert "L2L 2-step: not cheaper (2.18 x PGD-AT's backward passes)" in f.reason


def test_two_variants_share_a_two_way_bonferroni_level(tmp_path):
    f = rules.find(CLAIM, write_results(tmp_path, arms=(PGD_AT, PLAIN, TWO_STEP)))
    assert f.numbers["level"] == pytest.approx(1 - 0.05 / 2)
    _, _, low, high = hand_interval([1.0, 1.5, 2.0], T_BONFERRONI[2])
    assert f.numbers["variants"][PLAIN]["interval"] == pytest.approx([low, high])
    assert f.verdict == rules.HOLDS


def test_missing_arms_or_costs_are_not_testable(tmp_path):
    no_baseline = rules.find(CLAIM, write_results(tmp_path / "a", arms=(PLAIN, GRADIENT)))
    assert no_baseline.verdict == rules.UNTESTABLE and "no evaluated PGD-AT run" in (
        no_baseline.reason
    )
    no_l2l = rules.find(CLAIM, write_results(tmp_path / "b", arms=(PGD_AT,)))
    assert no_l2l.verdict == rules.UNTESTABLE and "no evaluated run of any L2L arm" in (
        no_l2l.reason
    )
    results = write_results(tmp_path / "c")
    for path in results.rglob("metrics.csv"):
        path.unlink()
    no_cost = rules.find(CLAIM, results)
    assert no_cost.verdict == rules.UNTESTABLE and "no training cost recorded" in no_cost.reason


# --- the claim's own command, at smoke scale -------------------------------------------------


def smoke_commands() -> tuple[list[str], list[str]]:
    """(reproduce argv, evaluate argv with RUN) of the claim's command at smoke scale."""
    reproduce = shlex.split(CLAIM.run.split(";")[0].replace("laptop", "smoke"))
    body = re.search(r"do (.*?); done", CLAIM.run).group(1).replace("laptop", "smoke")
    return [*reproduce[1:], "--quiet"], shlex.split(body)[1:]


#: example-backward passes per training example of each L2L variant (tests/test_backward_passes.py)
SMOKE_BACKWARD_PER_EXAMPLE = {PLAIN: 2, GRADIENT: 3, TWO_STEP: 4}


@pytest.mark.slow
def test_the_claims_command_at_smoke_scale_is_read_back(tmp_path, monkeypatch):
    from rlrobust.cli import main
    from rlrobust.findings.collect import collect

    monkeypatch.chdir(tmp_path)
    reproduce, evaluate = smoke_commands()
    assert main(reproduce) == 0
    out = tmp_path / "reproduce" / "l2l-smoke"
    for run in sorted((out / "runs").iterdir()):
        assert main([a.replace("$RUN", str(run)) for a in evaluate]) == 0
    collect(out, CLAIM.id, command=" ".join(reproduce), results="results")
    f = rules.find(CLAIM, tmp_path / "results")
    assert f.verdict != rules.UNTESTABLE, f.reason
    runs = tmp_path / "results" / CLAIM.id / "l2l-smoke" / "runs"

    def raw_cost(slug: str, column: str) -> float | None:
        with (runs / slug / "metrics.csv").open() as handle:
            rows = list(csv.DictReader(handle))
        return sum(float(r[column]) for r in rows) if column in rows[0] else None

    def raw_aa(slug: str) -> float:
        record = json.loads((runs / slug / "standard.json").read_text())
        return next(a["accuracy"] for a in record["attacks"] if a["label"] == "autoattack")

    assert set(f.numbers["variants"]) == {PLAIN, GRADIENT, TWO_STEP}
    for variant, numbers in f.numbers["variants"].items():
        slug, base = f"{SLUGS[variant]}__s0", f"{SLUGS[PGD_AT]}__s0"
        assert numbers["metric"] == "autoattack" and numbers["seeds"] == [0]
        assert numbers["difference"]["mean"] == pytest.approx(100 * (raw_aa(slug) - raw_aa(base)))
        seconds = raw_cost(slug, cost.SECONDS) / raw_cost(base, cost.SECONDS)
        assert numbers["ratios"][cost.SECONDS] == pytest.approx(seconds)
        # the training records its backward passes (docs/training.md, "Training cost"): PGD-AT
        # with the smoke scale's 2 steps makes 3 per example, L2L plain 2, gradient 3, two-step 4
        expected = raw_cost(slug, cost.BACKWARD) / raw_cost(base, cost.BACKWARD)
        assert numbers["ratios"][cost.BACKWARD] == pytest.approx(expected)
        assert numbers["basis"] == "backward passes"
        assert expected == pytest.approx(SMOKE_BACKWARD_PER_EXAMPLE[variant] / 3)
