"""The findings rules that answer from ``rlrobust diagnose`` records: ``flatness`` (Kim Eq. 30,
claim kim-flatness) and ``indicators`` (Zou et al., claim zou-indicators).

Synthetic records are written in the layout diagnose writes (each run folder's config.json and
diagnostics.json, collected under results/<claim>/<collection>/ with a provenance.json) and the
numbers checked against hand computation with Student-t constants from a printed table; the last
tests run the claims' own commands (at smoke scale) and check the rules read real numbers.
"""

from __future__ import annotations

import glob
import json
import math
import shlex
from pathlib import Path

import pytest

from hand_stats import hand_summary
from rlrobust.findings import document, rules
from rlrobust.findings.claims import get_claim
from rlrobust.findings.flatness import top_eigenvalue
from rlrobust.findings.indicators import indicators_verdict

# Student-t quantiles t_{0.975, df} from a printed table (independent of rlrobust.stats)
FLAT = get_claim("kim-flatness")
ZOU = get_claim("zou-indicators")
POLICY, CE = FLAT.arms
RL, SL = ZOU.arms
SEEDS = (0, 1, 2)


def check_summary(stat: dict, values: list[float]) -> None:
    mean, std, low, high = hand_summary(values)
    assert stat["mean"] == pytest.approx(mean)
    assert stat["std"] == pytest.approx(std)
    assert stat["interval"] == pytest.approx([low, high], rel=1e-9, abs=1e-9)


# --- records in the layout diagnose writes ------------------------------------------------------


def summary(values: list[float]) -> dict:
    return {"count": len(values), "mean": sum(values) / len(values)}


def sharpness_part(loss_top: float, trace: float, converged: bool = True) -> dict:
    """One loss's entry of the ``sharpness`` part (``diagnostics/sharpness.py``)."""
    return {
        "top_eigenvalue": {
            "eigenvalues": [loss_top],
            "history": [[loss_top]],
            "converged": [converged],
            "iterations_used": [12],
        },
        "spectrum_ends": {
            "largest_algebraic": loss_top,
            "smallest_algebraic": -0.5,
            "largest_magnitude": loss_top,
            "converged": True,
            "iterations_used": 20,
        },
        "trace": {"estimate": trace, "std_error": 1.0, "probes_used": 50, "history": [trace]},
        "num_parameters": 1000,
        "n_samples": 5,
        "settings": {"top_k": 1, "iterations": 50, "tol": 1e-4, "probes": 50, "seed": 0},
    }


def landscape_part(mean_increase: float, directions: str = "filter_normalized") -> dict:
    """The ``landscape`` part with its 2-D weight-space cross-entropy landscape (Kim Eq. 30)."""
    settings = {"points": 3, "span": 1.0, "seed": 0, "directions": directions, "n_samples": 5}
    edge = 1.0 + 9 * mean_increase / 8  # 8 of the 9 points: their mean rise is mean_increase
    grid = [[edge] * 3, [edge, 1.0, edge], [edge] * 3]
    return {
        "weights_2d_cross_entropy": {
            "space": "weight",
            "alphas": [-1.0, 0.0, 1.0],
            "betas": [-1.0, 0.0, 1.0],
            "loss": grid,
            "loss_at_origin": 1.0,
            "settings": settings,
            "shape": {"max_increase": edge - 1.0, "mean_increase": mean_increase},
        }
    }


def flatness_record(top: float, trace: float, rise: float, own: float | None = None, **kw):
    sharpness = {"cross_entropy": sharpness_part(top, trace, kw.get("converged", True))}
    if own is not None:  # diagnose records the training loss only for non-CE objectives
        sharpness["training_loss"] = sharpness_part(own, 1.0)
    return {
        "n_examples": 5,
        "eps": 0.1,
        "norm": "linf",
        "seconds": {"landscape": 0.1, "sharpness": 0.1},
        "landscape": landscape_part(rise, kw.get("directions", "filter_normalized")),
        "sharpness": sharpness,
    }


def per_sample(values: list[float]) -> dict:
    return {"per_sample": values, "summary": summary(values)}


