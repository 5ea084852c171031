"""docs/findings.md: built from results/ alone, numbers and verdicts as hand computation says,
and the committed document exactly what the committed records give."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hand_stats import hand_summary
from rlrobust.findings import document, rules
from rlrobust.findings.claims import CLAIMS, get_claim
from rlrobust.findings.collect import collect

ROOT = Path(__file__).resolve().parents[1]
N = 20  # test images of the synthetic evaluations
# Student-t quantiles t_{0.975, df} from a printed table (independent of rlrobust.stats)
CLAIM = get_claim("kim-table3")
A_ARM, B_ARM = CLAIM.arms
# correct images out of N under AutoAttack, per seed: A 75 / 70 / 65 %, B 45 / 35 / 40 %
A_AA, B_AA = {0: 15, 1: 14, 2: 13}, {0: 9, 1: 7, 2: 8}
PGD_EXTRA = 2  # A's PGD leaves 2 more images robust than AutoAttack: PGD - AA = +10 points


def flags(k: int) -> list[int]:
    return [1] * k + [0] * (N - k)


def write_run(run_dir: Path, seed: int, aa: int, pgd: int, masking: str | None, square: int = 1):
    """A run folder with a config, an evaluation record and its per-sample verdicts, in the
    layout ``rlrobust evaluate`` writes."""
    run_dir.mkdir(parents=True)
    config = {"data": {"name": "mnist"}, "train": {"seed": seed}, "eval": {"n_examples": N}}
    (run_dir / "config.json").write_text(json.dumps(config))
    attacks = [
        {"label": "pgd", "attack": {"name": "pgd", "eps": 0.1}, "accuracy": pgd / N},
        {
            "label": "autoattack",
            "attack": {"name": "autoattack", "eps": 0.1},
            "accuracy": aa / N,
            "breakdown": {"apgd-ce": pgd - aa - square, "square": square},
        },
    ]
    record = {
        "n_examples": N,
        "clean_accuracy": 1.0,
        "robust_accuracy": aa / N,
        "attacks": attacks,
        "config": config,
    }
    if masking is not None:
        record["masking"] = {"verdict": masking, "codes": [], "flags": []}
    per_sample = {
        "labels": [i % 10 for i in range(N)],
        "clean_correct": [1] * N,
        "pgd": flags(pgd),
        "autoattack": flags(aa),
        "robust": flags(aa),
    }
    (run_dir / "evaluation.json").write_text(json.dumps(record))
    (run_dir / "evaluation-per-sample.json").write_text(json.dumps(per_sample))


def write_results(tmp_path: Path, masking: dict | None = None) -> Path:
    """A reproduce-like collection for kim-table3: a sweep manifest naming each run's arm."""
    results = tmp_path / "results"
    root = results / "kim-table3" / "synthetic"
    points = {}
    masking = masking or {}
    for seed in (0, 1, 2):
        for arm, aa, tag in ((A_ARM, A_AA[seed], "a"), (B_ARM, B_AA[seed], "b")):
            slug = f"{tag}-seed{seed}"
            points[slug] = {"variant": arm, "seed": seed, "run_dir": f"runs/{slug}"}
            verdict = masking.get((tag, seed), "no evidence of masking")
            pgd = aa + (PGD_EXTRA if tag == "a" else 0)
            write_run(root / "runs" / slug, seed, aa, pgd, verdict, square=1 if tag == "a" else 0)
    (root / "sweep.json").write_text(json.dumps({"points": points}))
    provenance = {
        "claim": "kim-table3",
        "command": "synthetic records written by tests/test_findings.py",
        "git_commit": "0" * 40,
        "date": "2026-01-01T00:00:00+00:00",
        "machine": {"cpus": 2},
        "wall_seconds": 12.0,
        "load": {"note": "test"},
    }
    (root / "provenance.json").write_text(json.dumps(provenance))
    return results


def finding(results: Path) -> rules.Finding:
    return rules.find(CLAIM, results)


# --- (a) numbers and verdicts against hand computation ------------------------------------------


