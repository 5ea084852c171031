"""Transfer attack: craft adversarial examples on a surrogate model, use them on the target
(Papernot et al. 2016, "Transferability in machine learning"; Dong et al. 2018 for momentum).

The target model is never queried and never differentiated: ``attack(model, x, y)`` runs the
base attack (default PGD; ``"mpgd"`` for momentum PGD, or any attack object) on the surrogate
and returns its ``x_adv``. This is the black-box threat model of Zou et al.'s transfer
experiments: examples made on a supervised model, evaluated on a policy-trained one.

The surrogate is an ``nn.Module``, or the path of a run directory written by ``rlrobust train``
(its ``config.json`` rebuilds the architecture, ``model.safetensors`` holds the weights).

After a call, ``last_success_on_surrogate`` (bool, (N,)) says which examples the surrogate
misclassifies; ``success_on(target, x_adv, y)`` gives the same flags for any model, so the
transfer rate is ``success_on(target, ...)[last_success_on_surrogate].float().mean()``.

Shapes: x (N, ...) float in [0, 1], y (N,) int64; returns x_adv shaped like x.

Example::

    attack = TransferAttack("runs/ce-mnist", base="mpgd", eps=0.3, base_settings={"steps": 40})
    x_adv = attack(policy_model, x, y)
    fooled = success_on(policy_model, x_adv, y)
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import Tensor, nn

from rlrobust.attacks.base import Attack, check_inputs, check_norm, check_seed, model_frozen
from rlrobust.attacks.building import build_attack
from rlrobust.errors import ConfigError
from rlrobust.runs import load_run_model, model_from_config  # noqa: F401 - part of this API


class TransferAttack(Attack):
    """Run ``base`` on ``surrogate`` and hand the result to the target; see the module docstring.

    Args:
        surrogate: an ``nn.Module`` or the path of a run directory of ``rlrobust train``.
        base: the attack run on the surrogate: an attack object (its own eps, norm and seed are
            used), or a registered name (default ``"pgd"``) built with ``eps``, ``norm``,
            ``seed`` and ``base_settings``.
        base_settings: further settings for a base given by name, e.g. ``{"steps": 40}``.
        eps, norm, seed: the threat model and seed of a base given by name.
    """

    name = "transfer"

    def __init__(
        self,
        surrogate: nn.Module | str | os.PathLike,
        base: Attack | str | None = None,
        base_settings: dict[str, Any] | None = None,
        eps: float | None = None,
        norm: str | None = None,
        seed: int | None = None,
    ) -> None:
        self.surrogate, self.surrogate_source = _resolve_surrogate(surrogate)
        self._owns_surrogate = not isinstance(surrogate, nn.Module)
        if isinstance(base, Attack):
            if base_settings:
                raise ConfigError(
                    "base_settings only apply to a base attack given by name; configure the "
                    "attack object itself, or pass base='pgd' with base_settings"
                )
            self._check_agrees(base, eps, norm, seed)
            self.base = base
        else:
            self.base = _build_base(base, base_settings, eps, norm, seed)
        super().__init__(eps=self.base.eps, norm=self.base.norm, seed=self.base.seed)
        self.last_success_on_surrogate: Tensor | None = None

    @staticmethod
    def _check_agrees(base: Attack, eps: float | None, norm: str | None, seed: int | None) -> None:
        given = {"eps": eps, "norm": norm, "seed": seed}
        conflicts = [
            f"{key}={value!r} but the base attack has {key}={getattr(base, key)!r}"
            for key, value in given.items()
            if value is not None and value != getattr(base, key)
        ]
        if conflicts:
            raise ConfigError(
                "the transfer attack's settings disagree with its base attack object: "
                f"{'; '.join(conflicts)}; set them on the base attack only"
            )

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """Craft on the surrogate; ``model`` (the target) is not touched at all."""
        check_inputs(x, y)  # before x.device is read; the base attack checks the rest
        surrogate = self._surrogate_on(x.device)
        x_adv = self.base(surrogate, x, y)
        self.last_success_on_surrogate = success_on(surrogate, x_adv, y)
        return x_adv

    def _surrogate_on(self, device: torch.device) -> nn.Module:
        parameter = next(self.surrogate.parameters(), None)
        if parameter is None or parameter.device == device:
            return self.surrogate
        if self._owns_surrogate:  # loaded from a run directory: ours to move
            self.surrogate = self.surrogate.to(device)
            return self.surrogate
        raise ConfigError(
            f"the surrogate model is on {parameter.device} but the inputs are on {device}; "
            "move the surrogate with surrogate.to(device) before attacking"
        )

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "surrogate": self.surrogate_source,
            "base": self.base.describe(),
        }


def success_on(model: nn.Module, x_adv: Tensor, y: Tensor) -> Tensor:
    """Bool (N,): ``model`` misclassifies ``x_adv``; forward passes only, in eval mode."""
    with model_frozen(model), torch.no_grad():
        return model(x_adv).argmax(dim=1) != y


def _resolve_surrogate(surrogate: Any) -> tuple[nn.Module, str]:
    if isinstance(surrogate, nn.Module):
        count = sum(p.numel() for p in surrogate.parameters())
        return surrogate, f"{type(surrogate).__name__} ({count} parameters)"
    if isinstance(surrogate, (str, os.PathLike)):
        return load_run_model(surrogate, what="a surrogate run directory"), str(surrogate)
    raise ConfigError(
        f"surrogate must be an nn.Module or the path of a run directory, got "
        f"{type(surrogate).__name__}; e.g. surrogate='runs/ce-mnist'"
    )


def _build_base(
    base: str | None,
    settings: dict[str, Any] | None,
    eps: float | None,
    norm: str | None,
    seed: int | None,
) -> Attack:
    name = "pgd" if base is None else base
    if not isinstance(name, str):
        raise ConfigError(
            f"base must be an attack object or a registered attack name, got "
            f"{type(base).__name__}; e.g. base='pgd' or base='mpgd'"
        )
    if name == TransferAttack.name:
        raise ConfigError("a transfer attack cannot use another transfer attack as its base")
    settings = dict(settings or {})
    clashes = sorted({"eps", "norm", "seed"} & set(settings))
    if clashes:
        raise ConfigError(
            f"give {', '.join(clashes)} to the transfer attack itself, not in base_settings"
        )
    threat = {"norm": check_norm(norm or "linf"), "seed": check_seed(0 if seed is None else seed)}
    if eps is not None:
        threat["eps"] = eps
    return build_attack(name, **threat, **settings)
