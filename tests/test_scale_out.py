"""Sweeps on machines with GPUs and on clusters, checked on a CPU: GPUs requested per Ray task
(mocked cluster resources), local workers spread over GPUs round-robin, one message for a
cluster that cannot be reached."""

from __future__ import annotations

import pytest
import torch

from rlrobust.errors import RLRobustError
from rlrobust.experiments import sweep


class FakeRay:
    """Just enough of Ray's API to see what the sweep asks of it."""

    def __init__(self, resources: dict, fail_with: Exception | None = None):
        self.resources = resources
        self.fail_with = fail_with
        self.init_calls: list[dict] = []
        self.remote_options: dict | None = None

    def is_initialized(self) -> bool:
        return False

    def init(self, **kwargs):
        self.init_calls.append(kwargs)
        if self.fail_with is not None:
            raise self.fail_with

    def cluster_resources(self) -> dict:
        return self.resources

    def shutdown(self) -> None:
        pass

    def remote(self, **options):
        self.remote_options = options

        def wrap(function):
            class Remote:
                @staticmethod
                def remote(*args):
                    return function(*args)

            return Remote

        return wrap

    def wait(self, pending, num_returns=1):
        return pending[:num_returns], pending[num_returns:]

    def get(self, value):
        return value


def fake_point(point, run_dir, evaluate):
    return {"slug": point["slug"], "status": "finished", "seconds": 0.0}


@pytest.mark.parametrize(("resources", "gpus"), [({"CPU": 8.0, "GPU": 2.0}, 1), ({"CPU": 8.0}, 0)])
def test_ray_tasks_ask_for_a_gpu_exactly_when_the_cluster_has_them(monkeypatch, resources, gpus):
    ray = FakeRay(resources)
    monkeypatch.setattr(sweep, "run_point", fake_point)
    done = []
    args = [({"slug": "a"}, "runs/a", False), ({"slug": "b"}, "runs/b", False)]
    sweep._run_ray(ray, args, jobs=2, threads=1, address="head:6379", done=done.append)
    assert ray.remote_options == {"num_cpus": 1, "num_gpus": gpus}
    assert [record["slug"] for record in done] == ["a", "b"]


def test_a_local_ray_instance_gets_this_machines_gpus(monkeypatch):
    ray = FakeRay({"CPU": 4.0, "GPU": 2.0})
    monkeypatch.setattr(sweep, "gpu_count", lambda: 2)
    sweep.connect_ray(ray, None, jobs=2, threads=2)
    assert ray.init_calls == [{"num_cpus": 4, "num_gpus": 2}]


def test_an_unreachable_cluster_gets_one_message_that_says_what_to_check():
    ray = FakeRay({}, fail_with=ConnectionError("Failed to connect to GCS at 10.0.0.9:6379"))
    with pytest.raises(RLRobustError, match="could not connect to the Ray cluster at head:6379"):
        sweep.connect_ray(ray, "head:6379", jobs=1, threads=1)


def test_local_workers_take_gpus_round_robin():
    assert sweep.worker_devices(5, 2) == ["cuda:0", "cuda:1", "cuda:0", "cuda:1", "cuda:0"]
    assert sweep.worker_devices(2, 0) == [None, None]


def test_a_worker_device_replaces_auto_but_never_a_device_the_user_named():
    auto = {"train": {"device": "auto", "epochs": 3}}
    assert sweep.with_worker_device(auto, "cuda:1")["train"] == {"device": "cuda:1", "epochs": 3}
    assert auto["train"]["device"] == "auto"  # the point's own config is left as it was
    named = {"train": {"device": "cpu"}}
    assert sweep.with_worker_device(named, "cuda:1") is named
    assert sweep.with_worker_device(auto, None) is auto


def test_each_pool_worker_takes_its_own_device_from_the_queue():
    import queue

    devices = queue.Queue()
    for device in ("cuda:0", "cuda:1"):
        devices.put(device)
    try:
        sweep._init_worker(1, devices)
        first = sweep.WORKER_DEVICE
        sweep._init_worker(1, devices)
        assert (first, sweep.WORKER_DEVICE) == ("cuda:0", "cuda:1")
    finally:
        sweep.WORKER_DEVICE = None


