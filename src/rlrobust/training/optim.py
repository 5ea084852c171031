"""Optimisers and learning-rate schedules.

The learning rate is a pure function of the epoch (``lr_at_epoch``), set at the start of every
epoch; there is no scheduler object whose hidden state a resumed run would have to restore.
"""

from __future__ import annotations

import math

import torch

from rlrobust.config import OptimConfig


def build_optimizer(cfg: OptimConfig, params) -> torch.optim.Optimizer:
    if cfg.name == "sgd":
        return torch.optim.SGD(
            params,
            lr=cfg.lr,
            momentum=cfg.momentum,
            weight_decay=cfg.weight_decay,
            nesterov=cfg.nesterov,
        )
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
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
