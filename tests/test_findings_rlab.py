"""The ``rlab`` rule (Sarkar et al.: RLAB's agent reaches a "100 % average success rate" with
fewer queries): numbers against hand computation, each verdict reached, planted failures caught,
and the claim's own command at smoke scale read back."""

from __future__ import annotations

import json
import math
import re
import shlex
from pathlib import Path

import pytest

from rlrobust.findings import rlab, rules
from rlrobust.findings.claims import get_claim

CLAIM = get_claim("rlab")
Z975 = 1.959963984540054  # the normal 97.5 % quantile, from a printed table
SLUGS = {"CE": "CE__s0", "policy (Kim)": "policy-Kim-__s0"}
BUDGET = 200
#: the flags of the claim's Square step -> the preset's RLAB settings they must repeat
FLAGS = {
    "--n-examples": "rlab.n_examples",
    "--patch-size": "rlab.patch_size",
    "--max-steps": "rlab.max_steps",
    "--budget": "rlab.budget",
}


def hand_wilson(k: int, n: int) -> tuple[float, float]:
    """The Wilson score interval in %, from its formula (independent of rlrobust.stats)."""
    p, z2 = k / n, Z975 * Z975
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z975 / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return 100 * max(0.0, centre - half), 100 * min(1.0, centre + half)


def metrics(n_success: int, q_mean: float, q_median: float, n_attacked: int = 20) -> dict:
    """RLAB's (or Square's) metrics block as ``attacks.rlab.metrics.attack_metrics`` writes it."""
    stats = {"mean": q_mean, "median": q_median}
    return {
        "n_inputs": 32,
        "n_attacked": n_attacked,
        "n_success": n_success,
        "success_rate": n_success / n_attacked,
        "queries_success": stats,
        "queries_all": stats,
        "steps_success": {"mean": 4.45, "median": 5.0},
        "steps_all": {"mean": 4.45, "median": 5.0},
        "l0": {"mean": 7.6, "median": 4.0},
        "l0_fraction": {"mean": 0.12, "median": 0.06},
        "l2": {"mean": 2.3, "median": 2.0},
        "linf": {"mean": 0.9, "median": 1.0},
    }


SETTINGS = {
    "patch_size": 2,
    "filters": ["gaussian_noise", "gaussian_blur", "dead_pixel", "illuminate"],
    "levels": "all",
    "budget": BUDGET,
    "max_steps": 50,
    "stacking": "none",
    "reprobe": False,
    "penalty": 0.01,
    "refine": True,
    "seed": 0,
    "batch_size": 256,
    "operations": ["gaussian_noise@0.1", "gaussian_blur@0.5", "dead_pixel@1", "illuminate@1"],
}


def write_rlab(folder: Path, agent: str, rlab_metrics: dict, square: dict | None = None) -> None:
    """``rlab.json`` (and ``rlab.md``) as the reproduction's post step writes it, or, with
    ``square``, as ``rlrobust attack rlab --square-eps ...`` does."""
    folder.mkdir(parents=True)
    record = {"settings": SETTINGS, "agent": agent}
    if agent == "learned":
        record["agent_dir"] = str(folder.parent / "rlab-agent")
        if square is None:  # trained by the post step: its training is in the record
            record |= {"training": {"iterations": 2}, "trained_with": {"budget": BUDGET}}
    record |= {"rlab": rlab_metrics, "attack_seconds": 0.05}
    if square is not None:
        record["square"] = square
    record["grid"] = "grid.png"
    (folder / "rlab.json").write_text(json.dumps(record))
    (folder / "rlab.md").write_text("# RLAB\n")


# (learned RLAB, {Square eps: metrics} or None) per victim: 20 of 20 attacked images fooled with
# 15.45 queries each on average (sum 309); Square at eps 0.1 fools 8 (mean 45.875, sum 367) and
# at eps 0.3 all 20 (mean 16.6, sum 332)
FOOLED = metrics(20, 15.45, 16.0)
SQUARE = {"0.1": metrics(8, 45.875, 39.0), "0.3": metrics(20, 16.6, 13.0)}
BASE = {"CE": (FOOLED, SQUARE), "policy (Kim)": (FOOLED, SQUARE)}


