"""Why is a model robust? All indicators for one model, and figures for several side by side.

``analyse(model, data, ...)`` runs the parts asked for and returns one JSON-able record:

- ``masking``: the gradient-masking checks (``masking.py``) and their verdict;
- ``gradients``: static indicators (input-gradient norms, zero fraction, sign agreement) and
  dynamic ones along a PGD trajectory (Zou et al.);
- ``entropy``: predictive entropy on clean and PGD inputs, split by correctness (Zou et al.);
- ``landscape``: weight-space 1-D and 2-D landscapes (Kim Eq. 30) with filter-normalised (Li et
  al. 2018, the default) or plain Gaussian (Kim as written) directions, for the training loss
  and for cross-entropy, and the input-space landscape around test points;
- ``sharpness``: the top Hessian eigenvalue and the Hessian trace (Kim's flatness discussion).

``plot_analysis`` draws the records of several models into one figure per indicator.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from rlrobust.attacks import PGD
from rlrobust.data import ImageData
from rlrobust.errors import ConfigError

PARTS = ("masking", "gradients", "entropy", "landscape", "sharpness")


def analyse(
    model: torch.nn.Module,
    data: ImageData,
    *,
    eps: float,
    norm: str = "linf",
    parts=PARTS,
    training_loss: tuple[str, dict] | None = None,
    landscape_points: int = 21,
    landscape_directions: str = "filter_normalized",
    seed: int = 0,
    device: str | torch.device = "cpu",
    log=lambda *_: None,
) -> dict:
    """Run the requested ``parts`` on the images of ``data``; returns ``{part: record}``.

    ``training_loss`` names the objective the model was trained with (``(name, options)``), so
    the landscapes and sharpness are also measured on it, not only on cross-entropy.
    """
    from rlrobust.diagnostics import entropy, gradients, landscape, sharpness
    from rlrobust.diagnostics.masking import diagnose_masking

    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise ConfigError(f"unknown diagnostic part(s) {unknown}; choose from {', '.join(PARTS)}")
    model = model.to(device).eval()
    x = data.images.float().div(255).to(device)
    y = data.labels.to(device)
    losses = {"cross_entropy": "ce"}
    if training_loss is not None and training_loss[0] != "cross_entropy":
        name, options = training_loss
        # Greedy, seeded actions make the training loss a deterministic function of the weights.
        losses["training_loss"] = gradients.resolve_loss(name, **_deterministic(name, options))
    record: dict = {"n_examples": len(data), "eps": eps, "norm": norm, "seconds": {}}

    def timed(part: str, compute):
        started = time.perf_counter()
        log(f"  {part} ...")
        record[part] = compute()
        record["seconds"][part] = time.perf_counter() - started

    if "masking" in parts:
        timed(
            "masking",
            lambda: diagnose_masking(model, x, y, eps, norm, seed=seed, device=device).to_dict(),
        )
    if "gradients" in parts:
        timed(
            "gradients",
            lambda: {
                "static": gradients.static_indicators(model, x, y, seed=seed),
                "dynamic": gradients.dynamic_indicators(model, x, y, eps=eps, norm=norm, seed=seed),
            },
        )
    if "entropy" in parts:
        attack = PGD(eps=eps, norm=norm, steps=20, step_size=2.5 * eps / 20, seed=seed)
        timed("entropy", lambda: entropy.entropy_record(model, x, y, attack=attack))
    batches = [(x[i : i + 256], y[i : i + 256]) for i in range(0, min(len(x), 512), 256)]
    if "landscape" in parts:
        timed(
            "landscape",
            lambda: {
                **{
                    f"weights_1d_{name}": landscape.weight_landscape_1d(
                        model,
                        batches,
                        loss,
                        points=landscape_points,
                        seed=seed,
                        directions=landscape_directions,
                    )
                    for name, loss in losses.items()
                },
                **{
                    f"weights_2d_{name}": landscape.weight_landscape_2d(
                        model,
                        batches,
                        loss,
                        points=landscape_points,
                        seed=seed,
                        directions=landscape_directions,
                    )
                    for name, loss in losses.items()
                },
                "input_2d": landscape.input_landscape_2d(
                    model,
                    x[:32],
                    y[:32],
                    radius=eps,
                    points=landscape_points,
                    seed=seed,
                    keep_per_sample=False,
                ),
            },
        )
    if "sharpness" in parts:
        timed(
            "sharpness",
            lambda: {
                name: sharpness.sharpness(model, batches, loss, iterations=50, probes=50, seed=seed)
                for name, loss in losses.items()
            },
        )
    return record


def _deterministic(name: str, options: dict) -> dict:
    options = dict(options)
    if name in {"kim_policy", "kim_warmup", "gupta_vpg"} and "action" in _accepted(name):
        options["action"] = "greedy"
    if name == "zou_pg":
        options["epsilon"] = 0.0
    options.pop("exact", None)
    return options


def _accepted(name: str) -> set[str]:
    import inspect

    from rlrobust.registry import OBJECTIVES

    return set(inspect.signature(OBJECTIVES.get(name)).parameters)


def plot_analysis(
    records: dict[str, dict], out: Path, colours: dict[str, str] | None = None
) -> list[Path]:
    """One figure per indicator, every model side by side; returns the files written.

    ``colours`` (model name -> colour, e.g. a report's fixed map) colours each model's lines in
    the figures with one line per model (PGD trajectory, 1-D landscapes) even when some model
    lacks that part; without it matplotlib's cycle is used."""
    import matplotlib.pyplot as plt
    from cycler import cycler

    from rlrobust.diagnostics import plots

    written: list[Path] = []

    def having(*keys: str) -> dict[str, dict]:
        chosen = {}
        for name, record in records.items():
            part = record
            for key in keys:
                part = part.get(key) if isinstance(part, dict) else None
            if part is not None:
                chosen[name] = part
        return chosen

    figures = [
        (("gradients", "static"), plots.plot_gradient_norms, "gradient-norms.png"),
        (("gradients", "static"), plots.plot_gradient_agreement, "gradient-agreement.png"),
        (("gradients", "dynamic"), plots.plot_trajectory, "pgd-trajectory.png"),
        (("entropy",), plots.plot_entropy, "entropy.png"),
        (("landscape", "weights_1d_cross_entropy"), plots.plot_landscape_1d, "landscape-1d-ce.png"),
        (
            ("landscape", "weights_1d_training_loss"),
            plots.plot_landscape_1d,
            "landscape-1d-training.png",
        ),
        (("landscape", "weights_2d_cross_entropy"), plots.plot_landscape_2d, "landscape-2d-ce.png"),
        (("landscape", "weights_2d_cross_entropy"), plots.plot_landscape_3d, "landscape-3d-ce.png"),
        (
            ("landscape", "weights_2d_training_loss"),
            plots.plot_landscape_2d,
            "landscape-2d-training.png",
        ),
        (("landscape", "input_2d"), plots.plot_landscape_2d, "landscape-input.png"),
    ]
    one_line_per_model = {plots.plot_trajectory, plots.plot_landscape_1d}
    for keys, draw, filename in figures:
        chosen = having(*keys)
        if not chosen:
            continue
        style = {}
        if colours and draw in one_line_per_model:  # the k-th line drawn is the k-th model's
            style = {"axes.prop_cycle": cycler(color=[colours[name] for name in chosen])}
        with plt.rc_context(style):
            written.append(draw(chosen, out / filename))
    return written


def _get(record: dict, *keys, default=None):
    for key in keys:
        if not isinstance(record, dict) or key not in record:
            return default
        record = record[key]
    return record


def summary_table(records: dict[str, dict]) -> str:
    """The headline number of each indicator, one column per model (markdown)."""
    rows = [
        ("masking verdict", lambda r: _get(r, "masking", "verdict")),
        ("masking flags", _flags),
        (
            "input-gradient L2 norm, median",
            lambda r: _get(r, *STATIC, "norms", "l2", "summary", "median"),
        ),
        ("zero-gradient fraction", lambda r: _get(r, *STATIC, "norms", "zero_fraction_samples")),
        (
            "gradient sign agreement nearby, mean",
            lambda r: _get(r, *STATIC, "sign_agreement", "sign_agreement", "summary", "mean"),
        ),
        (
            "successive PGD gradient cosine, mean",
            lambda r: _get(r, *DYNAMIC, "trajectory", "cosine_summary", "mean"),
        ),
        (
            "gradient cosine under small noise, mean",
            lambda r: _get(r, *DYNAMIC, "noise_stability", "cosine", "summary", "mean"),
        ),
        (
            "PGD success along the trajectory",
            lambda r: _get(r, *DYNAMIC, "trajectory", "success_rate"),
        ),
        ("entropy clean, mean (nats)", lambda r: _get(r, "entropy", "clean", "summary", "mean")),
        (
            "entropy adversarial, mean (nats)",
            lambda r: _get(r, "entropy", "adversarial", "summary", "mean"),
        ),
        ("largest Hessian eigenvalue (CE)", lambda r: _top(r, "cross_entropy")),
        (
            "Hessian trace (CE)",
            lambda r: _get(r, "sharpness", "cross_entropy", "trace", "estimate"),
        ),
        ("largest Hessian eigenvalue (training loss)", lambda r: _top(r, "training_loss")),
        (
            "Hessian trace (training loss)",
            lambda r: _get(r, "sharpness", "training_loss", "trace", "estimate"),
        ),
    ]
    names = list(records)
    lines = ["| indicator | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for label, read in rows:
        values = [read(records[name]) for name in names]
        if all(v is None for v in values):
            continue
        lines.append(f"| {label} | " + " | ".join(_fmt(v) for v in values) + " |")
    return "\n".join(lines)


STATIC = ("gradients", "static")
DYNAMIC = ("gradients", "dynamic")


def _flags(record: dict) -> str | None:
    if "masking" not in record:
        return None
    return ", ".join(flag["code"] for flag in record["masking"]["flags"]) or "none"


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _top(record: dict, loss: str) -> float | None:
    """The largest *algebraic* Hessian eigenvalue (records written before ``spectrum_ends``
    existed hold only the largest-magnitude one, which is shown instead)."""
    largest = _get(record, "sharpness", loss, "spectrum_ends", "largest_algebraic")
    if largest is not None:
        return largest
    values = _get(record, "sharpness", loss, "top_eigenvalue", "eigenvalues")
    return values[0] if values else None
