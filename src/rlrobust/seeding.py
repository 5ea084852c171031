"""One place that seeds every random number generator a run uses."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def make_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A private generator, so that sampling in one component never shifts another's stream."""
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator
