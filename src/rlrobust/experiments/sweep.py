"""Sweeps: one training run per (variant, grid point, seed), resumable, with aggregates over seeds.

Layout of a sweep directory::

    SWEEP/sweep.json     the manifest: the spec and every point with its status (atomic writes)
    SWEEP/runs/<slug>/   one run directory per point (``train_run``; ``evaluation.json``)
    SWEEP/summary.json   mean and std over seeds of clean, per-attack and worst-case accuracy
    SWEEP/summary.md     the same as a table
    SWEEP/heatmap-*.png  for a 2-D numeric grid (Kim's lambda1 x lambda2 tables, Table 2)

A point is finished when its ``state.json`` says so and, with evaluation, its ``evaluation.json``
exists; a rerun skips finished points, resumes unfinished ones from their last complete epoch, so
a killed sweep loses no finished result. Workers are separate processes (``spawn``), each limited
to ``cores // jobs`` threads so that the pool does not oversubscribe the machine.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlrobust.config import RunConfig, from_dict, set_by_path, validate
from rlrobust.errors import ConfigError, RLRobustError, RunDirectoryError
from rlrobust.files import atomic_write_json, atomic_write_text
from rlrobust.runs import clear_pre_checkpoint, read_state
from rlrobust.stats import format_seed_summary, seed_summary

MANIFEST = "sweep.json"
#: What the numbers of a summary table are (docs/experiments.md, docs/evaluation.md).
SEED_NOTE = (
    "Accuracies in %: mean ± sample std over seeds, and in brackets the 95 % Student-t interval "
    'for the mean (docs/evaluation.md, "Uncertainty"); a group with one seed has no spread.'
)
#: files that ``train_run`` writes before its first checkpoint; a run killed in its first epoch
#: leaves only these, and a rerun may start that run afresh.
# --- the spec and its points --------------------------------------------------------------------


@dataclass
class SweepSpec:
    """What to run: ``base`` config (a RunConfig dict), named ``variants`` (bundles of dotted-key
    overrides, e.g. CE vs policy), a ``grid`` (dotted key -> values; cartesian product), seeds."""

    base: dict
    grid: dict[str, list] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=lambda: [0])
    variants: dict[str, dict] = field(default_factory=dict)
    evaluate: bool = False

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class SweepPoint:
    slug: str
    variant: str | None
    values: dict[str, Any]  # the grid values of this point
    seed: int
    config: dict  # the resolved RunConfig dict

    @property
    def group(self) -> str:
        """The slug without the seed: points of one group differ only by seed."""
        return self.slug.removesuffix(f"s{self.seed}").removesuffix("__") or "all"


def parse_grid(items: list[str]) -> dict[str, list]:
    """``["objective.options.lam=[0.5, 1.5]", ...]`` -> ``{"objective.options.lam": [0.5, 1.5]}``."""
    grid: dict[str, list] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--grid {item!r} needs KEY=JSON_LIST, e.g. 'optim.lr=[0.1, 0.01]'")
        try:
            values = json.loads(text)
        except json.JSONDecodeError:
            raise ConfigError(
                f"--grid {item!r}: {text!r} is not JSON; write the list as JSON, e.g. [0.1, 0.01]"
            ) from None
        if not isinstance(values, list) or not values:
            raise ConfigError(f"--grid {item!r}: give a non-empty JSON list of values")
        if key in grid:
            raise ConfigError(f"--grid names {key!r} twice; give all its values in one list")
        grid[key] = values
    return grid


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(
            f"--seeds {text!r} must be integers separated by commas, e.g. 0,1,2"
        ) from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds {text!r} must name at least one seed, each once, e.g. 0,1,2")
    return seeds


def set_option(cfg: RunConfig, key: str, value: Any) -> None:
    """Set a dotted key; past a dict field it sets inside the dict (``objective.options.lam``).

    The dict is copied, so configs that shared a default dict are not changed together.
    """
    parts = key.split(".")
    if len(parts) <= 2:
        set_by_path(cfg, key, value)
        return
    section = ".".join(parts[:2])
    current = _get_path(cfg, section, key)
    if not isinstance(current, dict):
        raise ConfigError(
            f"config key {key!r} goes too deep: {section} is not a dict of options; "
            f"set {section} itself"
        )
    updated = json.loads(json.dumps(current))
    target = updated
    for part in parts[2:-1]:
        target = target.setdefault(part, {})
        if not isinstance(target, dict):
            raise ConfigError(f"config key {key!r}: {part} inside {section} is a value, not a dict")
    target[parts[-1]] = value
    set_by_path(cfg, section, updated)


def _get_path(cfg: RunConfig, path: str, key: str) -> Any:
    target: Any = cfg
    for part in path.split("."):
        if not dataclasses.is_dataclass(target) or not hasattr(target, part):
            raise ConfigError(f"unknown config key {key!r}: {path} is not a config field")
        target = getattr(target, part)
    return target


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        value = f"{value:g}"
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return re.sub(r"[^A-Za-z0-9.+-]+", "", str(text).replace(" ", "")) or "x"


def slug_for(variant: str | None, values: dict[str, Any], seed: int) -> str:
    """A folder name: ``<variant>__<key>-<value>__...__s<seed>``.

    Keys are shortened to their last part unless two grid keys share it (Kim's lambda grid has
    ``two_stage.warmup_options.lam`` and ``objective.options.lam``: then the full key is used).
    """
    last = [key.split(".")[-1] for key in values]
    parts = [re.sub(r"[^A-Za-z0-9.+-]+", "-", variant)] if variant else []
    for key, short in zip(values, last, strict=True):
        name = short if last.count(short) == 1 else key
        parts.append(f"{name}-{_format_value(values[key])}")
    return "__".join([*parts, f"s{seed}"])


def expand_points(spec: SweepSpec) -> list[SweepPoint]:
    """Variants x cartesian product of the grid x seeds, each with its resolved config."""
    keys = list(spec.grid)
    variants = list(spec.variants.items()) or [(None, {})]
    points = []
    for (variant, overrides), combo, seed in itertools.product(
        variants, itertools.product(*(spec.grid[k] for k in keys)), spec.seeds
    ):
        values = dict(zip(keys, combo, strict=True))
        cfg = from_dict(RunConfig, json.loads(json.dumps(spec.base)))
        for key, value in {**overrides, **values, "train.seed": seed}.items():
            set_option(cfg, key, value)
        validate(cfg)
        points.append(
            SweepPoint(slug_for(variant, values, seed), variant, values, seed, cfg.to_dict())
        )
    slugs = [p.slug for p in points]
    if len(set(slugs)) != len(slugs):
        raise ConfigError(
            "two sweep points get the same folder name (grid values that differ only in "
            "characters a folder name drops); give distinct values"
        )
    return points


# --- running one point (in a worker process) -----------------------------------------------------


def worker_threads(jobs: int, cores: int | None = None) -> int:
    return max(1, (cores or os.cpu_count() or 1) // max(1, jobs))


def gpu_count() -> int:
    """CUDA devices this process sees (0 on a CPU-only machine)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def worker_devices(jobs: int, gpus: int) -> list[str | None]:
    """The device of each local worker: ``cuda:i`` round-robin over the GPUs, or None (the
    config's own ``train.device``) on a machine without GPUs."""
    return [f"cuda:{i % gpus}" if gpus else None for i in range(jobs)]


#: the device this worker process was given (``worker_devices``), applied to "auto" configs.
WORKER_DEVICE: str | None = None


def _init_worker(threads: int, devices=None) -> None:
    """Set up one worker: its thread count and, from the shared queue, its own GPU."""
    import torch

    global WORKER_DEVICE
    torch.set_num_threads(threads)
    if devices is not None:
        WORKER_DEVICE = devices.get()


def with_worker_device(config: dict, device: str | None) -> dict:
    """``config`` with ``train.device`` set to the worker's GPU when it says "auto" (a device
    the user named is kept); the run's config.json records the device actually used."""
    if device is None or config.get("train", {}).get("device", "auto") != "auto":
        return config
    return {**config, "train": {**config.get("train", {}), "device": device}}


def run_point(point: dict, run_dir: str, evaluate: bool) -> dict:
    """Train (or resume, or skip) one point, then evaluate it; returns a status record.

    Top-level and with plain arguments so that a spawned process (or a Ray task) can run it.
    Errors are returned, not raised, so one failing point does not end the sweep.
    """
    from rlrobust.training.run import train_run

    run_path = Path(run_dir)
    record = {"slug": point["slug"], "trained": False, "evaluated": False}
    started = time.perf_counter()
    try:
        state = read_state(run_path)
        if state is None or not state.get("finished"):
            if state is None and run_path.exists():
                clear_pre_checkpoint(run_path)
            cfg = from_dict(RunConfig, with_worker_device(point["config"], WORKER_DEVICE))
            state = train_run(cfg, run_path, resume=state is not None, log=lambda *_: None)
            record["trained"] = True
        if evaluate and not (run_path / "evaluation.json").is_file():
            evaluate_run(run_path, title=point["slug"])
            record["evaluated"] = True
        record["status"] = "finished" if state.get("finished") else "unfinished"
    except Exception as error:  # noqa: BLE001 - reported in the manifest, the sweep goes on
        record.update(status="failed", error=f"{type(error).__name__}: {error}")
    record["seconds"] = time.perf_counter() - started
    return record


