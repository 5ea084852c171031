"""Reading a run directory: its config, its model with the trained weights, its data splits.

Evaluate, transfer, the L2L attack, RLAB, diagnose, sweeps, reproduce and reports all need
"the config, the model and the data of this run"; this module is the one place that knows how.
It sits below attacks, evaluation and training (which all import it) and imports none of them.

A run directory (written by ``rlrobust train``)::

    RUN/config.json        the resolved config
    RUN/state.json         the committed checkpoint (epoch, stage, finished flag, file names)
    RUN/model.safetensors  the newest weights under a stable name
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from rlrobust.config import DataConfig, ModelConfig, RunConfig, from_dict
from rlrobust.data import ImageData, load_dataset, split_validation
from rlrobust.devices import resolve_device
from rlrobust.errors import CheckpointError, RunDirectoryError
from rlrobust.models import build_model
from rlrobust.weights import load_weights

CONFIG_FILE = "config.json"
STATE_FILE = "state.json"
WEIGHTS_FILE = "model.safetensors"
#: what a run writes before its first committed checkpoint: a run killed then (or hit by a full
#: disk in epoch 1) holds only these, and can be restarted from scratch without losing anything.
PRE_CHECKPOINT_FILES = {CONFIG_FILE, "metrics.csv", "checkpoints", "tensorboard"}


# --------------------------------------------------------------------------- the files


def require_run_dir(run_dir: str | os.PathLike, what: str = "a run directory") -> Path:
    """``run_dir`` as a Path, or a clear error when it holds no ``config.json``."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_FILE).is_file():
        raise RunDirectoryError(
            f"{run_dir} is not {what} (no {CONFIG_FILE}); give the output directory (--out) of "
            "`rlrobust train`"
        )
    return run_dir


def saved_config(run_dir: str | os.PathLike) -> RunConfig:
    """The resolved config a run was trained with (its ``config.json``)."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise RunDirectoryError(
            f"{run_dir} is not a run directory (no {CONFIG_FILE}); give the output directory "
            "(--out) of `rlrobust train`"
        )
    try:
        values = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RunDirectoryError(
            f"{path} is damaged ({error}); restore it from a copy, or start a new run directory"
        ) from None
    if not isinstance(values, dict):
        raise RunDirectoryError(
            f"{path} does not hold a config object; restore it, or start a new run directory"
        )
    return from_dict(RunConfig, values)


def read_state(run_dir: str | os.PathLike) -> dict | None:
    """The committed checkpoint record (``state.json``), or None before the first checkpoint."""
    path = Path(run_dir) / STATE_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        raise CheckpointError(
            f"{path} is not valid JSON; the run directory is damaged: start a new run directory"
        ) from None


def never_checkpointed(run_dir: str | os.PathLike) -> bool:
    """True for a folder that holds only what a run writes before its first checkpoint (and
    the temporary files of interrupted writes): nothing in it would be lost by a restart."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir() or (run_dir / STATE_FILE).exists():
        return False
    names = {p.name for p in run_dir.iterdir() if not p.name.endswith(".tmp")}
    return bool(names) and names <= PRE_CHECKPOINT_FILES


def clear_pre_checkpoint(run_dir: str | os.PathLike) -> None:
    """Empty a folder of a run that never checkpointed (see ``never_checkpointed``); anything
    else in it is an error, so no user file is ever deleted."""
    run_dir = Path(run_dir)
    names = {p.name for p in run_dir.iterdir() if not p.name.endswith(".tmp")}
    if names - PRE_CHECKPOINT_FILES:
        raise RunDirectoryError(
            f"{run_dir} holds files that are no run "
            f"({', '.join(sorted(names - PRE_CHECKPOINT_FILES))}); move them away or choose "
            "another output directory"
        )
    for path in run_dir.iterdir():
        shutil.rmtree(path) if path.is_dir() else path.unlink()


# --------------------------------------------------------------------------- data and model


@dataclass
class Splits:
    train: ImageData
    validation: ImageData | None
    test: ImageData

    @property
    def heldout(self) -> ImageData:
        """The split that drives the two-stage switch: validation if held out, else test (as Kim)."""
        return self.validation if self.validation is not None else self.test

    @property
    def heldout_name(self) -> str:
        return "validation" if self.validation is not None else "test"


