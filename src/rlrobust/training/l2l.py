"""The L2L training step: learning to defend by learning to attack (Jiang, Dai et al.,
arXiv 1811.01213; the attacker networks are in ``attacks/l2l.py``).

Adversarial training is the bilevel problem min_theta E max_{||delta|| <= eps} L(f_theta(x +
delta), y). L2L learns the inner maximiser: an attacker network g_phi proposes delta, and
phi is trained by gradient *ascent* on the classifier's loss, alternating with the
classifier's descent on the same batch:

1. x_adv = clamp01(x + eps * tanh(g_phi(x, n(grad_x))))   (once, or twice for "two_step")
2. phi <- Adam step on -L(f_theta(x_adv), y), classifier frozen (eval mode, no parameter grads)
3. theta: the loop minimises the current objective on x_adv (detached) in train mode.

Step 3 reuses the x_adv of step 1, so the classifier trains on exactly the examples the
attacker was scored on (the simultaneous update of L2L's algorithm). The attack loss L is
cross-entropy, or the current objective with greedy clean actions (``attack_loss =
objective``); the gradient fed to the attacker is always that of cross-entropy, so the saved
attacker needs nothing but a model at test time (``L2LAttack``).

The attacker and its Adam state are part of the checkpoint (``checkpoint_state``), so
``--resume`` continues exactly; the attacker is also written to ``RUN/attacker.safetensors`` and
``RUN/attacker.json`` after every epoch for ``{"name": "l2l", "settings": {"run": RUN}}``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from rlrobust.attacks.base import model_frozen
from rlrobust.attacks.l2l import build_attacker, l2l_perturb, save_attacker
from rlrobust.attacks.losses import ce_loss
from rlrobust.config import AdversarialConfig
from rlrobust.data import ImageData
from rlrobust.objectives.core import greedy_actions, stats_from
from rlrobust.training.adversarial import AdversarialStep, objective_attack_loss
from rlrobust.training.checkpoint import optimizer_from_files, optimizer_to_files
from rlrobust.training.distributed import average_gradients

# Keeps the attacker's initialisation off the global RNG stream (and independent of the model's).
ATTACKER_SEED_OFFSET = 7919


class L2LStep(AdversarialStep):
    """``l2l``: the classifier trains on a learned attacker's examples; the attacker learns too."""

    name = "l2l"

    def __init__(self, settings: AdversarialConfig, image_channels: int, seed: int = 0) -> None:
        super().__init__(settings, seed)
        self.image_channels = image_channels
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + ATTACKER_SEED_OFFSET)
            self.attacker = build_attacker(
                self.settings.l2l_arch, image_channels, self.settings.l2l_variant
            )
        self.attacker_optimizer = torch.optim.Adam(
            self.attacker.parameters(), lr=self.settings.l2l_lr
        )
        self.device = torch.device("cpu")

    def to(self, device: torch.device) -> None:
        """Move the attacker and its Adam state; load_state_dict puts each state tensor where
        torch wants it (``step`` stays on the CPU unless the optimiser is capturable)."""
        if device == self.device:
            return
        self.attacker.to(device)
        self.attacker_optimizer.load_state_dict(self.attacker_optimizer.state_dict())
        self.device = device

    def attack_loss(self, model: nn.Module, x: Tensor, objective) -> Callable:
        if self.settings.attack_loss == "ce":
            return lambda logits, y: ce_loss(logits, y).mean()
        with torch.no_grad():
            actions = greedy_actions(model(x))
        return objective_attack_loss(objective, actions)

    def adversarial_loss(self, model, x, y, objective, *, epoch, generator):
        eps = self.eps_at(epoch)
        self.to(x.device)
        with model_frozen(model):
            loss_fn = self.attack_loss(model, x, objective)
            self.attacker.train()
            x_adv = l2l_perturb(
                self.attacker, model, x, y, eps=eps, variant=self.settings.l2l_variant
            )
            # Gradient ascent on the classifier's loss (Adam minimises, hence the minus sign).
            attacker_loss = -loss_fn(model(x_adv), y)
            # The classifier's parameters are frozen here, so only phi receives gradients.
            self.attacker_optimizer.zero_grad(set_to_none=True)
            attacker_loss.backward()
            average_gradients(self.attacker)  # under torchrun: every rank's attacker stays equal
            self.attacker_optimizer.step()

        x_adv = x_adv.detach()
        loss, stats = objective(model(x_adv), y, generator=generator)
        return loss, {
            **{f"adv_{k}": v for k, v in stats.items()},
            **stats_from(("attacker_loss",), (-attacker_loss,)),
            **self.checked(x, x_adv, eps),
        }

    def end_of_epoch(
        self,
        model: nn.Module,
        epoch: int,
        *,
        heldout: ImageData,
        run_dir: Path | None = None,
        log: Callable[[str], None] = print,
    ) -> tuple[dict[str, float], str | None]:
        """The monitor of every defence, and the attacker written for ``L2LAttack``."""
        if run_dir is not None:
            save_attacker(run_dir, self.attacker, self.info(epoch))
        return super().end_of_epoch(model, epoch, heldout=heldout, run_dir=run_dir, log=log)

    def info(self, epoch: int) -> dict:
        s = self.settings
        return {
            "arch": s.l2l_arch,
            "variant": s.l2l_variant,
            "image_channels": self.image_channels,
            "eps": s.eps,
            "attack_loss": s.attack_loss,
            "epoch": epoch + 1,
        }

    # -- checkpoints: the attacker's weights and Adam state in safetensors, the rest in JSON --

    def checkpoint_state(self) -> tuple[dict[str, Tensor], dict]:
        tensors, meta = super().checkpoint_state()
        for name, value in self.attacker.state_dict().items():
            tensors[f"attacker/{name}"] = value.detach().cpu().contiguous()
        optim_tensors, optim_meta = optimizer_to_files(self.attacker_optimizer)
        for name, value in optim_tensors.items():
            tensors[f"attacker_optimizer/{name}"] = value
        return tensors, {**meta, "attacker_optimizer": optim_meta, "attacker": self.info(-1)}

    def restore_checkpoint_state(self, tensors: dict[str, Tensor], meta: dict) -> None:
        super().restore_checkpoint_state(tensors, meta)
        weights = {k.split("/", 1)[1]: v for k, v in tensors.items() if k.startswith("attacker/")}
        self.attacker.load_state_dict(weights)
        optim = {
            k.split("/", 1)[1]: v for k, v in tensors.items() if k.startswith("attacker_optimizer/")
        }
        optimizer_from_files(self.attacker_optimizer, optim, meta["attacker_optimizer"])
        self.device = next(self.attacker.parameters()).device
