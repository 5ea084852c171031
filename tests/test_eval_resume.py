"""Resumable evaluation: a killed evaluation continues with resume=True, reuses every finished
(batch, attack) unit and ends with the record of an uninterrupted run."""

from __future__ import annotations

import copy
import importlib.util
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from rlrobust.data import load_dataset
from rlrobust.errors import ConfigError, RunDirectoryError
from rlrobust.evaluation import resume as resume_module
from rlrobust.evaluation.protocol import evaluate

# The evaluation the subprocess runs; the test imports the same file to build the same model.
SCRIPT = textwrap.dedent(
    """
    import sys
    import time

    import torch
    from safetensors.torch import load_file

    from rlrobust.data import load_dataset
    from rlrobust.evaluation.protocol import evaluate
    from rlrobust.models import build_model

    ATTACKS = [
        {"name": "fgsm", "settings": {"eps": 0.1}},
        {"name": "pgd", "settings": {"eps": 0.1, "steps": 10, "step_size": 0.025, "seed": 3}},
        {
            "name": "autoattack",
            "settings": {"eps": 0.1, "version": "custom", "attacks": ["apgd-ce"], "n_iter": 10},
        },
    ]


    class Slow(torch.nn.Module):
        # Sleeps on every forward pass, so the parent can kill the run half-way.
        def __init__(self, model, delay):
            super().__init__()
            self.model, self.delay = model, delay

        def forward(self, x):
            time.sleep(self.delay)
            return self.model(x)


    def build(weights, delay=0.0):
        train = load_dataset("digits", "train")
        model = build_model(
            "mlp", num_classes=10, in_channels=1, image_size=8, mean=train.mean, std=train.std
        )
        model.load_state_dict(load_file(weights))
        return Slow(model.eval(), delay)


    def points():
        return load_dataset("digits", "test").take(48, seed=0)


    if __name__ == "__main__":
        weights, state_dir, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
        torch.set_num_threads(threads)
        evaluate(build(weights, delay=0.03), points(), ATTACKS, batch_size=8, state_dir=state_dir)
    """
)
UNITS = 6 * 4  # 48 points in batches of 8; a clean pass and three attacks per batch


@pytest.fixture(scope="module")
def script(tmp_path_factory, fit_full_batch):
    from safetensors.torch import save_file

    from rlrobust.models import build_model

    folder = tmp_path_factory.mktemp("resume")
    torch.manual_seed(0)
    train = load_dataset("digits", "train")
    model = build_model(
        "mlp", num_classes=10, in_channels=1, image_size=8, mean=train.mean, std=train.std
    )
    model = fit_full_batch(model, train)
    save_file(dict(model.state_dict()), str(folder / "weights.safetensors"))
    (folder / "run_eval.py").write_text(SCRIPT)
    spec = importlib.util.spec_from_file_location("run_eval", folder / "run_eval.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return folder, module


def without_seconds(record: dict) -> dict:
    record = dict(record)
    record["attacks"] = [{k: v for k, v in e.items() if k != "seconds"} for e in record["attacks"]]
    return record


def units_in(state_dir) -> int:
    return len(list(state_dir.glob("b*.safetensors")))


def test_a_killed_evaluation_resumes_to_the_uninterrupted_record(script, tmp_path, monkeypatch):
    folder, run_eval = script
    weights = folder / "weights.safetensors"
    state_dir = tmp_path / "state"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(folder / "run_eval.py"), str(weights), str(state_dir)]
    process = subprocess.Popen([*command, str(torch.get_num_threads())], env=env)
    try:
        deadline = time.monotonic() + 120
        while units_in(state_dir) < 6 and time.monotonic() < deadline:
            assert process.poll() is None, "the evaluation ended before it could be killed"
            time.sleep(0.02)
        assert process.poll() is None, "the evaluation ended before it could be killed"
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    finished = units_in(state_dir)
    assert 6 <= finished < UNITS and (state_dir / "state.json").is_file()

    computed = []
    original_save = resume_module.EvaluationState.save
    monkeypatch.setattr(
        resume_module.EvaluationState,
        "save",
        lambda self, b, key, result: (
            computed.append((b, key)),
            original_save(self, b, key, result),
        ),
    )
    model, data = run_eval.build(weights), run_eval.points()
    resumed = evaluate(
        model, data, run_eval.ATTACKS, batch_size=8, state_dir=state_dir, resume=True
    )
    assert len(computed) == UNITS - finished  # no finished unit was computed again
    assert not state_dir.exists()  # the partial state is removed once the record is complete

    uninterrupted = evaluate(model, data, run_eval.ATTACKS, batch_size=8)
    assert without_seconds(resumed) == without_seconds(uninterrupted)
    assert resumed["per_sample"] == uninterrupted["per_sample"]
    assert resumed["robust_accuracy"] < resumed["clean_accuracy"]  # the attacks did something


