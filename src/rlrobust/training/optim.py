"""Optimisers and learning-rate schedules.

The learning rate is a pure function of the epoch (``lr_at_epoch``), set at the start of every
epoch; there is no scheduler object whose hidden state a resumed run would have to restore.
The one exception is ``rmsprop_keras``'s per-iteration decay, whose iteration counter lives in
the optimiser's param groups and so is saved and restored with the optimiser state.
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
        # torch's RMSprop: eps added after the square root, default alpha 0.99.
        alpha = {} if cfg.alpha is None else {"alpha": cfg.alpha}
        return torch.optim.RMSprop(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, **alpha
        )
    if cfg.name == "rmsprop_keras":
        # Gupta 2020 trains with Keras' RMSprop (lr 1e-4, decay 1e-6, from the Keras/TensorFlow
        # CIFAR-10 example); `decay` there is Keras' inverse-time lr decay, not weight decay.
        return KerasRMSprop(
            params,
            lr=cfg.lr,
            rho=KERAS_RHO if cfg.alpha is None else cfg.alpha,
            decay=cfg.keras_decay,
            weight_decay=cfg.weight_decay,
        )
    raise ValueError(f"unknown optimiser {cfg.name!r}")


#: Keras 2.x RMSprop defaults: rho 0.9, epsilon = K.epsilon() = 1e-7.
KERAS_RHO = 0.9
KERAS_EPSILON = 1e-7


class KerasRMSprop(torch.optim.Optimizer):
    """Keras 2.x ``keras.optimizers.RMSprop`` (no momentum), update for update.

    With t the number of updates made before this one (0 at the first), for every parameter::

        lr_t = lr / (1 + decay * t)                        # Keras' inverse-time decay
        a    = rho * a + (1 - rho) * g**2                  # a starts at 0
        p    = p - lr_t * g / (sqrt(a) + epsilon)          # epsilon OUTSIDE the sqrt

    This is the Keras 2.x update (``keras/optimizers.py``, RMSprop.get_updates). It differs from
    ``torch.optim.RMSprop`` in three ways that torch cannot express together: the lr decay is
    per iteration (``decay``; torch has no such option, and ``lr_at_epoch`` is per epoch), the
    default rho is 0.9 (torch's alpha: 0.99) and epsilon defaults to 1e-7 (torch: 1e-8); both
    add epsilon after the square root. ``weight_decay`` (not in Keras; set it to 0 for Gupta)
    adds ``weight_decay * p`` to the gradient first, as torch does.

    ``lr`` in the param group is the undecayed rate, so ``set_lr`` (the epoch schedule) keeps
    working; the iteration counter ``iterations`` is a param-group entry, so it is saved and
    restored with ``optimizer.state_dict()`` and a resumed run continues the decay exactly.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        rho: float = KERAS_RHO,
        epsilon: float = KERAS_EPSILON,
        decay: float = 0.0,
        weight_decay: float = 0.0,
    ) -> None:
        checks = [
            (lr > 0, f"lr = {lr} must be > 0"),
            (0.0 <= rho < 1.0, f"rho (optim.alpha) = {rho} must lie in [0, 1), e.g. 0.9"),
            (epsilon > 0, f"epsilon = {epsilon} must be > 0 (Keras: 1e-7)"),
            (decay >= 0, f"decay (optim.keras_decay) = {decay} must be >= 0 (Gupta: 1e-6)"),
            (weight_decay >= 0, f"weight_decay = {weight_decay} must be >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"rmsprop_keras: {message}")
        defaults = {
            "lr": lr,
            "rho": rho,
            "epsilon": epsilon,
            "decay": decay,
            "weight_decay": weight_decay,
            "iterations": 0,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            # Keras counts iterations per optimiser call, whether or not a gradient is zero.
            lr_t = group["lr"] / (1.0 + group["decay"] * group["iterations"])
            rho, epsilon = group["rho"], group["epsilon"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                grad = param.grad
                if group["weight_decay"] != 0:
                    grad = grad.add(param, alpha=group["weight_decay"])
                state = self.state[param]
                if "square_avg" not in state:
                    state["square_avg"] = torch.zeros_like(param)
                square_avg = state["square_avg"]
                square_avg.mul_(rho).addcmul_(grad, grad, value=1.0 - rho)
                param.addcdiv_(grad, square_avg.sqrt().add_(epsilon), value=-lr_t)
            group["iterations"] += 1
        return loss


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
