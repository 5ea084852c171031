"""Gradient-masking checks: pure functions from measured numbers to documented flags.

Each ``check_*`` function takes numbers (or small tensors) that ``masking.py`` measured on a
model and returns zero or more ``Flag`` objects. They touch no model, so each can be tested with
values whose answer is known. The flag codes, what raises them, what they mean and what to do
are documented in ``docs/masking_flags.md``.

The checks follow Athalye, Carlini & Wagner (2018, "Obfuscated gradients give a false sense of
security", Sec. 3.1 "characteristic behaviours" of masked gradients: one-step attacks beating
iterative ones, black-box beating white-box, unbounded attacks failing, accuracy not falling as
eps grows, random sampling finding adversarial examples) and the sanity checks of AutoAttack
(Croce & Hein 2020: zero gradients, probabilities instead of logits, randomised forward passes,
Square beating the white-box attacks).

Severity: ``"evidence"`` means the measured behaviour is one that a correctly evaluated,
non-masked model does not show, so gradient-based robust accuracy should not be trusted;
``"warning"`` means something worth a look that does not by itself make the evaluation wrong.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from rlrobust.errors import ConfigError

Severity = Literal["warning", "evidence"]
SEVERITIES = ("warning", "evidence")
DOC = "docs/masking_flags.md"

FLAG_NAMES = {
    "M01": "zero_gradients",
    "M02": "nan_gradients",
    "M03": "vanishing_gradients",
    "M04": "probabilities_not_logits",
    "M05": "random_forward",
    "M06": "one_step_beats_iterative",
    "M07": "blackbox_beats_whitebox",
    "M08": "eps_no_collapse",
    "M09": "unbounded_attack_fails",
    "M10": "unconverged_attack",
    "M11": "unstable_under_noise",
    "M12": "gradient_attack_overstates",
    "M13": "query_attack_only",
    "M14": "no_usable_gradient",
    "M15": "autoattack_sanity",
    "M16": "adversarial_not_kept",
}

# --------------------------------------------------------------------------- thresholds

# Two attacks run on the same few hundred points differ by about one point of accuracy from
# their own randomness (random starts, ties); a gap of two points (e.g. 5 of 256) is a real one.
ACCURACY_TOLERANCE = 0.02

# AutoAttack warns as soon as one point has a zero gradient. One point can be a dead-ReLU
# accident, so a handful is a warning; a tenth of all points means an attack driven by that loss
# sees nothing on a tenth of the test set, which is masking of that evaluation.
ZERO_GRADIENT_FRACTION = 0.10

# "Vanishing": the first-order change of the loss across the whole eps-ball, eps * ||grad||_dual,
# is below this many float rounding steps of the logits (machine eps * max |logit|). The loss
# cannot then be moved measurably by the attack; a healthy model sits about 1e5-1e7 above it.
VANISHING_ULPS = 100.0
VANISHING_FRACTION = 0.10

# Output rows count as probabilities if all entries lie in [-tol, 1 + tol] and sum to 1 +- tol;
# as log-probabilities if all entries are <= tol and logsumexp = 0 +- tol. Logits hit either
# pattern by chance with negligible probability, so requiring 99 % of rows avoids false alarms
# while tolerating a few degenerate rows.
PROBABILITY_TOLERANCE = 1e-4
PROBABILITY_ROW_FRACTION = 0.99

# Largest relative difference ||o_r - o_0||_2 / ||o_0||_2 between repeated eval-mode forward
# passes that is put down to floating-point non-determinism (GPU atomics, TF32); AutoAttack's
# check_randomized uses the same 1e-4 on normalised outputs.
RANDOM_FORWARD_TOLERANCE = 1e-4

# At linf eps = 0.5 every image can be turned into the same mid-grey image, so an optimal attack
# leaves at most the share of the class the model gives to that image: about 1/K. Accuracy above
# max(10 %, the largest class share among the points) at that radius means the attack, not the
# model, failed.
NO_COLLAPSE_ACCURACY = 0.10

# An unbounded attack (linf eps = 1: any image) must succeed on every point of a model that
# predicts more than one class; we allow 1 % for points that need more steps than the budget.
UNBOUNDED_MIN_SUCCESS = 0.99

# A short PGD (step 2.5 eps / steps, Madry et al.'s rule) should be within a couple of points of
# a 5-10x longer one on a model with useful gradients. In the calibration zoo honest models
# evaluated at 2-4x their training eps drop by up to 10 points with 5 restarts, so evidence
# needs more than 15 points of further drop (a loss surface too hard to optimise).
UNCONVERGED_LARGE_DROP = 0.15

# Random noise of a tenth of eps should almost never change a prediction of a smooth model (it is
# far weaker than an adversarial perturbation). 5 % of points changing is worth a warning, 20 %
# means the decision is shattered or random at a scale far below eps.
NOISE_FRACTION_OF_EPS = 0.1
UNSTABLE_WARNING_FRACTION = 0.05
UNSTABLE_EVIDENCE_FRACTION = 0.20

# M12: a gradient attack's column overstates robustness when the points it calls robust but some
# other attack broke (its paired excess over the per-sample worst case) are too many. The excess
# is a binomial count on n points, so the test is on its Wilson lower bound (95 %). Calibrated on
# the zoo (docs/masking_flags.md, "Calibration"): at its training eps an honest model's PGD-40 is
# within 2.5 points of AutoAttack (bound < 1.5), but at 2-4x that eps, where a fixed-step PGD is
# a weak optimiser, APGD leaves it up to 15.6 points behind (bound 12.2). Evidence therefore
# needs a bound above 15 points; a smaller gap is a warning (the column does overstate) and the
# mechanism checks M13 (Square-only points) and M16 (adversarial iterates not kept) catch the
# evasive models whose gap is smaller.
OVERSTATE_EVIDENCE_EXCESS = 0.15

# M13: points that only AutoAttack's query attack (Square) broke, after APGD-CE, APGD-T and FAB-T
# all failed on them. pyautoattack itself warns above 0.2 % (checks.check_square_sr); evidence
# if the Wilson lower bound of that share is above 1 %. Honest models in the zoo: none.
QUERY_ONLY_WARNING_FRACTION = 0.002
QUERY_ONLY_EVIDENCE_FRACTION = 0.01

# M16: PGD passes through a misclassified iterate but ends on a correctly classified one. On a
# deterministic model with useful gradients the ascent keeps going once across the boundary:
# every honest zoo model has 0 such points in 360. Input-seeded noise makes the prediction at
# each iterate a fresh draw: 13-51 points. Evidence if the Wilson lower bound of the share is
# above 1 %, a warning above 0.5 % (and at least 2 points).
NOT_KEPT_WARNING_FRACTION = 0.005
NOT_KEPT_EVIDENCE_FRACTION = 0.01

THRESHOLDS: dict[str, float] = {
    "accuracy_tolerance": ACCURACY_TOLERANCE,
    "zero_gradient_fraction": ZERO_GRADIENT_FRACTION,
    "vanishing_ulps": VANISHING_ULPS,
    "vanishing_fraction": VANISHING_FRACTION,
    "probability_tolerance": PROBABILITY_TOLERANCE,
    "probability_row_fraction": PROBABILITY_ROW_FRACTION,
    "random_forward_tolerance": RANDOM_FORWARD_TOLERANCE,
    "no_collapse_accuracy": NO_COLLAPSE_ACCURACY,
    "unbounded_min_success": UNBOUNDED_MIN_SUCCESS,
    "unconverged_large_drop": UNCONVERGED_LARGE_DROP,
    "noise_fraction_of_eps": NOISE_FRACTION_OF_EPS,
    "unstable_warning_fraction": UNSTABLE_WARNING_FRACTION,
    "unstable_evidence_fraction": UNSTABLE_EVIDENCE_FRACTION,
    "overstate_evidence_excess": OVERSTATE_EVIDENCE_EXCESS,
    "query_only_warning_fraction": QUERY_ONLY_WARNING_FRACTION,
    "query_only_evidence_fraction": QUERY_ONLY_EVIDENCE_FRACTION,
    "not_kept_warning_fraction": NOT_KEPT_WARNING_FRACTION,
    "not_kept_evidence_fraction": NOT_KEPT_EVIDENCE_FRACTION,
}


# --------------------------------------------------------------------------- the flag


@dataclass(frozen=True)
class Flag:
    """One finding: a code from ``FLAG_NAMES``, a severity, a message and the numbers behind it."""

    code: str
    severity: Severity
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.code not in FLAG_NAMES:
            raise ConfigError(f"unknown flag code {self.code!r}; valid: {', '.join(FLAG_NAMES)}")
        if self.severity not in SEVERITIES:
            raise ConfigError(
                f"unknown severity {self.severity!r}; choose one of: {', '.join(SEVERITIES)}"
            )

    @property
    def name(self) -> str:
        return FLAG_NAMES[self.code]

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": self.name,
            "severity": self.severity,
            "message": self.message,
            "details": self.details,
        }


def _flag(code: str, severity: Severity, message: str, **details: Any) -> Flag:
    return Flag(code, severity, f"{code} {FLAG_NAMES[code]}: {message} (see {DOC})", details)


# --------------------------------------------------------------------------- tensor summaries


def summarize_outputs(outputs: Tensor) -> dict[str, float]:
    """JSON-able facts about a batch of model outputs (N, K) used by M02 and M04."""
    out = outputs.detach().double()
    finite_rows = torch.isfinite(out).all(dim=1)
    n = max(out.shape[0], 1)
    finite = out[finite_rows]
    tol = PROBABILITY_TOLERANCE
    if finite.numel():
        is_prob = (
            (finite.amin(1) >= -tol)
            & (finite.amax(1) <= 1 + tol)
            & ((finite.sum(1) - 1).abs() <= tol)
        )
        is_log_prob = (finite.amax(1) <= tol) & (finite.logsumexp(1).abs() <= tol)
        low, high = float(finite.min()), float(finite.max())
    else:
        is_prob = is_log_prob = torch.zeros(0, dtype=torch.bool)
        low = high = float("nan")
    return {
        "n_points": int(out.shape[0]),
        "nonfinite_fraction": float((~finite_rows).sum()) / n,
        "probability_rows_fraction": float(is_prob.sum()) / n,
        "log_probability_rows_fraction": float(is_log_prob.sum()) / n,
        "min": low,
        "max": high,
    }


def _dual_norm(g: Tensor, norm: str) -> Tensor:
    """||g||_1 for the linf threat model, ||g||_2 for l2: the first-order gain over a unit ball."""
    flat = g.flatten(1).double()
    return flat.abs().sum(1) if norm == "linf" else flat.norm(p=2, dim=1)


def summarize_gradients(
    gradients: Mapping[str, Tensor], logits: Tensor, eps: float, norm: str
) -> dict[str, Any]:
    """Per-loss facts about input gradients (each shaped like x) used by M01, M02 and M03.

    For every point, ``eps * ||grad||_dual`` is the loss change that a linear model of the loss
    predicts across the whole eps-ball; it is compared with the float resolution of the logits,
    ``machine_eps * max_j |z_j|`` (the rounding error of any loss built from them).
    """
    logits = logits.detach()
    dtype = logits.dtype if logits.is_floating_point() else torch.float32
    info = torch.finfo(dtype)
    scale = logits.double().abs().amax(1) if logits.numel() else torch.zeros(0)
    resolution = info.eps * scale.clamp_min(info.tiny)
    zero, nonfinite, change = {}, {}, {}
    best_change = None
    all_zero = None
    for loss, grad in gradients.items():
        flat = grad.detach().flatten(1)
        finite = torch.isfinite(flat).all(1)
        is_zero = finite & (flat == 0).all(1)
        size = torch.where(finite, eps * _dual_norm(flat, norm), torch.zeros_like(scale))
        nonfinite[loss] = (~finite).double().mean().item()
        zero[loss] = is_zero.double().mean().item()
        change[loss] = size[finite].median().item() if finite.any() else float("nan")
        best_change = size if best_change is None else torch.maximum(best_change, size)
        all_zero = is_zero if all_zero is None else all_zero & is_zero
    if best_change is None:
        raise ConfigError("summarize_gradients needs at least one loss's gradient")
    # Tiny but non-zero for every loss; exact zeros belong to M01.
    vanishing = (best_change > 0) & (best_change < VANISHING_ULPS * resolution)
    return {
        "n_points": int(best_change.shape[0]),
        "zero_fraction": zero,
        "zero_all_losses_fraction": all_zero.double().mean().item(),
        "nonfinite_fraction": nonfinite,
        "vanishing_fraction": vanishing.double().mean().item(),
        "median_change_over_ball": change,
        "median_logit_resolution": resolution.median().item() if len(resolution) else 0.0,
    }


# --------------------------------------------------------------------------- the checks


def check_zero_gradients(
    zero_fraction: Mapping[str, float], zero_all_losses_fraction: float = 0.0
) -> list[Flag]:
    """M01: points whose input gradient is exactly zero, per loss (e.g. ``{"ce", "margin"}``)."""
    worst_loss = max(zero_fraction, key=zero_fraction.get, default=None)
    if worst_loss is None or zero_fraction[worst_loss] == 0:
        return []
    worst = zero_fraction[worst_loss]
    details = {"zero_fraction": dict(zero_fraction), "zero_all_losses": zero_all_losses_fraction}
    if zero_all_losses_fraction >= ZERO_GRADIENT_FRACTION:
        why = "every loss has a zero gradient there (non-differentiable or shattered forward pass)"
    else:
        why = "other losses still have gradients there: use the margin or DLR loss (APGD-DLR)"
    severity: Severity = "evidence" if worst >= ZERO_GRADIENT_FRACTION else "warning"
    text = f"{worst:.1%} of points have an exactly zero input gradient of the {worst_loss} loss; "
    return [_flag("M01", severity, text + why, **details)]


def check_nan_gradients(
    output_nonfinite_fraction: float, gradient_nonfinite_fraction: Mapping[str, float]
) -> list[Flag]:
    """M02: NaN or inf in the outputs or in any loss's input gradient, on any point."""
    bad = {loss: f for loss, f in gradient_nonfinite_fraction.items() if f > 0}
    if output_nonfinite_fraction == 0 and not bad:
        return []
    text = (
        f"non-finite values in the outputs of {output_nonfinite_fraction:.1%} of points and in "
        f"the input gradients {bad or 'of no loss'}; gradient attacks then step in undefined "
        "directions: find the operation that overflows (log of 0, division by 0, exp) and fix it"
    )
    return [
        _flag(
            "M02",
            "evidence",
            text,
            output_nonfinite_fraction=output_nonfinite_fraction,
            gradient_nonfinite_fraction=dict(gradient_nonfinite_fraction),
        )
    ]


def check_vanishing_gradients(vanishing_fraction: float) -> list[Flag]:
    """M03: gradients non-zero but too small, for every loss, to move the loss in float math."""
    if vanishing_fraction < VANISHING_FRACTION:
        return []
    text = (
        f"on {vanishing_fraction:.1%} of points no loss changes by more than {VANISHING_ULPS:g} "
        "float rounding steps across the whole eps-ball to first order (saturated layers); "
        "attack the logits before the saturating layer, or use a loss on rescaled logits (DLR)"
    )
    return [_flag("M03", "evidence", text, vanishing_fraction=vanishing_fraction)]


def check_probabilities_not_logits(
    probability_rows_fraction: float, log_probability_rows_fraction: float
) -> list[Flag]:
    """M04: outputs that are (log-)probability vectors rather than logits."""
    for kind, fraction in (
        ("probabilities", probability_rows_fraction),
        ("log-probabilities", log_probability_rows_fraction),
    ):
        if fraction >= PROBABILITY_ROW_FRACTION:
            text = (
                f"{fraction:.1%} of output rows are {kind}, not logits; a cross-entropy attack on "
                "them applies softmax twice and its gradient saturates: return the logits "
                "(remove the final softmax / log_softmax from the model)"
            )
            return [_flag("M04", "evidence", text, kind=kind, fraction=fraction)]
    return []


