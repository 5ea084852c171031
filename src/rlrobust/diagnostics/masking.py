"""Is the robust accuracy of a model real, or is its gradient masked? ``diagnose_masking`` runs
the checks of ``masking_checks.py`` on a model at a bounded cost and returns a ``MaskingReport``.

Gradient masking (Papernot et al. 2017; "obfuscated gradients", Athalye, Carlini & Wagner 2018)
makes gradient-based attacks fail while the model is not robust: shattered (non-differentiable)
gradients, randomised forward passes, vanishing or exploding gradients. Policy-gradient training
can saturate the softmax and so is exposed to it (Gupta 2020 adds a LayerNorm for this reason).
The checks measure the model directly (M01-M05, M11, M14) and compare attacks whose results must
be ordered for a model with useful gradients (M06-M10, M16); given the evaluation's own
per-sample results and AutoAttack's breakdown, they also judge those (M07, M12, M13, M15,
``masking_evaluation.py``); see ``docs/masking_flags.md``.

Cost (``budget="quick"``): 256 points, at most 183 forward+backward passes per point (input
gradients of two losses, FGSM, PGD-10 twice (last iterate; any fooling iterate), PGD-10 at 3
more radii, PGD-50, PGD-10 with 3 restarts on the points left, an unbounded PGD-50) plus about
10 forward passes: at most 47 000 single-image gradient passes, what a PGD-10 evaluation of
4 300 images costs. ``"standard"``: 1000 points and at most 623 passes per point.
``MaskingBudget.gradient_passes()`` gives the bound for any budget.

Example::

    report = diagnose_masking(model, x_test, y_test, eps=8 / 255)
    print(report.verdict, [flag.code for flag in report.flags])
    json.dumps(report.to_dict())
"""

from __future__ import annotations

import math
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from rlrobust.attacks.base import (
    check_eps,
    check_inputs,
    check_norm,
    check_seed,
    input_gradient,
    model_frozen,
    random_start,
)
from rlrobust.attacks.fgsm import FGSM
from rlrobust.attacks.losses import get_loss
from rlrobust.attacks.pgd import PGD
from rlrobust.devices import module_device
from rlrobust.diagnostics.masking_checks import (
    NOISE_FRACTION_OF_EPS,
    RANDOM_FORWARD_TOLERANCE,
    THRESHOLDS,
    Flag,
    check_blackbox_beats_whitebox,
    check_eps_no_collapse,
    check_nan_gradients,
    check_one_step_beats_iterative,
    check_probabilities_not_logits,
    check_random_forward,
    check_unbounded_attack,
    check_unconverged_attack,
    check_unstable_under_noise,
    check_vanishing_gradients,
    check_zero_gradients,
    summarize_gradients,
    summarize_outputs,
)
from rlrobust.diagnostics.masking_evaluation import (
    QUERY_MEMBERS,
    check_adversarial_not_kept,
    check_autoattack_sanity,
    check_gradient_attack_overstates,
    check_no_usable_gradient,
    check_query_attack_only,
    column_excess,
)
from rlrobust.errors import ConfigError
from rlrobust.seeding import make_generator

VERDICT_MASKED = "evidence of masking"
VERDICT_CLEAN = "no evidence of masking"
VERDICT_NO_GRADIENT = "no usable gradient"
# Checks that need an input gradient: skipped (with this reason) when M14 is raised.
GRADIENT_CHECKS = ("M01", "M02", "M03", "M06", "M08", "M09", "M10")
DIAGNOSTIC_FGSM, DIAGNOSTIC_PGD = "fgsm (diagnostic)", "pgd (diagnostic)"

# Largest linf radius of the eps sweep (M08): at 0.5 every image can become mid-grey. For l2 the
# same grey image is at most 0.5 * sqrt(d) away.
LARGE_LINF_EPS = 0.5


