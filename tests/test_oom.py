"""Out-of-memory back-off: halve the batch and retry; the result equals a run with the smaller
batch from the start. The OOM is planted by a wrapper model on CPU."""

from __future__ import annotations

import pytest
import torch

from rlrobust.attacks import FGSM, PGD
from rlrobust.data import load_dataset
from rlrobust.evaluation.memory import MemoryBackoffWarning, with_oom_backoff
from rlrobust.evaluation.protocol import evaluate
from rlrobust.evaluation.suite import run_suite
from rlrobust.models import build_model


class RunsOutOfMemory(torch.nn.Module):
    """Raises torch.OutOfMemoryError as a GPU would: for batches larger than ``limit`` (only in
    passes that build a graph when ``grad_only``), or once on call number ``once_at``."""

    def __init__(self, model, limit=None, grad_only=False, once_at=None, error=None) -> None:
        super().__init__()
        self.model, self.limit, self.grad_only = model, limit, grad_only
        self.once_at, self.calls = once_at, 0
        self.error = error or torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")

    def forward(self, x):
        self.calls += 1
        too_big = self.limit is not None and len(x) > self.limit
        if too_big and (torch.is_grad_enabled() or not self.grad_only):
            raise self.error
        if self.calls == self.once_at:
            raise self.error
        return self.model(x)


@pytest.fixture(scope="module")
def model(fit_full_batch):
    torch.manual_seed(0)
    train = load_dataset("digits", "train")
    net = build_model(
        "mlp", num_classes=10, in_channels=1, image_size=8, mean=train.mean, std=train.std
    )
    return fit_full_batch(net, train)


@pytest.fixture(scope="module")
def data():
    return load_dataset("digits", "test").take(80, seed=0)


# A random start makes the verdicts depend on the batch composition (the seeded noise of a
# batch), so a back-off that did not really restart at the smaller size would be caught.
ATTACKS = [FGSM(eps=0.1), PGD(eps=0.1, steps=8, step_size=0.025, seed=4)]


def strip_seconds(record: dict) -> dict:
    return {
        **record,
        "attacks": [{k: v for k, v in e.items() if k != "seconds"} for e in record["attacks"]],
    }


@pytest.mark.parametrize(
    "wrapper",
    [
        {"limit": 10},  # every pass with more than 10 points fails: 40 -> 20 -> 10
        {"limit": 10, "grad_only": True},  # only the attacks' gradient passes fail
        {"once_at": "late"},  # one failure late in the run, after the first batch finished
    ],
)
def test_backoff_equals_a_run_with_the_smaller_batch_from_the_start(model, data, wrapper):
    expected_size = 10 if "limit" in wrapper else 20
    if wrapper.get("once_at") == "late":
        counter = RunsOutOfMemory(model)
        evaluate(counter, data, ATTACKS, batch_size=40)
        wrapper = {"once_at": counter.calls - 2}  # in the second (last) batch of 40
    with pytest.warns(MemoryBackoffWarning, match="retrying with batch size") as caught:
        got = evaluate(RunsOutOfMemory(model, **wrapper), data, ATTACKS, batch_size=40)
    assert len(caught) == (2 if "limit" in wrapper else 1)
    reference = evaluate(model, data, ATTACKS, batch_size=expected_size)
    assert got["batch_size"] == expected_size
    assert strip_seconds(got) == strip_seconds(reference)
    # The planted comparison can fail: the 40-point batches give other PGD verdicts here.
    assert evaluate(model, data, ATTACKS, batch_size=40)["per_sample"] != got["per_sample"]


def test_backoff_with_state_resumes_at_the_smaller_batch(model, data, tmp_path):
    class StopAfter(RunsOutOfMemory):
        def forward(self, x):
            if self.calls >= 30:
                raise KeyboardInterrupt
            return super().forward(x)

    with pytest.warns(MemoryBackoffWarning), pytest.raises(KeyboardInterrupt):
        evaluate(StopAfter(model, limit=20), data, ATTACKS, batch_size=40, state_dir=tmp_path)
    same = RunsOutOfMemory(model)  # the same weights under the same names; no failures now
    resumed = evaluate(same, data, ATTACKS, batch_size=40, state_dir=tmp_path, resume=True)
    assert resumed["batch_size"] == 20  # the size that fitted, not the one asked for
    reference = evaluate(model, data, ATTACKS, batch_size=20)
    assert strip_seconds(resumed) == strip_seconds(reference)


def test_no_backoff_when_switched_off_or_at_batch_one_or_for_other_errors(model, data):
    with pytest.raises(torch.OutOfMemoryError):
        evaluate(RunsOutOfMemory(model, limit=10), data, ATTACKS, batch_size=40, oom_backoff=False)
    with pytest.warns(MemoryBackoffWarning), pytest.raises(torch.OutOfMemoryError):
        evaluate(RunsOutOfMemory(model, limit=0), data, ATTACKS, batch_size=4)
    other = RuntimeError("mat1 and mat2 shapes cannot be multiplied")
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        evaluate(RunsOutOfMemory(model, limit=10, error=other), data, ATTACKS, batch_size=40)
    # Backends without a dedicated class say "out of memory" in a RuntimeError (MPS).
    mps = RuntimeError("MPS backend out of memory (MPS allocated: 8 GB)")
    with pytest.warns(MemoryBackoffWarning):
        evaluate(RunsOutOfMemory(model, limit=10, error=mps), data, ATTACKS, batch_size=40)


def test_the_eps_curve_backs_off_too(model, data):
    kwargs = {"eps_curve": [0.05, 0.1], "attacks": [], "eot_samples": 1}
    with pytest.warns(MemoryBackoffWarning):
        got = run_suite(
            RunsOutOfMemory(model, limit=16, grad_only=True), data, batch_size=32, **kwargs
        )
    reference = run_suite(model, data, batch_size=16, **kwargs)
    assert got["curve"] == reference["curve"]


def test_with_oom_backoff_halves_until_it_fits():
    sizes = []

    def run(size):
        sizes.append(size)
        if size > 5:
            raise torch.OutOfMemoryError("out of memory")
        return size

    with pytest.warns(MemoryBackoffWarning):
        assert with_oom_backoff(run, 48, "a test") == 3
    assert sizes == [48, 24, 12, 6, 3]
