"""Checkpoints: weights and optimiser tensors in safetensors, everything else in JSON.

Nothing is ever unpickled. A checkpoint is committed by writing ``state.json`` last: it names the
weight files of the newest complete epoch, so a crash mid-write leaves the previous epoch intact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save

from rlrobust.errors import CheckpointError
from rlrobust.files import atomic_write_bytes, atomic_write_json
from rlrobust.runs import STATE_FILE, read_state
from rlrobust.weights import load_weights, read_safetensors, save_weights

__all__ = [
    "STATE_FILE",
    "load_checkpoint",
    "load_weights",
    "optimizer_from_files",
    "optimizer_to_files",
    "read_state",
    "save_checkpoint",
    "save_weights",
]


def optimizer_to_files(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimiser state dict into tensors (for safetensors) and JSON values."""
    state_dict = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entry in state_dict["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"{index}/{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def optimizer_from_files(optimizer: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, tensor in tensors.items():
        index, key = name.split("/", 1)
        state.setdefault(int(index), {})[key] = tensor
    for index, entry in meta["scalars"].items():
        state.setdefault(int(index), {}).update(entry)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(run_dir: Path, model, optimizer, step, state: dict) -> None:
    """Write epoch ``state['epoch']``'s files, then commit them by rewriting state.json.

    ``step`` is the training step (``steps.py``); its own state (e.g. L2L's attacker) is saved too.
    """
    ckpt = run_dir / "checkpoints"
    tag = f"epoch{state['epoch']:04d}"
    save_weights(model, ckpt / f"model-{tag}.safetensors")
    tensors, meta = optimizer_to_files(optimizer)
    atomic_write_bytes(ckpt / f"optimizer-{tag}.safetensors", save(tensors))
    step_tensors, step_meta = step.checkpoint_state()
    atomic_write_bytes(ckpt / f"step-{tag}.safetensors", save(step_tensors))
    record = dict(
        state,
        model_file=f"checkpoints/model-{tag}.safetensors",
        optimizer_file=f"checkpoints/optimizer-{tag}.safetensors",
        optimizer_meta=meta,
        step_file=f"checkpoints/step-{tag}.safetensors",
        step_meta=step_meta,
    )
    atomic_write_json(run_dir / STATE_FILE, record)
    # The newest epoch is committed; older epoch files are no longer needed.
    for old in ckpt.glob("*.safetensors"):
        if tag not in old.name:
            old.unlink(missing_ok=True)
    # A stable name for users and for `rlrobust evaluate`.
    save_weights(model, run_dir / "model.safetensors")


def load_checkpoint(run_dir: Path, model, optimizer, step) -> dict:
    state = read_state(run_dir)
    if state is None:
        raise CheckpointError(f"{run_dir} holds no checkpoint to resume; start without --resume")
    load_weights(model, run_dir / state["model_file"])
    step.restore_checkpoint_state(
        read_safetensors(run_dir / state["step_file"]), state["step_meta"]
    )
    optimizer_from_files(
        optimizer, read_safetensors(run_dir / state["optimizer_file"]), state["optimizer_meta"]
    )
    return state
