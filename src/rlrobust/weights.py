"""Model weights as safetensors files: save, and load with a clear error on any mismatch.

Nothing is ever unpickled (DESIGN: security). Training's checkpoints, evaluation, transfer
surrogates, RLAB and the user's own ``--weights`` all read and write weights through here.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from rlrobust.devices import plain_module, plain_state_dict
from rlrobust.errors import CheckpointError
from rlrobust.files import atomic_write_bytes


def save_weights(
    model: torch.nn.Module, path: str | Path, metadata: dict[str, str] | None = None
) -> Path:
    # A torch.compile wrapper's keys carry an "_orig_mod." prefix: save the plain module's names,
    # so the file loads into an uncompiled model. contiguous() also undoes channels_last.
    tensors = {name: t.detach().cpu().contiguous() for name, t in plain_state_dict(model).items()}
    return atomic_write_bytes(path, save(tensors, metadata=metadata))


def load_weights(model: torch.nn.Module, path: str | Path) -> torch.nn.Module:
    """Load safetensors weights into ``model``; any mismatch is an error that lists the keys."""
    tensors = read_safetensors(Path(path))
    plain = plain_module(model)  # the module itself under a torch.compile wrapper
    expected = plain.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong_shape = sorted(
        f"{k} {tuple(tensors[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in tensors and tensors[k].shape != v.shape
    )
    if missing or unexpected or wrong_shape:
        raise CheckpointError(
            f"checkpoint {path} does not match the model: missing {missing[:5]}, unexpected "
            f"{unexpected[:5]}, wrong shapes {wrong_shape[:5]}; build the model with the same name, "
            "number of classes and input shape as the run that saved it (see its config.json)"
        )
    plain.load_state_dict(tensors)
    return model


#: the first bytes of the formats people hand in by mistake: torch.save's zip archive and a
#: raw pickle stream (protocol 2 and later start with 0x80).
PICKLE_MAGIC = (b"PK\x03\x04", b"\x80")


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file; a pickle or torch.save file is refused unopened."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {path} does not exist; check the run directory")
    with open(path, "rb") as handle:
        head = handle.read(9)
    # a safetensors file is its 8-byte header length, then "{": a header length whose low byte
    # is 0x80 (128, 384, 1152 ...) must not pass for a pickle stream
    if head.startswith(PICKLE_MAGIC) and head[8:9] != b"{":
        raise CheckpointError(
            f"{path} is a pickle / torch.save file, not safetensors; rlrobust never unpickles "
            "files it is handed (they can run code). Convert it yourself, in an environment you "
            "trust: safetensors.torch.save_file(torch.load(PATH, weights_only=True), "
            "'model.safetensors')"
        )
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(
            f"checkpoint file {path} is not a readable safetensors file ({error}); it may be "
            "truncated: resume from an earlier run or retrain"
        ) from None
