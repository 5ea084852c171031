"""Optimisers and learning-rate schedules.

The learning rate is a pure function of the epoch (``lr_at_epoch``), set at the start of every
epoch; there is no scheduler object whose hidden state a resumed run would have to restore.
"""

from __future__ import annotations

import math

import torch

from rlrobust.config import FUSED_OPTIMIZERS, OptimConfig
from rlrobust.errors import ConfigError


def build_optimizer(cfg: OptimConfig, params) -> torch.optim.Optimizer:
    """The optimiser ``cfg`` names; ``cfg.fused`` asks torch for its fused update (a fast path)."""
    fused = cfg.fused
    if fused and cfg.name not in FUSED_OPTIMIZERS:
        raise ConfigError(
            f"optim.fused: torch has no fused {cfg.name} update (only "
            f"{', '.join(FUSED_OPTIMIZERS)}); set optim.fused false or choose one of those"
        )
    # The default path passes no `fused` argument at all, so it runs exactly as before.
    extra = {"fused": True} if fused else {}
    try:
        return _build(cfg, params, extra)
    except RuntimeError as error:
        if not fused:
            raise
        raise ConfigError(
            f"optim.fused: torch cannot use the fused {cfg.name} update here ({error}); it needs "
            "floating-point parameters on a device with fused kernels (cpu or cuda): set "
            "optim.fused false"
        ) from error


def _build(cfg: OptimConfig, params, extra: dict) -> torch.optim.Optimizer:
    if cfg.name == "sgd":
        return torch.optim.SGD(
            params,
            lr=cfg.lr,
            momentum=cfg.momentum,
            weight_decay=cfg.weight_decay,
            nesterov=cfg.nesterov,
            **extra,
        )
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **extra)
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **extra)
    if cfg.name == "rmsprop":
        # Gupta 2020 trains with RMSprop (lr 1e-4, decay 1e-6, after the TensorFlow CIFAR example).
        return torch.optim.RMSprop(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    raise ValueError(f"unknown optimiser {cfg.name!r}")


def lr_at_epoch(cfg: OptimConfig, epoch: int, epochs: int) -> float:
    """Learning rate for 0-based ``epoch`` out of ``epochs``."""
    if cfg.schedule == "step":
        # Kim: lr 0.1 divided by 10 at epochs 50 and 150 -> milestones [50, 150], gamma 0.1.
        passed = sum(1 for milestone in cfg.milestones if epoch >= int(milestone))
        return cfg.lr * cfg.gamma**passed
    if cfg.schedule == "cosine":
        return 0.5 * cfg.lr * (1.0 + math.cos(math.pi * epoch / max(1, epochs)))
    return cfg.lr


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