def check_random_forward(
    max_relative_difference: float, prediction_change_fraction: float
) -> list[Flag]:
    """M05: repeated eval-mode forward passes on the same input disagree."""
    if not (max_relative_difference > RANDOM_FORWARD_TOLERANCE or prediction_change_fraction > 0):
        return []
    text = (
        f"two eval-mode forward passes on the same input differ (relative difference "
        f"{max_relative_difference:.2g}, predictions changed on {prediction_change_fraction:.1%} "
        "of points); the model is randomised: make eval() deterministic, or evaluate with "
        "Expectation over Transformation (average gradients over many passes) and rand-AutoAttack"
    )
    return [
        _flag(
            "M05",
            "evidence",
            text,
            max_relative_difference=max_relative_difference,
            prediction_change_fraction=prediction_change_fraction,
        )
    ]


def check_one_step_beats_iterative(fgsm_accuracy: float, pgd_accuracy: float) -> list[Flag]:
    """M06: FGSM leaves fewer points robust than PGD at the same eps on the same points."""
    if not fgsm_accuracy < pgd_accuracy - ACCURACY_TOLERANCE:
        return []
    text = (
        f"FGSM accuracy {fgsm_accuracy:.1%} is below PGD accuracy {pgd_accuracy:.1%} at the same "
        "eps; an iterative attack contains the one-step attack, so its gradients lead it astray "
        "(Athalye et al. 2018): use more random restarts, a larger first step, or gradient-free "
        "attacks (Square)"
    )
    return [_flag("M06", "evidence", text, fgsm_accuracy=fgsm_accuracy, pgd_accuracy=pgd_accuracy)]