@dataclass(frozen=True)
class MaskingBudget:
    """How much work ``diagnose_masking`` may do.

    Attributes:
        n_points: points drawn (seeded) from the given x; all of x if it is smaller.
        pgd_steps: steps of the short PGD (step 2.5 eps / steps) used by M06, M08, M10.
        long_steps: steps of the long PGD that M10 compares with.
        restarts: restarts of the short PGD that M10 compares with.
        unbounded_steps: steps of the unbounded PGD (M09).
        eps_multipliers: radii of the M08 sweep as multiples of eps (the large radius is added).
        forward_repeats: eval-mode forward passes compared by M05.
        noise_draws: random-noise draws of M11.
    """

    n_points: int = 256
    pgd_steps: int = 10
    long_steps: int = 50
    restarts: int = 3
    unbounded_steps: int = 50
    eps_multipliers: tuple[float, ...] = (1.0, 2.0, 4.0)
    forward_repeats: int = 3
    noise_draws: int = 4

    def gradient_passes(self) -> int:
        """Upper bound on forward+backward passes per point (restarts usually run on fewer)."""
        sweep = self.pgd_steps * (len(self.eps_multipliers) + 1)  # + the large radius
        return (
            2
            + 1
            + self.pgd_steps  # the same PGD keeping any fooling iterate (M16)
            + sweep
            + self.long_steps
            + self.pgd_steps * self.restarts
            + (self.unbounded_steps)
        )


BUDGETS: dict[str, MaskingBudget] = {
    "quick": MaskingBudget(),
    "standard": MaskingBudget(
        n_points=1000,
        pgd_steps=20,
        long_steps=200,
        restarts=5,
        unbounded_steps=200,
        eps_multipliers=(1.0, 2.0, 4.0, 8.0),
        forward_repeats=5,
        noise_draws=10,
    ),
}


@dataclass
class MaskingReport:
    """The result of ``diagnose_masking``: a verdict, the flags, and the numbers behind them.

    ``verdict`` is ``"no usable gradient"`` when no input gradient can be computed (M14),
    ``"evidence of masking"`` when at least one flag has severity ``"evidence"``, else ``"no
    evidence of masking"`` (warnings alone do not change it). ``masked`` is True for the first
    two: in both, gradient-based robust accuracy must not be cited.
    """

    verdict: str
    flags: list[Flag]
    measurements: dict[str, Any]
    thresholds: dict[str, float]
    settings: dict[str, Any]
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def codes(self) -> list[str]:
        """The codes raised, sorted, each once."""
        return sorted({flag.code for flag in self.flags})

    @property
    def masked(self) -> bool:
        return self.verdict != VERDICT_CLEAN

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "codes": self.codes,
            "flags": [flag.to_dict() for flag in self.flags],
            "measurements": self.measurements,
            "thresholds": self.thresholds,
            "settings": self.settings,
            "skipped": self.skipped,
            "seconds": self.seconds,
        }

    def to_markdown(self) -> str:
        lines = [f"**Masking diagnostics: {self.verdict}**", ""]
        lines += [f"- [{f.severity}] {f.message}" for f in self.flags] or ["- no flags raised"]
        lines += [f"- skipped {name}: {why}" for name, why in self.skipped.items()]
        over = self.measurements.get("overstating_columns", [])
        if over:
            lines.append(f"- columns that overstate robustness: {', '.join(over)}")
        return "\n".join(lines)


def verdict_of(flags: Sequence[Flag]) -> str:
    if any(f.code == "M14" for f in flags):
        return VERDICT_NO_GRADIENT
    return VERDICT_MASKED if any(f.severity == "evidence" for f in flags) else VERDICT_CLEAN


def gradient_path_problem(model: nn.Module, x: Tensor, y: Tensor) -> str | None:
    """Why no input gradient of the CE loss can be computed on ``x`` (None if it can).

    autograd raises a RuntimeError when the output does not depend on ``x`` through
    differentiable operations (a forward under ``torch.no_grad``, a detached input, an output
    built from integers); that is the one error caught, and its message is returned.
    """
    try:
        with model_frozen(model):
            input_gradient(model, get_loss("ce"), x, y, check=True)
    except RuntimeError as error:
        text = str(error)
        known = ("does not require grad", "not have a grad_fn", "appears to not have been used")
        if any(k in text for k in known):
            return text.splitlines()[0]
        raise
    return None


