"""Figures of the diagnostics, made from their JSON records only (DESIGN principle 7).

Every function takes ``records``: a mapping from a model's name to the record that a
diagnostic returned for it (or that was read back from JSON), and writes ONE PNG in which the
models sit side by side (one panel per model) or overlaid (curves), so models are compared on
the same axes and the same bins. Files are written atomically.

| function                 | record from                                    |
| ------------------------ | ---------------------------------------------- |
| plot_gradient_norms      | gradients.gradient_norms / static_indicators   |
| plot_gradient_agreement  | gradient_sign_agreement / gradient_noise_stability / indicators |
| plot_trajectory          | gradients.pgd_trajectory / dynamic_indicators  |
| plot_entropy             | entropy.entropy_record                         |
| plot_landscape_1d        | landscape.weight_landscape_1d                  |
| plot_landscape_2d        | weight_landscape_2d / input_landscape_2d       |
| plot_landscape_3d        | weight_landscape_2d / input_landscape_2d       |

Example::

    plot_trajectory({"CE": ce_record, "Kim": kim_record}, "figures/trajectory.png")
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from rlrobust.errors import RLRobustError  # noqa: E402
from rlrobust.files import atomic_write_bytes  # noqa: E402

Records = Mapping[str, Mapping[str, Any]]
PANEL_SIZE = (4.0, 3.2)


def _save(fig: Any, path: str | Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(Path(path), buffer.getvalue())


def _check_records(records: Records, what: str) -> None:
    if not isinstance(records, Mapping) or not records:
        raise RLRobustError(
            f"{what}: records must be a non-empty mapping {{model name: record}}; pass e.g. "
            "{'CE': record_ce, 'policy': record_policy}"
        )


def _part(record: Mapping[str, Any], keys: Sequence[str], nested: str, what: str, name: str):
    """The sub-record holding ``keys``: the record itself, or record[nested]."""
    if all(k in record for k in keys):
        return record
    inner = record.get(nested)
    if isinstance(inner, Mapping) and all(k in inner for k in keys):
        return inner
    raise RLRobustError(
        f"{what}: the record of {name!r} has no {', '.join(keys)} (nor under {nested!r}); "
        "pass the record the matching diagnostic returned"
    )


def _panels(count: int, projection: str | None = None) -> tuple[Any, list[Any]]:
    fig = plt.figure(figsize=(PANEL_SIZE[0] * count, PANEL_SIZE[1]))
    axes = [
        fig.add_subplot(1, count, i + 1, **({"projection": projection} if projection else {}))
        for i in range(count)
    ]
    return fig, axes


def _shared_bins(arrays: Sequence[np.ndarray], bins: int, log: bool) -> tuple[np.ndarray, bool]:
    values = np.concatenate([a for a in arrays if a.size] or [np.zeros(1)])
    positive = values[values > 0]
    if log and positive.size and positive.min() < positive.max():
        return np.logspace(np.log10(positive.min()), np.log10(positive.max()), bins + 1), True
    low, high = float(values.min()), float(values.max())
    if low == high:
        low, high = low - 0.5, high + 0.5
    return np.linspace(low, high, bins + 1), False


def plot_gradient_norms(
    records: Records, path: str | Path, *, norm: str = "l2", bins: int = 30, log: bool = True
) -> Path:
    """Histograms of per-sample input-gradient norms (``norm``: l1, l2 or linf), one panel per
    model on shared bins (log-spaced when ``log``); zero norms are counted in the title."""
    _check_records(records, "plot_gradient_norms")
    arrays = {
        name: np.asarray(
            _part(record, [norm], "norms", "plot_gradient_norms", name)[norm]["per_sample"],
            dtype=float,
        )
        for name, record in records.items()
    }
    edges, is_log = _shared_bins(list(arrays.values()), bins, log)
    fig, axes = _panels(len(arrays))
    for ax, (name, values) in zip(axes, arrays.items(), strict=True):
        shown = values[values > 0] if is_log else values
        ax.hist(shown, bins=edges, color="tab:blue", alpha=0.8)
        if is_log:
            ax.set_xscale("log")
        zeros = int((values == 0).sum())
        median = float(np.median(values)) if values.size else math.nan
        ax.set(
            title=f"{name}  (median {median:.3g}, {zeros} zero)",
            xlabel=f"||grad_x L||_{norm[1:]}",
            ylabel="samples",
        )
        ax.grid(alpha=0.3)
    fig.suptitle("input-gradient norms at clean points", y=1.03)
    return _save(fig, path)


def plot_gradient_agreement(records: Records, path: str | Path, *, bins: int = 30) -> Path:
    """Histograms of the per-sample cosine between g(x) and g(x') at nearby or noisy points,
    one panel per model (records of gradient_sign_agreement / gradient_noise_stability)."""
    _check_records(records, "plot_gradient_agreement")
    arrays = {}
    for name, record in records.items():
        if "cosine" not in record:
            for nested in ("sign_agreement", "noise_stability"):
                if isinstance(record.get(nested), Mapping) and "cosine" in record[nested]:
                    record = record[nested]
                    break
        part = _part(record, ["cosine"], "sign_agreement", "plot_gradient_agreement", name)
        arrays[name] = np.asarray(part["cosine"]["per_sample"], dtype=float)
    edges = np.linspace(-1.0, 1.0, bins + 1)
    fig, axes = _panels(len(arrays))
    for ax, (name, values) in zip(axes, arrays.items(), strict=True):
        ax.hist(values, bins=edges, color="tab:green", alpha=0.8)
        ax.set(title=f"{name}  (mean {values.mean():.3f})", xlabel="cos(g(x), g(x'))")
        ax.set_ylabel("samples")
        ax.grid(alpha=0.3)
    fig.suptitle("gradient direction at nearby points", y=1.03)
    return _save(fig, path)


def plot_trajectory(records: Records, path: str | Path) -> Path:
    """Left: mean cos(g_k, g_{k-1}) per PGD step; right: mean loss per iterate; one line per
    model (with the interquartile band of the per-sample cosines)."""
    _check_records(records, "plot_trajectory")
    fig, (cos_ax, loss_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for name, record in records.items():
        part = _part(record, ["cosine", "loss"], "trajectory", "plot_trajectory", name)
        cosine = np.asarray(part["cosine"], dtype=float)
        steps = np.arange(1, cosine.size + 1)
        (line,) = cos_ax.plot(steps, cosine, marker="o", ms=3, label=name)
        if part.get("cosine_per_sample"):
            per_sample = np.asarray(part["cosine_per_sample"], dtype=float)
            low, high = np.percentile(per_sample, [25, 75], axis=0)
            cos_ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.15)
        loss = np.asarray(part["loss"], dtype=float)
        loss_ax.plot(np.arange(loss.size), loss, marker="o", ms=3, label=name)
    cos_ax.set(xlabel="PGD step k", ylabel="cos(g_k, g_{k-1})", ylim=(-1.05, 1.05))
    cos_ax.set_title("gradient direction along the attack")
    loss_ax.set(xlabel="PGD iterate k", ylabel="loss", title="attack loss")
    for ax in (cos_ax, loss_ax):
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, path)


def plot_entropy(records: Records, path: str | Path, *, bins: int = 30) -> Path:
    """Predictive entropy histograms, clean vs adversarial, one panel per model; the x axis
    runs from 0 to log C (the uniform prediction)."""
    _check_records(records, "plot_entropy")
    fig, axes = _panels(len(records))
    for ax, (name, record) in zip(axes, records.items(), strict=True):
        record = _part(record, ["clean", "max_entropy"], "entropy", "plot_entropy", name)
        edges = np.linspace(0.0, float(record["max_entropy"]) or 1.0, bins + 1)
        clean = np.asarray(record["clean"]["per_sample"], dtype=float)
        ax.hist(clean, bins=edges, alpha=0.6, label=f"clean (mean {clean.mean():.3f})")
        if record.get("adversarial"):
            adv = np.asarray(record["adversarial"]["per_sample"], dtype=float)
            ax.hist(adv, bins=edges, alpha=0.6, label=f"adversarial (mean {adv.mean():.3f})")
        ax.set(title=name, xlabel="entropy (nats)", ylabel="samples")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("predictive entropy", y=1.03)
    return _save(fig, path)


def plot_landscape_1d(records: Records, path: str | Path, *, relative: bool = False) -> Path:
    """1-D loss curves f(a), one line per model; ``relative`` plots f(a) - f(0)."""
    _check_records(records, "plot_landscape_1d")
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, record in records.items():
        record = _part(record, ["alphas", "loss"], "landscape", "plot_landscape_1d", name)
        loss = np.asarray(record["loss"], dtype=float)
        if loss.ndim != 1:
            raise RLRobustError(
                f"plot_landscape_1d: the record of {name!r} is {loss.ndim}-D; use "
                "plot_landscape_2d or plot_landscape_3d for 2-D landscapes"
            )
        if relative:
            loss = loss - float(record.get("loss_at_origin", loss[loss.size // 2]))
        ax.plot(record["alphas"], loss, marker="o", ms=3, label=name)
    ax.set(xlabel="a (random direction)", ylabel="f(a) - f(0)" if relative else "f(a)")
    ax.set_title("weight-space loss landscape\n" + _directions_label(records))
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def _grid(record: Mapping[str, Any], name: str, what: str) -> tuple[np.ndarray, ...]:
    record = _part(record, ["alphas", "betas", "loss"], "landscape", what, name)
    loss = np.asarray(record["loss"], dtype=float)
    alphas = np.asarray(record["alphas"], dtype=float)
    betas = np.asarray(record["betas"], dtype=float)
    if loss.shape != (alphas.size, betas.size):
        raise RLRobustError(
            f"{what}: the loss grid of {name!r} has shape {loss.shape}, expected "
            f"({alphas.size}, {betas.size}); pass a 2-D landscape record"
        )
    a_grid, b_grid = np.meshgrid(alphas, betas, indexing="ij")
    return a_grid, b_grid, loss


def _axis_labels(record: Mapping[str, Any]) -> tuple[str, str]:
    if record.get("space") == "input":
        return "a (gradient sign)", "b (random sign)"
    return "a (direction 1)", "b (direction 2)"


def _directions_label(records: Records) -> str:
    """Which random directions the weight-space records used (landscape.DIRECTION_LABELS); a
    record written before the option existed used filter-normalised ones."""
    labels = []
    for record in records.values():
        record = record.get("landscape", record) if isinstance(record, Mapping) else record
        if record.get("space") == "input":
            continue
        label = record.get(
            "directions_label", "filter-normalised Gaussian directions (Li et al. 2018)"
        )
        if label not in labels:
            labels.append(label)
    return "; ".join(labels)


def plot_landscape_2d(records: Records, path: str | Path, *, levels: int = 20) -> Path:
    """Contour plots of f(a, b), one panel per model (weight or input landscapes)."""
    _check_records(records, "plot_landscape_2d")
    fig, axes = _panels(len(records))
    for ax, (name, record) in zip(axes, records.items(), strict=True):
        a_grid, b_grid, loss = _grid(record, name, "plot_landscape_2d")
        contour = ax.contourf(a_grid, b_grid, loss, levels=levels, cmap="viridis")
        ax.contour(a_grid, b_grid, loss, levels=levels, colors="k", linewidths=0.3)
        fig.colorbar(contour, ax=ax, shrink=0.85)
        ax.plot([0], [0], "r+", ms=10)
        xlabel, ylabel = _axis_labels(record)
        ax.set(title=name, xlabel=xlabel, ylabel=ylabel)
    directions = _directions_label(records)
    fig.suptitle(
        "loss landscape f(a, b) (red +: the model)" + (f"\n{directions}" if directions else ""),
        y=1.03,
    )
    return _save(fig, path)


def plot_landscape_3d(records: Records, path: str | Path) -> Path:
    """Surface plots of f(a, b), one 3-D panel per model (Kim Fig. 1-2)."""
    _check_records(records, "plot_landscape_3d")
    fig, axes = _panels(len(records), projection="3d")
    for ax, (name, record) in zip(axes, records.items(), strict=True):
        a_grid, b_grid, loss = _grid(record, name, "plot_landscape_3d")
        ax.plot_surface(a_grid, b_grid, loss, cmap="viridis", linewidth=0, antialiased=True)
        xlabel, ylabel = _axis_labels(record)
        ax.set(title=name, xlabel=xlabel, ylabel=ylabel, zlabel="loss")
    directions = _directions_label(records)
    fig.suptitle("loss surface" + (f"\n{directions}" if directions else ""), y=1.03)
    return _save(fig, path)


__all__ = [
    "plot_entropy",
    "plot_gradient_agreement",
    "plot_gradient_norms",
    "plot_landscape_1d",
    "plot_landscape_2d",
    "plot_landscape_3d",
    "plot_trajectory",
]
