"""One readable training epoch."""

from __future__ import annotations

from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from rlrobust.devices import autocast, batch_to_channels_last
from rlrobust.training.steps import ObjectiveStep

Objective = Callable[..., tuple[torch.Tensor, dict]]


def train_one_epoch(
    model: torch.nn.Module,
    loader,
    objective: Objective,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator | None = None,
    *,
    step=None,
    epoch: int = 0,
    progress: bool = False,
    description: str = "train",
    channels_last: bool = False,
    amp: str = "none",
) -> dict[str, float]:
    """Train for one pass over ``loader``; returns the batch-size-weighted mean of every stat.

    ``objective(logits, y, generator=...)`` returns ``(loss, stats)``; its stats (reward_mean,
    action_accuracy, entropy, exploration_rate, ...) are logged under their own names. ``step``
    (default: plain training, see ``steps.py``) turns a batch into a loss, e.g. adversarially.

    Fast paths (``fast.py``, off by default): ``channels_last`` hands 4-D batches to the model in
    channels_last layout (the model should be converted too); ``amp="bf16"`` runs the step's
    forward passes under bfloat16 autocast; the backward pass and the update stay outside it.
    """
    step = step or ObjectiveStep()
    model.train()
    totals: dict[str, float] = {"loss": 0.0}
    # The loss is summed on the device and read once at the end of the epoch: a float() per
    # batch would make the host wait for the device every step (float64, as the host sum was).
    loss_sum: torch.Tensor | None = None
    seen = 0
    for x, y in tqdm(loader, desc=description, disable=not progress, leave=False):
        if channels_last:
            x = batch_to_channels_last(x)
        with autocast(amp, x.device):
            loss, stats = step(model, x, y, objective, epoch=epoch, generator=generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

        n = len(y)
        seen += n
        weighted = loss.detach().double() * n
        loss_sum = weighted if loss_sum is None else loss_sum + weighted
        for name, value in stats.items():
            totals[name] = totals.get(name, 0.0) + float(value) * n
    if loss_sum is not None:
        totals["loss"] = float(loss_sum)
    return {name: total / max(seen, 1) for name, total in totals.items()}