def write_results(tmp_path: Path, victims: dict = BASE, *, greedy: bool = True) -> Path:
    """A collected reproduce folder of the rlab preset: sweep manifest, runs with their RLAB
    records (``rlab/``: greedy; ``rlab-learned/``: learned), provenance."""
    results = tmp_path / "results"
    root = results / CLAIM.id / "rlab-laptop"
    points = {}
    for arm, (learned, square) in victims.items():
        slug = SLUGS[arm]
        run = root / "runs" / slug
        run.mkdir(parents=True)
        (run / "config.json").write_text(json.dumps({"train": {"seed": 0}}))
        (run / "metrics.csv").write_text("epoch,stage,epoch_seconds\n1,main,0.5\n")
        if greedy:
            write_rlab(run / "rlab", "greedy", metrics(20, 71.75, 70.0))
        if learned is not None:
            write_rlab(run / "rlab-learned", "learned", learned, square)
            (run / "rlab-agent").mkdir()
            (run / "rlab-agent" / "agent.json").write_text(json.dumps({"ops": []}))
        points[slug] = {"status": "finished", "variant": arm, "seed": 0, "run_dir": f"runs/{slug}"}
    (root / "sweep.json").write_text(json.dumps({"spec": {}, "points": points}))
    (root / "reproduce.json").write_text(json.dumps({"difference_lines": [], "notes": []}))
    (root / "provenance.json").write_text(
        json.dumps({"claim": CLAIM.id, "command": "synthetic", "date": "2026-01-01"})
    )
    return results


def test_full_success_with_fewer_queries_holds_with_hand_computed_numbers(tmp_path):
    f = rules.find(CLAIM, write_results(tmp_path))
    assert f.verdict == rules.HOLDS, f.reason
    ce = f.numbers["victims"]["CE (seed 0)"]
    assert ce["learned"]["rate"] == 100.0
    assert ce["learned"]["interval"] == pytest.approx(hand_wilson(20, 20))  # [83.89, 100]
    assert ce["learned"]["queries_mean"] == 15.45 and ce["learned"]["queries_median"] == 16.0
    assert ce["greedy"]["rate"] == 100.0 and ce["greedy"]["queries_mean"] == 71.75
    eps01, eps03 = ce["square"]
    assert eps01["eps"] == 0.1 and eps01["success"]["interval"] == pytest.approx(hand_wilson(8, 20))
    # Square fooled 8, RLAB all 20: the overlap is Square's 8. RLAB's 12 others cost >= 1 query
    # each, so its 8 cost <= 309 - 12 = 297, mean <= 37.125 < Square's 367 / 8 = 45.875
    assert eps01["comparison"] == {"status": "fewer", "overlap": [8, 8], "exact": False}
    # both fooled all 20: the comparison is the plain means, 15.45 < 16.6
    assert eps03["comparison"] == {"status": "fewer", "overlap": [20, 20], "exact": True}
    assert "average 100.0 % over 2 victim(s)" in f.our_number
    assert (
        "CE (seed 0): learned 100.0 % [83.9, 100.0] (20/20), queries per success 15.4 / 16.0 "
        "(mean / median) of a 200-query budget; Square eps 0.1 40.0 % [21.9, 61.3] (8/20), "
        "45.9 mean queries: fewer" in f.our_number
    )
    assert any("greedy baseline 100.0 %" in e for e in f.evidence)


def test_the_bounds_on_the_images_both_fooled_by_hand():
    budget = 200
    # RLAB 20 / 20 with sum 600: on Square's 8 its mean lies in [max(600 - 12 * 200, 8) / 8,
    # (600 - 12) / 8] = [1, 73.5], which holds Square's 45.875: undetermined
    got = rlab.both_fooled(metrics(20, 30.0, 30.0), metrics(8, 45.875, 39.0), budget)
    assert got["status"] == "undetermined" and got["overlap"] == [8, 8]
    # RLAB 19 / 20 with mean 40 against Square 20 / 20 with sum 332: overlap 19; RLAB's mean
    # there is 40, Square's at most (332 - 1) / 19 = 17.42: not fewer
    got = rlab.both_fooled(metrics(19, 40.0, 40.0), metrics(20, 16.6, 13.0), budget)
    assert got["status"] == "not fewer" and got["overlap"] == [19, 19]
    # 10 and 8 of 20 fooled may not meet at all: nothing to compare on
    got = rlab.both_fooled(metrics(10, 5.0, 5.0), metrics(8, 45.875, 39.0), budget)
    assert got == {"status": "undetermined", "overlap": [0, 8]}
    # overlap between 2 and 8 (RLAB 14, Square 8 of 20): RLAB's mean <= (42 - (14 - k)) / k,
    # at most 15 (k = 2); Square's >= (1520 - (8 - k) * 200) / k, at least 160 (k = 2)
    got = rlab.both_fooled(metrics(14, 3.0, 3.0), metrics(8, 190.0, 190.0), budget)
    assert got["status"] == "fewer" and got["overlap"] == [2, 8]