def test_paired_claim_numbers_match_hand_computation(tmp_path):
    f = finding(write_results(tmp_path))
    a = [100 * A_AA[s] / N for s in (0, 1, 2)]  # 75, 70, 65
    b = [100 * B_AA[s] / N for s in (0, 1, 2)]  # 45, 35, 40
    d = [x - y for x, y in zip(a, b, strict=True)]  # 30, 35, 25
    for key, values in (("a", a), ("b", b), ("difference", d)):
        mean, std, low, high = hand_summary(values)
        stat = f.numbers[key]
        assert stat["mean"] == pytest.approx(mean)
        assert stat["std"] == pytest.approx(std)
        assert stat["interval"] == pytest.approx([low, high], abs=1e-9)
    assert f.numbers["metric"] == "autoattack"  # AutoAttack is preferred over PGD
    assert f.numbers["seeds"] == [0, 1, 2]
    # difference 30 ± 5 over 3 seeds: t interval 30 -/+ 4.3027 * 5 / sqrt(3) = [17.58, 42.42]
    assert "A - B +30.00 ± 5.00 [17.58, 42.42] (3 seeds)" in f.our_number
    assert "A 70.00 ± 5.00 [57.58, 82.42] vs B 40.00 ± 5.00 [27.58, 52.42]" in f.our_number
    assert f.verdict == rules.HOLDS, f.reason
    assert "A: pgd - autoattack +10.00 points" in f.evidence
    assert "clean A - B +0.00 points" in f.evidence  # every synthetic image is clean-correct
    assert any("Square (in AutoAttack) fooled 3 A image(s)" in e for e in f.evidence)
    text = document.markdown(tmp_path / "results")
    row = next(line for line in text.splitlines() if line.startswith("| [kim-table3]"))
    assert "**holds**" in row and "+30.00 ± 5.00 [17.58, 42.42]" in row
    # the paper's number comes from the kim-mnist preset: PGD 63.73 (policy) vs 46.88 (CE)
    assert "A 63.73 vs B 46.88 (A - B +16.85)" in row


def test_protocol_differences_come_from_the_records(tmp_path):
    from rlrobust.experiments.presets import differences, get_preset

    results = write_results(tmp_path)
    root = results / "kim-table3" / "synthetic"
    # no preset named: not computed, and the configs' facts are listed instead
    f = finding(results)
    assert f.numbers["differences"] == [
        "synthetic: not computed (collected without --preset / --scale); its configs: "
        "mnist / None / None, None epochs, 20 test images, attacks "
    ]
    assert "1 collection(s) without a preset" in f.protocol
    # a preset and scale named by the provenance: computed from that preset
    provenance = json.loads((root / "provenance.json").read_text())
    (root / "provenance.json").write_text(
        json.dumps({**provenance, "preset": "kim-mnist", "scale": "smoke"})
    )
    expected = differences(get_preset("kim-mnist"), "smoke")
    assert finding(results).numbers["differences"] == [f"synthetic: {d}" for d in expected]
    # a reproduce folder's own record wins
    lines = ["laptop: train.epochs 3 instead of 100 (why)"]
    (root / "reproduce.json").write_text(json.dumps({"difference_lines": lines, "notes": []}))
    g = finding(results)
    assert g.numbers["differences"] == [f"synthetic: {lines[0]}"]
    assert "1 computed difference(s) from the records" in g.protocol


def test_planted_masking_evidence_makes_the_claim_fail(tmp_path):
    results = write_results(tmp_path, masking={("a", 1): "evidence of masking"})
    f = finding(results)
    assert f.verdict == rules.FAILS
    assert "evidence of masking" in f.reason and "1 of 3" in f.reason
    row = next(
        line
        for line in document.markdown(results).splitlines()
        if line.startswith("| [kim-table3]")
    )
    assert "**does not hold**" in row
    # masking on the baseline B does not decide A's claim
    other = finding(write_results(tmp_path / "b", masking={("b", 1): "evidence of masking"}))
    assert other.verdict == rules.HOLDS


def test_unchecked_masking_only_holds_weakly(tmp_path):
    f = finding(write_results(tmp_path, masking={("a", 2): None}))
    assert f.verdict == rules.WEAK and "masking not checked on 1 of 3" in f.reason


@pytest.mark.parametrize(
    ("kind", "mean", "interval", "n", "masking", "verdict", "why"),
    [
        ("autoattack", 3.0, [1.0, 5.0], 3, ["no evidence of masking"] * 3, rules.HOLDS, "above 0"),
        (
            "autoattack",
            3.0,
            [-1.0, 7.0],
            3,
            ["no evidence of masking"] * 3,
            rules.WEAK,
            "reaches 0",
        ),
        ("pgd", 3.0, [1.0, 5.0], 3, ["no evidence of masking"] * 3, rules.WEAK, "only under PGD"),
        ("autoattack", 3.0, [1.0, 5.0], 1, ["no evidence of masking"], rules.WEAK, "one seed"),
        ("autoattack", 0.0, [-1.0, 1.0], 3, ["no evidence of masking"] * 3, rules.FAILS, "+0.00"),
        ("autoattack", -2.0, [-3.0, -1.0], 3, ["no evidence of masking"] * 3, rules.FAILS, "not"),
        ("autoattack", 9.0, [8.0, 10.0], 2, ["no usable gradient", None], rules.FAILS, "usable"),
    ],
)
def test_paired_verdict_rule(kind, mean, interval, n, masking, verdict, why):
    got, reason = rules.paired_verdict(kind, mean, interval, n, masking)
    assert got == verdict and why in reason