def indicators_record(shift: list[float], entropy: float, adversarial: float, **kw) -> dict:
    """``gradients`` / ``entropy`` / ``masking`` parts: SL's per-image values are the base ones
    below, an RL record adds ``shift`` (per image) to every gradient measure."""
    n = len(shift)
    norm = [1.0 + s for s in shift]
    cosine = [0.9 + s for s in shift]
    steps = [[0.95 + s + 0.05, 0.95 + s - 0.05] for s in shift]  # per-image mean 0.95 + s
    record = {
        "n_examples": kw.get("n", n),
        "eps": 0.1,
        "norm": "linf",
        "seconds": {"gradients": 0.1, "entropy": 0.1, "masking": 0.1},
        "gradients": {
            "static": {
                "norms": {
                    "l1": per_sample(norm),
                    "l2": per_sample(norm),
                    "linf": per_sample(norm),
                    "zero_fraction_samples": 0.0,
                    "n": n,
                },
                "sign_agreement": {"cosine": per_sample(cosine), "radius": 0.01, "n": n},
            },
            "dynamic": {
                "trajectory": {"cosine_per_sample": steps, "success_rate": 0.5, "n": n},
                "noise_stability": {"cosine": per_sample(cosine), "radius": 0.01, "n": n},
            },
        },
        "entropy": {
            "clean": {"per_sample": [entropy] * n, "summary": summary([entropy] * n)},
            "adversarial": {"per_sample": [adversarial] * n, "summary": summary([adversarial] * n)},
            "num_classes": 10,
            "n": n,
        },
    }
    if kw.get("masking", "no evidence of masking") is not None:
        record["masking"] = {"verdict": kw.get("masking", "no evidence of masking"), "codes": []}
    return record


def write_run(run_dir: Path, objective: str, seed: int, diagnostics: dict) -> None:
    """A run folder as train + diagnose leave it (the keys of config.json the rules read)."""
    run_dir.mkdir(parents=True)
    config = {
        "data": {"name": "digits", "test_subset": None},
        "objective": {"name": objective, "options": {}},
        "train": {"seed": seed, "epochs": 1},
        "eval": {"seed": 0, "n_examples": 5},
    }
    (run_dir / "config.json").write_text(json.dumps(config))
    (run_dir / "diagnostics.json").write_text(json.dumps(diagnostics))


def write_provenance(root: Path, claim: str, arm: str | None = None) -> None:
    provenance = {
        "claim": claim,
        "command": "synthetic records written by tests/test_findings_diagnostics.py",
        "git_commit": "0" * 40,
        "date": "2026-01-01T00:00:00+00:00",
        "machine": {"cpus": 2},
        "wall_seconds": 1.0,
        "load": {"note": "test"},
        "arm": arm,
    }
    (root / "provenance.json").write_text(json.dumps(provenance))


def write_single_runs(results: Path, claim: str, runs: dict[str, tuple]) -> Path:
    """Each run folder collected on its own, without --arm: the objective names the arm."""
    for name, (objective, seed, diagnostics) in runs.items():
        root = results / claim / name
        write_run(root, objective, seed, diagnostics)
        write_provenance(root, claim)
    return results


# --- flatness (kim-flatness) --------------------------------------------------------------------

# top Hessian eigenvalue of cross-entropy per seed: policy 6 / 5 / 4, CE 12 / 10 / 11
POLICY_TOP, CE_TOP = {0: 6.0, 1: 5.0, 2: 4.0}, {0: 12.0, 1: 10.0, 2: 11.0}
POLICY_TRACE, CE_TRACE = {0: 40.0, 1: 50.0, 2: 60.0}, {0: 100.0, 1: 90.0, 2: 80.0}
POLICY_RISE, CE_RISE = {0: 0.2, 1: 0.3, 2: 0.1}, {0: 0.5, 1: 0.5, 2: 0.5}


def flatness_results(tmp_path: Path, policy_top=None, seeds=SEEDS, **kw) -> Path:
    policy_top = policy_top or POLICY_TOP
    runs = {}
    for s in seeds:
        policy = flatness_record(policy_top[s], POLICY_TRACE[s], POLICY_RISE[s], own=2.0, **kw)
        runs[f"pol-s{s}"] = ("kim_policy", s, policy)
        runs[f"ce-s{s}"] = ("cross_entropy", s, flatness_record(CE_TOP[s], CE_TRACE[s], CE_RISE[s]))
    return write_single_runs(tmp_path / "results", FLAT.id, runs)