@pytest.mark.parametrize(
    ("success_part", "query_part", "verdict", "why"),
    [
        ("met", "met", rules.HOLDS, "fewer queries"),
        ("met", "not run", rules.WEAK, "Square not run"),
        ("met", "undetermined", rules.WEAK, "not decidable"),
        ("met", "not fewer", rules.WEAK, "not fewer"),
        ("inconclusive", "met", rules.WEAK, "neither contains 100 %"),
        ("inconclusive", "not fewer", rules.FAILS, "neither part shown"),
        ("inconclusive", "not run", rules.UNTESTABLE, "neither part decidable"),
        ("inconclusive", "undetermined", rules.UNTESTABLE, "neither part decidable"),
        ("below", "met", rules.FAILS, "entirely below 95 %"),
    ],
)
def test_rlab_verdict_rule(success_part, query_part, verdict, why):
    got, reason = rlab.rlab_verdict(success_part, query_part)
    assert got == verdict and why in reason


def test_success_parts_from_their_wilson_intervals():
    assert rlab.success_status(list(hand_wilson(20, 20))) == "met"  # contains 100 %
    assert rlab.success_status(list(hand_wilson(19, 20))) == "inconclusive"  # [76.4, 99.1]
    assert rlab.success_status(list(hand_wilson(10, 20))) == "below"  # [29.9, 70.1]
    assert rlab.success_status(list(hand_wilson(990, 1000))) == "met"  # lower end 98.2 >= 95
    assert rlab.SUCCESS_FLOOR == 95.0 and "SUCCESS_FLOOR" in rlab.__doc__


def test_without_square_or_with_a_partial_success_the_claim_holds_weakly(tmp_path):
    no_square = {arm: (FOOLED, None) for arm in BASE}
    f = rules.find(CLAIM, write_results(tmp_path / "a", no_square))
    assert f.verdict == rules.WEAK and "Square not run at the same budget" in f.reason
    assert "Square not run" in f.our_number
    # 19 of 20 fooled with 3 queries each: fewer than Square whichever 7 or 8 images overlap
    partial = {**BASE, "policy (Kim)": (metrics(19, 3.0, 3.0), SQUARE)}
    g = rules.find(CLAIM, write_results(tmp_path / "b", partial))
    policy = g.numbers["victims"]["policy (Kim) (seed 0)"]
    assert policy["learned"]["interval"] == pytest.approx(hand_wilson(19, 20))
    assert policy["verdict"] == rules.WEAK and g.verdict == rules.WEAK  # the weakest victim
    assert "average 97.5 % over 2 victim(s)" in g.our_number  # (100 + 95) / 2


def test_planted_failures_do_not_hold(tmp_path):
    low = {**BASE, "policy (Kim)": (metrics(10, 15.0, 15.0), SQUARE)}
    f = rules.find(CLAIM, write_results(tmp_path / "a", low))
    assert f.verdict == rules.FAILS and "entirely below 95 %" in f.reason
    assert f.numbers["victims"]["CE (seed 0)"]["verdict"] == rules.HOLDS  # CE alone holds
    dear = {**BASE, "CE": (metrics(19, 40.0, 40.0), {"0.3": metrics(20, 16.6, 13.0)})}
    g = rules.find(CLAIM, write_results(tmp_path / "b", dear))
    assert g.verdict == rules.FAILS and "neither part shown" in g.reason


