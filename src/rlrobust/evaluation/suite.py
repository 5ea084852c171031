"""The whole evaluation a sceptical reviewer asks for, on any model: one call.

``run_suite`` runs an attack list (a named preset and/or explicit specs, plus transfer attacks
from a surrogate), an optional robust-accuracy-against-eps curve, and the gradient-masking checks
fed with the per-sample results of the black-box and transfer attacks, and returns one record.
The CLI's ``rlrobust evaluate`` calls it; so can anyone with an ``nn.Module``.

Randomised models: unless ``eot_samples`` is given, the suite first repeats the eval-mode forward
pass on a few points (the masking check M05's measurement); if the outputs differ, PGD attacks
average 20 gradients per step (EOT) and AutoAttack runs its ``rand`` version, and the result's
``eot`` entry says so.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch

from rlrobust.attacks import PGD
from rlrobust.data import ImageData, to_unit_float
from rlrobust.errors import ConfigError
from rlrobust.evaluation.curves import robustness_curve
from rlrobust.evaluation.memory import with_oom_backoff
from rlrobust.evaluation.presets import EOT_SAMPLES, preset_attacks
from rlrobust.evaluation.protocol import evaluate, fast_path_options

RANDOMNESS_POINTS = 32  # points whose repeated forward passes decide "the model is random"



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


def forward_randomness(model: torch.nn.Module, data: ImageData, device) -> dict:
    """Repeat the eval-mode forward pass on a few points (masking check M05's measurement)."""
    from rlrobust.diagnostics.masking import measure_forward_randomness

    x = to_unit_float(data.images[:RANDOMNESS_POINTS].to(device))
    with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
        measured = measure_forward_randomness(model, x)
    random = (
        measured["max_relative_difference"] > measured["tolerance"]
        or measured["prediction_change_fraction"] > 0
    )
    return {"random": bool(random), **measured}


def with_eot(specs: Sequence, eot_samples: int) -> list:
    """The attack list with EOT: PGD averages ``eot_samples`` gradients per step, AutoAttack's
    standard and plus versions become its rand version (Athalye et al. 2018; Croce & Hein 2020).

    Settings given explicitly (an ``eot_samples`` in a PGD spec, a custom AutoAttack) are kept.
    """
    out = []
    for spec in specs:
        if isinstance(spec, PGD) and type(spec) is PGD and spec.eot_samples == 1:
            spec = copy.copy(spec)
            spec.eot_samples = eot_samples
        elif isinstance(spec, dict) and spec["name"] == "pgd":
            settings = {"eot_samples": eot_samples, **spec.get("settings", {})}
            spec = {**spec, "settings": settings}
        elif isinstance(spec, dict) and spec["name"] == "autoattack":
            settings = dict(spec.get("settings", {}))
            if settings.get("version", "standard") in ("standard", "plus"):
                settings["version"] = "rand"
                spec = {**spec, "label": spec.get("label", "autoattack") + "-rand"}
            settings.setdefault("eot_iter", eot_samples)
            spec = {**spec, "settings": settings}
        out.append(spec)
    return out


def resolve_eot(model, data, device, eot_samples: int | None) -> dict:
    """How many EOT samples to use: ``eot_samples`` if given, else 20 for a random model."""
    if eot_samples is not None:
        if isinstance(eot_samples, bool) or not isinstance(eot_samples, int) or eot_samples < 1:
            raise ConfigError(f"eot_samples must be an integer >= 1, got {eot_samples!r}")
        return {"eot_samples": eot_samples, "auto": False}
    if len(data) == 0:
        return {"eot_samples": 1, "auto": True}
    forward = forward_randomness(model, data, device)
    chosen = EOT_SAMPLES if forward["random"] else 1
    if forward["random"]:
        warnings.warn(
            f"the model's eval-mode forward pass is random (predictions changed on "
            f"{forward['prediction_change_fraction']:.1%} of {RANDOMNESS_POINTS} points): PGD "
            f"attacks average {chosen} gradients per step (EOT) and AutoAttack runs its rand "
            "version; set eval.eot_samples (eot_samples=) to choose",
            UserWarning,
            stacklevel=3,
        )
    return {"eot_samples": chosen, "auto": True, "forward": forward}


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
    eot_samples: int | None = None,
    state_dir: str | Path | None = None,
    resume: bool = False,
    save_examples: str | Path | None = None,
    oom_backoff: bool = True,
    shard: tuple[int, int] | None = None,
) -> dict:
    """Evaluate ``model`` on ``data``; returns ``{"evaluation", "eot", "curve"?, "masking"?}``.

    ``early_exit``, ``channels_last`` and ``amp`` are ``evaluate``'s fast paths (docs/evaluation.md).
    ``eot_samples``: EOT for randomised models (module docstring; ``None``: automatic).
    ``state_dir`` / ``resume``: write partial state there, continue a killed evaluation;
    ``save_examples``: a folder for the adversarial examples; ``oom_backoff``: halve the batch
    after an out-of-memory error (all as in ``protocol.evaluate``). ``shard=(K, N)``: only
    shard K of the attack units, into ``state_dir``; returns ``{"shard": ...}`` (``shards.py``);
    the curve and the masking checks run when the record is assembled.
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
    no_gradient = None
    if masking:  # a model without a gradient path: run the black-box attacks only (M14)
        from rlrobust.diagnostics.masking_inputs import without_gradient_attacks

        specs, no_gradient = without_gradient_attacks(model, data, specs, device)
    eot = resolve_eot(model, data, device, eot_samples)
    if eot["eot_samples"] > 1:
        specs = with_eot(specs, eot["eot_samples"])
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
        seed=seed,
        state_dir=state_dir,
        resume=resume,
        save_examples=save_examples,
        oom_backoff=oom_backoff,
        shard=shard,
    )
    if shard is not None:
        return {"shard": record, "eot": eot}
    result: dict = {"evaluation": record, "eot": eot}
    if eps_curve:
        result["curve"] = with_oom_backoff(
            lambda size: robustness_curve(
                model,
                data,
                eps_curve,
                norm=norm,
                batch_size=size,
                device=device,
                progress=progress,
            ),
            record["batch_size"],
            "the eps curve",
            device,
            enabled=oom_backoff,
        )
    if masking:
        from rlrobust.diagnostics.masking import diagnose_masking
        from rlrobust.diagnostics.masking_inputs import masking_inputs

        x = data.images.float().div(255)
        report = diagnose_masking(
            model,
            x,
            data.labels,
            eps,
            norm,
            **masking_inputs(record),
            budget=masking_budget,
            seed=seed,
            device=device,
        )
        result["masking"] = report.to_dict()
        if no_gradient is not None:
            result["masking"]["attacks_not_run"] = no_gradient
    return result


def run_suite_for_config(
    model: torch.nn.Module,
    data: ImageData,
    cfg,
    *,
    device,
    progress=False,
    out: str | Path | None = None,
    name: str = "evaluation",
    resume: bool = False,
    shard: tuple[int, int] | None = None,
) -> dict:
    """``run_suite`` as a run config's ``eval`` section says (the CLI and sweeps use this).

    ``out`` and ``name`` place the partial state (``OUT/NAME.partial/``, with
    ``eval.checkpoint``) and the saved examples (``OUT/NAME-examples/``, with
    ``eval.save_examples``); ``resume=True`` (``rlrobust evaluate RUN --resume``) continues
    the evaluation stored in ``OUT/NAME.partial/``.
    """
    if (cfg.eval.save_examples or resume) and out is None:
        raise ConfigError(
            "eval.save_examples and resume need the result folder: pass out= (the CLI does)"
        )
    state_dir = Path(out) / f"{name}.partial" if out is not None and cfg.eval.checkpoint else None
    if (resume or shard is not None) and state_dir is None:
        raise ConfigError(
            "resuming and sharding need eval.checkpoint = true (the partial state they use)"
        )
    examples = Path(out) / f"{name}-examples" if cfg.eval.save_examples else None
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
        eot_samples=cfg.eval.eot_samples,
        state_dir=state_dir,
        resume=resume,
        save_examples=examples,
        oom_backoff=cfg.eval.oom_backoff,
        shard=shard,
    )
