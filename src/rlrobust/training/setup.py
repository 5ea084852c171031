"""Turn a config into the training pieces: objective, augmentation, the (adversarial) step.

The device, the data splits and the model come from ``rlrobust/runs.py`` (re-exported here for
the training modules), which evaluation and attacks share without importing training.
"""

from __future__ import annotations

import rlrobust.objectives  # noqa: F401 - importing registers the objectives
from rlrobust.config import DataConfig
from rlrobust.data import ImageData
from rlrobust.devices import resolve_device
from rlrobust.errors import ConfigError
from rlrobust.registry import OBJECTIVES
from rlrobust.runs import Splits, load_splits, load_test_split, model_for
from rlrobust.training.steps import ObjectiveStep

__all__ = [
    "Splits",
    "augment_for",
    "build_step",
    "load_splits",
    "load_test_split",
    "model_for",
    "objective_for",
    "resolve_device",
]


def objective_for(name: str, options: dict):
    return OBJECTIVES.get(name)(**options)


def augment_for(cfg: DataConfig) -> str | None:
    if cfg.augment == "auto":
        return "crop_flip" if cfg.name.startswith("cifar") else None
    return None if cfg.augment == "none" else cfg.augment


def build_step(cfg, train_data: ImageData):
    """The training step for ``cfg``: plain training, or the defence ``adversarial.method`` names
    (docs/defences.md). Imported here, so plain runs never load the adversarial modules."""
    adv = cfg.adversarial
    seed = cfg.train.seed
    if adv.method == "none":
        return ObjectiveStep()
    if adv.method in ("fgsm_at", "pgd_at"):
        from rlrobust.training.adversarial import AttackTrainingStep

        return AttackTrainingStep(adv, adv.method.removesuffix("_at"), seed)
    if adv.method == "rl_adv":
        from rlrobust.training.adversarial import RLAdvStep

        return RLAdvStep(adv, seed)
    if adv.method == "trades":
        from rlrobust.training.trades import TradesStep

        return TradesStep(adv, seed)
    if adv.method == "l2l":
        from rlrobust.training.l2l import L2LStep

        return L2LStep(adv, image_channels=train_data.shape[0], seed=seed)
    raise ConfigError(
        f"unknown adversarial.method {adv.method!r}; choose one of: none, fgsm_at, pgd_at, "
        "trades, rl_adv, l2l"
    )
