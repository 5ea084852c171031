"""Resumable evaluation: the partial state of ``evaluate``, one file per finished unit of work.

A unit is one batch of points under one attack (or the batch's clean pass). When a unit
finishes, its result (the per-sample flags, the attack's seconds, its audit counters, the
ensemble breakdown and, with ``save_examples``, the fooled points' adversarial inputs) is written
to ``STATE_DIR/b{batch:06d}-{key}.safetensors`` atomically (a temporary file, fsync, rename), so a
killed process leaves only whole units behind. ``state.json`` holds a fingerprint of everything
the results depend on (model weights, data, attack settings, batch size, order, seed, fast
paths); resuming with anything different is refused, naming the difference.

Resuming reuses every stored unit and computes the rest. Each unit is a pure function of the
fingerprint and its own batch: the attacks draw from private generators seeded per call, and
the protocol seeds torch's global RNG per unit (for randomised models), so a resumed run gives
the record and the per-sample verdicts of an uninterrupted one (only ``seconds`` can differ:
they add up the units' own times).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rlrobust.attacks.audit import AuditAccumulator
from rlrobust.errors import ConfigError, RunDirectoryError
from rlrobust.files import atomic_write_bytes

STATE_FORMAT = "rlrobust-evaluation-state/1"
AUDIT_COUNTERS = (
    "max_perturbation",
    "min_value",
    "max_value",
    "nan_count",
    "outside_ball",
    "checked",
    "nonfinite_outputs",
)


@dataclass
class UnitResult:
    """What one (batch, attack) unit contributes to the record; see the module docstring."""

    flags: Tensor  # bool (B,): clean-correct (clean unit) or robust after this attack
    seconds: float = 0.0
    audit: dict | None = None
    breakdown: dict | None = None
    fooled: Tensor | None = None  # int64: positions in the batch that this attack fooled
    x_adv: Tensor | None = None  # float32: their adversarial inputs (when saving examples)


def audit_counters(accumulator: AuditAccumulator) -> dict:
    return {key: getattr(accumulator, key) for key in AUDIT_COUNTERS}


def merge_audit(total: AuditAccumulator, counters: dict) -> None:
    """Add one unit's audit counters into ``total`` (worst cases and counts)."""
    total.max_perturbation = max(total.max_perturbation, counters["max_perturbation"])
    total.min_value = min(total.min_value, counters["min_value"])
    total.max_value = max(total.max_value, counters["max_value"])
    for key in ("nan_count", "outside_ball", "checked", "nonfinite_outputs"):
        setattr(total, key, getattr(total, key) + int(counters.get(key, 0)))


def tensor_digest(tensors: list[tuple[str, Tensor]]) -> str:
    """sha256 over names, dtypes, shapes and bytes: the identity of weights or data."""
    digest = hashlib.sha256()
    for name, tensor in tensors:
        flat = tensor.detach().cpu().contiguous().flatten()
        digest.update(f"{name}:{flat.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def unit_seed(seed: int, start: int, key: str) -> int:
    """A seed for torch's global RNG per unit (randomised models): same unit, same draws."""
    text = f"{seed}/{start}/{key}".encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") >> 1


def _encode(result: UnitResult) -> bytes:
    from safetensors.torch import save

    tensors = {"flags": result.flags.to(torch.uint8).cpu().contiguous()}
    if result.fooled is not None:
        tensors["fooled"] = result.fooled.long().cpu().contiguous()
    if result.x_adv is not None:
        tensors["x_adv"] = result.x_adv.float().cpu().contiguous()
    metadata = {
        "seconds": json.dumps(result.seconds),
        "audit": json.dumps(result.audit),
        "breakdown": json.dumps(result.breakdown),
    }
    return save(tensors, metadata=metadata)


def _decode(path: Path) -> UnitResult:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    return UnitResult(
        flags=tensors["flags"].bool(),
        seconds=json.loads(metadata["seconds"]),
        audit=json.loads(metadata["audit"]),
        breakdown=json.loads(metadata["breakdown"]),
        fooled=tensors.get("fooled"),
        x_adv=tensors.get("x_adv"),
    )


class EvaluationState:
    """The folder of finished units of one evaluation.

    ``resume=False`` needs an empty (or absent) folder, so an earlier interrupted evaluation is
    never silently thrown away; ``resume=True`` continues the one stored there (or starts one).
    ``batch_size`` is the batch size the stored units used (smaller than requested after an
    out-of-memory back-off).
    """

    def __init__(self, directory: str | Path, fingerprint: dict[str, Any], *, resume: bool) -> None:
        self.directory = Path(directory)
        self.fingerprint = fingerprint
        header = self.directory / "state.json"
        if header.exists():
            if not resume:
                raise RunDirectoryError(
                    f"{self.directory} holds an interrupted evaluation; continue it with "
                    "resume=True (`rlrobust evaluate RUN --resume`), or delete the folder to "
                    "start afresh"
                )
            stored = json.loads(header.read_text())
            self._check_same(stored)
            self.batch_size = int(stored["batch_size"])
        else:
            self.batch_size = int(fingerprint["requested_batch_size"])
            self._write_header()

    def _check_same(self, stored: dict) -> None:
        if stored.get("format") != STATE_FORMAT:
            raise RunDirectoryError(
                f"{self.directory}/state.json is not an evaluation state of this version; "
                "delete the folder to start afresh"
            )
        different = sorted(
            key
            for key in set(stored["fingerprint"]) | set(self.fingerprint)
            if stored["fingerprint"].get(key) != self.fingerprint.get(key)
        )
        if different:
            raise ConfigError(
                f"cannot resume the evaluation in {self.directory}: {', '.join(different)} "
                "changed since it started; resume with the same model, data and eval settings, "
                "or delete the folder to start afresh"
            )

    def _write_header(self) -> None:
        header = {
            "format": STATE_FORMAT,
            "batch_size": self.batch_size,
            "fingerprint": self.fingerprint,
        }
        atomic_write_bytes(self.directory / "state.json", json.dumps(header, indent=1).encode())

    def _path(self, batch: int, key: str) -> Path:
        return self.directory / f"b{batch:06d}-{key}.safetensors"

    def load(self, batch: int, key: str) -> UnitResult | None:
        path = self._path(batch, key)
        if not path.is_file():
            return None
        return _decode(path)

    def save(self, batch: int, key: str, result: UnitResult) -> None:
        atomic_write_bytes(self._path(batch, key), _encode(result))

    def restart(self, batch_size: int) -> None:
        """Drop every unit (they used the old batch size) and record the new batch size."""
        for path in self.directory.glob("b*.safetensors"):
            path.unlink()
        self.batch_size = int(batch_size)
        self._write_header()

    def finish(self) -> None:
        """The evaluation is complete and returned: the partial state is no longer needed."""
        shutil.rmtree(self.directory, ignore_errors=True)