def check_blackbox_beats_whitebox(
    results: Mapping[str, Sequence[Any] | Tensor], whitebox: Collection[str]
) -> list[Flag]:
    """M07: a black-box or transfer attack beats the per-sample worst case of the white-box ones.

    ``results`` maps an attack label to per-sample robust flags (1/True = still correct) on the
    same points; ``whitebox`` names the labels that are white-box attacks. The others are
    black-box (Square, transfer, random search).
    """
    unknown = sorted(set(whitebox) - set(results))
    if unknown:
        raise ConfigError(
            f"white-box labels {unknown} have no results; results are given for "
            f"{sorted(results)}: name only labels present in the results"
        )
    flags_by_label = {k: torch.as_tensor(v).reshape(-1).bool() for k, v in results.items()}
    sizes = {k: len(v) for k, v in flags_by_label.items()}
    if len(set(sizes.values())) > 1:
        raise ConfigError(
            f"per-sample results have different lengths {sizes}; give every attack's robust "
            "flags on the same points, in the same order"
        )
    blackbox = [k for k in flags_by_label if k not in whitebox]
    if not whitebox or not blackbox:
        return []
    wb_robust = torch.stack([flags_by_label[k] for k in whitebox]).all(0)
    wb_accuracy = wb_robust.double().mean().item()
    flags = []
    for label in blackbox:
        bb = flags_by_label[label]
        accuracy = bb.double().mean().item()
        only_blackbox = (wb_robust & ~bb).double().mean().item()
        details = {
            "attack": label,
            "blackbox_accuracy": accuracy,
            "whitebox_accuracy": wb_accuracy,
            "whitebox_attacks": sorted(whitebox),
            "broken_only_by_blackbox": only_blackbox,
        }
        if accuracy < wb_accuracy - ACCURACY_TOLERANCE:
            text = (
                f"{label} reaches {accuracy:.1%} accuracy, below the white-box worst case "
                f"{wb_accuracy:.1%}; gradients mislead the white-box attacks: report the worst "
                "case over all attacks and build an adaptive attack (BPDA, EOT, other losses)"
            )
            flags.append(_flag("M07", "evidence", text, **details))
        elif only_blackbox > ACCURACY_TOLERANCE:
            text = (
                f"{label} breaks {only_blackbox:.1%} of points that every white-box attack "
                "missed; keep it in the worst case and give the white-box attacks more restarts"
            )
            flags.append(_flag("M07", "warning", text, **details))
    return flags