# --------------------------------------------------------------------------- measurements


def measure_forward_randomness(model: nn.Module, x: Tensor, repeats: int = 3) -> dict[str, float]:
    """Repeat the eval-mode forward pass; the largest relative output change and prediction flips."""
    with model_frozen(model), torch.no_grad():
        outputs = [model(x).double() for _ in range(max(repeats, 2))]
    first = outputs[0]
    scale = first.norm(dim=1).clamp_min(1e-12)
    worst, flipped = 0.0, torch.zeros(len(x), dtype=torch.bool, device=first.device)
    for other in outputs[1:]:
        diff = (other - first).norm(dim=1) / scale
        finite = torch.isfinite(diff)
        if finite.any():
            worst = max(worst, diff[finite].max().item())
        flipped |= other.argmax(1) != first.argmax(1)
    return {
        "max_relative_difference": worst,
        "prediction_change_fraction": flipped.double().mean().item(),
        "repeats": max(repeats, 2),
        "tolerance": RANDOM_FORWARD_TOLERANCE,
    }


def measure_noise_stability(
    model: nn.Module, x: Tensor, noise: float, norm: str, draws: int = 4, seed: int = 0
) -> dict[str, float]:
    """Fraction of points whose prediction changes under at least one random-noise draw.

    Noise is uniform in the linf cube of radius ``noise`` (l2: random direction, random radius up
    to ``noise``, as PGD's random start), clamped to [0, 1].
    """
    generator = make_generator(seed, x.device)
    with model_frozen(model), torch.no_grad():
        clean = model(x).argmax(1)
        changed = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        for _ in range(draws):
            changed |= model(random_start(x, noise, norm, generator)).argmax(1) != clean
    return {"changed_fraction": changed.double().mean().item(), "noise": noise, "draws": draws}


def robust_flags(model: nn.Module, attack: Any, x: Tensor, y: Tensor, correct: Tensor) -> Tensor:
    """Per point: clean-correct and still correct after ``attack`` (run on correct points only)."""
    robust = correct.clone()
    index = correct.nonzero().flatten()
    if len(index):
        x_adv = attack(model, x[index], y[index])
        with torch.no_grad():
            robust[index] = model(x_adv).argmax(1) == y[index]
    return robust


def _accuracy(flags: Tensor) -> float:
    return flags.double().mean().item() if flags.numel() else 0.0


def _pgd(eps: float, norm: str, steps: int, seed: int, **settings: Any) -> PGD:
    """PGD-CE with Madry et al.'s step rule: 2.5 eps / steps crosses the ball 2.5 times."""
    return PGD(eps=eps, norm=norm, steps=steps, step_size=2.5 * eps / steps, seed=seed, **settings)


# --------------------------------------------------------------------------- the entry point


def _resolve_budget(budget: str | MaskingBudget) -> MaskingBudget:
    if isinstance(budget, MaskingBudget):
        return budget
    if budget not in BUDGETS:
        raise ConfigError(
            f"unknown masking budget {budget!r}; choose one of: {', '.join(BUDGETS)} "
            "or pass a MaskingBudget(...)"
        )
    return BUDGETS[budget]


