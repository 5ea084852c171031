"""L2L: a learned attacker network (Jiang, Dai et al., "Learning to Defend by Learning to Attack",
arXiv 1811.01213; seed 004).

L2L replaces the hand-designed inner maximisation of adversarial training by a small CNN
g_phi that maps an image (and, in the "gradient" variants, its normalised input gradient) to a
bounded perturbation::

    plain:     x_adv = clamp01(x + eps * tanh(g_phi(x)))
    gradient:  x_adv = clamp01(x + eps * tanh(g_phi([x, n(grad_x CE(f(x), y))])))
    two_step:  x1 = the gradient step above; x_adv = clamp01(P_eps(x1 + eps * tanh(g_phi([x1, n(grad at x1)]))))

where n(g) divides each sample's gradient by its largest absolute entry (so the gradient
channels lie in [-1, 1], on the scale of the image channels) and P_eps projects onto the Linf
ball around the clean x. The attacker is trained with the classifier (``training/l2l.py``)
and saved as ``RUN/attacker.safetensors`` + ``RUN/attacker.json``; ``L2LAttack`` loads it to
attack any model at test time.

The network outputs tanh(.) in [-1, 1]; the attack multiplies by its own eps, so an attacker
trained at one eps can be evaluated at another.

Shapes: x (N, C, H, W) float in [0, 1], y (N,) int64. The attacker is fully convolutional, so
it works at any image size; its input has C (plain) or 2C (gradient variants) channels.

Example::

    attack = L2LAttack(run="runs/mnist-l2l")              # eps and variant from attacker.json
    attack = build_attack("l2l", run="runs/mnist-l2l", eps=0.2)
    x_adv = attack(model, x, y)

    # a stronger test: fine-tune a copy of the attacker against the model under attack
    attack = L2LAttack(run="runs/mnist-l2l", fit_steps=50)
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import Tensor, nn

from rlrobust.attacks.base import (
    Attack,
    check_labels,
    check_positive_float,
    check_positive_int,
    clamp01,
    input_gradient,
    project,
    random_start,
)
from rlrobust.attacks.losses import ce_loss
from rlrobust.errors import CheckpointError, ConfigError
from rlrobust.files import atomic_write_bytes, atomic_write_json

VARIANTS = ("plain", "gradient", "two_step")
ARCHITECTURES = ("slim", "two_layer")
ATTACKER_WEIGHTS = "attacker.safetensors"
ATTACKER_INFO = "attacker.json"

# Added to the per-sample max |gradient| so an all-zero gradient stays zero instead of NaN.
_SAFE_DIVISION = 1e-12


def _conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)


def build_attacker(arch: str, image_channels: int, variant: str) -> nn.Sequential:
    """The attacker network g_phi, ending in tanh (output in [-1, 1], one channel per image one).

    ``"slim"``: four 3x3 convolutions of width 16 (a deep, narrow CNN; few parameters).
    ``"two_layer"``: two 3x3 convolutions with 64 hidden channels (a wide, shallow CNN).
    """
    if arch not in ARCHITECTURES:
        raise ConfigError(
            f"unknown L2L attacker {arch!r}; choose one of: {', '.join(ARCHITECTURES)}"
        )
    check_variant(variant)
    inputs = image_channels * (1 if variant == "plain" else 2)
    if arch == "slim":
        layers: list[nn.Module] = [_conv(inputs, 16), nn.ReLU()]
        layers += [_conv(16, 16), nn.ReLU(), _conv(16, 16), nn.ReLU()]
        layers += [_conv(16, image_channels)]
    else:
        layers = [_conv(inputs, 64), nn.ReLU(), _conv(64, image_channels)]
    return nn.Sequential(*layers, nn.Tanh())


def check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise ConfigError(f"unknown L2L variant {variant!r}; choose one of: {', '.join(VARIANTS)}")
    return variant


def normalize_gradient(grad: Tensor) -> Tensor:
    """Divide each sample's gradient by its largest absolute entry: values in [-1, 1]."""
    scale = grad.flatten(1).abs().amax(dim=1).clamp_min(_SAFE_DIVISION)
    return grad / scale.view(-1, *([1] * (grad.ndim - 1)))