def test_flatness_numbers_match_hand_computation(tmp_path):
    f = rules.find(FLAT, flatness_results(tmp_path))
    policy = [POLICY_TOP[s] for s in SEEDS]
    ce = [CE_TOP[s] for s in SEEDS]
    check_summary(f.numbers["a"], policy)  # 5 ± 1
    check_summary(f.numbers["b"], ce)  # 11 ± 1
    check_summary(f.numbers["difference"], [p - c for p, c in zip(policy, ce, strict=True)])
    # -6 ± 1 over 3 seeds: -6 -/+ 4.3027 / sqrt(3) = [-8.48, -3.52]
    assert "A - B -6.00 ± 1.00 [-8.48, -3.52] (3 seeds)" in f.our_number
    assert "A 5.00 ± 1.00 [2.52, 7.48] vs B 11.00 ± 1.00 [8.52, 13.48]" in f.our_number
    assert f.verdict == rules.HOLDS, f.reason
    assert f.numbers["seeds"] == [0, 1, 2]
    # the measures listed beside: trace -60 / -40 / -20, landscape rise -0.3 / -0.2 / -0.4,
    # own loss: the policy loss's 2 against CE's own (cross-entropy) 12 / 10 / 11
    check_summary(f.numbers["trace_difference"], [-60.0, -40.0, -20.0])
    check_summary(f.numbers["landscape_difference"], [-0.3, -0.2, -0.4])
    check_summary(f.numbers["own_loss_difference"], [-10.0, -8.0, -9.0])
    assert "Hessian trace (cross-entropy) A - B -40.00 ± 20.00 [-89.68, 9.68] (3 seeds)" in (
        f.evidence
    )
    assert any("filter_normalized directions" in e and "-0.30 ± 0.10" in e for e in f.evidence)
    assert "eigenvalue estimates converged on 6 of 6 runs" in f.evidence
    row = next(
        line
        for line in document.markdown(tmp_path / "results").splitlines()
        if line.startswith("| [kim-flatness]")
    )
    assert "**holds**" in row and "-6.00 ± 1.00 [-8.48, -3.52]" in row


def test_planted_sharper_policy_does_not_hold(tmp_path):
    sharper = {s: CE_TOP[s] + 6.0 for s in SEEDS}
    f = rules.find(FLAT, flatness_results(tmp_path, policy_top=sharper))
    assert f.verdict == rules.FAILS and "not flatter" in f.reason
    assert f.numbers["difference"]["mean"] == pytest.approx(6.0)


def test_flatness_holds_weakly_with_one_seed_a_wide_interval_or_no_convergence(tmp_path):
    one = rules.find(FLAT, flatness_results(tmp_path / "one", seeds=(0,)))
    assert one.verdict == rules.WEAK and "one seed" in one.reason
    assert "A - B -6.00 (1 seed)" in one.our_number
    # differences -6 / +1 / -7: mean -4, std sqrt(19), the interval reaches past 0
    wide = rules.find(
        FLAT, flatness_results(tmp_path / "wide", policy_top={0: 6.0, 1: 11.0, 2: 4.0})
    )
    assert wide.verdict == rules.WEAK and "reaches 0" in wide.reason
    check_summary(wide.numbers["difference"], [-6.0, 1.0, -7.0])
    unconverged = rules.find(FLAT, flatness_results(tmp_path / "conv", converged=False))
    assert (
        unconverged.verdict == rules.WEAK and "did not converge on 3 run(s)" in unconverged.reason
    )


def test_flatness_without_an_arm_or_a_sharpness_record_is_not_testable(tmp_path):
    results = flatness_results(tmp_path)
    for folder in (results / FLAT.id).glob("ce-s*"):
        config = json.loads((folder / "config.json").read_text())
        config["objective"]["name"] = "kim_warmup"  # neither arm's objective
        (folder / "config.json").write_text(json.dumps(config))
    f = rules.find(FLAT, results)
    assert f.verdict == rules.UNTESTABLE and "'CE'" in f.reason
    # runs diagnosed without --sharpness cannot answer, and the reason says what to run
    bare = flatness_results(tmp_path / "bare")
    for path in (bare / FLAT.id).rglob("diagnostics.json"):
        record = json.loads(path.read_text())
        record.pop("sharpness")
        path.write_text(json.dumps(record))
    g = rules.find(FLAT, bare)
    assert g.verdict == rules.UNTESTABLE and "--sharpness" in g.reason


