"""Tests for rlrobust.diagnostics.entropy: log C for a uniform softmax, 0 for a one-hot one, an
independent numpy reference, the split by correctness, adversarial inputs, and the plot."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from rlrobust.attacks import PGD
from rlrobust.diagnostics.entropy import entropy_from_logits, entropy_record, predictive_entropy
from rlrobust.diagnostics.plots import plot_entropy
from rlrobust.errors import ConfigError

# Tiny tensors: one torch thread avoids start-up and contention costs (see conftest.py).
pytestmark = pytest.mark.usefixtures("one_torch_thread")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class FixedLogits(nn.Module):
    """Returns the rows of a fixed logit table: image n (a constant image of value n / 100)
    gets row n, so the outputs are known exactly."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("table", table)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        index = torch.round(x.flatten(1)[:, 0] * 100).long()
        return self.table[index]


def images(n: int) -> torch.Tensor:
    return (torch.arange(n, dtype=torch.float32) / 100).view(n, 1, 1, 1).expand(n, 1, 2, 2)


def numpy_entropy(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    return -terms.sum(axis=1)


@pytest.mark.parametrize("classes", [2, 10, 100])
def test_uniform_softmax_has_entropy_log_c(classes):
    model = FixedLogits(torch.full((5, classes), 3.7))
    x, y = images(5), torch.zeros(5, dtype=torch.long)
    h = predictive_entropy(model, x)
    torch.testing.assert_close(h, torch.full((5,), math.log(classes), dtype=torch.float64))
    record = entropy_record(model, x, y)
    assert record["max_entropy"] == pytest.approx(math.log(classes))
    assert record["clean"]["normalized_summary"]["mean"] == pytest.approx(1.0)


def test_one_hot_softmax_has_zero_entropy_and_no_nan():
    logits = torch.tensor([[1e4, 0.0, -1e4], [0.0, 2e3, 0.0]])
    h = entropy_from_logits(logits)
    assert torch.isfinite(h).all()
    torch.testing.assert_close(h, torch.zeros(2, dtype=torch.float64))


def test_entropy_matches_numpy_reference():
    g = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(50, 7, generator=g)
    np.testing.assert_allclose(
        entropy_from_logits(logits).numpy(), numpy_entropy(logits.double().numpy()), rtol=1e-12
    )


def test_split_by_correctness():
    g = torch.Generator().manual_seed(1)
    table = 2 * torch.randn(12, 5, generator=g)
    model = FixedLogits(table)
    x = images(12)
    y = torch.randint(0, 5, (12,), generator=g)
    record = entropy_record(model, x, y, batch_size=5)
    h = numpy_entropy(table.double().numpy())
    correct = (table.argmax(1) == y).numpy()
    assert 0 < correct.sum() < 12  # both groups are populated
    clean = record["clean"]
    assert clean["correct"] == correct.tolist()
    assert clean["accuracy"] == pytest.approx(correct.mean())
    assert clean["by_correctness"]["correct"]["mean"] == pytest.approx(h[correct].mean())
    assert clean["by_correctness"]["incorrect"]["mean"] == pytest.approx(h[~correct].mean())
    assert clean["by_correctness"]["correct"]["count"] == int(correct.sum())
    assert record["adversarial"] is None


def test_adversarial_part_from_x_adv_and_from_attack():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    model.train()
    g = torch.Generator().manual_seed(2)
    x, y = torch.rand(20, 1, 4, 4, generator=g), torch.randint(0, 4, (20,), generator=g)
    attack = PGD(eps=0.2, steps=5, step_size=0.05)
    from_attack = entropy_record(model, x, y, attack=attack)
    x_adv = attack(model, x, y)
    from_tensor = entropy_record(model, x, y, x_adv=x_adv)
    assert from_attack["adversarial"] == from_tensor["adversarial"]
    assert from_attack["attack"]["name"] == "pgd"
    with torch.no_grad():
        model.eval()
        expected = entropy_from_logits(model(x_adv))
        adv_accuracy = float((model(x_adv).argmax(1) == y).double().mean())
        model.train()
    np.testing.assert_allclose(from_tensor["adversarial"]["per_sample"], expected.numpy())
    assert from_tensor["adversarial"]["accuracy"] == pytest.approx(adv_accuracy)
    assert from_tensor["adversarial"]["accuracy"] < from_tensor["clean"]["accuracy"]
    assert all(m.training for m in model.modules())  # mode restored
    json.dumps(from_attack, allow_nan=False)
    with pytest.raises(ConfigError, match="not both"):
        entropy_record(model, x, y, x_adv=x_adv, attack=attack)
    with pytest.raises(ConfigError, match="shape"):
        entropy_record(model, x, y, x_adv=x_adv[:3])


def test_entropy_plot_writes_png_for_two_models(tmp_path):
    g = torch.Generator().manual_seed(3)
    x, y = torch.rand(16, 1, 4, 4, generator=g), torch.randint(0, 3, (16,), generator=g)
    records = {}
    for name, scale in (("sharp", 5.0), ("soft", 0.2)):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
        with torch.no_grad():
            model[1].weight.mul_(scale)
        records[name] = entropy_record(model, x, y, attack=PGD(eps=0.1, steps=3))
    path = plot_entropy(json.loads(json.dumps(records)), tmp_path / "entropy.png")
    content = path.read_bytes()
    assert content.startswith(PNG_SIGNATURE) and len(content) > 1000
