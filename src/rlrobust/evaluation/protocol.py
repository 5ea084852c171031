"""The evaluation protocol, AutoAttack-shaped (DESIGN principle 5).

Clean accuracy first; then each attack on the points that are still robust; a per-sample robust
flag for every attack; per-attack and worst-case (all attacks together) accuracy; and a
constraint audit. Batches are streamed, so memory does not grow with the test set.

Two orders are offered. ``cascade=False`` (default) attacks every clean-correct point with every
attack, so each attack has its own accuracy (the FGSM and PGD columns of Kim's tables).
``cascade=True`` attacks only points that survived the previous attacks, as AutoAttack does;
the worst case is the same either way, only the cost and the per-attack columns differ.

Iterative attacks (PGD and momentum PGD) count a point as fooled when *any* of their iterates
fools it, not only the last one (AutoAttack's rule; ``keep_fooling`` in ``attacks/pgd.py``).
With ``early_exit`` (the default) they also stop iterating on points already fooled, which
shrinks the working batch; the per-sample verdicts are the same with and without it
(docs/evaluation.md, "Fast paths").

Fast paths shared with training (``training/fast.py``, off by default): ``channels_last`` puts
the model and the 4-D batches in channels_last layout; ``amp="bf16"`` runs the attacks' forward
passes under bfloat16 autocast. The clean and final verdict passes always run in float32.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from rlrobust.attacks import PGD, build_attack
from rlrobust.data import ImageData, iterate_batches
from rlrobust.errors import RLRobustError
from rlrobust.evaluation.audit import AuditAccumulator
from rlrobust.training.fast import autocast, batch_to_channels_last, model_to_channels_last


def as_attacks(attacks: Sequence) -> list[tuple[str, object]]:
    """Accept attack objects or ``{"name", "settings", "label"?}`` specs; give each a unique label."""
    built, labels = [], set()
    for spec in attacks:
        if isinstance(spec, dict):
            attack = build_attack(spec["name"], **spec.get("settings", {}))
            label = spec.get("label", spec["name"])
        else:
            attack, label = spec, getattr(spec, "name", type(spec).__name__.lower())
        base, k = label, 2
        while label in labels:
            label, k = f"{base}#{k}", k + 1
        labels.add(label)
        built.append((label, attack))
    return built


def protocol_variant(attack, early_exit: bool):
    """The attack as the protocol runs it: PGD-type attacks keep any fooling iterate.

    A copy, so the caller's attack object is left as it is. ``early_exit`` only decides whether
    fooled points leave the working batch; it cannot change a verdict (``attacks/pgd.py``).
    """
    if isinstance(attack, PGD):
        attack = copy.copy(attack)
        attack.keep_fooling = True
        attack.early_exit = bool(early_exit)
    return attack


def fast_path_options(cfg) -> dict:
    """``evaluate``'s fast-path keywords from a run config (``eval.early_exit``, ``train.*``)."""
    return {
        "early_exit": cfg.eval.early_exit,
        "channels_last": cfg.train.channels_last,
        "amp": cfg.train.amp,
    }


def _add_breakdown(totals: dict[str, dict[str, int]], label: str, attack) -> None:
    """Sum an ensemble's per-call ``last_breakdown`` (AutoAttack) over batches."""
    breakdown = getattr(attack, "last_breakdown", None)
    if isinstance(breakdown, dict):
        total = totals.setdefault(label, {})
        for member, count in breakdown.items():
            total[member] = total.get(member, 0) + int(count)


def _check_output(logits: torch.Tensor, n: int) -> None:
    if logits.ndim != 2 or logits.shape[0] != n:
        raise RLRobustError(
            f"the model returned shape {tuple(logits.shape)} for {n} inputs; it must return logits of "
            "shape (N, num_classes)"
        )


