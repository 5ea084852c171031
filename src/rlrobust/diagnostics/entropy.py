"""Predictive entropy on clean and adversarial inputs (Zou et al. 2026, "predictive entropy").

For a model with softmax output p = softmax(f(x)) over C classes, the predictive entropy is

    H(x) = -sum_c p_c(x) log p_c(x)   (nats),   0 <= H <= log C,

0 for a one-hot prediction and log C for the uniform one. Zou et al. read the entropy of
policy-trained classifiers as part of why gradient attacks fail: a policy trained with
exploration keeps probability mass on several classes, so the loss surface an attacker climbs
is flatter and its gradients smaller. Comparing H on clean inputs and on adversarial inputs, and
split by whether the greedy prediction is correct, shows whether adversarial points sit in
confident-wrong regions (low H when wrong: a clean decision boundary was crossed) or in
uncertain ones (high H when wrong).

Example::

    record = entropy_record(model, x, y, attack=PGD(eps=0.1, steps=10))
    record["clean"]["by_correctness"]["correct"]["mean"]
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from rlrobust.attacks.base import check_inputs, check_labels
from rlrobust.diagnostics.gradients import DEFAULT_BATCH_SIZE, check_batch_size, summarize
from rlrobust.errors import ConfigError


def entropy_from_logits(logits: Tensor) -> Tensor:
    """H(softmax(z)) per row in nats, (N,), computed in float64.

    log_softmax keeps log p finite even where p underflows to 0, so p log p is 0 there, not NaN.
    """
    log_p = logits.detach().double().log_softmax(dim=1)
    return -(log_p.exp() * log_p).sum(dim=1)


@torch.no_grad()
def predict_logits(model: nn.Module, x: Tensor, batch_size: int = DEFAULT_BATCH_SIZE) -> Tensor:
    """Logits of ``model`` on ``x`` in eval mode, batch by batch; each module's mode is restored."""
    batch_size = check_batch_size(batch_size)
    modes = [(module, module.training) for module in model.modules()]
    try:
        model.eval()
        parts = [model(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)]
    finally:
        for module, training in modes:
            module.training = training
    return torch.cat(parts) if parts else x.new_empty((0, 0))


def predictive_entropy(model: nn.Module, x: Tensor, batch_size: int = DEFAULT_BATCH_SIZE) -> Tensor:
    """Per-sample predictive entropy H(x) in nats, (N,) float64 tensor."""
    return entropy_from_logits(predict_logits(model, x, batch_size))


def _split_record(logits: Tensor, y: Tensor) -> dict[str, Any]:
    check_labels(logits, y)
    entropy = entropy_from_logits(logits).cpu()
    correct = (logits.argmax(dim=1) == y).cpu()
    num_classes = logits.shape[1]
    return {
        "per_sample": entropy.tolist(),
        "correct": correct.tolist(),
        "summary": summarize(entropy),
        # H / log C in [0, 1], comparable across data sets with different class counts.
        "normalized_summary": summarize(entropy / math.log(num_classes))
        if num_classes > 1
        else summarize([]),
        "by_correctness": {
            "correct": summarize(entropy[correct]),
            "incorrect": summarize(entropy[~correct]),
        },
        "accuracy": float(correct.double().mean()) if correct.numel() else None,
    }


def entropy_record(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    x_adv: Tensor | None = None,
    attack: Any = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> dict[str, Any]:
    """Entropy distributions on clean inputs and, if given, on adversarial inputs.

    Args:
        model: any classifier following the contract ([0, 1] inputs, logits out).
        x, y: clean inputs (N, ...) in [0, 1] and int64 labels (N,).
        x_adv: adversarial inputs shaped like ``x``; or
        attack: an object called as ``attack(model, x, y) -> x_adv`` (``rlrobust.attacks``).
            Give at most one of the two.

    Returns:
        ``{"clean": part, "adversarial": part or None, "num_classes", "max_entropy" (log C),
        "n"}``; each part holds ``per_sample`` entropies, the ``correct`` flags of the greedy
        prediction, ``summary``, ``normalized_summary`` (H / log C) and ``by_correctness``
        (``correct`` / ``incorrect`` summaries), and ``accuracy``.
    """
    check_inputs(x, y)
    if x_adv is not None and attack is not None:
        raise ConfigError("give either x_adv or attack, not both; drop one of the two")
    if attack is not None:
        x_adv = attack(model, x, y)
    if x_adv is not None:
        if x_adv.shape != x.shape:
            raise ConfigError(
                f"x_adv must have the shape of x {tuple(x.shape)}, got {tuple(x_adv.shape)}; "
                "pass the adversarial copies of the same clean inputs"
            )
        check_inputs(x_adv, y)
    clean_logits = predict_logits(model, x, batch_size)
    clean = _split_record(clean_logits, y)
    adversarial = (
        _split_record(predict_logits(model, x_adv, batch_size), y) if x_adv is not None else None
    )
    num_classes = int(clean_logits.shape[1])
    return {
        "clean": clean,
        "adversarial": adversarial,
        "attack": attack.describe() if hasattr(attack, "describe") else None,
        "num_classes": num_classes,
        "max_entropy": math.log(num_classes),
        "n": int(x.shape[0]),
    }


__all__ = ["entropy_from_logits", "entropy_record", "predict_logits", "predictive_entropy"]
