"""White-box attacks under the contract ``attack(model, x, y) -> x_adv`` (see ``base.py``).

Attacks are registered in ``rlrobust.registry.ATTACKS`` under short names, so configs and the
command line can name them; code inside the library may use the classes directly.

Example::

    from rlrobust.attacks import build_attack

    attack = build_attack("pgd", eps=8 / 255, steps=10, step_size=2 / 255)
    x_adv = attack(model, x, y)
"""

from __future__ import annotations

from rlrobust.attacks.autoattack import AutoAttack
from rlrobust.attacks.base import (
    Attack,
    clamp01,
    input_gradient,
    model_frozen,
    normalize_l2,
    project,
)
from rlrobust.attacks.building import build_attack, valid_settings
from rlrobust.attacks.fgsm import FGSM
from rlrobust.attacks.l2l import L2LAttack
from rlrobust.attacks.losses import LOSSES, TARGETED_LOSSES, get_loss
from rlrobust.attacks.momentum import MomentumPGD
from rlrobust.attacks.pgd import PGD
from rlrobust.attacks.saved import ExampleSet, SavedExamples, audit_examples, load_examples
from rlrobust.attacks.square import Square
from rlrobust.attacks.transfer import TransferAttack, load_run_model, success_on
from rlrobust.registry import ATTACKS

ATTACKS.register("fgsm")(FGSM)
ATTACKS.register("pgd")(PGD)
ATTACKS.register("autoattack")(AutoAttack)
ATTACKS.register("square")(Square)
ATTACKS.register("transfer")(TransferAttack)
ATTACKS.register("mpgd")(MomentumPGD)
ATTACKS.register("l2l")(L2LAttack)
ATTACKS.register("saved")(SavedExamples)


def list_attacks() -> list[str]:
    return ATTACKS.names()


__all__ = [
    "ATTACKS",
    "FGSM",
    "LOSSES",
    "PGD",
    "SavedExamples",
    "TARGETED_LOSSES",
    "Attack",
    "AutoAttack",
    "ExampleSet",
    "MomentumPGD",
    "Square",
    "TransferAttack",
    "audit_examples",
    "build_attack",
    "clamp01",
    "get_loss",
    "input_gradient",
    "list_attacks",
    "load_examples",
    "load_run_model",
    "model_frozen",
    "normalize_l2",
    "project",
    "success_on",
    "valid_settings",
]