def evaluate_run(run_dir: Path, title: str) -> dict:
    """Attack a finished run as its config's eval section says; writes evaluation.{json,md}."""
    from rlrobust.evaluation.report import write_evaluation
    from rlrobust.evaluation.suite import run_suite_for_config
    from rlrobust.runs import load_run

    run = load_run(run_dir)
    result = run_suite_for_config(run.model, run.test, run.config, device=run.device)
    write_evaluation(run_dir, "evaluation", result, run.config, title=title)
    return result


# --- the sweep ----------------------------------------------------------------------------------


def import_ray():
    try:
        import ray
    except ImportError:
        raise RLRobustError(
            "the ray backend needs Ray, which is not installed: pip install 'rlrobust[ray]' "
            "(or use --backend local)"
        ) from None
    return ray


def _load_manifest(sweep_dir: Path, spec: SweepSpec) -> dict | None:
    """The folder's manifest, or None for a new sweep. A manifest of the same sweep with fewer
    seeds is taken over (more seeds is the usual way to tighten an interval: the finished
    points are kept, only the new seeds run); any other difference is refused."""
    path = sweep_dir / MANIFEST
    if not path.is_file():
        return None
    manifest = json.loads(path.read_text())
    wanted = json.loads(json.dumps(spec.to_dict()))
    if manifest.get("spec") != wanted and not _adds_seeds(manifest.get("spec") or {}, wanted):
        raise RunDirectoryError(
            f"{sweep_dir} holds a different sweep (its {MANIFEST} has another spec); rerun with "
            "the same config, grid and variants (adding seeds is fine) to resume it, or choose "
            "another --out"
        )
    manifest["spec"] = wanted
    return manifest


def _adds_seeds(old: dict, new: dict) -> bool:
    """True when ``new`` is ``old`` with the same seeds and more."""
    same_rest = {k: v for k, v in old.items() if k != "seeds"} == {
        k: v for k, v in new.items() if k != "seeds"
    }
    return same_rest and set(old.get("seeds", [])) <= set(new.get("seeds", []))


