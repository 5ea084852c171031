"""Masking checks on what the evaluation itself measured (M12-M15): pure functions.

``masking_checks.py`` holds the checks on numbers the diagnostic measures on the model; these
ones read the evaluation's own per-attack results, which cost nothing more to use:

- M12: an iterative gradient attack's column stands above the per-sample worst case of all
  attacks by more than a binomial tolerance (its robust accuracy is overstated);
- M13: AutoAttack's per-member breakdown shows points that only the query attack (Square)
  broke, after every gradient member failed on them (black-box beats white-box inside the
  ensemble, which the M07 check cannot see because the ensemble counts as white-box);
- M14: the model has no gradient path at all, so no gradient attack can run;
- M15: pyautoattack's own sanity checks (``pyautoattack/checks.py``) warned;
- M16: PGD found a misclassified iterate but ended on a correctly classified one (the loss
  seen by the attack changes under it: input-dependent randomness).

Thresholds and their calibration are in ``masking_checks.py`` and ``docs/masking_flags.md``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from rlrobust.diagnostics.masking_checks import (
    ACCURACY_TOLERANCE,
    NOT_KEPT_EVIDENCE_FRACTION,
    NOT_KEPT_WARNING_FRACTION,
    OVERSTATE_EVIDENCE_EXCESS,
    QUERY_ONLY_EVIDENCE_FRACTION,
    QUERY_ONLY_WARNING_FRACTION,
    Flag,
    Severity,
    _flag,
)
from rlrobust.errors import ConfigError
from rlrobust.stats import wilson_interval

# AutoAttack's members that see only outputs (Andriushchenko et al. 2020's Square).
QUERY_MEMBERS = ("square",)


def _as_flags(results: Mapping[str, Sequence[Any] | Tensor]) -> dict[str, Tensor]:
    flags = {k: torch.as_tensor(v).reshape(-1).bool().cpu() for k, v in results.items()}
    sizes = {k: len(v) for k, v in flags.items()}
    if len(set(sizes.values())) > 1:
        raise ConfigError(
            f"per-sample results have different lengths {sizes}; give every attack's robust "
            "flags on the same points, in the same order"
        )
    return flags


def column_excess(results: Mapping[str, Sequence[Any] | Tensor]) -> dict[str, dict[str, Any]]:
    """Per attack column: accuracy, the per-sample worst case of all columns, and the excess.

    The excess of a column is the share of points it calls robust that some other attack broke
    (paired: it is the column's accuracy minus the worst case, counted point by point), with its
    95 % Wilson interval. ``overstates`` is True when the excess is above the accuracy tolerance.
    """
    flags = _as_flags(results)
    if not flags:
        return {}
    worst = torch.stack(list(flags.values())).all(0)
    n = len(worst)
    out = {}
    for label, robust in flags.items():
        excess = int((robust & ~worst).sum())
        low, high = wilson_interval(excess, n) if n else (0.0, 0.0)
        out[label] = {
            "accuracy": robust.double().mean().item() if n else 0.0,
            "worst_case": worst.double().mean().item() if n else 0.0,
            "excess": excess / n if n else 0.0,
            "excess_points": excess,
            "excess_interval": [low, high],
            "n_points": n,
            "overstates": n > 0 and excess / n > ACCURACY_TOLERANCE,
        }
    return out


def check_gradient_attack_overstates(
    columns: Mapping[str, Mapping[str, Any]],
    iterative: Collection[str],
    evidence_only: Collection[str] = (),
) -> list[Flag]:
    """M12: an iterative gradient attack's accuracy stands above the worst case of all attacks.

    ``columns`` is ``column_excess(...)``; ``iterative`` names the iterative gradient attacks
    (PGD, APGD, the AutoAttack ensemble), the only columns judged: a one-step attack (FGSM) is
    expected to be weaker and a black-box one to see less. Evidence when the Wilson lower bound
    of the excess is above ``OVERSTATE_EVIDENCE_EXCESS``; a warning when only the excess itself
    is above ``ACCURACY_TOLERANCE``. Labels in ``evidence_only`` (the diagnostic's own PGD,
    which no report cites) get no warning.
    """
    flags = []
    for label in iterative:
        if label not in columns:
            continue
        c = columns[label]
        low = c["excess_interval"][0]
        if low > OVERSTATE_EVIDENCE_EXCESS:
            severity: Severity = "evidence"
        elif c["overstates"] and label not in evidence_only:
            severity = "warning"
        else:
            continue
        text = (
            f"{label} reports {c['accuracy']:.1%} but other attacks broke {c['excess_points']} of "
            f"the points it left robust (worst case {c['worst_case']:.1%}; excess "
            f"{c['excess']:.1%}, 95 % interval [{low:.1%}, {c['excess_interval'][1]:.1%}]); its "
            "gradient misses adversarial examples that exist: cite the worst case, not this "
            "column, and find why its gradient is weak (EOT, BPDA, a gradient-free attack)"
        )
        flags.append(_flag("M12", severity, text, attack=label, **c))
    return flags


def check_query_attack_only(
    breakdown: Mapping[str, int],
    n_points: int,
    label: str = "autoattack",
    query_members: Sequence[str] = QUERY_MEMBERS,
) -> list[Flag]:
    """M13: points that only the ensemble's query attack broke (AutoAttack runs its members in
    order on the points still robust, so Square's count is the points every gradient member
    missed). ``n_points`` is the number of points the ensemble was run on (clean-wrong ones
    included, as in its accuracy)."""
    if n_points <= 0:
        return []
    count = sum(int(breakdown.get(m, 0)) for m in query_members)
    members = [m for m in breakdown if m not in query_members]
    if not members or count == 0:
        return []
    fraction = count / n_points
    low, high = wilson_interval(count, n_points)
    if low > QUERY_ONLY_EVIDENCE_FRACTION:
        severity: Severity = "evidence"
    elif fraction > QUERY_ONLY_WARNING_FRACTION:
        severity = "warning"
    else:
        return []
    text = (
        f"{label}: {'/'.join(query_members)} alone broke {count} of {n_points} points "
        f"({fraction:.1%}, 95 % interval [{low:.1%}, {high:.1%}]) after {', '.join(members)} all "
        "failed on them; a query attack sees less than a gradient attack, so the gradients "
        "mislead: cite the ensemble's worst case, never a gradient attack's column, and build "
        "an adaptive attack"
    )
    return [
        _flag(
            "M13",
            severity,
            text,
            attack=label,
            query_only_points=count,
            n_points=n_points,
            fraction=fraction,
            interval=[low, high],
            breakdown=dict(breakdown),
        )
    ]


def check_no_usable_gradient(reason: str) -> list[Flag]:
    """M14: the input gradient cannot be computed at all (no autograd path from x to the output)."""
    text = (
        f"no input gradient can be computed ({reason}); no gradient attack can run, so every "
        "robust accuracy of a gradient attack is meaningless: evaluate with gradient-free "
        "attacks (Square, transfer) and, if the model is yours, keep the forward differentiable"
    )
    return [_flag("M14", "evidence", text, reason=reason)]


def check_autoattack_sanity(warnings: Mapping[str, Sequence[str]]) -> list[Flag]:
    """M15: pyautoattack's sanity checks warned (one warning flag per distinct message).

    These are recorded, not judged: the calibrated checks M01, M04, M05 and M13 test the same
    behaviours with thresholds; pyautoattack's fire on a single point.
    """
    flags = []
    for label, messages in warnings.items():
        for message in dict.fromkeys(messages):
            text = f"pyautoattack ({label}) warned: {message.strip()}"
            flags.append(_flag("M15", "warning", text, attack=label, pyautoattack=message))
    return flags


def check_adversarial_not_kept(not_kept: int, n_points: int) -> list[Flag]:
    """M16: points where some PGD iterate was misclassified but the last one is not.

    ``not_kept`` counts them among ``n_points`` (all points of the diagnostic, so the share is
    on the same scale as an accuracy).
    """
    if n_points <= 0 or not_kept == 0:
        return []
    fraction = not_kept / n_points
    low, high = wilson_interval(not_kept, n_points)
    if low > NOT_KEPT_EVIDENCE_FRACTION:
        severity: Severity = "evidence"
    elif fraction > NOT_KEPT_WARNING_FRACTION and not_kept >= 2:  # one point is an accident
        severity = "warning"
    else:
        return []
    text = (
        f"PGD reached a misclassified iterate and then left it on {not_kept} of {n_points} points "
        f"({fraction:.1%}, 95 % interval [{low:.1%}, {high:.1%}]); on a deterministic model with "
        "useful gradients the ascent stays across the boundary, so the loss the attack sees "
        "moves under it (noise that depends on the input): keep any fooling iterate "
        "(AutoAttack's rule), attack with EOT and cite the worst case"
    )
    return [
        _flag(
            "M16",
            severity,
            text,
            not_kept=not_kept,
            n_points=n_points,
            fraction=fraction,
            interval=[low, high],
        )
    ]