def check_eps_no_collapse(
    eps_values: Sequence[float], accuracies: Sequence[float], majority_share: float = 0.0
) -> list[Flag]:
    """M08: robust accuracy does not fall towards zero as eps grows.

    ``eps_values`` ascending, the last one large (linf 0.5); ``majority_share`` is the share of
    the most frequent label among the points, the most an optimal attack can leave at the
    largest eps (every image can become the same grey image).
    """
    if len(eps_values) != len(accuracies) or not eps_values:
        raise ConfigError("give one accuracy per eps value, at least one")
    flags = []
    details = {"eps": list(eps_values), "accuracy": list(accuracies)}
    limit = max(NO_COLLAPSE_ACCURACY, majority_share)
    if accuracies[-1] > limit:
        text = (
            f"PGD accuracy is still {accuracies[-1]:.1%} at eps = {eps_values[-1]:g} (should be "
            f"at most {limit:.0%} there); the attack, not the model, fails: check gradients, "
            "use more steps and restarts, or a gradient-free attack"
        )
        flags.append(_flag("M08", "evidence", text, limit=limit, **details))
    for i in range(len(eps_values) - 1):
        (e0, e1), (a0, a1) = eps_values[i : i + 2], accuracies[i : i + 2]
        if a1 > a0 + ACCURACY_TOLERANCE:
            text = (
                f"PGD accuracy rises from {a0:.1%} at eps = {e0:g} to {a1:.1%} at eps = {e1:g}; "
                "a larger ball contains the smaller one, so the attack is misled by gradients"
            )
            flags.append(_flag("M08", "evidence", text, **details))
            break
    return flags