def _resolve_device(model: nn.Module, device: str | torch.device | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    return module_device(model)


def _choose_points(n_total: int, n_points: int, seed: int) -> Tensor:
    if n_points >= n_total:
        return torch.arange(n_total)
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(n_total, generator=generator)[:n_points].sort().values


def _subset_results(
    extra_results: Mapping[str, Any] | None, n_total: int, index: Tensor
) -> dict[str, Tensor]:
    out = {}
    for label, flags in (extra_results or {}).items():
        tensor = torch.as_tensor(flags).reshape(-1).bool().cpu()
        if len(tensor) != n_total:
            raise ConfigError(
                f"extra_results[{label!r}] has {len(tensor)} per-sample flags but x has "
                f"{n_total} points; give one robust flag per point of x, in the order of x"
            )
        out[label] = tensor[index]
    return out


def diagnose_masking(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    norm: str = "linf",
    *,
    extra_results: Mapping[str, Sequence[Any] | Tensor] | None = None,
    whitebox: Collection[str] = (),
    one_step: Collection[str] = (),
    ensembles: Mapping[str, Mapping[str, Any]] | None = None,
    budget: str | MaskingBudget = "quick",
    seed: int = 0,
    device: str | torch.device | None = None,
) -> MaskingReport:
    """Run the masking checks M01-M15 on ``model`` and return a ``MaskingReport``.

    Args:
        model: a classifier taking [0, 1] inputs and returning logits; left as found.
        x, y: test inputs (N, ...) in [0, 1] and int64 labels (N,); a seeded subset of
            ``budget.n_points`` is used.
        eps: the threat model's radius (> 0) in pixel units, e.g. 8/255.
        norm: ``"linf"`` or ``"l2"``.
        extra_results: optional per-sample robust flags (1 = still correct) of the evaluation's
            attacks on the same x, by label, e.g. ``{"pgd40-ce": ..., "autoattack": ...}``; used
            by M07 and M12.
        whitebox: the labels of ``extra_results`` that are white-box attacks; all others are
            treated as black-box/transfer. The diagnostic PGD is always white-box.
        one_step: the white-box labels that are one-step attacks (FGSM): reported, not judged,
            by M12; the other white-box labels are the iterative gradient attacks it judges.
        ensembles: per ensemble label (AutoAttack), what its run recorded: ``breakdown``
            (member -> points it fooled, or None), ``n_points`` (points it ran on),
            ``reason`` (why the breakdown is missing), ``sanity_warnings`` (pyautoattack's),
            ``query_members`` (default ``("square",)``); used by M13 and M15.
        budget: ``"quick"``, ``"standard"`` or a ``MaskingBudget``.
        seed: seeds the point subset, the attacks' random starts and the noise.
        device: where to run; default the device of the model's parameters.
    """
    started = time.perf_counter()
    norm = check_norm(norm)
    eps = check_eps(eps, norm)
    seed = check_seed(seed)
    if eps == 0:
        raise ConfigError("eps must be > 0 for masking diagnostics; pass the threat model's eps")
    check_inputs(x, y)
    unknown = sorted(set(one_step) - set(whitebox))
    if unknown:
        raise ConfigError(f"one_step labels {unknown} are not white-box labels; name them in both")
    plan = _resolve_budget(budget)
    device = _resolve_device(model, device)
    index = _choose_points(len(x), plan.n_points, seed)
    extra = _subset_results(extra_results, len(x), index)
    x, y = x[index].to(device), y[index].to(device)
    dim = x[0].numel()

    flags: list[Flag] = []
    m: dict[str, Any] = {"n_points": len(x)}
    skipped: dict[str, str] = {}
    ours: dict[str, Tensor] = {}
    with model_frozen(model):
        with torch.no_grad():
            outputs = model(x)
        m["outputs"] = summarize_outputs(outputs)
        flags += check_probabilities_not_logits(
            m["outputs"]["probability_rows_fraction"], m["outputs"]["log_probability_rows_fraction"]
        )
        problem = gradient_path_problem(model, x, y)
        if problem is not None:
            m["gradient_problem"] = problem
            flags += check_no_usable_gradient(problem)
            reason = "no input gradient (M14): gradient attacks cannot run"
            skipped.update(dict.fromkeys(GRADIENT_CHECKS, reason))
        else:
            flags += _gradient_checks(model, x, y, eps, norm, outputs, m)

        m["forward_randomness"] = measure_forward_randomness(model, x, plan.forward_repeats)
        flags += check_random_forward(
            m["forward_randomness"]["max_relative_difference"],
            m["forward_randomness"]["prediction_change_fraction"],
        )
        m["noise"] = measure_noise_stability(
            model, x, NOISE_FRACTION_OF_EPS * eps, norm, plan.noise_draws, seed
        )
        flags += check_unstable_under_noise(m["noise"]["changed_fraction"], m["noise"]["noise"])

        if problem is None and any(f.code == "M02" for f in flags):
            reason = "non-finite outputs or gradients (M02): attack results would be meaningless"
            skipped.update(dict.fromkeys(("M06", "M07", "M08", "M09", "M10", "M12"), reason))
        elif problem is None:
            flags += _attack_checks(model, x, y, eps, norm, dim, plan, seed, m, ours)

        found = _sanity_warnings(model, x, y, skipped) if ensembles else []

    if extra and "M07" not in skipped:
        flags += _evaluation_checks(extra, whitebox, one_step, ours, m)
    flags += _ensemble_checks(ensembles or {}, found, m, skipped)

    return MaskingReport(
        verdict=verdict_of(flags),
        flags=flags,
        measurements=m,
        thresholds=dict(THRESHOLDS),
        settings={
            "eps": eps,
            "norm": norm,
            "seed": seed,
            "device": str(device),
            "budget": budget if isinstance(budget, str) else "custom",
            **asdict(plan),
            "gradient_passes_per_point": plan.gradient_passes(),
            "whitebox": sorted(whitebox),
            "one_step": sorted(one_step),
        },
        skipped=skipped,
        seconds=time.perf_counter() - started,
    )


def _gradient_checks(
    model: nn.Module, x: Tensor, y: Tensor, eps: float, norm: str, outputs: Tensor, m: dict
) -> list[Flag]:
    """M01-M03 on the input gradients of two losses."""
    gradients = {
        loss: input_gradient(model, get_loss(loss), x, y, check=True) for loss in ("ce", "margin")
    }
    g = summarize_gradients(gradients, outputs, eps, norm)
    m["gradients"] = g
    flags = check_nan_gradients(m["outputs"]["nonfinite_fraction"], g["nonfinite_fraction"])
    flags += check_zero_gradients(g["zero_fraction"], g["zero_all_losses_fraction"])
    flags += check_vanishing_gradients(g["vanishing_fraction"])
    return flags


def _evaluation_checks(
    extra: dict[str, Tensor],
    whitebox: Collection[str],
    one_step: Collection[str],
    ours: dict[str, Tensor],
    m: dict[str, Any],
) -> list[Flag]:
    """M07 and M12: the evaluation's per-sample results against each other and ours."""
    results = {**extra, **ours}
    m["extra_results_accuracy"] = {k: _accuracy(v) for k, v in extra.items()}
    flags = check_blackbox_beats_whitebox(results, [*whitebox, *ours])
    columns = column_excess(results)
    m["columns"] = columns
    iterative = [k for k in [*whitebox, *ours] if k not in one_step and k != DIAGNOSTIC_FGSM]
    m["overstating_columns"] = [k for k, c in columns.items() if c["overstates"]]
    return flags + check_gradient_attack_overstates(columns, iterative, [DIAGNOSTIC_PGD])


def _sanity_warnings(model: nn.Module, x: Tensor, y: Tensor, skipped: dict[str, str]) -> list[str]:
    """pyautoattack's own input checks on (up to) its first batch of 250 points, as it runs them."""
    try:
        from rlrobust.attacks.autoattack import sanity_warnings
    except ImportError as error:  # pyautoattack is an optional dependency
        skipped["M15"] = f"pyautoattack is not installed ({error})"
        return []
    return sanity_warnings(model, x[:250], y[:250])


def _ensemble_checks(
    ensembles: Mapping[str, Mapping[str, Any]],
    found: Sequence[str],
    m: dict[str, Any],
    skipped: dict[str, str],
) -> list[Flag]:
    """M13 on each ensemble's per-member breakdown; M15 on pyautoattack's sanity warnings, those
    its run recorded (``sanity_warnings``) and ``found`` by running its checks here."""
    flags: list[Flag] = []
    warnings = {}
    missing = {}
    for label, info in ensembles.items():
        breakdown = info.get("breakdown")
        warnings[label] = list(dict.fromkeys([*(info.get("sanity_warnings") or []), *found]))
        if not breakdown:
            missing[label] = info.get("reason") or "the ensemble recorded no per-member breakdown"
            continue
        members = tuple(info.get("query_members") or QUERY_MEMBERS)
        flags += check_query_attack_only(breakdown, int(info.get("n_points", 0)), label, members)
    m["ensembles"] = {
        label: {k: v for k, v in info.items() if k != "sanity_warnings"}
        for label, info in ensembles.items()
    }
    if missing:
        skipped["M13"] = "; ".join(f"{label}: {why}" for label, why in missing.items())
    return flags + check_autoattack_sanity({k: v for k, v in warnings.items() if v})


def _attack_checks(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    norm: str,
    dim: int,
    plan: MaskingBudget,
    seed: int,
    m: dict[str, Any],
    ours: dict[str, Tensor],
) -> list[Flag]:
    """M06, M08-M10: attacks whose results are ordered for a model with useful gradients.

    The per-sample flags of the diagnostic FGSM and PGD are left in ``ours`` for M07 and M12.
    """
    flags: list[Flag] = []
    with torch.no_grad():
        correct = model(x).argmax(1) == y
    m["clean_accuracy"] = _accuracy(correct)

    def accuracy_under(attack: Any) -> tuple[Tensor, float]:
        robust = robust_flags(model, attack, x, y, correct)
        return robust, _accuracy(robust)

    fgsm_robust, m["fgsm_accuracy"] = accuracy_under(FGSM(eps=eps, norm=norm, seed=seed))
    pgd_robust, m["pgd_accuracy"] = accuracy_under(_pgd(eps, norm, plan.pgd_steps, seed))
    ours[DIAGNOSTIC_FGSM], ours[DIAGNOSTIC_PGD] = fgsm_robust.cpu(), pgd_robust.cpu()
    flags += check_one_step_beats_iterative(m["fgsm_accuracy"], m["pgd_accuracy"])

    # M16: the same PGD (same seed, same random start) keeping any fooling iterate: points
    # fooled on the way but not at the end.
    kept = _pgd(eps, norm, plan.pgd_steps, seed, keep_fooling=True, early_exit=True)
    kept_robust, m["pgd_any_iterate_accuracy"] = accuracy_under(kept)
    not_kept = int((pgd_robust & ~kept_robust).sum())
    m["adversarial_not_kept"] = not_kept
    flags += check_adversarial_not_kept(not_kept, len(x))

    # M10: the same PGD with more steps, and with more restarts (restart 0 is the short run).
    _, m["pgd_long_accuracy"] = accuracy_under(_pgd(eps, norm, plan.long_steps, seed))
    _, m["pgd_restarts_accuracy"] = accuracy_under(
        _pgd(eps, norm, plan.pgd_steps, seed, restarts=plan.restarts)
    )
    flags += check_unconverged_attack(
        m["pgd_accuracy"], m["pgd_long_accuracy"], m["pgd_restarts_accuracy"]
    )

    # M08: a sweep of radii up to the large one, where every image can become mid-grey.
    large = LARGE_LINF_EPS if norm == "linf" else LARGE_LINF_EPS * math.sqrt(dim)
    radii = sorted({min(k * eps, large) for k in plan.eps_multipliers} | {max(large, eps)})
    sweep = []
    for radius in radii:
        if radius == eps:
            sweep.append(m["pgd_accuracy"])
        else:
            sweep.append(accuracy_under(_pgd(radius, norm, plan.pgd_steps, seed))[1])
    majority = torch.bincount(y).max().item() / len(y)
    m["eps_sweep"] = {"eps": radii, "accuracy": sweep, "majority_share": majority}
    flags += check_eps_no_collapse(radii, sweep, majority)

    # M09: any image allowed (linf 1; l2 the diagonal of the cube), started at x itself so the
    # gradient, not the random start, has to find the way.
    unbounded = 1.0 if norm == "linf" else math.sqrt(dim)
    attack = _pgd(unbounded, norm, plan.unbounded_steps, seed, random_start=False)
    robust, _ = accuracy_under(attack)
    n_attacked = int(correct.sum())
    success = 1 - robust.sum().item() / n_attacked if n_attacked else float("nan")
    m["unbounded"] = {"eps": unbounded, "success_rate": success, "n_attacked": n_attacked}
    flags += check_unbounded_attack(success, n_attacked, unbounded)
    return flags
