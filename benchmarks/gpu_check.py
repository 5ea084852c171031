"""The GPU check: one command, on a GPU machine, in under 8 minutes, that shows the GPU paths work
and are as fast as they should be.

    python benchmarks/gpu_check.py --device cuda --data-dir ~/data      # on a GPU machine
    python benchmarks/gpu_check.py --quick --device cpu --out /tmp/gc    # CPU fallback (CI)

It does, in order, timing each step:
1. trains LeNet5 with cross-entropy and with Kim's two-stage policy loss for one epoch on MNIST
   (``--quick``: an MLP on scikit-learn's digits, 400 images, 10 epochs);
2. trains ResNet-18 on random CIFAR-shaped data for a few steps and reports images per second;
3. evaluates the CE model with ``--eval.preset standard`` on 200 test points on the device and
   on the CPU, and checks the two records agree within tolerance (clean accuracy equal, robust
   accuracy within 2 points, at most 3 % of the per-sample verdicts different);
4. runs ``rlrobust attack rlab --device`` briefly (the RLAB environment and agent on the device)
   and the GPU benchmarks (``run_all.py --only training pgd autoattack``) for the peer ratios;
5. writes ``gpu_check.json`` into ``--out``, and with ``--record`` appends a section naming the
   device to ``benchmarks/RESULTS.md``.

The exit code is 1 if a step failed or the device and CPU records disagree.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_FILE = BENCH_DIR / "RESULTS.md"
#: device and CPU records must agree this well (AutoAttack's random restarts and float sums
#: differ between devices; a real bug moves far more).
TOLERANCE = {"robust_points": 0.02, "verdict_fraction": 0.03}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = "cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument("--device", default=default, help=f"torch device (default: {default})")
    parser.add_argument("--quick", action="store_true", help="digits + MLP: the CPU fallback")
    parser.add_argument("--data-dir", default=None, help="folder holding mnist/ (MNIST runs)")
    parser.add_argument("--out", default="gpu-check", help="folder for runs and gpu_check.json")
    parser.add_argument("--points", type=int, default=None, help="test points (default 200)")
    parser.add_argument(
        "--record", action="store_true", help="append the figures to benchmarks/RESULTS.md"
    )
    parser.add_argument(
        "--skip-benchmarks", action="store_true", help="leave out step 4 (the peer ratios)"
    )
    return parser


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        memory = properties.total_memory / 2**30
        return f"{torch.cuda.get_device_name(device)} ({memory:.0f} GiB), torch {torch.__version__}"
    return f"CPU ({torch.get_num_threads()} threads), torch {torch.__version__}"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_config(quick: bool, data_dir: str | None, device: str, points: int, policy: bool):
    from rlrobust.config import load_config

    data = (
        {"data.name": "digits", "data.train_subset": 400, "model.name": "mlp"}
        if quick
        else {"data.name": "mnist", "model.name": "lenet5"}
    )
    if data_dir:
        data["data.data_dir"] = data_dir
    objective = (
        {
            "objective.name": "kim_policy",
            "objective.options": {"lam": 1.5, "action": "greedy"},
            "two_stage.enabled": True,
            "two_stage.warmup_options": {"lam": 0.75},
        }
        if policy
        else {}
    )
    return load_config(
        overrides={
            **data,
            **objective,
            # Quick: enough digits epochs for a model that attacks have points to work on.
            "train.epochs": 10 if quick else 1,
            "train.device": device,
            "optim.lr": 0.05 if quick else 0.01,
            "eval.preset": "standard",
            "eval.eps": 0.1,
            "eval.n_examples": points,
        }
    )


def train_models(args, device: torch.device, out: Path, points: int) -> dict:
    from rlrobust.training.run import train_run

    figures = {}
    for name, policy in (("ce", False), ("policy", True)):
        cfg = run_config(args.quick, args.data_dir, str(device), points, policy)
        started = time.perf_counter()
        state = train_run(cfg, out / name, log=lambda *_: None)
        synchronize(device)
        last = state["metrics"][-1]
        images = cfg.data.train_subset or 60_000  # MNIST's training split
        figures[name] = {
            "epochs": cfg.train.epochs,
            "seconds": time.perf_counter() - started,
            "epoch_seconds": last["epoch_seconds"],
            "images_per_second": images / last["epoch_seconds"],
            "heldout_accuracy": last.get("test_accuracy", last.get("validation_accuracy")),
        }
    return figures


def resnet_throughput(device: torch.device, quick: bool) -> dict:
    """Training images per second of ResNet-18 on random CIFAR-shaped batches."""
    from rlrobust.models import build_model

    torch.manual_seed(0)
    model = build_model("resnet18", num_classes=10, in_channels=3, image_size=32).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    batch, steps = (8, 3) if quick else (256, 30)
    x = torch.rand(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)

    def step():
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()  # warm-up (cuDNN autotuning, allocator)
    synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    seconds = time.perf_counter() - started
    return {"batch": batch, "steps": steps, "images_per_second": batch * steps / seconds}


def evaluate_on(run_dir: Path, device: torch.device) -> tuple[dict, float]:
    from rlrobust.evaluation.suite import run_suite_for_config
    from rlrobust.runs import load_run

    run = load_run(run_dir, device=device)
    started = time.perf_counter()
    result = run_suite_for_config(run.model, run.test, run.config, device=device)
    synchronize(device)
    return result["evaluation"], time.perf_counter() - started


def compare_records(on_device: dict, on_cpu: dict) -> dict:
    """Agreement of two evaluation records of the same model and points."""
    n = on_cpu["n_examples"]
    robust_device = [bool(r) for r in on_device["per_sample"]["robust"]]
    robust_cpu = [bool(r) for r in on_cpu["per_sample"]["robust"]]
    differing = sum(a != b for a, b in zip(robust_device, robust_cpu, strict=True))
    gap = abs(on_device["robust_accuracy"] - on_cpu["robust_accuracy"])
    agree = (
        on_device["clean_accuracy"] == on_cpu["clean_accuracy"]
        and gap <= TOLERANCE["robust_points"]
        and differing / max(n, 1) <= TOLERANCE["verdict_fraction"]
    )
    return {
        "clean_device": on_device["clean_accuracy"],
        "clean_cpu": on_cpu["clean_accuracy"],
        "robust_device": on_device["robust_accuracy"],
        "robust_cpu": on_cpu["robust_accuracy"],
        "differing_verdicts": differing,
        "n_examples": n,
        "tolerance": TOLERANCE,
        "agree": agree,
    }


def rlab_on_device(run_dir: Path, device: torch.device, out: Path) -> dict:
    """`rlrobust attack rlab --device` on the CE model: the RLAB environment and agent on the
    device (a short greedy run; the figures are a smoke check, not a measurement)."""
    command = [
        sys.executable,
        "-m",
        "rlrobust",
        "attack",
        "rlab",
        str(run_dir),
        "--device",
        str(device),
        "--n-examples",
        "20",
        "--budget",
        "100",
        "--out",
        str(out),
        "--quiet",
        "--overwrite",
    ]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    record = {"exit_code": done.returncode, "seconds": time.perf_counter() - started}
    if done.returncode == 0:
        record["success_rate"] = json.loads((out / "rlab.json").read_text())["rlab"]["success_rate"]
    else:
        record["error"] = done.stderr.strip().splitlines()[-1:] or ["no message"]
    return record


def run_benchmarks(device: torch.device, quick: bool) -> dict:
    command = [
        sys.executable,
        str(BENCH_DIR / "run_all.py"),
        "--device",
        str(device),
        "--only",
        "training",
        "pgd",
        "autoattack",
    ] + (["--quick"] if quick else [])
    done = subprocess.run(command, capture_output=True, text=True)
    summary = done.stdout.split("=== all results")[-1]  # run_all repeats every line there
    lines = [line for line in summary.splitlines() if line.startswith("RESULT ")]
    return {"exit_code": done.returncode, "results": lines}


def markdown_section(record: dict) -> str:
    rows = [
        f"## GPU check on {record['device_name']} ({record['date']})",
        "",
        f"Command: `{record['command']}`; total {record['seconds']:.0f} s.",
        "",
        "| step | figure |",
        "| --- | --- |",
    ]
    for name, fig in record["training"].items():
        rows.append(
            f"| train {name} ({fig['epochs']} epochs), last epoch | {fig['epoch_seconds']:.1f} s, "
            f"{fig['images_per_second']:.0f} images/s, held-out accuracy "
            f"{fig['heldout_accuracy']:.3f} |"
        )
    rows.append(
        f"| ResNet-18 training, random CIFAR-shaped data | "
        f"{record['resnet18']['images_per_second']:.0f} images/s (batch "
        f"{record['resnet18']['batch']}) |"
    )
    agreement = record["agreement"]
    rows.append(
        f"| standard preset on {agreement['n_examples']} points: device vs CPU | clean "
        f"{agreement['clean_device']:.3f} vs {agreement['clean_cpu']:.3f}, robust "
        f"{agreement['robust_device']:.3f} vs {agreement['robust_cpu']:.3f}, "
        f"{agreement['differing_verdicts']} verdicts differ; "
        f"{record['evaluation_seconds']['device']:.1f} s vs "
        f"{record['evaluation_seconds']['cpu']:.1f} s |"
    )
    rlab = record["rlab"]
    rows.append(
        f"| RLAB (greedy, 20 inputs, 100 queries) on the device | exit {rlab['exit_code']}, "
        f"{rlab['seconds']:.1f} s, success {rlab.get('success_rate', float('nan')):.2f} |"
    )
    for line in record.get("benchmarks", {}).get("results", []):
        rows.append(f"| benchmark | `{line.removeprefix('RESULT ')}` |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    device = torch.device(args.device)
    points = args.points or (40 if args.quick else 200)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    record: dict = {
        "device": str(device),
        "device_name": describe_device(device),
        "date": datetime.date.today().isoformat(),
        "command": " ".join(["python", "benchmarks/gpu_check.py", *(argv or sys.argv[1:])]),
        "quick": args.quick,
    }
    record["training"] = train_models(args, device, out, points)
    record["resnet18"] = resnet_throughput(device, args.quick)
    on_device, device_seconds = evaluate_on(out / "ce", device)
    on_cpu, cpu_seconds = evaluate_on(out / "ce", torch.device("cpu"))
    record["evaluation_seconds"] = {"device": device_seconds, "cpu": cpu_seconds}
    record["agreement"] = compare_records(on_device, on_cpu)
    record["rlab"] = rlab_on_device(out / "ce", device, out / "rlab")
    if not args.skip_benchmarks:
        record["benchmarks"] = run_benchmarks(device, args.quick)
    record["seconds"] = time.perf_counter() - started
    (out / "gpu_check.json").write_text(json.dumps(record, indent=2) + "\n")
    section = markdown_section(record)
    print(section)
    if args.record:
        with RESULTS_FILE.open("a") as handle:
            handle.write("\n" + section)
    failed = (
        not record["agreement"]["agree"]
        or record["rlab"]["exit_code"]
        or record.get("benchmarks", {}).get("exit_code", 0)
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
