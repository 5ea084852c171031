"""Turn a config into the pieces a run needs: device, data splits, model, objective."""

from __future__ import annotations

from dataclasses import dataclass

import torch

import rlrobust.objectives  # noqa: F401 - importing registers the objectives
from rlrobust.config import DataConfig, ModelConfig
from rlrobust.data import ImageData, load_dataset, split_validation
from rlrobust.errors import ConfigError
from rlrobust.models import build_model
from rlrobust.registry import OBJECTIVES
from rlrobust.training.steps import ObjectiveStep


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"device {name!r} was asked for but CUDA is not available; use --train.device cpu"
        )
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use cpu, cuda, cuda:N or auto") from None


@dataclass
class Splits:
    train: ImageData
    validation: ImageData | None
    test: ImageData

    @property
    def heldout(self) -> ImageData:
        """The split that drives the two-stage switch: validation if held out, else test (as Kim)."""
        return self.validation if self.validation is not None else self.test

    @property
    def heldout_name(self) -> str:
        return "validation" if self.validation is not None else "test"


def load_splits(cfg: DataConfig, seed: int) -> Splits:
    train = load_dataset(cfg.name, "train", data_dir=cfg.data_dir, download=cfg.download)
    test = load_dataset(cfg.name, "test", data_dir=cfg.data_dir, download=cfg.download)
    validation = None
    if cfg.validation_fraction > 0:
        train, validation = split_validation(train, cfg.validation_fraction, seed)
    if cfg.train_subset is not None:
        train = train.take(cfg.train_subset, seed)
    if cfg.test_subset is not None:
        test = test.take(cfg.test_subset, seed)
    return Splits(train, validation, test)


def model_for(cfg: ModelConfig, data: ImageData) -> torch.nn.Module:
    channels, height, _ = data.shape
    return build_model(
        cfg.name,
        num_classes=data.num_classes,
        in_channels=channels,
        image_size=height,
        mean=data.mean,
        std=data.std,
        **cfg.options,
    )


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


def load_test_split(cfg) -> ImageData:
    """The test images an evaluation of ``cfg`` uses: data.test_subset, then eval.n_examples."""
    test = load_dataset(
        cfg.data.name, "test", data_dir=cfg.data.data_dir, download=cfg.data.download
    )
    if cfg.data.test_subset is not None:  # the same subset as training's held-out split
        test = test.take(cfg.data.test_subset, cfg.train.seed)
    if cfg.eval.n_examples is not None:
        test = test.take(min(cfg.eval.n_examples, len(test)), cfg.eval.seed)
    return test