def test_a_difference_far_below_the_papers_holds_only_weakly():
    # the zou claim's paper says A - B +50; an interval topping at +7.7 is not that size
    got, why = rules.paired_verdict(
        "autoattack", 5.8, [3.9, 7.7], 3, ["no evidence of masking"] * 3, paper_difference=50.0
    )
    assert got == rules.WEAK and "far smaller than the paper's" in why
    at_size, _ = rules.paired_verdict(
        "autoattack", 30.0, [20.0, 40.0], 3, ["no evidence of masking"] * 3, paper_difference=50.0
    )
    assert at_size == rules.HOLDS  # the top of the interval reaches half the paper's +50


def test_seeds_without_the_preferred_record_are_left_out_and_named(tmp_path):
    results = write_results(tmp_path)
    runs = results / "kim-table3" / "synthetic" / "runs"
    # seed 2's two runs hold the claim's preferred record ('standard'); seeds 0 and 1 only the
    # preset's ('evaluation'): the seeds are compared on one kind of record, the preferred one
    for tag in ("a", "b"):
        for name in ("evaluation.json", "evaluation-per-sample.json"):
            old = runs / f"{tag}-seed2" / name
            old.rename(old.with_name(name.replace("evaluation", "standard")))
    f = finding(results)
    assert f.numbers["seeds"] == [2]
    assert any(
        "seed(s) 0, 1 left out: not both arms hold a 'standard' record" in line
        for line in f.details
    )
    assert f.verdict == rules.WEAK and "one seed" in f.reason


def test_pgd_only_records_hold_weakly_and_a_worse_arm_does_not_hold(tmp_path):
    results = write_results(tmp_path)
    for per_sample in (results / "kim-table3").rglob("evaluation-per-sample.json"):
        data = json.loads(per_sample.read_text())
        data.pop("autoattack")
        per_sample.write_text(json.dumps(data))
    # compare_runs skips an attack without per-sample verdicts: PGD is all that is left
    f = finding(results)
    assert f.numbers["metric"] == "pgd" and f.verdict == rules.WEAK
    # swapping the arms' names makes A the less robust arm
    swapped = write_results(tmp_path / "swap")
    manifest = swapped / "kim-table3" / "synthetic" / "sweep.json"
    points = json.loads(manifest.read_text())["points"]
    for point in points.values():
        point["variant"] = B_ARM if point["variant"] == A_ARM else A_ARM
    manifest.write_text(json.dumps({"points": points}))
    g = finding(swapped)
    assert g.verdict == rules.FAILS and g.numbers["difference"]["mean"] == pytest.approx(-30.0)


def test_a_claim_without_records_is_not_measured_and_gives_its_command(tmp_path):
    text = document.markdown(tmp_path / "empty")
    rows = [line for line in text.splitlines() if line.startswith("| [")]
    assert len(rows) == len(CLAIMS)
    for claim, row in zip(CLAIMS, rows, strict=True):
        assert row.startswith(f"| [{claim.id}]")
        assert "| not measured yet |" in row and "**not testable here**" in row
    for claim in CLAIMS:
        assert f"**Command that produces the records**: `{claim.run}`" in text


def test_records_missing_an_arm_are_not_testable(tmp_path):
    results = write_results(tmp_path)
    manifest = results / "kim-table3" / "synthetic" / "sweep.json"
    points = json.loads(manifest.read_text())["points"]
    for point in points.values():
        point["variant"] = A_ARM
    manifest.write_text(json.dumps({"points": points}))
    f = finding(results)
    assert f.verdict == rules.UNTESTABLE and "'CE'" in f.reason


# --- collecting ----------------------------------------------------------------------------------