def test_manifest_arms_win_over_objectives_and_landscapes_must_match(tmp_path):
    """A reproduce folder names each run's arm: a kim_policy run of another variant (Kim's CE
    warm-up ablation) is not the policy arm; landscapes drawn along different kinds of
    directions are not compared."""
    root = tmp_path / "results" / FLAT.id / "kim-mnist-laptop"
    points = {}
    for s in SEEDS:
        for arm, objective, record in (
            (POLICY, "kim_policy", flatness_record(POLICY_TOP[s], 1.0, 0.1, own=2.0)),
            (CE, "cross_entropy", flatness_record(CE_TOP[s], 1.0, 0.5, directions="gaussian")),
            ("CE warm-up + Eq. 4", "kim_policy", flatness_record(99.0, 1.0, 0.1, own=2.0)),
        ):
            slug = f"{arm.split()[0]}-{len(points)}__s{s}"
            points[slug] = {"variant": arm, "seed": s, "run_dir": f"runs/{slug}"}
            write_run(root / "runs" / slug, objective, s, record)
    (root / "sweep.json").write_text(json.dumps({"points": points}))
    write_provenance(root, FLAT.id)
    f = rules.find(FLAT, tmp_path / "results")
    assert f.verdict == rules.HOLDS and f.numbers["difference"]["mean"] == pytest.approx(-6.0)
    assert f.numbers["landscape_difference"] is None
    assert any(e.startswith("Eq. 30 landscape: not comparable") for e in f.evidence)


def test_largest_algebraic_eigenvalue_is_read_when_the_largest_magnitude_one_is_negative():
    from rlrobust.findings.records import RunRecords

    part = sharpness_part(-3.0, 1.0)
    part["spectrum_ends"] |= {"largest_algebraic": 1.5, "smallest_algebraic": -3.0}
    run = RunRecords("c", "c/run", CE, 0, {}, diagnostics={"sharpness": {"cross_entropy": part}})
    assert top_eigenvalue(run) == (1.5, True)
    del part["spectrum_ends"]  # an older record: the largest-magnitude eigenvalue stands in
    assert top_eigenvalue(run) == (-3.0, True)


# --- indicators (zou-indicators) -----------------------------------------------------------------

# RL - SL per test image, the same for every gradient measure: mean -0.2, std sqrt(0.005)
SHIFT = [-0.1, -0.2, -0.3, -0.2, -0.2]
RL_ENTROPY, SL_ENTROPY = {0: 2.0, 1: 2.1, 2: 1.9}, 1.5  # clean RL - SL: 0.5 / 0.6 / 0.4
RL_PGD_ENTROPY, SL_PGD_ENTROPY = 2.2, 1.6  # under PGD: +0.6 on every seed


def zou_results(tmp_path: Path, shifts=None, seeds=SEEDS, rl_entropy=None, rl=None) -> Path:
    """``shifts``, ``rl``: per seed, RL's per-image shift and other record options."""
    shifts, options = shifts or {}, rl or {}
    rl_entropy = rl_entropy or RL_ENTROPY
    runs = {}
    for s in seeds:
        shift = shifts.get(s, SHIFT)
        rl = indicators_record(shift, rl_entropy[s], RL_PGD_ENTROPY, **options.get(s, {}))
        runs[f"rl-s{s}"] = ("zou_pg", s, rl)
        runs[f"sl-s{s}"] = ("cross_entropy", s, indicators_record([0.0] * 5, SL_ENTROPY, 1.6))
    return write_single_runs(tmp_path / "results", ZOU.id, runs)


def test_indicators_numbers_match_hand_computation(tmp_path):
    f = rules.find(ZOU, zou_results(tmp_path))
    assert f.verdict == rules.HOLDS, f.reason
    # per image: -0.2 -/+ 2.7764 * sqrt(0.005) / sqrt(5) = [-0.2878, -0.1122]: fires on RL
    for seed in SEEDS:
        for stat in f.numbers["per_seed"][seed].values():
            check_summary(stat, SHIFT)
            assert stat["interval"][1] < 0
    assert f.numbers["rl_fires"] == dict.fromkeys(f.numbers["rl_fires"], 3)
    assert sum(f.numbers["sl_fires"].values()) == 0
    # clean entropy RL - SL 0.5 / 0.6 / 0.4: 0.5 -/+ 4.3027 * 0.1 / sqrt(3) = [0.25, 0.75]
    check_summary(f.numbers["entropy_difference"], [0.5, 0.6, 0.4])
    assert "RL - SL +0.50 ± 0.10 [0.25, 0.75] (3 seeds)" in f.our_number
    assert "RL 2.00 ± 0.10 [1.75, 2.25] vs SL 1.50 ± 0.00 [1.50, 1.50]" in f.our_number
    assert f.numbers["adversarial_entropy_difference"]["mean"] == pytest.approx(0.6)
    assert "indicators firing on SL: none" in f.evidence
    assert "AutoAttack comparison" in f.reason  # the claim is that the indicators appear


