"""The evaluation protocol: clean first, attacks on robust points, worst case, and the audit."""

from __future__ import annotations

import pytest
import torch

from rlrobust import evaluate, markdown_table
from rlrobust.attacks import FGSM, PGD, Attack
from rlrobust.data import ImageData, load_dataset
from rlrobust.errors import RLRobustError
from rlrobust.models import build_model


@pytest.fixture(scope="module")
def digits_model(fit_full_batch):
    """An MLP trained on digits for 150 full-batch steps (about a second)."""
    torch.manual_seed(0)
    train = load_dataset("digits", "train")
    model = build_model(
        "mlp", num_classes=10, in_channels=1, image_size=8, mean=train.mean, std=train.std
    )
    return fit_full_batch(model, train)


@pytest.fixture(scope="module")
def test_set():
    return load_dataset("digits", "test")


def slow_reference(model, data, attacks):
    """Per-sample, one image at a time: the definition the vectorised protocol must match."""
    flags = []
    for image, label in zip(data.images.float() / 255, data.labels, strict=False):
        x, y = image[None], label[None]
        ok = bool(model(x).argmax(1) == y)
        for attack in attacks:
            if ok:
                ok = bool(model(attack(model, x, y)).argmax(1) == y)
        flags.append(ok)
    return torch.tensor(flags)


def test_worst_case_matches_a_slow_per_sample_loop(digits_model, test_set):
    subset = test_set.take(60, seed=1)
    attacks = [FGSM(eps=0.1), PGD(eps=0.1, steps=10, step_size=0.02, random_start=False)]
    record = evaluate(digits_model, subset, attacks, batch_size=16)
    reference = slow_reference(digits_model, subset, attacks)
    assert record["per_sample"]["robust"] == reference.int().tolist()
    assert record["robust_accuracy"] == pytest.approx(reference.float().mean().item())


def test_cascade_and_independent_orders_agree_on_the_worst_case(digits_model, test_set):
    attacks = [FGSM(eps=0.15), PGD(eps=0.15, steps=10, step_size=0.03, random_start=False)]
    independent = evaluate(digits_model, test_set, attacks, batch_size=100)
    cascade = evaluate(digits_model, test_set, attacks, batch_size=100, cascade=True)
    assert independent["per_sample"]["robust"] == cascade["per_sample"]["robust"]
    # Cascade accuracies are cumulative, so they can only fall along the list.
    acc = [e["accuracy"] for e in cascade["attacks"]]
    assert acc == sorted(acc, reverse=True)
    assert independent["clean_accuracy"] > 0.85
    assert independent["robust_accuracy"] < independent["clean_accuracy"]
    assert independent["audit_passed"] and cascade["audit_passed"]


class OutOfBallAttack(Attack):
    """A planted bug: steps twice as far as eps allows and leaves [0, 1]."""

    def perturb(self, model, x, y):
        return x + 2 * self.eps


class NaNAttack(Attack):
    def perturb(self, model, x, y):
        out = x.clone()
        out[:, 0, 0, 0] = float("nan")
        return out


@pytest.mark.parametrize(
    ("attack", "problem"),
    [
        (OutOfBallAttack(eps=0.1), "leave the linf ball"),
        (NaNAttack(eps=0.1), "NaN"),
    ],
)
def test_audit_catches_planted_constraint_violations(digits_model, test_set, attack, problem):
    record = evaluate(digits_model, test_set.take(50, seed=0), [attack], batch_size=25)
    audit = record["attacks"][0]["audit"]
    assert not record["audit_passed"] and not audit["passed"]
    assert any(problem in text for text in audit["problems"])


def test_audit_records_the_true_maximum_perturbation(digits_model, test_set):
    record = evaluate(digits_model, test_set.take(50, seed=0), [FGSM(eps=0.05)], batch_size=50)
    audit = record["attacks"][0]["audit"]
    assert audit["passed"] and 0.0 < audit["max_perturbation"] <= 0.05 + 1e-6


def test_record_shape_and_markdown(digits_model, test_set):
    data = test_set.take(40, seed=2)
    record = evaluate(
        digits_model,
        data,
        [{"name": "fgsm", "settings": {"eps": 0.1}}, {"name": "fgsm", "settings": {"eps": 0.2}}],
        batch_size=7,
    )
    assert [e["label"] for e in record["attacks"]] == ["fgsm", "fgsm#2"]
    assert len(record["per_sample"]["robust"]) == 40 == record["n_examples"]
    assert record["attacks"][1]["accuracy"] <= record["attacks"][0]["accuracy"] + 0.1
    table = markdown_table({"mlp": record})
    assert "| mlp |" in table and "fgsm#2" in table and "worst case" in table


def test_model_mode_is_restored(digits_model, test_set):
    digits_model.train()
    evaluate(digits_model, test_set.take(10, seed=0), [FGSM(eps=0.1)], batch_size=10)
    assert digits_model.training
    digits_model.eval()


def test_a_model_that_does_not_return_logits_per_sample_is_refused(test_set):
    class Scalar(torch.nn.Module):
        def forward(self, x):
            return x.sum()

    with pytest.raises(RLRobustError, match="must return logits"):
        evaluate(Scalar(), test_set.take(4, seed=0), [], batch_size=4)


def test_clean_accuracy_only(digits_model):
    images = torch.zeros(3, 1, 8, 8, dtype=torch.uint8)
    data = ImageData(images, torch.tensor([0, 1, 2]), 10, "zeros", (0.0,), (1.0,))
    record = evaluate(digits_model, data, [], batch_size=2)
    assert record["attacks"] == [] and record["robust_accuracy"] == record["clean_accuracy"]