def _attacker_step(
    attacker: nn.Module,
    model: nn.Module,
    point: Tensor,
    x: Tensor,
    y: Tensor,
    eps: float,
    variant: str,
    gradient_loss: Callable[[Tensor, Tensor], Tensor],
    norm: str,
) -> Tensor:
    features = [point]
    if variant != "plain":
        # The gradient is an input feature, not a path for backprop: no second-order terms.
        grad = input_gradient(model, gradient_loss, point.detach(), y)
        features.append(normalize_gradient(grad))
    delta = eps * attacker(torch.cat(features, dim=1))
    # tanh keeps one Linf step inside the ball; the projection matters for the second step
    # (and for an L2 budget).
    return clamp01(project(point + delta, x, eps, norm))


def l2l_perturb(
    attacker: nn.Module,
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    variant: str,
    gradient_loss: Callable[[Tensor, Tensor], Tensor] = ce_loss,
    norm: str = "linf",
) -> Tensor:
    """Apply the attacker once (plain, gradient) or twice (two_step); see the module docstring.

    ``model`` should be frozen (``model_frozen``) by the caller. The result keeps the autograd
    graph through the attacker's parameters, so the attacker can be trained on it; detach it
    (or run under ``torch.no_grad()``) to use it as data.
    """
    return l2l_from(attacker, model, x, x, y, eps=eps, variant=variant, norm=norm)


def l2l_from(
    attacker: nn.Module,
    model: nn.Module,
    start: Tensor,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    variant: str,
    gradient_loss: Callable[[Tensor, Tensor], Tensor] = ce_loss,
    norm: str = "linf",
) -> Tensor:
    """``l2l_perturb`` from a starting point ``start`` in the ball around ``x`` (random start)."""
    x_adv = _attacker_step(attacker, model, start, x, y, eps, variant, gradient_loss, norm)
    if variant == "two_step":
        x_adv = _attacker_step(attacker, model, x_adv, x, y, eps, variant, gradient_loss, norm)
    return x_adv