def test_masking_on_rl_is_evidence_not_the_verdict(tmp_path):
    f = rules.find(ZOU, zou_results(tmp_path, rl={1: {"masking": "evidence of masking"}}))
    assert f.verdict == rules.HOLDS
    assert (
        "masking (diagnose): RL no evidence of masking x2, evidence of masking x1; "
        "SL no evidence of masking x3" in f.evidence
    )


def test_planted_indicators_not_on_rl_do_not_hold(tmp_path):
    # RL's gradients exactly as SL's: every per-image difference is 0, nothing fires
    same = rules.find(ZOU, zou_results(tmp_path / "same", shifts=dict.fromkeys(SEEDS, [0.0] * 5)))
    assert same.verdict == rules.FAILS
    assert "no static indicator fires on RL" in same.reason
    assert "no dynamic indicator fires on RL" in same.reason
    # RL's gradients larger and more stable: the indicators fire on SL
    flipped = {s: [-v for v in SHIFT] for s in SEEDS}
    g = rules.find(ZOU, zou_results(tmp_path / "flip", shifts=flipped))
    assert g.verdict == rules.FAILS and sum(g.numbers["sl_fires"].values()) == 4 * 3
    # RL's entropy lower on average
    low = rules.find(ZOU, zou_results(tmp_path / "low", rl_entropy={0: 1.0, 1: 1.4, 2: 1.6}))
    assert low.verdict == rules.FAILS and "entropy is not higher" in low.reason


def test_indicators_hold_weakly_when_partly_shown(tmp_path):
    f = rules.find(ZOU, zou_results(tmp_path / "part", shifts={2: [0.0] * 5}))
    assert f.verdict == rules.WEAK
    assert "gradient L2 norm fires on RL on 2 of 3 seeds" in f.reason
    one = rules.find(ZOU, zou_results(tmp_path / "one", seeds=(0,)))
    assert one.verdict == rules.WEAK and "one seed" in one.reason


def test_indicators_without_sl_or_shared_images_are_not_testable(tmp_path):
    results = zou_results(tmp_path)
    for folder in (results / ZOU.id).glob("sl-s*"):
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()
    f = rules.find(ZOU, results)
    assert f.verdict == rules.UNTESTABLE and "'SL'" in f.reason
    other = rules.find(ZOU, zou_results(tmp_path / "n", rl={s: {"n": 7} for s in SEEDS}))
    assert other.verdict == rules.UNTESTABLE and "share images" in other.reason
    assert any("images) differ" in line for line in other.details)


@pytest.mark.parametrize(
    ("rl", "sl", "n", "mean", "interval", "verdict", "why"),
    [
        ((3, 3, 3, 3), (0, 0, 0, 0), 3, 0.5, [0.2, 0.8], rules.HOLDS, "every indicator"),
        ((3, 3, 3, 3), (0, 0, 0, 0), 3, 0.5, [-0.1, 1.1], rules.WEAK, "reaches 0"),
        ((3, 3, 3, 3), (0, 0, 1, 0), 3, 0.5, [0.2, 0.8], rules.WEAK, "fires on SL on 1"),
        ((3, 0, 3, 3), (0, 0, 0, 0), 3, 0.5, [0.2, 0.8], rules.WEAK, "on 0 of 3"),
        ((0, 0, 3, 3), (0, 0, 0, 0), 3, 0.5, [0.2, 0.8], rules.FAILS, "no static"),
        ((3, 3, 3, 3), (0, 0, 0, 0), 3, 0.0, [-0.1, 0.1], rules.FAILS, "not higher"),
    ],
)
def test_indicators_verdict_rule(rl, sl, n, mean, interval, verdict, why):
    from rlrobust.findings.indicators import MEASURES

    names = [name for _, name, _ in MEASURES]
    got, reason = indicators_verdict(
        dict(zip(names, rl, strict=True)), dict(zip(names, sl, strict=True)), n, mean, interval
    )
    assert got == verdict and why in reason


# --- collecting diagnose records ----------------------------------------------------------------


def test_collect_points_a_diagnose_out_folder_to_the_runs(tmp_path):
    from rlrobust.errors import RLRobustError
    from rlrobust.findings.collect import collect

    out = tmp_path / "diag"
    out.mkdir()
    (out / "diagnostics.json").write_text(json.dumps({"ce_s0": {}, "pol_s0": {}}))
    (out / "diagnostics.md").write_text("# Diagnostics\n")
    with pytest.raises(RLRobustError, match="collect the diagnosed run"):
        collect(out, FLAT.id, command="x", results=tmp_path / "results")