def run_sweep(
    spec: SweepSpec,
    sweep_dir: str | Path,
    *,
    jobs: int = 1,
    backend: str = "local",
    address: str | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Run every point of ``spec`` not yet finished; write the manifest and the aggregates.

    Returns the summary (``aggregate``). ``jobs`` = 1 runs in this process; more start a
    ``spawn`` process pool (``local``) or Ray tasks (``ray``; ``address`` of a running cluster,
    else a local one with ``jobs`` CPUs).
    """
    if backend not in {"local", "ray"}:
        raise ConfigError(f"unknown sweep backend {backend!r}; choose local or ray")
    ray = import_ray() if backend == "ray" else None
    sweep_dir = Path(sweep_dir)
    points = expand_points(spec)
    manifest = _load_manifest(sweep_dir, spec) or {"spec": spec.to_dict(), "points": {}}
    for point in points:
        entry = manifest["points"].setdefault(point.slug, {"status": "pending"})
        entry.update(variant=point.variant, values=point.values, seed=point.seed)
        entry["run_dir"] = f"runs/{point.slug}"
    atomic_write_json(sweep_dir / MANIFEST, manifest)

    todo = [p for p in points if not _is_done(sweep_dir / "runs" / p.slug, spec.evaluate)]
    for point in points:
        if point not in todo:
            manifest["points"][point.slug]["status"] = "finished"
    log(
        f"sweep: {len(points)} points, {len(points) - len(todo)} already finished, {len(todo)} to run"
    )
    jobs = max(1, min(jobs, len(todo) or 1))
    threads = worker_threads(jobs)

    def done(record: dict) -> None:
        entry = manifest["points"][record["slug"]]
        entry.update({k: v for k, v in record.items() if k != "slug"})
        entry.pop("error", None) if record["status"] != "failed" else None
        atomic_write_json(sweep_dir / MANIFEST, manifest)  # after each point: nothing is lost
        extra = f": {record['error']}" if record["status"] == "failed" else ""
        log(f"  {record['slug']}: {record['status']} ({record['seconds']:.1f} s){extra}")

    args = [(dataclasses.asdict(p), str(sweep_dir / "runs" / p.slug), spec.evaluate) for p in todo]
    if ray is not None:
        _run_ray(ray, args, jobs, threads, address, done)
    elif jobs == 1:
        for a in args:
            done(run_point(*a))
    else:
        _run_pool(args, jobs, threads, done)

    summary = aggregate(sweep_dir, points)
    write_summary(sweep_dir, summary)
    return summary


def _is_done(run_dir: Path, evaluate: bool) -> bool:

    state = read_state(run_dir) if run_dir.is_dir() else None
    finished = bool(state and state.get("finished"))
    return finished and (not evaluate or (run_dir / "evaluation.json").is_file())


def _run_pool(args: list[tuple], jobs: int, threads: int, done: Callable[[dict], None]) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    context = multiprocessing.get_context("spawn")  # no forked torch thread pools or CUDA state
    devices = None
    assigned = worker_devices(jobs, gpu_count())
    if any(assigned):  # each worker takes one GPU from the queue, round-robin
        devices = context.Manager().Queue()
        for device in assigned:
            devices.put(device)
    with ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=context,
        initializer=_init_worker,
        initargs=(threads, devices),
    ) as pool:
        futures = [pool.submit(run_point, *a) for a in args]
        for future in as_completed(futures):
            done(future.result())


def connect_ray(ray, address: str | None, jobs: int, threads: int) -> None:
    """Join the cluster at ``address``, or start a local instance sized for the sweep; a failed
    connection is one message that says what to check."""
    if address is None:
        # A local instance gets a CPU for every thread of every job (a task asks for
        # ``threads`` CPUs; an instance smaller than one task would leave it pending for ever)
        # and every GPU this machine has.
        ray.init(num_cpus=jobs * threads, num_gpus=gpu_count())
        return
    try:
        ray.init(address=address)
    except (ConnectionError, TimeoutError, RuntimeError, ValueError, OSError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise RLRobustError(
            f"could not connect to the Ray cluster at {address} ({first}); check that the head "
            "node runs (`ray start --head` there), that the address and port are right (the "
            "GCS port, 6379 by default), that this machine can reach it, and that both sides "
            "run the same Ray and Python versions"
        ) from None


def gpus_per_task(ray) -> int:
    """1 when the cluster has GPUs (Ray then sets CUDA_VISIBLE_DEVICES to the task's own GPU, so
    "auto" picks it), else 0: a task that asks for no GPU sees none and trains on CPU."""
    return 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0


def _run_ray(ray, args, jobs: int, threads: int, address: str | None, done) -> None:
    started_here = not ray.is_initialized()
    if started_here:
        connect_ray(ray, address, jobs, threads)

    def task(point, run_dir, evaluate):
        _init_worker(threads)
        return run_point(point, run_dir, evaluate)

    remote = ray.remote(num_cpus=threads, num_gpus=gpus_per_task(ray))(task)
    pending = [remote.remote(*a) for a in args]
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            done(ray.get(ready[0]))
    finally:
        if started_here:
            ray.shutdown()


# --- aggregates -----------------------------------------------------------------------------------


def point_metrics(run_dir: Path) -> dict[str, float]:
    """Accuracies in % of one run: from evaluation.json (clean, each attack, worst case), else
    the last held-out accuracy of training."""
    evaluation = run_dir / "evaluation.json"
    if evaluation.is_file():
        record = json.loads(evaluation.read_text())
        metrics = {"clean": 100 * record["clean_accuracy"]}
        metrics.update({e["label"]: 100 * e["accuracy"] for e in record["attacks"]})
        if record["attacks"]:
            metrics["worst_case"] = 100 * record["robust_accuracy"]
        rlab = run_dir / "rlab" / "rlab.json"  # written by the RLAB reproduction preset
        if rlab.is_file():
            metrics["rlab_success"] = 100 * json.loads(rlab.read_text())["rlab"]["success_rate"]
        return metrics

    state = read_state(run_dir) if run_dir.is_dir() else None
    if not state or not state.get("metrics"):
        return {}
    last = state["metrics"][-1]
    held = [k for k in last if k.endswith("_accuracy") and not k.startswith("train_")]
    return {"heldout": 100 * last[held[0]]} if held else {}


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1; 0 for a single seed)."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def aggregate(sweep_dir: str | Path, points: list[SweepPoint]) -> dict:
    """Mean, std and 95 % t interval over seeds of every metric, per (variant, grid values) group.

    ``std`` stays 0 for a single seed (older readers format it); ``interval`` is None then.
    """
    sweep_dir = Path(sweep_dir)
    groups: dict[str, dict] = {}
    for point in points:
        group = groups.setdefault(
            point.group,
            {"group": point.group, "variant": point.variant, "values": point.values, "runs": {}},
        )
        metrics = point_metrics(sweep_dir / "runs" / point.slug)
        if metrics:
            group["runs"][point.seed] = metrics
    rows = []
    metric_names: list[str] = []
    for group in groups.values():
        names: list[str] = []
        for metrics in group["runs"].values():
            names += [n for n in metrics if n not in names]
        metric_names += [n for n in names if n not in metric_names]
        stats = {}
        for name in names:
            values = [m[name] for m in group["runs"].values() if name in m]
            mean, std = mean_std(values)
            # the 95 % Student-t interval for the mean over seeds (None with one seed)
            spread = seed_summary(values, bounds=(0.0, 100.0))  # accuracies in %
            stats[name] = {
                "mean": mean,
                "std": std,
                "n": len(values),
                "values": values,
                "interval": spread["interval"],
                "level": spread["level"],
            }
        rows.append(
            {
                "group": group["group"],
                "variant": group["variant"],
                "values": group["values"],
                "seeds": sorted(group["runs"]),
                "metrics": stats,
            }
        )
    return {
        "grid_keys": list(points[0].values) if points else [],
        "metric_names": metric_names,
        "groups": rows,
    }


def summary_table(summary: dict) -> str:
    """Markdown: one row per group, ``mean ± std [95 % t interval]`` per metric, in %.

    A group with one seed shows ``mean (1 seed: no std, no interval)``, never a bare mean
    (``rlrobust.stats.format_seed_summary``).
    """
    keys = summary["grid_keys"]
    has_variant = any(row["variant"] for row in summary["groups"])
    names = summary["metric_names"]
    header = (["variant"] if has_variant else []) + keys + ["seeds"] + names
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in summary["groups"]:
        cells = ([row["variant"]] if has_variant else []) + [
            json.dumps(row["values"][k]) for k in keys
        ]
        cells.append(str(len(row["seeds"])))
        for name in names:
            stat = row["metrics"].get(name)
            cells.append(format_seed_summary(stat) if stat else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def heatmap_metric(summary: dict) -> str | None:
    names = summary["metric_names"]
    for choice in ("worst_case", "clean", "heldout"):
        if choice in names:
            return choice
    return names[0] if names else None


def plot_heatmap(summary: dict, path: str | Path, metric: str | None = None) -> Path | None:
    """Heat map of ``metric`` (mean over seeds) over a 2-D numeric grid (Kim Table 2 style:
    rows the first grid key, columns the second); None when the grid is not 2-D and numeric."""
    keys = summary["grid_keys"]
    metric = metric or heatmap_metric(summary)
    if len(keys) != 2 or metric is None or any(r["variant"] for r in summary["groups"]):
        return None
    axes = [sorted({r["values"][k] for r in summary["groups"]}) for k in keys]
    if not all(isinstance(v, (int, float)) for axis in axes for v in axis):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    grid = np.full((len(axes[0]), len(axes[1])), np.nan)
    for row in summary["groups"]:
        stat = row["metrics"].get(metric)
        if stat:
            i = axes[0].index(row["values"][keys[0]])
            j = axes[1].index(row["values"][keys[1]])
            grid[i, j] = stat["mean"]
    fig, ax = plt.subplots(figsize=(1.2 * len(axes[1]) + 2.5, 1.0 * len(axes[0]) + 1.8))
    image = ax.imshow(grid, cmap="viridis", origin="lower", aspect="auto")
    ax.set_xticks(range(len(axes[1])), [f"{v:g}" for v in axes[1]])
    ax.set_yticks(range(len(axes[0])), [f"{v:g}" for v in axes[0]])
    ax.set_xlabel(keys[1])
    ax.set_ylabel(keys[0])
    middle = (
        np.nanmin(grid) + 0.5 * (np.nanmax(grid) - np.nanmin(grid))
        if np.isfinite(grid).any()
        else 0
    )
    for (i, j), value in np.ndenumerate(grid):
        if not np.isnan(value):
            # dark text on viridis' light (high) end, white on its dark end: readable everywhere
            colour = "black" if value > middle else "white"
            ax.text(j, i, f"{value:.1f}", ha="center", va="center", color=colour, fontsize=10)
    fig.colorbar(image, ax=ax, label=f"{metric} accuracy (%), mean over seeds")
    ax.set_title(f"{metric} accuracy over {keys[0]} x {keys[1]}", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_summary(sweep_dir: Path, summary: dict, metric: str | None = None) -> list[Path]:
    """summary.json, summary.md and (2-D numeric grid) heatmap-<metric>.png."""
    written = [atomic_write_json(sweep_dir / "summary.json", summary)]
    metric = metric or heatmap_metric(summary)
    parts = ["# Sweep summary", "", SEED_NOTE, ""]
    parts.append(summary_table(summary))
    heatmap = plot_heatmap(summary, sweep_dir / f"heatmap-{metric}.png", metric) if metric else None
    if heatmap is not None:
        written.append(heatmap)
        parts += ["", f"![{metric}]({heatmap.name})"]
    written.append(atomic_write_text(sweep_dir / "summary.md", "\n".join(parts) + "\n"))
    return written
