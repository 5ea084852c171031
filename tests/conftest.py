"""Shared fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# One thread per test process (and for the CLI subprocesses, which inherit the environment): the
# tensors here are small, and on a busy 2-core machine torch's thread pool makes tests tens of
# times slower rather than faster. Set before torch is imported by any test module.
for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The folder holding the real mnist/ and fashion-mnist/ files.

    $RLROBUST_DATA if set, else ``<repo>/../shared/datasets``. Tests that need real data fail
    (never skip) when the files are not there, so a missing data set cannot pass silently.
    """
    env = os.environ.get("RLROBUST_DATA", "")
    root = Path(env).expanduser() if env else (REPO_ROOT / ".." / "shared" / "datasets").resolve()
    missing = [name for name in ("mnist", "fashion-mnist") if not (root / name).is_dir()]
    if missing:
        pytest.fail(
            f"real data sets {missing} not found under {root}; set RLROBUST_DATA to the folder "
            "that holds mnist/ and fashion-mnist/ (the gz files of each)"
        )
    return root


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's tests on one torch thread, then restore the previous count.

    The tensors in these tests are tiny: with two threads on a busy 2-core machine, torch's
    workers spin waiting for each other and a test can run tens of times slower.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def fit_full_batch():
    """``fit(model, data, steps=150, lr=0.01)``: full-batch Adam on an ImageData set (digits: about
    a second), returning the model in eval mode; shared by the tests that need a trained model."""
    import torch

    def fit(model, data, steps: int = 150, lr: float = 0.01):
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        x = data.images.float() / 255
        for _ in range(steps):
            loss = torch.nn.functional.cross_entropy(model(x), data.labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return model.eval()

    return fit


@pytest.fixture(scope="session")
def digits_mlp(fit_full_batch):
    """``digits_mlp(seed)``: a fresh copy of an MLP fitted on the digits training split (150
    full-batch Adam steps; the fit is computed once per seed and shared by every test file)."""
    import copy

    import torch

    from rlrobust.data import load_dataset
    from rlrobust.models import build_model

    fitted = {}

    def build(seed: int = 0):
        if seed not in fitted:
            torch.manual_seed(seed)
            train = load_dataset("digits", "train")
            model = build_model(
                "mlp", num_classes=10, in_channels=1, image_size=8, mean=train.mean, std=train.std
            )
            fitted[seed] = fit_full_batch(model, train)
        return copy.deepcopy(fitted[seed])

    return build


# The reference comparisons (pyautoattack, torchattacks) and the slow tests run the real
# algorithms: on a busy shared machine they can take many times their idle time, so they get
# three times the default timeout (pyproject's `timeout`) unless they set their own.
LOADED_MACHINE_HEADROOM = 3


def pytest_collection_modifyitems(config, items):
    base = int(config.getini("timeout") or 300)
    for item in items:
        slow = item.get_closest_marker("reference") or item.get_closest_marker("slow")
        if slow and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(base * LOADED_MACHINE_HEADROOM))