def evaluate(
    model: torch.nn.Module,
    data: ImageData,
    attacks: Sequence = (),
    *,
    batch_size: int = 500,
    device: str | torch.device = "cpu",
    cascade: bool = False,
    progress: bool = False,
    early_exit: bool = True,
    channels_last: bool = False,
    amp: str = "none",
) -> dict:
    """Evaluate ``model`` on ``data`` under ``attacks``; returns a JSON-able record.

    The record holds ``clean_accuracy``, one entry per attack with its ``accuracy`` (standalone,
    or cumulative when ``cascade``) and ``audit``, the worst-case ``robust_accuracy``, and
    ``per_sample`` flags (``clean_correct``, one list per attack, ``robust``).

    ``early_exit``, ``channels_last`` and ``amp`` are the fast paths (module docstring); with
    ``channels_last`` the model's 4-D weights are switched to that layout (same values).
    """
    device = torch.device(device)
    labelled = [(label, protocol_variant(a, early_exit)) for label, a in as_attacks(attacks)]
    audits = {label: AuditAccumulator(float(a.eps), a.norm) for label, a in labelled}
    seconds = dict.fromkeys(audits, 0.0)
    breakdowns: dict[str, dict[str, int]] = {}  # ensembles: which member fooled how many points
    clean_correct: list[torch.Tensor] = []
    survived = {label: [] for label in audits}  # per attack: robust flag of every sample
    robust_all: list[torch.Tensor] = []

    was_training = model.training
    model.eval()
    if channels_last:
        model_to_channels_last(model)
    try:
        batches = iterate_batches(data, batch_size, device)
        for x, y in tqdm(
            batches,
            desc="evaluate",
            disable=not progress,
            leave=False,
            total=(len(data) + batch_size - 1) // batch_size,
        ):
            if channels_last:
                x = batch_to_channels_last(x)
            with torch.no_grad():
                logits = model(x)
            _check_output(logits, len(x))
            correct = logits.argmax(dim=1) == y
            robust = correct.clone()
            clean_correct.append(correct.cpu())
            for label, attack in labelled:
                todo = robust if cascade else correct
                flags = correct.clone()
                index = todo.nonzero().flatten()
                if len(index):
                    started = time.perf_counter()
                    with autocast(amp, device):  # the attack's passes; verdicts in float32
                        x_adv = attack(model, x[index], y[index])
                    with torch.no_grad():
                        still = model(x_adv).argmax(dim=1) == y[index]
                    seconds[label] += time.perf_counter() - started
                    audits[label].add(x_adv.detach(), x[index])
                    flags[index] = still
                    _add_breakdown(breakdowns, label, attack)
                if cascade:
                    flags &= robust
                robust &= flags
                survived[label].append(flags.cpu())
            robust_all.append(robust.cpu())
    finally:
        model.train(was_training)

    n = len(data)
    clean = torch.cat(clean_correct) if clean_correct else torch.empty(0, dtype=torch.bool)
    robust = torch.cat(robust_all) if robust_all else clean
    entries = []
    for label, attack in labelled:
        flags = torch.cat(survived[label]) if survived[label] else clean
        extra = {"breakdown": breakdowns[label]} if label in breakdowns else {}
        entries.append(
            {
                **extra,
                "label": label,
                "attack": attack.describe() if hasattr(attack, "describe") else {"name": label},
                "accuracy": float(flags.float().mean()) if n else 0.0,
                "seconds": seconds[label],
                "audit": audits[label].result(),
            }
        )
    return {
        "n_examples": n,
        "cascade": cascade,
        "early_exit": early_exit,
        "clean_accuracy": float(clean.float().mean()) if n else 0.0,
        "attacks": entries,
        "robust_accuracy": float(robust.float().mean()) if n else 0.0,
        "audit_passed": all(entry["audit"]["passed"] for entry in entries),
        "per_sample": {
            "labels": data.labels.tolist(),
            "clean_correct": clean.int().tolist(),
            **{
                label: torch.cat(flags).int().tolist() for label, flags in survived.items() if flags
            },
            "robust": robust.int().tolist(),
        },
    }


def markdown_table(records: dict[str, dict]) -> str:
    """One row per model: clean, each attack, worst case (accuracies in %)."""
    labels: list[str] = []
    for record in records.values():
        labels += [e["label"] for e in record["attacks"] if e["label"] not in labels]
    header = ["model", "clean"] + labels + (["worst case"] if labels else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, record in records.items():
        by_label = {e["label"]: e["accuracy"] for e in record["attacks"]}
        cells = [name, f"{100 * record['clean_accuracy']:.2f}"]
        cells += [f"{100 * by_label[lab]:.2f}" if lab in by_label else "-" for lab in labels]
        if labels:
            cells.append(f"{100 * record['robust_accuracy']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
