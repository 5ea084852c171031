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


@pytest.fixture(scope="session")
def host_syncs():
    """``with host_syncs() as syncs: ...``; ``syncs.count`` is how many times the code in the
    block would make the host wait for a GPU.

    Counted on any device, so CPU tests see it: reading a tensor's value (``.item()``,
    ``float()``, ``bool()``, ``int()``), copying to the host (``.cpu()``, ``.tolist()``,
    ``.numpy()``), and the operations whose output size depends on the values (``nonzero``,
    ``masked_select``, indexing with a boolean mask). ``x.cpu().tolist()`` counts twice.
    """
    import contextlib

    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    aten = torch.ops.aten
    reads = {aten._local_scalar_dense.default, aten.nonzero.default, aten.masked_select.default}
    indexing = {aten.index.Tensor, aten.index_put_.default, aten.index_put.default}

    def waits(func, args) -> bool:
        if func in reads:
            return True
        # Indexing with a boolean mask runs nonzero on it first.
        indices = args[1] if func in indexing else ()
        return any(
            index is not None and index.dtype in (torch.bool, torch.uint8) for index in indices
        )

    class Syncs(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.count = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.count += waits(func, args)
            return func(*args, **(kwargs or {}))

    def counted(method, syncs: Syncs):
        def wrapper(self, *args, **kwargs):
            syncs.count += 1
            return method(self, *args, **kwargs)

        return wrapper

    @contextlib.contextmanager
    def block():
        syncs = Syncs()
        # Tensor inherits these from the C base class: a wrapper on Tensor shadows them, and
        # deleting it brings the originals back.
        for name in ("cpu", "tolist", "numpy"):
            setattr(torch.Tensor, name, counted(getattr(torch.Tensor, name), syncs))
        try:
            with syncs:
                yield syncs
        finally:
            for name in ("cpu", "tolist", "numpy"):
                delattr(torch.Tensor, name)

    return block


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