def test_collect_copies_small_records_only_with_provenance(tmp_path, monkeypatch):
    import rlrobust.findings.collect as collect_module

    run = tmp_path / "run"
    write_run(run, 0, 15, 17, "no evidence of masking")
    (run / "metrics.csv").write_text("epoch,loss\n1,0.5\n")
    (run / "model.safetensors").write_bytes(b"\0" * 64)
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "step-1.json").write_text("{}")
    (run / "evaluation.partial").mkdir()
    (run / "evaluation.partial" / "state.json").write_text("{}")
    (run / "huge.json").write_text("[" + "0," * 600 + "0]")
    monkeypatch.setattr(collect_module, "MAX_BYTES", 1000)
    target = collect(
        run,
        "kim-table3",
        command="rlrobust train --out run",
        results=tmp_path / "results",
        arm=A_ARM,
        note="busy machine",
    )
    copied = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    assert copied == [
        "config.json",
        "evaluation-per-sample.json",
        "evaluation.json",
        "metrics.csv",
        "provenance.json",
    ]
    provenance = json.loads((target / "provenance.json").read_text())
    assert provenance["command"] == "rlrobust train --out run"
    assert provenance["arm"] == A_ARM and provenance["load"]["note"] == "busy machine"
    assert provenance["left_out"] == [{"path": "huge.json", "bytes": 1203, "why": "over 1000 B"}]
    commit = provenance["git_commit"]
    assert commit is None or (len(commit) == 40 and int(commit, 16) >= 0)
    assert provenance["machine"]["cpus"] and provenance["date"]
    # the collected run answers its claim: one arm only, so not testable, naming the missing arm
    f = finding(tmp_path / "results")
    assert f.verdict == rules.UNTESTABLE and "'CE'" in f.reason


def test_collect_refuses_unknown_claims_and_folders_without_a_run(tmp_path):
    from rlrobust.errors import RLRobustError

    run = tmp_path / "run"
    write_run(run, 0, 15, 17, None)
    with pytest.raises(RLRobustError, match="unknown claim"):
        collect(run, "no-such-claim", command="x", results=tmp_path / "r")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RLRobustError, match="no config.json"):
        collect(empty, "kim-table3", command="x", results=tmp_path / "r")
    with pytest.raises(RLRobustError, match="no scale 'huge'"):
        collect(
            run, "kim-table3", command="x", results=tmp_path / "r", preset="kim-mnist", scale="huge"
        )
    collect(run, "kim-table3", command="x", results=tmp_path / "r")
    with pytest.raises(RLRobustError, match="--overwrite"):
        collect(run, "kim-table3", command="x", results=tmp_path / "r")


def test_cli_builds_markdown_and_html(tmp_path, capsys):
    from rlrobust.cli import main

    results = write_results(tmp_path)
    out, page = tmp_path / "findings.md", tmp_path / "findings.html"
    args = ["findings", "build", "--results", str(results), "--out", str(out), "--html", str(page)]
    assert main(args) == 0
    assert out.read_text() == document.markdown(results)
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and "holds" in html and "http" not in html
    assert main(["findings", "claims"]) == 0
    assert "kim-table3" in capsys.readouterr().out
    # collect through the CLI: --command is stored verbatim (and is not the CLI's own command)
    run = tmp_path / "run"
    write_run(run, 0, 15, 17, None)
    collect_args = ["findings", "collect", str(run), "--claim", "kim-table3", "--arm", "CE"]
    collect_args += ["--command", "rlrobust train --out run", "--results", str(tmp_path / "r")]
    assert main(collect_args) == 0
    provenance = json.loads((tmp_path / "r" / "kim-table3" / "run" / "provenance.json").read_text())
    assert provenance["command"] == "rlrobust train --out run" and provenance["arm"] == "CE"


# --- (b) the committed document is what the committed records give -------------------------------


def test_committed_findings_document_matches_the_committed_records():
    committed = (ROOT / "docs" / "findings.md").read_text()
    built = document.markdown(ROOT / "results")
    assert committed == built, (
        "docs/findings.md differs from what results/ gives; regenerate it with "
        f"`{document.BUILD_COMMAND}` (from the repository root) and commit both"
    )


def test_no_record_under_results_is_git_ignored():
    """A record the ignore rules hide would be missing from every clone (and from CI), so the
    committed document could not be rebuilt there."""
    import shutil
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    # CI and every developer run the tests in a clone; anywhere else this check cannot answer.
    assert shutil.which("git") and (root / ".git").exists(), "run the tests in a git checkout"
    files = [str(p.relative_to(root)) for p in (root / "results").rglob("*") if p.is_file()]
    assert files
    done = subprocess.run(
        ["git", "check-ignore", "--no-index", "--stdin"],
        input="\n".join(files),
        capture_output=True,
        text=True,
        cwd=root,
    )
    assert done.stdout.strip() == "", f"ignored by .gitignore: {done.stdout.split()[:5]}"
