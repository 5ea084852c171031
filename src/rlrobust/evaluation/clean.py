"""Clean predictions and accuracy, batch by batch without gradients."""

from __future__ import annotations

import torch

from rlrobust.data import ImageData, iterate_batches


@torch.no_grad()
def predict(
    model: torch.nn.Module, data: ImageData, batch_size: int, device: str | torch.device
) -> torch.Tensor:
    """Greedy (argmax) predictions for every image, on the CPU; the model's mode is restored."""
    was_training = model.training
    model.eval()
    try:
        predictions = [
            model(x).argmax(dim=1).cpu() for x, _ in iterate_batches(data, batch_size, device)
        ]
    finally:
        model.train(was_training)
    return torch.cat(predictions) if predictions else torch.empty(0, dtype=torch.long)


def accuracy(
    model: torch.nn.Module, data: ImageData, batch_size: int, device: str | torch.device
) -> float:
    return float((predict(model, data, batch_size, device) == data.labels).float().mean())