def load_splits(cfg: DataConfig, seed: int) -> Splits:
    """Train, optional validation and test splits as the data section describes them."""
    where = {"data_dir": cfg.data_dir, "download": cfg.download, **cfg.options}
    train = load_dataset(cfg.name, "train", **where)
    test = load_dataset(cfg.name, "test", **where)
    validation = None
    if cfg.validation_fraction > 0:
        train, validation = split_validation(train, cfg.validation_fraction, seed)
    if cfg.train_subset is not None:
        train = train.take(cfg.train_subset, seed)
    if cfg.test_subset is not None:
        test = test.take(cfg.test_subset, seed)
    return Splits(train, validation, test)


def load_split(cfg: RunConfig, split: str) -> ImageData:
    """One whole split ("train" or "test") of the run's data set, before any subset."""
    data = cfg.data
    return load_dataset(
        data.name, split, data_dir=data.data_dir, download=data.download, **data.options
    )


def load_test_split(cfg: RunConfig) -> ImageData:
    """The test images an evaluation of ``cfg`` uses: data.test_subset, then eval.n_examples."""
    test = load_split(cfg, "test")
    if cfg.data.test_subset is not None:  # the same subset as training's held-out split
        test = test.take(cfg.data.test_subset, cfg.train.seed)
    if cfg.eval.n_examples is not None:
        test = test.take(min(cfg.eval.n_examples, len(test)), cfg.eval.seed)
    return test


def model_for(cfg: ModelConfig, data: ImageData) -> nn.Module:
    """An untrained model of ``cfg`` shaped for ``data`` (classes, channels, size, mean/std)."""
    if len(data.shape) != 3:  # signals (C, L) and clips (C, T, H, W): the models take the shape
        return build_model(
            cfg.name,
            num_classes=data.num_classes,
            input_shape=data.shape,
            mean=data.mean,
            std=data.std,
            **cfg.options,
        )
    channels, height, _ = data.shape
    return build_model(
        cfg.name,
        num_classes=data.num_classes,
        in_channels=channels,
        image_size=height,
        mean=data.mean,
        std=data.std,
        **cfg.options,
    )


def model_from_config(cfg: RunConfig) -> nn.Module:
    """An untrained model as the run config ``cfg`` describes it.

    The number of classes, the input shape and the normalisation statistics come from the test
    split of the configured data set (the smaller split; its metadata equals the train split's).
    """
    return model_for(cfg.model, load_split(cfg, "test"))


# --------------------------------------------------------------------------- a whole run


def load_run_model(
    run_dir: str | os.PathLike, device: str | torch.device = "cpu", what: str = "a run directory"
) -> nn.Module:
    """The trained model of a run directory written by ``rlrobust train``, in eval mode.

    The architecture comes from the run's ``config.json`` (model name and options; number of
    classes, input shape and normalisation from the data set it names), the weights from
    ``model.safetensors``.
    """
    return load_run(run_dir, device=device, what=what).model


@dataclass
class LoadedRun:
    """What a command needs from a run directory: its config, trained model and test images."""

    directory: Path
    config: RunConfig
    model: nn.Module
    test: ImageData
    device: torch.device


def load_run(
    run_dir: str | os.PathLike,
    cfg: RunConfig | None = None,
    device: str | torch.device | None = None,
    what: str = "a run directory",
) -> LoadedRun:
    """The run's config (or ``cfg``, the saved config with a caller's overrides), its trained
    model on ``device`` (default: the config's ``train.device``) and its evaluation test split.
    ``what`` names the folder in the error for one that is no run (e.g. a transfer surrogate)."""
    run_dir = require_run_dir(run_dir, what)
    cfg = saved_config(run_dir) if cfg is None else cfg
    test = load_test_split(cfg)
    weights = run_dir / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(
            f"{run_dir} holds no {WEIGHTS_FILE}; let `rlrobust train` finish at least one "
            "epoch (or resume it with --resume) before using it"
        )
    model = load_weights(model_for(cfg.model, test), weights)
    device = resolve_device(cfg.train.device) if device is None else torch.device(device)
    return LoadedRun(run_dir, cfg, model.to(device).eval(), test, device)
