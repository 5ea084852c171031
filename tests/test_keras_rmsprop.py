"""Keras 2.x RMSprop (Gupta's optimiser) against a direct NumPy transcription of Keras' update."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlrobust.config import OptimConfig, load_config
from rlrobust.errors import ConfigError
from rlrobust.training.checkpoint import optimizer_from_files, optimizer_to_files
from rlrobust.training.optim import KERAS_EPSILON, KerasRMSprop, build_optimizer, set_lr


def keras_rmsprop_numpy(p, grads, lr, rho, epsilon, decay):
    """keras/optimizers.py (2.x) RMSprop.get_updates, one line per line, in float64:

    lr_t  = lr * (1 / (1 + decay * iterations))
    new_a = rho * a + (1 - rho) * square(g)
    new_p = p - lr_t * g / (sqrt(new_a) + epsilon)
    """
    p = np.array(p, dtype=np.float64)
    a = np.zeros_like(p)
    for iterations, g in enumerate(grads):  # Keras' self.iterations before its update
        lr_t = lr * (1.0 / (1.0 + decay * iterations))
        a = rho * a + (1.0 - rho) * np.square(g)
        p = p - lr_t * g / (np.sqrt(a) + epsilon)
    return p


def run_torch(p0, grads, **settings):
    param = torch.nn.Parameter(torch.tensor(p0, dtype=torch.float64))
    optimizer = KerasRMSprop([param], **settings)
    for g in grads:
        param.grad = torch.tensor(g, dtype=torch.float64)
        optimizer.step()
    return param.detach().numpy(), optimizer


GRADS_SEED = 5


def random_problem(steps=6, size=7):
    rng = np.random.default_rng(GRADS_SEED)
    p0 = rng.normal(size=size)
    # Gradients over several scales, some tiny, so epsilon's placement matters.
    grads = [rng.normal(size=size) * 10.0 ** rng.uniform(-8, 1, size=size) for _ in range(steps)]
    return p0, grads


@pytest.mark.parametrize("decay", [0.0, 1e-6, 0.3])
def test_update_matches_numpy_transcription_of_keras(decay):
    p0, grads = random_problem()
    settings = {"lr": 1e-2, "rho": 0.9, "epsilon": KERAS_EPSILON, "decay": decay}
    ours, optimizer = run_torch(p0, grads, **settings)
    reference = keras_rmsprop_numpy(p0, grads, 1e-2, 0.9, KERAS_EPSILON, decay)
    np.testing.assert_allclose(ours, reference, rtol=1e-12, atol=1e-15)
    assert optimizer.param_groups[0]["iterations"] == len(grads)


def test_planted_differences_are_caught():
    """The reference must tell apart Keras' update from its near neighbours."""
    p0, grads = random_problem()
    keras = keras_rmsprop_numpy(p0, grads, 1e-2, 0.9, KERAS_EPSILON, 0.3)
    no_decay = keras_rmsprop_numpy(p0, grads, 1e-2, 0.9, KERAS_EPSILON, 0.0)
    assert not np.allclose(keras, no_decay, rtol=1e-6)

    # torch.optim.RMSprop with Keras' rho and epsilon: same denominator form, but no per-step
    # decay, so it matches Keras only with decay = 0.
    param = torch.nn.Parameter(torch.tensor(p0, dtype=torch.float64))
    torch_rms = torch.optim.RMSprop([param], lr=1e-2, alpha=0.9, eps=KERAS_EPSILON)
    for g in grads:
        param.grad = torch.tensor(g, dtype=torch.float64)
        torch_rms.step()
    np.testing.assert_allclose(param.detach().numpy(), no_decay, rtol=1e-12, atol=1e-15)
    assert not np.allclose(param.detach().numpy(), keras, rtol=1e-6)

    # epsilon inside the square root (TF's raw ApplyRMSProp convention) differs on tiny grads.
    p, a = np.array(p0), np.zeros_like(p0)
    for t, g in enumerate(grads):
        a = 0.9 * a + 0.1 * g**2
        p = p - 1e-2 / (1 + 0.3 * t) * g / np.sqrt(a + KERAS_EPSILON)
    assert not np.allclose(p, keras, rtol=1e-6)


def test_built_from_config_with_gupta_settings():
    cfg = load_config(
        overrides={
            "optim.name": "rmsprop_keras",
            "optim.lr": 1e-4,
            "optim.alpha": 0.9,
            "optim.keras_decay": 1e-6,
            "optim.weight_decay": 0.0,
        }
    )
    optimizer = build_optimizer(cfg.optim, [torch.nn.Parameter(torch.zeros(3))])
    assert isinstance(optimizer, KerasRMSprop)
    group = optimizer.param_groups[0]
    assert (group["lr"], group["rho"], group["decay"]) == (1e-4, 0.9, 1e-6)
    assert group["epsilon"] == 1e-7 and group["weight_decay"] == 0.0
    # Without optim.alpha, Keras' default rho (0.9), not torch's alpha (0.99).
    default = build_optimizer(
        OptimConfig(name="rmsprop_keras"), [torch.nn.Parameter(torch.zeros(1))]
    )
    assert default.param_groups[0]["rho"] == 0.9


def test_epoch_schedule_sets_the_undecayed_lr_and_decay_continues():
    p0, grads = random_problem(steps=4)
    param = torch.nn.Parameter(torch.tensor(p0, dtype=torch.float64))
    optimizer = KerasRMSprop([param], lr=1e-2, decay=0.5)
    for g in grads[:2]:
        param.grad = torch.tensor(g, dtype=torch.float64)
        optimizer.step()
    set_lr(optimizer, 1e-2)  # what the epoch loop does; must not reset the iteration count
    for g in grads[2:]:
        param.grad = torch.tensor(g, dtype=torch.float64)
        optimizer.step()
    reference = keras_rmsprop_numpy(p0, grads, 1e-2, 0.9, KERAS_EPSILON, 0.5)
    np.testing.assert_allclose(param.detach().numpy(), reference, rtol=1e-12)


def test_state_round_trips_so_a_resume_continues_the_decay():
    p0, grads = random_problem(steps=5)
    whole, _ = run_torch(p0, grads, lr=1e-2, decay=0.2)

    param = torch.nn.Parameter(torch.tensor(p0, dtype=torch.float64))
    first = KerasRMSprop([param], lr=1e-2, decay=0.2)
    for g in grads[:3]:
        param.grad = torch.tensor(g, dtype=torch.float64)
        first.step()
    tensors, meta = optimizer_to_files(first)
    resumed = KerasRMSprop([param], lr=1e-2, decay=0.2)
    optimizer_from_files(resumed, tensors, meta)
    assert resumed.param_groups[0]["iterations"] == 3
    for g in grads[3:]:
        param.grad = torch.tensor(g, dtype=torch.float64)
        resumed.step()
    assert np.array_equal(param.detach().numpy(), whole)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"optim.name": "rmsprop_keras", "optim.alpha": 1.0}, "optim.alpha"),
        ({"optim.name": "rmsprop_keras", "optim.keras_decay": -1e-6}, "optim.keras_decay"),
        ({"optim.name": "sgd", "optim.keras_decay": 1e-6}, "rmsprop_keras only"),
        ({"optim.name": "rmsprop_keras", "optim.fused": True}, "fused"),
    ],
)
def test_bad_settings_are_refused(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_config(overrides=overrides)