def fit_attacker(
    attacker: nn.Module,
    model: nn.Module,
    start: Tensor,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    variant: str,
    norm: str,
    steps: int,
    lr: float,
) -> None:
    """Adam ascent on the mean CE of ``model`` on the attacker's examples of this batch.

    The learned-attack version of running an optimiser at test time: the attacker adapts to the
    model under attack (a fixed one), not only to the classifier it was trained with.
    ``model`` should be frozen, so no gradient reaches its parameters.
    """
    optimizer = torch.optim.Adam(attacker.parameters(), lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            x_adv = l2l_from(attacker, model, start, x, y, eps=eps, variant=variant, norm=norm)
            loss = -ce_loss(model(x_adv), y).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


# --------------------------------------------------------------------------- files


def save_attacker(run_dir: str | Path, attacker: nn.Module, info: dict[str, Any]) -> Path:
    """Write ``attacker.safetensors`` (weights) and ``attacker.json`` (arch, variant, eps, ...)."""
    run_dir = Path(run_dir)
    tensors = {k: v.detach().cpu().contiguous() for k, v in attacker.state_dict().items()}
    atomic_write_bytes(run_dir / ATTACKER_WEIGHTS, save(tensors))
    atomic_write_json(run_dir / ATTACKER_INFO, info)
    return run_dir / ATTACKER_WEIGHTS


def load_attacker(run_dir: str | Path) -> tuple[nn.Sequential, dict[str, Any]]:
    """Read the attacker that an ``adversarial.method = l2l`` run saved; returns (net, info)."""
    run_dir = Path(run_dir)
    info_path, weights_path = run_dir / ATTACKER_INFO, run_dir / ATTACKER_WEIGHTS
    if not info_path.is_file() or not weights_path.is_file():
        raise CheckpointError(
            f"{run_dir} holds no trained L2L attacker ({ATTACKER_INFO} and {ATTACKER_WEIGHTS}); "
            "point run= at the directory of a run trained with --adversarial.method l2l"
        )
    try:
        info = json.loads(info_path.read_text())
        attacker = build_attacker(info["arch"], int(info["image_channels"]), info["variant"])
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise CheckpointError(
            f"{info_path} is damaged ({error!r}); retrain the L2L run or restore the file"
        ) from None
    try:
        attacker.load_state_dict(load_file(str(weights_path)))
    except (SafetensorError, OSError, RuntimeError) as error:
        raise CheckpointError(
            f"{weights_path} does not hold the attacker that {ATTACKER_INFO} describes "
            f"({error}); retrain the L2L run or restore the files"
        ) from None
    return attacker, info


# --------------------------------------------------------------------------- the attack


class L2LAttack(Attack):
    """A trained L2L attacker as a test-time attack; see the module docstring.

    Args:
        run: run directory holding ``attacker.safetensors`` and ``attacker.json``.
        attacker: an attacker network instead of ``run`` (e.g. from ``build_attacker``).
        eps: ball radius; default: the training eps from ``attacker.json`` (or 8/255).
        variant: ``"plain"``, ``"gradient"`` or ``"two_step"``; default from ``attacker.json``
            (or ``"gradient"``). Must match the input channels the attacker was built for.
        norm: ``"linf"`` (the threat model L2L trains for) or ``"l2"``: the attacker's proposal
            eps * tanh(.) projected onto the L2 ball of radius eps.
        random_start: apply the attacker from a random point of the ball (drawn from ``seed``)
            instead of from x. Default False (L2L).
        fit_steps: before attacking, fine-tune a copy of the attacker for this many Adam steps
            on the batch against the model under attack (default 0: use it as trained). The
            stored attacker is never changed, so repeated calls give the same result.
        fit_lr: Adam learning rate of that fine-tuning (default 0.01).
        seed: seeds the random start.
    """

    name = "l2l"

    def __init__(
        self,
        run: str | None = None,
        attacker: nn.Module | None = None,
        eps: float | None = None,
        variant: str | None = None,
        norm: str = "linf",
        random_start: bool = False,
        fit_steps: int = 0,
        fit_lr: float = 0.01,
        seed: int = 0,
    ) -> None:
        if (run is None) == (attacker is None):
            raise ConfigError(
                "L2LAttack needs exactly one of run=RUN_DIR (a run trained with "
                "--adversarial.method l2l) or attacker=<nn.Module>"
            )
        info: dict[str, Any] = {}
        if run is not None:
            attacker, info = load_attacker(run)
        super().__init__(eps=eps if eps is not None else info.get("eps"), norm=norm, seed=seed)
        self.run = None if run is None else str(run)
        self.attacker = attacker
        self.variant = check_variant(variant or info.get("variant", "gradient"))
        self.random_start = bool(random_start)
        self.fit_steps = check_positive_int(fit_steps, "fit_steps", minimum=0)
        self.fit_lr = check_positive_float(fit_lr, "fit_lr")

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        with torch.no_grad():
            check_labels(model(x), y)  # a clear error, before any loss indexes a bad label
        start = x
        if self.random_start:
            start = random_start(x, self.eps, self.norm, self.generator(x.device))
        settings = {"eps": self.eps, "variant": self.variant, "norm": self.norm}
        # A copy: the stored attacker keeps its weights, device and mode whatever happens here.
        attacker = copy.deepcopy(self.attacker).to(x.device).eval()
        for param in attacker.parameters():
            param.requires_grad_(True)
        if self.fit_steps > 0:
            fit_attacker(
                attacker, model, start, x, y, steps=self.fit_steps, lr=self.fit_lr, **settings
            )
        with torch.no_grad():  # input_gradient turns gradients back on where it needs them
            return l2l_from(attacker, model, start, x, y, **settings)

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "run": self.run,
            "variant": self.variant,
            "random_start": self.random_start,
            "fit_steps": self.fit_steps,
            "fit_lr": self.fit_lr,
        }
