"""The offline demo: cross-entropy vs Kim's two-stage policy loss on scikit-learn's digits.

It is the study of ``docs/findings.md`` in miniature and needs no download: it trains both
models, attacks them with FGSM, PGD (Kim's MNIST protocol: eps 0.1, PGD 40 steps of 0.01) and
AutoAttack (standard version, Croce & Hein 2020) at the same eps, runs the gradient-masking
checks on each model (``eval.masking``, quick budget) and compares the two image by image
(``rlrobust.compare.compare_runs``: paired bootstrap interval and McNemar's exact test). It
writes ``report.json``, ``report.md``, ``compare.md`` and ``summary.png`` beside the two run
directories, each of which holds its own evaluation record (``evaluation.json`` and the
per-sample verdicts), so ``rlrobust findings collect`` can file the demo like any other run.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from rlrobust.config import RunConfig, load_config
from rlrobust.errors import RunDirectoryError
from rlrobust.files import atomic_write_json, atomic_write_text

MARKER = ".rlrobust-demo"
EPS = 0.1
N_EXAMPLES = 200
ATTACKS = [
    {"name": "fgsm", "settings": {"eps": EPS}},
    {"name": "pgd", "settings": {"eps": EPS, "steps": 40, "step_size": 0.01, "seed": 0}},
    {"name": "autoattack", "settings": {"eps": EPS, "version": "standard", "seed": 0}},
]
#: the two arms: (run folder, name in the tables); the policy model is A, cross-entropy B.
CE, POLICY = "cross-entropy", "policy (Kim, lambda 0.75/1.5)"
FOLDERS = {CE: "ce", POLICY: "policy"}


def demo_configs(epochs: int) -> dict[str, RunConfig]:
    common = {
        "data.name": "digits",
        "data.batch_size": 64,
        "data.eval_batch_size": 512,
        "model.name": "zou_cnn6",
        # half the default widths: AutoAttack's standard version (APGD-CE, APGD-T and
        # FAB-T with 9 targets, Square with 5000 queries) then fits the demo's two minutes
        "model.options": {"widths": [32, 64], "hidden": 128},
        "train.epochs": epochs,
        "train.seed": 0,
        "optim.name": "sgd",
        "optim.lr": 0.05,
        "optim.momentum": 0.9,
        "optim.weight_decay": 5e-4,
        "optim.schedule": "cosine",
        "eval.attacks": ATTACKS,
        # 200 of the 360 test images (the same for both models, drawn with eval.seed): the
        # attacks' cost is proportional to the images, and the demo must stay under 2 minutes
        "eval.n_examples": N_EXAMPLES,
        "eval.seed": 0,
        # the masking checks need the threat model; quick: 256 points, a bounded cost
        "eval.eps": EPS,
        "eval.masking": True,
        "eval.masking_budget": "quick",
    }
    cross_entropy = load_config(overrides=common)
    policy = load_config(
        overrides={
            **common,
            # Kim's recipe: warm up with Eq. 12 (lambda1) and sampled actions, then Eq. 4 (lambda2)
            # with greedy actions once held-out accuracy passes 80 %.
            "objective.name": "kim_policy",
            "objective.options": {"lam": 1.5, "action": "greedy"},
            "two_stage.enabled": True,
            "two_stage.warmup_options": {"lam": 0.75},
            "two_stage.switch_accuracy": 0.8,
        }
    )
    return {CE: cross_entropy, POLICY: policy}


def prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise RunDirectoryError(
                f"{out} is not empty; pass --overwrite to replace an earlier demo or --out NEW_DIR"
            )
        if not (out / MARKER).exists():
            raise RunDirectoryError(
                f"{out} was not written by `rlrobust demo`; it is left untouched: "
                "choose --out NEW_DIR"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by rlrobust demo\n")


def _train_and_evaluate(name: str, cfg: RunConfig, run_dir: Path, progress: bool, log) -> dict:
    """Train one arm, evaluate it as ``rlrobust evaluate RUN`` would (attacks and masking
    checks from the config's eval section) and write its evaluation record into ``run_dir``."""
    from rlrobust.devices import resolve_device
    from rlrobust.evaluation.report import write_evaluation
    from rlrobust.evaluation.suite import run_suite_for_config
    from rlrobust.runs import load_test_split, model_for
    from rlrobust.training.run import train_run
    from rlrobust.weights import load_weights

    log(f"== training {name} ==")
    state = train_run(cfg, run_dir, progress=progress, log=log)
    device = resolve_device(cfg.train.device)
    # the test images `rlrobust evaluate RUN` would use: eval.n_examples of them, eval.seed
    test = load_test_split(cfg)
    model = load_weights(model_for(cfg.model, test), run_dir / "model.safetensors").to(device)
    log(f"== attacking {name} (FGSM, PGD-40, AutoAttack) and checking for gradient masking ==")
    result = run_suite_for_config(model, test, cfg, device=device, progress=progress)
    write_evaluation(run_dir, "evaluation", result, cfg, title=name)
    return {"state": state, "result": result}


def demo_table(evaluations: dict[str, dict], verdicts: dict[str, str]) -> str:
    """One row per model: accuracy (%) with its 95 % Wilson interval per column, then the
    masking verdict (a robust accuracy is only worth citing without evidence of masking)."""
    from rlrobust.evaluation.report import markdown_table

    lines = markdown_table(evaluations).splitlines()
    lines[0] += " masking verdict |"
    lines[1] += "---|"
    for i, name in enumerate(evaluations, start=2):
        lines[i] += f" {verdicts[name]} |"
    return "\n".join(lines)


def paired_table(comparison: dict) -> str:
    """policy - CE per metric: the paired difference, its bootstrap interval and McNemar's p."""
    from rlrobust.compare import _format_p
    from rlrobust.stats import format_interval

    level = f"{100 * comparison['level']:g} %"
    lines = [
        f"| metric | policy - CE (points) | {level} paired bootstrap interval | McNemar p |",
        "|---|---|---|---|",
    ]
    for row in comparison["rows"]:
        lines.append(
            f"| {row['metric']} | {100 * row['difference']:+.2f} | "
            f"{format_interval(row['difference_interval'], 100, 2)} | "
            f"{_format_p(row['mcnemar']['p_value'])} |"
        )
    return "\n".join(lines)


def _verdict_line(name: str, masking: dict) -> str:
    codes = (
        f" (flags: {', '.join(masking['codes'])}; docs/masking_flags.md)"
        if masking["codes"]
        else ""
    )
    return f"- {name}: **{masking['verdict']}**{codes}"


def run_demo(
    out: Path,
    *,
    epochs: int | None = None,
    overwrite: bool = False,
    progress: bool = False,
    log=print,
) -> dict:
    from rlrobust.compare import compare_runs, comparison_markdown
    from rlrobust.reporting.demo_plot import plot_demo_summary
    from rlrobust.reporting.report import comparison_report

    started = time.perf_counter()
    prepare_out(out, overwrite)
    metrics, evaluations, records, verdicts, masking, notes = {}, {}, {}, {}, {}, []
    for name, cfg in demo_configs(epochs or 30).items():
        done = _train_and_evaluate(name, cfg, out / FOLDERS[name], progress, log)
        state, result = done["state"], done["result"]
        metrics[name] = state["metrics"]
        switch = state["two_stage"]["switch_epoch"]
        if switch:
            notes.append(f"{name}: switched from Eq. 12 to Eq. 4 at epoch {switch}")
        elif cfg.two_stage.enabled:
            notes.append(f"{name}: never reached the switch accuracy; trained with Eq. 12 only")
        records[name] = result["evaluation"]
        evaluations[name] = {k: v for k, v in records[name].items() if k != "per_sample"}
        masking[name] = {k: result["masking"][k] for k in ("verdict", "codes", "flags")}
        verdicts[name] = result["masking"]["verdict"]
    # A - B = policy - cross-entropy, image by image on the same test images
    comparison = compare_runs(records[POLICY], records[CE], names=("policy", "cross-entropy"))
    seconds = time.perf_counter() - started
    notes.append(f"total wall time {seconds:.0f} s")

    plot_demo_summary(metrics, evaluations, verdicts, comparison, out / "summary.png")
    report = {
        "data": "digits (scikit-learn, 8x8)",
        "eps": EPS,
        "evaluations": evaluations,
        "masking": masking,
        "comparison": comparison,
        "metrics": metrics,
        "seconds": seconds,
    }
    atomic_write_json(out / "report.json", report)
    atomic_write_text(out / "compare.md", comparison_markdown(comparison))
    title = "rlrobust demo: cross-entropy vs policy loss on digits"
    body = comparison_report(title, evaluations, notes, "summary.png")
    body += "\n".join(
        [
            "## Gradient-masking verdicts",
            "",
            *[_verdict_line(name, masking[name]) for name in verdicts],
            "",
            "## Paired comparison (policy - cross-entropy, same test images)",
            "",
            paired_table(comparison),
            "",
            *[f"- {row['sentence']}" for row in comparison["rows"]],
            "",
            "Full comparison: [compare.md](compare.md). The full study with seeds: "
            "docs/findings.md in the rlrobust repository.",
            "",
        ]
    )
    atomic_write_text(out / "report.md", body)
    log(demo_table(evaluations, verdicts))
    log("")
    log(paired_table(comparison))
    log(f"report: {out / 'report.md'}  ({seconds:.0f} s)")
    return report
