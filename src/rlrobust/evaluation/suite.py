"""The whole evaluation a sceptical reviewer asks for, on any model: one call.

``run_suite`` runs an attack list (a named preset and/or explicit specs, plus transfer attacks
from a surrogate), an optional robust-accuracy-against-eps curve, and the gradient-masking checks
fed with the per-sample results of the black-box and transfer attacks, and returns one record.
The CLI's ``rlrobust evaluate`` calls it; so can anyone with an ``nn.Module``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rlrobust.data import ImageData
from rlrobust.errors import ConfigError
from rlrobust.evaluation.curves import robustness_curve
from rlrobust.evaluation.presets import preset_attacks
from rlrobust.evaluation.protocol import evaluate, fast_path_options

# Attacks that see only outputs or craft on another model; everything else is white-box.
BLACK_BOX = {"square", "transfer"}


def transfer_attacks(surrogate, eps: float, norm: str) -> list[dict]:
    """PGD and momentum PGD crafted on ``surrogate`` (a module or a run directory)."""
    base = {"steps": 40, "step_size": 2.5 * eps / 40}
    return [
        {
            "name": "transfer",
            "label": f"transfer-{name}",
            "settings": {
                "surrogate": surrogate,
                "base": name,
                "base_settings": dict(base),
                "eps": eps,
                "norm": norm,
                "seed": 0,
            },
        }
        for name in ("pgd", "mpgd")
    ]


def run_suite(
    model: torch.nn.Module,
    data: ImageData,
    *,
    attacks: Sequence = (),
    preset: str | None = None,
    eps: float | None = None,
    norm: str = "linf",
    surrogate=None,
    eps_curve: Sequence[float] = (),
    masking: bool = False,
    masking_budget: str = "quick",
    cascade: bool = False,
    batch_size: int = 500,
    device: str | torch.device = "cpu",
    seed: int = 0,
    progress: bool = False,
    early_exit: bool = True,
    channels_last: bool = False,
    amp: str = "none",
) -> dict:
    """Evaluate ``model`` on ``data``; returns ``{"evaluation", "curve"?, "masking"?}``.

    ``early_exit``, ``channels_last`` and ``amp`` are ``evaluate``'s fast paths (docs/evaluation.md).
    """
    specs = list(attacks)
    if (preset or surrogate is not None or masking) and eps is None:
        raise ConfigError(
            "a preset, a surrogate or the masking checks need eps (the threat model's radius)"
        )
    if preset:
        specs = preset_attacks(preset, eps, norm) + specs
    if surrogate is not None:
        specs += transfer_attacks(surrogate, eps, norm)
    record = evaluate(
        model,
        data,
        specs,
        batch_size=batch_size,
        device=device,
        cascade=cascade,
        progress=progress,
        early_exit=early_exit,
        channels_last=channels_last,
        amp=amp,
    )
    result: dict = {"evaluation": record}
    if eps_curve:
        result["curve"] = robustness_curve(
            model,
            data,
            eps_curve,
            norm=norm,
            batch_size=batch_size,
            device=device,
            progress=progress,
        )
    if masking:
        from rlrobust.diagnostics.masking import diagnose_masking

        per_sample = record["per_sample"]
        labels = [entry["label"] for entry in record["attacks"]]
        whitebox = [
            e["label"] for e in record["attacks"] if e["attack"].get("name") not in BLACK_BOX
        ]
        x = data.images.float().div(255)
        report = diagnose_masking(
            model,
            x,
            data.labels,
            eps,
            norm,
            extra_results={label: per_sample[label] for label in labels},
            whitebox=whitebox,
            budget=masking_budget,
            seed=seed,
            device=device,
        )
        result["masking"] = report.to_dict()
    return result


def run_suite_for_config(
    model: torch.nn.Module, data: ImageData, cfg, *, device, progress=False
) -> dict:
    """``run_suite`` as a run config's ``eval`` section says (the CLI and sweeps use this)."""
    return run_suite(
        model,
        data,
        attacks=[] if cfg.eval.preset else cfg.eval.attacks,
        preset=cfg.eval.preset,
        eps=cfg.eval.eps,
        norm=cfg.eval.norm,
        surrogate=cfg.eval.surrogate,
        eps_curve=cfg.eval.eps_curve,
        masking=cfg.eval.masking,
        masking_budget=cfg.eval.masking_budget,
        cascade=cfg.eval.cascade,
        batch_size=cfg.data.eval_batch_size,
        device=device,
        seed=cfg.eval.seed,
        **fast_path_options(cfg),
        progress=progress,
    )