def test_broken_or_left_out_diagnose_records_are_named(tmp_path):
    results = flatness_results(tmp_path)
    (results / FLAT.id / "ce-s1" / "diagnostics.json").write_text("{not json")
    provenance = results / FLAT.id / "ce-s2" / "provenance.json"
    left_out = [{"path": "diagnostics.json", "bytes": 3_000_000, "why": "over 2000000 B"}]
    provenance.write_text(json.dumps({**json.loads(provenance.read_text()), "left_out": left_out}))
    (results / FLAT.id / "ce-s2" / "diagnostics.json").unlink()
    f = rules.find(FLAT, results)
    assert f.numbers["seeds"] == [0] and f.verdict == rules.WEAK
    assert any("ce-s1/diagnostics.json" in line for line in f.details)
    assert any("left out by collect" in line and "--n-examples" in line for line in f.details)


# --- the claims' own commands on real runs -------------------------------------------------------


def claim_commands(claim) -> list[list[str]]:
    """The claim's command lines at smoke scale (digits, MLP, one seed) with few test images,
    split at the shell's ';' (not inside the quoted --command) and with globs expanded."""
    lexer = shlex.shlex(claim.run.replace("laptop", "smoke"), posix=True, punctuation_chars=";")
    lexer.whitespace_split = True
    commands, current = [], []
    for token in [*lexer, ";"]:
        if token != ";":
            # a glob is expanded as the shell would; the quoted --command (it holds spaces) is not
            pattern = "*" in token and " " not in token
            current += sorted(glob.glob(token)) if pattern else [token]
            continue
        assert current[0] == "rlrobust"
        extra = {
            "reproduce": ["--quiet"],
            "diagnose": ["--n-examples", "20", "--landscape-points", "3", "--quiet"],
            "findings": ["--results", "results"],
        }[current[1]]
        commands.append([*current[1:], *extra])
        current = []
    return commands


def run_claim_commands(claim) -> None:
    from rlrobust.cli import main

    reproduce, *_ = claim_commands(claim)
    assert main(reproduce) == 0
    for command in claim_commands(claim)[1:]:  # split again: the globs match the runs now
        assert main(command) == 0, command


def raw(path: Path) -> dict:
    return json.loads(path.read_text())


def test_kim_flatness_command_gives_records_the_rule_reads(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_claim_commands(FLAT)
    runs = tmp_path / "results" / FLAT.id / "kim-mnist-smoke" / "runs"
    f = rules.find(FLAT, tmp_path / "results")
    assert f.verdict != rules.UNTESTABLE, f.reason
    assert f.numbers["seeds"] == [0]
    # the difference is what the collected diagnose records say, read here directly
    policy, ce = (
        raw(next(runs.glob(f"{prefix}*")) / "diagnostics.json")["sharpness"]["cross_entropy"]
        for prefix in ("policy", "CE")
    )
    top = [r["spectrum_ends"]["largest_algebraic"] for r in (policy, ce)]
    assert f.numbers["difference"]["mean"] == pytest.approx(top[0] - top[1])
    assert all(math.isfinite(v) and v != 0 for v in top)
    assert f.numbers["landscape_difference"] is not None


def test_zou_indicators_command_gives_records_the_rule_reads(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_claim_commands(ZOU)
    runs = tmp_path / "results" / ZOU.id / "zou-smoke" / "runs"
    f = rules.find(ZOU, tmp_path / "results")
    assert f.verdict != rules.UNTESTABLE, f.reason
    rl, sl = (raw(runs / f"{arm}__s0" / "diagnostics.json") for arm in ("RL", "SL"))
    clean = rl["entropy"]["clean"]["summary"]["mean"] - sl["entropy"]["clean"]["summary"]["mean"]
    assert f.numbers["entropy_difference"]["mean"] == pytest.approx(clean)
    norms = [r["gradients"]["static"]["norms"]["l2"]["per_sample"] for r in (rl, sl)]
    expected = sum(a - b for a, b in zip(*norms, strict=True)) / len(norms[0])
    assert f.numbers["per_seed"][0]["gradient L2 norm"]["mean"] == pytest.approx(expected)
    assert not (runs / "RL-adv__s0" / "diagnostics.json").exists()  # only RL and SL diagnosed
    assert any(e.startswith("masking (diagnose): RL") for e in f.evidence)
