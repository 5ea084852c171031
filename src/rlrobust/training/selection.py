"""Gupta's checkpoint selection: keep weights every K epochs and pick the best FGSM one.

Gupta (seed 002, "Experiments"): "We initially made checkpoints of our model at intervals of 20
epochs and report training, testing, and adversarial accuracy (on test data) at those intervals.
We picked the checkpoint at which the respective method performed best on adversarial images
generated using test data" (RL: epoch 220, CE: epoch 60; their Fig. 3 and 6 plot these records).

With ``train.checkpoint_every = K`` every epoch that is a multiple of K measures, after its
update, clean and FGSM (Linf, ``train.select_eps``, no random start) accuracy on the test split,
or its first ``train.select_examples`` images, writes them to metrics.csv
(``select_clean_accuracy``, ``select_fgsm_accuracy``) and keeps the weights as
``RUN/select/model-epochNNNN.safetensors``. With ``train.select_checkpoint = "best_fgsm_test"``
the finished run's ``model.safetensors`` holds the kept weights with the highest FGSM accuracy
(the earliest on a tie), the last weights stay in ``model-last.safetensors``, and
``selection.json`` (also in state.json under ``selection``) says which epoch and why.

This selection uses the TEST split, as the paper did. Numbers measured afterwards on the same
test images are therefore optimistic: the checkpoint was chosen for doing well on them. Report
them as Gupta's protocol, or select on a validation split for an unbiased estimate.

The measurement runs after the epoch's training and draws no random numbers (FGSM without a
random start, eval mode, parameters restored), and every epoch reseeds from (seed, epoch), so a
run with selection trains exactly as one without it, and a resumed run equals an uninterrupted
one bit for bit (tests/test_training.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from rlrobust.attacks.fgsm import FGSM
from rlrobust.config import TrainConfig
from rlrobust.data import ImageData, iterate_batches
from rlrobust.files import atomic_write_bytes, atomic_write_json
from rlrobust.weights import save_weights

SELECT_DIR = "select"
SELECTION_FILE = "selection.json"
LAST_MODEL_FILE = "model-last.safetensors"
FGSM_COLUMN = "select_fgsm_accuracy"
CLEAN_COLUMN = "select_clean_accuracy"


def is_selection_epoch(train: TrainConfig, finished_epoch: int) -> bool:
    """Whether 1-based ``finished_epoch`` is one of the kept checkpoints (a multiple of K)."""
    every = train.checkpoint_every
    return every is not None and finished_epoch % every == 0


def selection_images(train: TrainConfig, test: ImageData) -> ImageData:
    """The test images the checkpoints are measured on: the first ``select_examples`` (fixed,
    so every checkpoint of the run sees the same images) or all of them."""
    n = train.select_examples
    return test if n is None or n >= len(test) else test.subset(range(n))


def fgsm_accuracy(
    model: torch.nn.Module,
    data: ImageData,
    eps: float,
    batch_size: int,
    device: str | torch.device,
) -> tuple[float, float]:
    """(clean accuracy, FGSM accuracy) of ``model`` on ``data``; FGSM is Linf with step eps and
    no random start (Goodfellow et al.), the attack Gupta selects with. A point counts as robust
    when the prediction on its FGSM image is the label (a clean mistake counts as not robust)."""
    attack = FGSM(eps=eps)
    was_training = model.training
    clean_correct = robust_correct = 0
    try:
        model.eval()
        for x, y in iterate_batches(data, batch_size, device):
            with torch.no_grad():
                clean = model(x).argmax(dim=1) == y
            x_adv = attack(model, x, y)
            with torch.no_grad():
                robust = model(x_adv).argmax(dim=1) == y
            clean_correct += int(clean.sum())
            robust_correct += int((robust & clean).sum())
    finally:
        model.train(was_training)
    n = max(len(data), 1)
    return clean_correct / n, robust_correct / n


def checkpoint_file(finished_epoch: int) -> str:
    return f"{SELECT_DIR}/model-epoch{finished_epoch:04d}.safetensors"


def record_checkpoint(
    model: torch.nn.Module,
    train: TrainConfig,
    test: ImageData,
    batch_size: int,
    device: str | torch.device,
    finished_epoch: int,
    run_dir: Path | None,
) -> dict[str, float]:
    """Measure the model after ``finished_epoch``; keep its weights when ``run_dir`` is given
    (rank 0). Returns the metrics.csv columns."""
    clean, robust = fgsm_accuracy(
        model, selection_images(train, test), train.select_eps, batch_size, device
    )
    if run_dir is not None:
        save_weights(model, run_dir / checkpoint_file(finished_epoch))
    return {CLEAN_COLUMN: clean, FGSM_COLUMN: robust}


def choose(metrics: list[dict[str, Any]], train: TrainConfig) -> dict[str, Any]:
    """The selection record for a finished run whose epochs are ``metrics`` (metrics.csv rows).

    ``best_fgsm_test``: the kept epoch with the highest ``select_fgsm_accuracy`` (the earliest on
    a tie); with no kept epoch (e.g. an early stop before the first), the last weights.
    """
    last = int(metrics[-1]["epoch"])
    candidates = [
        {"epoch": int(row["epoch"]), "fgsm_accuracy": float(row[FGSM_COLUMN])}
        for row in metrics
        if row.get(FGSM_COLUMN) not in (None, "")
    ]
    record: dict[str, Any] = {
        "rule": train.select_checkpoint,
        "checkpoint_every": train.checkpoint_every,
        "eps": train.select_eps,
        "attack": "fgsm (linf, no random start)",
        "split": "test",
        "examples": train.select_examples,
        "candidates": candidates,
        "last_epoch": last,
        "last_file": "model.safetensors",
        "optimistic": False,
    }
    if train.select_checkpoint != "best_fgsm_test":
        return {**record, "selected_epoch": last, "reason": "select_checkpoint = last"}
    if not candidates:
        return {
            **record,
            "selected_epoch": last,
            "reason": "no checkpoint was kept before the run ended; the last weights are used",
        }
    best = candidates[0]
    for candidate in candidates[1:]:
        if candidate["fgsm_accuracy"] > best["fgsm_accuracy"]:
            best = candidate
    return {
        **record,
        "selected_epoch": best["epoch"],
        "selected_file": checkpoint_file(best["epoch"]),
        "selected_fgsm_accuracy": best["fgsm_accuracy"],
        "last_file": LAST_MODEL_FILE,
        "optimistic": True,
        "reason": (
            f"highest FGSM accuracy (eps {train.select_eps:.6g}) on the TEST split among epochs "
            f"{', '.join(str(c['epoch']) for c in candidates)}, as Gupta selected; test "
            "numbers of this model are optimistic because it was chosen on them"
        ),
    }


def prepare_final(run_dir: Path, model: torch.nn.Module, record: dict[str, Any]) -> None:
    """Before the final checkpoint is committed: keep the last weights under their own name and
    write selection.json, so that a committed finished state never lacks them."""
    if record.get("selected_file") is not None:
        save_weights(model, run_dir / LAST_MODEL_FILE)
    atomic_write_json(run_dir / SELECTION_FILE, record)


def install_selected(run_dir: Path, record: dict[str, Any]) -> None:
    """After the final checkpoint (which wrote the last weights to model.safetensors): put the
    selected weights there (written to a temporary name, then renamed)."""
    selected = record.get("selected_file")
    if selected is None:
        return
    atomic_write_bytes(run_dir / "model.safetensors", (run_dir / selected).read_bytes())


def plot_selection(run_dir: str | Path, path: str | Path | None = None) -> Path:
    """Clean and FGSM test accuracy of the kept checkpoints against the epoch (Gupta Fig. 3 and
    6), with the selected epoch marked; drawn from RUN/metrics.csv (and selection.json)."""
    import csv
    import io
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rlrobust.errors import RunDirectoryError

    run_dir = Path(run_dir)
    metrics_file = run_dir / "metrics.csv"
    if not metrics_file.is_file():
        raise RunDirectoryError(f"{run_dir} has no metrics.csv; pass a run directory")
    with open(metrics_file, newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get(FGSM_COLUMN)]
    if not rows:
        raise RunDirectoryError(
            f"{run_dir} has no checkpoint records ({FGSM_COLUMN}); train with "
            "--train.checkpoint_every K"
        )
    epochs = [int(row["epoch"]) for row in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, [float(r[CLEAN_COLUMN]) for r in rows], marker="o", label="clean (test)")
    ax.plot(epochs, [float(r[FGSM_COLUMN]) for r in rows], marker="s", label="FGSM (test)")
    selection_file = run_dir / SELECTION_FILE
    if selection_file.is_file():
        selected = json.loads(selection_file.read_text()).get("selected_epoch")
        if selected in epochs:
            ax.axvline(selected, color="k", ls="--", lw=0.8, label=f"selected: epoch {selected}")
    ax.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1))
    ax.set_title("checkpoints on the test split (selection on test data: optimistic)")
    ax.grid(alpha=0.3)
    ax.legend()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(Path(path or run_dir / "selection.png"), buffer.getvalue())