def check_unbounded_attack(success_rate: float, n_attacked: int, eps: float = 1.0) -> list[Flag]:
    """M09: an unbounded attack fails to fool (nearly) every clean-correct point."""
    if n_attacked == 0 or math.isnan(success_rate) or success_rate >= UNBOUNDED_MIN_SUCCESS:
        return []
    text = (
        f"an unbounded PGD (eps = {eps:g}) fools only {success_rate:.1%} of {n_attacked} correctly "
        "classified points; any image is allowed, so gradients do not lead towards other "
        "classes: attack with BPDA/other losses, or report the evaluation as unreliable"
    )
    return [
        _flag("M09", "evidence", text, success_rate=success_rate, n_attacked=n_attacked, eps=eps)
    ]


def check_unconverged_attack(
    accuracy: float,
    more_steps_accuracy: float | None = None,
    more_restarts_accuracy: float | None = None,
) -> list[Flag]:
    """M10: robust accuracy still falls when PGD gets more steps or more restarts."""
    stronger = {
        "more_steps": more_steps_accuracy,
        "more_restarts": more_restarts_accuracy,
    }
    stronger = {k: v for k, v in stronger.items() if v is not None}
    if not stronger:
        return []
    which = min(stronger, key=stronger.get)
    drop = accuracy - stronger[which]
    if drop <= ACCURACY_TOLERANCE:
        return []
    severity: Severity = "evidence" if drop > UNCONVERGED_LARGE_DROP else "warning"
    text = (
        f"PGD accuracy falls by {drop:.1%} with {which.replace('_', ' ')} ({accuracy:.1%} -> "
        f"{stronger[which]:.1%}); the short attack has not converged: report the stronger one "
        "and increase steps/restarts until the accuracy stops moving"
    )
    return [_flag("M10", severity, text, accuracy=accuracy, drop=drop, **stronger)]


def check_unstable_under_noise(changed_fraction: float, noise: float = 0.0) -> list[Flag]:
    """M11: predictions change under uniform random noise far below eps."""
    if changed_fraction <= UNSTABLE_WARNING_FRACTION:
        return []
    severity: Severity = "evidence" if changed_fraction > UNSTABLE_EVIDENCE_FRACTION else "warning"
    text = (
        f"random noise of size {noise:.3g} changes the prediction on {changed_fraction:.1%} of "
        "points; the decision is random or shattered far below eps: check for randomness "
        "(M05) and evaluate with EOT and gradient-free attacks"
    )
    return [_flag("M11", severity, text, changed_fraction=changed_fraction, noise=noise)]
