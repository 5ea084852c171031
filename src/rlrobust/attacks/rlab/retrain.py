"""Adversarial retraining with RLAB examples (Sarkar et al. 2024, Sec. 4: "retraining with
adversarial samples significantly improved model robustness").

The victim is fine-tuned with cross-entropy on its clean training images together with the
successful RLAB examples crafted on them, labelled with the true class, so that it keeps its
clean accuracy while learning to ignore the filter distortions. The original model is left
untouched: a copy is fine-tuned and returned.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rlrobust.errors import ConfigError


@dataclass
class Retraining:
    epochs: int = 2
    lr: float = 0.001
    momentum: float = 0.9
    batch_size: int = 128
    seed: int = 0

    def check(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ConfigError(
                f"retraining needs epochs >= 1, batch_size >= 1 and lr > 0 (got {self})"
            )


def finetune_on_examples(
    model: nn.Module,
    x_clean: Tensor,
    y_clean: Tensor,
    x_adv: Tensor,
    y_adv: Tensor,
    settings: Retraining,
) -> nn.Module:
    """A copy of ``model`` fine-tuned on clean plus adversarial examples (shuffled together)."""
    settings.check()
    tuned = copy.deepcopy(model)
    tuned.train()
    inputs, labels = torch.cat([x_clean, x_adv]), torch.cat([y_clean, y_adv])
    optimiser = torch.optim.SGD(tuned.parameters(), lr=settings.lr, momentum=settings.momentum)
    generator = torch.Generator().manual_seed(settings.seed)
    for _ in range(settings.epochs):
        order = torch.randperm(inputs.shape[0], generator=generator).to(inputs.device)
        for start in range(0, inputs.shape[0], settings.batch_size):
            batch = order[start : start + settings.batch_size]
            loss = F.cross_entropy(tuned(inputs[batch]), labels[batch])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
    return tuned.eval()
