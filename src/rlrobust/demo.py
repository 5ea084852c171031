"""The offline demo: cross-entropy vs Kim's two-stage policy loss on scikit-learn's digits.

It needs no download and finishes in about a minute on two CPU cores: it trains both models,
attacks them with FGSM and PGD (Kim's MNIST protocol: eps 0.1, PGD 40 steps of 0.01) and writes
``report.json``, ``report.md`` and ``summary.png`` beside the two run directories.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from rlrobust.config import RunConfig, load_config
from rlrobust.errors import RunDirectoryError
from rlrobust.evaluation.protocol import evaluate, markdown_table
from rlrobust.files import atomic_write_json, atomic_write_text
from rlrobust.reporting.plots import plot_runs_summary
from rlrobust.reporting.report import comparison_report
from rlrobust.training.checkpoint import load_weights
from rlrobust.training.run import train_run
from rlrobust.training.setup import load_splits, model_for, resolve_device

MARKER = ".rlrobust-demo"
EPS = 0.1
ATTACKS = [
    {"name": "fgsm", "settings": {"eps": EPS}},
    {"name": "pgd", "settings": {"eps": EPS, "steps": 40, "step_size": 0.01, "seed": 0}},
]


def demo_configs(epochs: int) -> dict[str, RunConfig]:
    common = {
        "data.name": "digits",
        "data.batch_size": 64,
        "data.eval_batch_size": 512,
        "model.name": "zou_cnn6",
        "train.epochs": epochs,
        "train.seed": 0,
        "optim.name": "sgd",
        "optim.lr": 0.05,
        "optim.momentum": 0.9,
        "optim.weight_decay": 5e-4,
        "optim.schedule": "cosine",
        "eval.attacks": ATTACKS,
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
    return {"cross-entropy": cross_entropy, "policy (Kim, lambda 0.75/1.5)": policy}


def prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise RunDirectoryError(
                f"{out} is not empty; pass --overwrite to replace an earlier demo or --out NEW_DIR"
            )
        if not (out / MARKER).exists():
            raise RunDirectoryError(
                f"{out} was not written by `rlrobust demo`; it is left untouched: choose --out NEW_DIR"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by rlrobust demo\n")


def run_demo(
    out: Path,
    *,
    epochs: int | None = None,
    overwrite: bool = False,
    progress: bool = False,
    log=print,
) -> dict:
    started = time.perf_counter()
    prepare_out(out, overwrite)
    metrics, evaluations, notes = {}, {}, []
    for (name, cfg), folder in zip(
        demo_configs(epochs or 30).items(), ("ce", "policy"), strict=False
    ):
        log(f"== training {name} ==")
        state = train_run(cfg, out / folder, progress=progress, log=log)
        metrics[name] = state["metrics"]
        if state["two_stage"]["switch_epoch"]:
            notes.append(
                f"{name}: switched from Eq. 12 to Eq. 4 at epoch {state['two_stage']['switch_epoch']}"
            )
        elif cfg.two_stage.enabled:
            notes.append(f"{name}: never reached the switch accuracy; trained with Eq. 12 only")
        device = resolve_device(cfg.train.device)
        test = load_splits(cfg.data, cfg.train.seed).test
        model = load_weights(model_for(cfg.model, test), out / folder / "model.safetensors").to(
            device
        )
        log(f"== attacking {name} ==")
        record = evaluate(
            model,
            test,
            ATTACKS,
            batch_size=cfg.data.eval_batch_size,
            device=device,
            progress=progress,
        )
        record.pop("per_sample")
        evaluations[name] = record
    seconds = time.perf_counter() - started
    notes.append(f"total wall time {seconds:.0f} s")

    plot_runs_summary(metrics, evaluations, out / "summary.png")
    report = {
        "data": "digits (scikit-learn, 8x8)",
        "eps": EPS,
        "evaluations": evaluations,
        "metrics": metrics,
        "seconds": seconds,
    }
    atomic_write_json(out / "report.json", report)
    title = "rlrobust demo: cross-entropy vs policy loss on digits"
    atomic_write_text(
        out / "report.md", comparison_report(title, evaluations, notes, "summary.png")
    )
    log(markdown_table(evaluations))
    log(f"report: {out / 'report.md'}  ({seconds:.0f} s)")
    return report