class NoisyModel(torch.nn.Module):
    """A randomised model (noise on the input), so only per-unit seeding makes runs agree."""

    def __init__(self, model: torch.nn.Module, stop_after: int | None = None) -> None:
        super().__init__()
        self.model, self.stop_after, self.calls = model, stop_after, 0

    def forward(self, x):
        self.calls += 1
        if self.stop_after is not None and self.calls > self.stop_after:
            raise KeyboardInterrupt  # Ctrl-C half-way
        return self.model(x + 0.2 * torch.randn_like(x))


def test_interrupted_cascade_on_a_random_model_resumes_exactly(script, tmp_path):
    folder, run_eval = script
    base = run_eval.build(folder / "weights.safetensors").model
    data = run_eval.points()
    options = {"batch_size": 16, "cascade": True, "seed": 7}
    with pytest.raises(KeyboardInterrupt):
        evaluate(
            NoisyModel(base, stop_after=25), data, run_eval.ATTACKS, state_dir=tmp_path, **options
        )
    assert 0 < units_in(tmp_path) < 3 * 4
    (tmp_path / ".b000000-a000.safetensors.123.tmp").write_bytes(b"half a file")  # a torn write
    resumed = evaluate(
        NoisyModel(base), data, run_eval.ATTACKS, state_dir=tmp_path, resume=True, **options
    )
    uninterrupted = evaluate(NoisyModel(base), data, run_eval.ATTACKS, **options)
    assert without_seconds(resumed) == without_seconds(uninterrupted)
    # The comparison can fail: another seed draws other noise and changes some verdicts.
    other = evaluate(NoisyModel(base), data, run_eval.ATTACKS, **{**options, "seed": 8})
    assert other["per_sample"] != uninterrupted["per_sample"]


def test_resume_refuses_changed_settings_and_fresh_runs_refuse_old_state(script, tmp_path):
    folder, run_eval = script
    model, data = run_eval.build(folder / "weights.safetensors"), run_eval.points()
    wrapped = NoisyModel(model.model, stop_after=3)
    with pytest.raises(KeyboardInterrupt):
        evaluate(wrapped, data, run_eval.ATTACKS, batch_size=8, state_dir=tmp_path)
    with pytest.raises(RunDirectoryError, match="--resume"):
        evaluate(NoisyModel(model.model), data, run_eval.ATTACKS, batch_size=8, state_dir=tmp_path)
    other_attacks = [{"name": "fgsm", "settings": {"eps": 0.2}}]
    with pytest.raises(ConfigError, match="attacks changed"):
        evaluate(
            NoisyModel(model.model),
            data,
            other_attacks,
            batch_size=8,
            state_dir=tmp_path,
            resume=True,
        )
    changed = copy.deepcopy(model.model)
    with torch.no_grad():
        next(changed.parameters())[0, 0] += 0.01  # one weight: another model
    with pytest.raises(ConfigError, match="model changed"):
        evaluate(
            NoisyModel(changed),
            data,
            run_eval.ATTACKS,
            batch_size=8,
            state_dir=tmp_path,
            resume=True,
        )
    with pytest.raises(ConfigError, match="needs state_dir"):
        evaluate(model, data, run_eval.ATTACKS, resume=True)


def test_resume_with_nothing_stored_runs_the_whole_evaluation(script, tmp_path):
    folder, run_eval = script
    model, data = run_eval.build(folder / "weights.safetensors"), run_eval.points()
    specs = run_eval.ATTACKS[:2]
    fresh = evaluate(model, data, specs, batch_size=8, state_dir=tmp_path / "s", resume=True)
    assert without_seconds(fresh) == without_seconds(evaluate(model, data, specs, batch_size=8))
