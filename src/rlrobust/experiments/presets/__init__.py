"""Declarative reproduction presets: each paper's protocol as data, our scales as named deltas,
the paper's numbers, and the differences computed field by field (``resolve.py``).

One module per paper (``kim`` and ``kim_cifar``, ``gupta``, ``zou``, ``attackers`` for L2L and
RLAB), all built from the pieces in ``common``; this package's ``PRESETS`` is the catalogue that
``rlrobust reproduce`` names. The imports go one way: common <- each paper's module <- this
catalogue; ``resolve`` reads presets and never the other way round.
"""

from __future__ import annotations

from rlrobust.errors import UnknownNameError
from rlrobust.experiments.presets.attackers import l2l_preset, rlab_preset
from rlrobust.experiments.presets.common import SCALES, Entry, Preset, Reference, Scale
from rlrobust.experiments.presets.gupta import gupta_fgsm_at, gupta_no_at
from rlrobust.experiments.presets.kim import kim_lambda, kim_mnist
from rlrobust.experiments.presets.kim_cifar import kim_cifar, kim_cifar_lambda, kim_pc, kim_trades
from rlrobust.experiments.presets.resolve import Plan, build_plan, difference_lines
from rlrobust.experiments.presets.zou import zou

__all__ = [
    "PRESETS",
    "SCALES",
    "Entry",
    "Plan",
    "Preset",
    "Reference",
    "Scale",
    "build_plan",
    "differences",
    "get_preset",
]


def _all_presets() -> dict[str, Preset]:
    presets = (
        kim_mnist(),
        kim_lambda(),
        kim_cifar(),
        kim_cifar_lambda(),
        kim_pc(),
        kim_trades(),
        gupta_fgsm_at(),
        gupta_no_at(),
        zou(),
        l2l_preset(),
        rlab_preset(),
    )
    return {p.name: p for p in presets}


PRESETS: dict[str, Preset] = _all_presets()


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise UnknownNameError(
            f"unknown reproduction preset {name!r}; choose one of: {', '.join(PRESETS)}"
        )
    return PRESETS[name]


def differences(preset: Preset, scale: str) -> list[str]:
    """Each computed difference of ``scale`` from the paper's protocol, in plain words."""
    return difference_lines(build_plan(preset, scale))
