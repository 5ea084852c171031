"""One readable training epoch."""

from __future__ import annotations

from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from rlrobust.devices import autocast, batch_to_channels_last
from rlrobust.objectives.core import stats_on_device
from rlrobust.training.cost import count_backward_passes
from rlrobust.training.steps import ObjectiveStep

Objective = Callable[..., tuple[torch.Tensor, dict]]
Sum = float | torch.Tensor


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
    """Train for one pass over ``loader``; returns the batch-size-weighted mean of every stat,
    and the epoch's cost: ``backward_passes`` (a total) and ``backward_passes_per_example``.

    ``objective(logits, y, generator=...)`` returns ``(loss, stats)``; its stats (reward_mean,
    action_accuracy, entropy, exploration_rate, ...) are logged under their own names. ``step``
    (default: plain training, see ``steps.py``) turns a batch into a loss, e.g. adversarially.

    The loss and the stats are summed on the device and read once at the end of the epoch
    (``stats_on_device``): a read per batch would make the host wait for the device every step.

    Fast paths (``fast.py``, off by default): ``channels_last`` hands 4-D batches to the model in
    channels_last layout (the model should be converted too); ``amp="bf16"`` runs the step's
    forward passes under bfloat16 autocast; the backward pass and the update stay outside it.

    The cost (``cost.py``): every backward pass through ``model`` while the epoch runs, the
    attacks' input-gradient passes included, counted in examples (a pass over a batch of n adds
    n) by a hook that reads nothing from the device and is removed when the epoch ends.
    """
    step = step or ObjectiveStep()
    model.train()
    sums: dict[str, Sum] = {"loss": 0.0}
    seen = 0
    with count_backward_passes(model) as passes:
        for x, y in tqdm(loader, desc=description, disable=not progress, leave=False):
            if channels_last:
                x = batch_to_channels_last(x)
            with autocast(amp, x.device), stats_on_device():
                loss, stats = step(model, x, y, objective, epoch=epoch, generator=generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

            n = len(y)
            seen += n
            for name, value in {**stats, "loss": loss}.items():
                sums[name] = sums.get(name, 0.0) + weighted(value, n)
    means = {name: total / max(seen, 1) for name, total in read_once(sums).items()}
    return {
        **means,
        "backward_passes": float(passes.examples),
        "backward_passes_per_example": passes.per_example(seen),
    }


def weighted(value: Sum, n: int) -> Sum:
    """``value * n`` in float64, as the host summed python floats; a tensor stays on its device
    (a custom objective or step may still return python floats)."""
    if isinstance(value, torch.Tensor):
        return value.detach().double() * n
    return float(value) * n


def read_once(sums: dict[str, Sum]) -> dict[str, float]:
    """``sums`` as python floats, with one transfer for all those held on the device."""
    on_device = [name for name, total in sums.items() if isinstance(total, torch.Tensor)]
    values = dict(sums)
    if on_device:
        host = torch.stack([sums[name] for name in on_device]).cpu().tolist()
        values.update(zip(on_device, host, strict=True))
    return values