def test_the_record_with_square_is_read_where_an_agent_has_several(tmp_path):
    results = write_results(tmp_path, {"CE": (metrics(18, 50.0, 50.0), None)})
    run = results / CLAIM.id / "rlab-laptop" / "runs" / SLUGS["CE"]
    write_rlab(run / "rlab-learned-square", "learned", FOOLED, SQUARE)
    ce = rules.find(CLAIM, results).numbers["victims"]["CE (seed 0)"]
    assert ce["learned"]["n_success"] == 20 and len(ce["square"]) == 2
    assert ce["record"].endswith("rlab-learned-square/rlab.json")


def test_without_a_learned_agents_record_the_claim_is_not_testable(tmp_path):
    greedy_only = {arm: (None, None) for arm in BASE}
    f = rules.find(CLAIM, write_results(tmp_path / "a", greedy_only))
    assert f.verdict == rules.UNTESTABLE and "agents found: greedy" in f.reason
    g = rules.find(CLAIM, write_results(tmp_path / "b", greedy_only, greedy=False))
    assert g.verdict == rules.UNTESTABLE and "agents found: none" in g.reason


# --- the claim's own command, at smoke scale -------------------------------------------------


def square_step(scale: str) -> list[str]:
    """The claim's Square step (the loop's body, with $RUN) at ``scale``: its RLAB settings are
    the preset's laptop ones, replaced by the scale's."""
    from rlrobust.experiments.reproduce import plan

    body = re.search(r"do (.*?); done", CLAIM.run).group(1)
    argv = shlex.split(body)[1:]
    post = plan("rlab", scale).post
    for flag, key in FLAGS.items():
        argv[argv.index(flag) + 1] = str(post[key])
    return argv


def test_the_claims_square_step_repeats_the_presets_laptop_settings():
    from rlrobust.experiments.reproduce import plan

    argv = shlex.split(re.search(r"do (.*?); done", CLAIM.run).group(1))
    post = plan("rlab", "laptop").post
    for flag, key in FLAGS.items():
        assert argv[argv.index(flag) + 1] == str(post[key]), flag
    assert CLAIM.run.startswith("rlrobust reproduce rlab --scale laptop")


@pytest.mark.slow
def test_the_claims_command_at_smoke_scale_is_read_back(tmp_path, monkeypatch):
    from rlrobust.cli import main
    from rlrobust.findings.collect import collect

    monkeypatch.chdir(tmp_path)
    reproduce = shlex.split(CLAIM.run.split(";")[0].replace("laptop", "smoke"))[1:]
    assert main([*reproduce, "--quiet"]) == 0
    out = tmp_path / "reproduce" / "rlab-smoke"
    for run in sorted((out / "runs").iterdir()):
        assert main([a.replace("$RUN", str(run)) for a in square_step("smoke")]) == 0
    collect(out, CLAIM.id, command=" ".join(reproduce), results="results")
    f = rules.find(CLAIM, tmp_path / "results")
    assert f.verdict != rules.UNTESTABLE, f.reason
    runs = tmp_path / "results" / CLAIM.id / "rlab-smoke" / "runs"
    assert set(f.numbers["victims"]) == {"CE (seed 0)", "policy (Kim) (seed 0)"}
    for arm, slug in SLUGS.items():
        victim = f.numbers["victims"][f"{arm} (seed 0)"]
        raw = json.loads((runs / slug / "rlab-learned" / "rlab.json").read_text())
        learned = raw["rlab"]
        assert victim["learned"]["rate"] == pytest.approx(
            100 * learned["n_success"] / learned["n_attacked"]
        )
        assert victim["learned"]["interval"] == pytest.approx(
            hand_wilson(learned["n_success"], learned["n_attacked"])
        )
        assert victim["learned"]["queries_mean"] == learned["queries_success"]["mean"]
        assert [s["eps"] for s in victim["square"]] == [0.1, 0.3]
        for s in victim["square"]:
            square = raw["square"][f"{s['eps']:g}"]
            assert s["success"]["n_success"] == square["n_success"]
            assert s["success"]["queries_mean"] == square["queries_success"]["mean"]
        greedy = json.loads((runs / slug / "rlab" / "rlab.json").read_text())["rlab"]
        assert victim["greedy"]["n_success"] == greedy["n_success"]


# --- the paper's other two claims, reported beside the verdict -------------------------------


def dice(value: float) -> dict:
    return {"dice_mean": value, "iou_mean": value / 2}