def test_jobs_default_to_the_gpu_count(monkeypatch, tmp_path):

    seen = {}

    def fake_run_sweep(spec, out, *, jobs, backend, address, log):
        seen["jobs"] = jobs
        (out).mkdir(parents=True)
        (out / "sweep.json").write_text('{"points": {}}')

    monkeypatch.setattr(sweep, "run_sweep", fake_run_sweep)
    monkeypatch.setattr(sweep, "gpu_count", lambda: 4)
    from rlrobust.commands import main

    assert main(["sweep", "--out", str(tmp_path / "s"), "--quiet"]) == 0
    assert seen["jobs"] == 4


# ----------------------------------------------------------------------------- devices and resume

TINY = {
    "data.name": "digits",
    "data.train_subset": 120,
    "data.test_subset": 60,
    "model.name": "mlp",
    "train.epochs": 2,
    "train.device": "cpu",
}


def test_a_gpu_run_resumes_on_a_cpu_only_host(tmp_path, capsys):
    """A config that says cuda (as a GPU run's does) continues with --device cpu."""
    import json

    import torch

    from rlrobust.commands import main
    from rlrobust.config import load_config
    from rlrobust.training.run import train_run

    run_dir = tmp_path / "run"
    train_run(load_config(overrides=TINY), run_dir, log=lambda *_: None, stop_after_epoch=1)
    config = json.loads((run_dir / "config.json").read_text())
    config["train"]["device"] = "cuda"
    (run_dir / "config.json").write_text(json.dumps(config))
    if not torch.cuda.is_available():
        assert main(["train", "--out", str(run_dir), "--resume", "--quiet"]) == 2
        assert "CUDA is not available" in capsys.readouterr().err
    assert main(["train", "--out", str(run_dir), "--resume", "--device", "cpu", "--quiet"]) == 0
    assert json.loads((run_dir / "state.json").read_text())["finished"]
    assert main(["train", "--device", "cpu", "--out", str(tmp_path / "new")]) == 2
    assert "--device goes with --resume" in capsys.readouterr().err


def test_deterministic_mode_runs_and_restores_the_global_settings(tmp_path):
    import torch

    from rlrobust.config import load_config
    from rlrobust.training.run import train_run
    from rlrobust.weights import read_safetensors

    before = torch.are_deterministic_algorithms_enabled()
    plain = train_run(load_config(overrides=TINY), tmp_path / "a", log=lambda *_: None)
    strict = train_run(
        load_config(overrides={**TINY, "train.deterministic": True}),
        tmp_path / "b",
        log=lambda *_: None,
    )
    assert torch.are_deterministic_algorithms_enabled() == before
    assert plain["finished"] and strict["finished"]
    a = read_safetensors(tmp_path / "a" / "model.safetensors")
    b = read_safetensors(tmp_path / "b" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)  # CPU kernels were deterministic already


# ----------------------------------------------------------------------------- bf16 and AutoAttack


class Recorder:
    """An attack that returns its input and records whether autocast was on when it ran."""

    eps, norm = 0.1, "linf"

    def __init__(self, float32_only: bool):
        self.float32_only = float32_only
        self.autocast_seen: list[bool] = []

    def __call__(self, model, x, y):
        self.autocast_seen.append(torch.is_autocast_enabled("cpu"))
        return x.clone()


def test_bf16_autocast_never_wraps_an_attack_that_declares_float32_only():
    import dataclasses

    from rlrobust.attacks import AutoAttack
    from rlrobust.data import load_dataset
    from rlrobust.evaluation.protocol import evaluate
    from rlrobust.models import build_model

    assert AutoAttack.float32_only
    data = load_dataset("digits", "test").take(8, 0)
    model = build_model("mlp", num_classes=10, in_channels=1, image_size=8).eval()
    with torch.no_grad():  # labels the model gets right, so every point is attacked
        data = dataclasses.replace(data, labels=model(data.images.float() / 255).argmax(dim=1))
    plain, strict = Recorder(False), Recorder(True)
    evaluate(model, data, [plain, strict], amp="bf16", early_exit=False)
    assert plain.autocast_seen and all(plain.autocast_seen)
    assert strict.autocast_seen and not any(strict.autocast_seen)