MASKS = {
    "n": 20,
    "reference": "ground_truth",
    "rlab_vs_baselines": {"vanilla_gradient": dice(0.1), "integrated_gradients": dice(0.3)},
    "vs_reference": {
        "rlab": dice(0.42),
        "vanilla_gradient": dice(0.05),
        "smoothgrad": dice(0.12),
        "integrated_gradients": dice(0.61),
        "random_patches": dice(0.9),  # a control, never "the best gradient baseline"
    },
}
RETRAINING = {
    "settings": {"epochs": 2},
    "n_rlab_examples": 24,
    "rlab_before": {"success_rate": 0.5},
    "rlab_after": {"success_rate": 0.25},
    "eps": 0.1,
    "before": {"clean": 0.98, "fgsm": 0.5, "pgd40": 0.0},
    "after": {"clean": 0.96, "fgsm": 0.55, "pgd40": 0.01},
}


def add_to_learned(results: Path, **fields) -> None:
    for path in (results / CLAIM.id).glob("*/runs/*/rlab-learned/rlab.json"):
        path.write_text(json.dumps(json.loads(path.read_text()) | fields))


def test_masks_and_retraining_are_reported_with_their_numbers(tmp_path):
    results = write_results(tmp_path)
    add_to_learned(results, masks=MASKS, retraining=RETRAINING)
    f = rules.find(CLAIM, results)
    text = "\n".join(f.evidence)
    assert (
        "CE (seed 0): masks vs ground_truth (20 inputs): RLAB Dice 0.42, best gradient baseline "
        "integrated_gradients 0.61 (not above)" in text
    )
    assert (
        "CE (seed 0): retraining (24 RLAB examples, 2 epochs): RLAB success 50.0 -> 25.0 %; "
        "clean 98.0 -> 96.0, FGSM 50.0 -> 55.0, PGD-40 0.0 -> 1.0 % (eps 0.1)" in text
    )
    assert f.verdict == rules.HOLDS  # the verdict is the success and queries claim's alone


def test_masks_above_every_gradient_baseline_and_series_without_reference():
    above = MASKS | {"vs_reference": MASKS["vs_reference"] | {"rlab": dice(0.7)}}
    assert rlab.masks_text(above).endswith("integrated_gradients 0.61 (above)")
    series = {"n": 5, "reference": "none", "rlab_vs_baselines": MASKS["rlab_vs_baselines"]}
    assert rlab.masks_text(series) == (
        "masks: no reference masks (none); RLAB's Dice with integrated_gradients 0.30, "
        "vanilla_gradient 0.10"
    )


def test_without_masks_or_retraining_nothing_is_claimed_of_them(tmp_path):
    f = rules.find(CLAIM, write_results(tmp_path))
    assert not any("masks" in e or "retraining" in e for e in f.evidence)


def test_the_claims_1d_and_3d_steps_are_commands_the_cli_accepts(tmp_path, capsys):
    """Each 1-D / 3-D victim step of the claim's command parses, and each RLAB step passes the
    attack's own checks of its settings: run against a run folder that does not exist, it fails
    on the folder alone. Every victim is collected under its arm."""
    from rlrobust.cli import build_parser, main
    from rlrobust.findings.claims import RLAB_VICTIMS

    parser = build_parser()
    steps = [s.strip() for s in CLAIM.run.replace("for S in 0 1; do", ";").split(";")]
    # each loop is written twice: run, then quoted in its collect's --command
    commands = sorted({s for s in steps if s.startswith("rlrobust ") and "$S" in s})
    assert len(commands) == 3 * len(RLAB_VICTIMS)
    for command in commands:
        argv = shlex.split(command.replace("$S", "0").replace("reproduce/", f"{tmp_path}/"))[1:]
        parser.parse_args(argv)  # exits (fails the test) on an unknown flag
        if argv[:2] == ["attack", "rlab"]:
            capsys.readouterr()
            assert main(argv) != 0
            error = capsys.readouterr().err
            # the missing run folder is the only problem (settings are checked before it)
            assert f"{argv[2]} is not a run directory" in error, error
    for out, _, arm, *_ in RLAB_VICTIMS:
        assert f"findings collect {out} --claim rlab --arm '{arm}'" in CLAIM.run
