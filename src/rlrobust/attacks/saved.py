"""Saved adversarial examples: the file format, and the ``saved`` attack that replays them.

The evaluation protocol writes, with ``save_examples``, one safetensors file per attack (the
adversarial inputs of the points it fooled) and ``worst-case.safetensors`` (per point, the
example of the first attack in the list that fooled it). Each file holds

- ``x_adv`` (N, ...) float32: the adversarial inputs, in [0, 1];
- ``x`` (N, ...) float32: the clean inputs they were made from;
- ``y`` (N,) int64: the labels; ``index`` (N,) int64: the points' positions in the evaluated
  test data; ``attack_id`` (N,) int64 (worst case only): which attack of ``attacks`` made it;
- metadata (JSON strings): ``format``, ``kind`` (``"attack"`` or ``"worst-case"``), ``label``,
  ``attacks`` (labels), ``attack`` (the settings of the attack that made them), ``eps``, ``norm``,
  ``n_examples`` (points evaluated), ``data`` (name of the data set).

Storing the clean ``x`` makes a file self-contained: another tool can check the eps-ball and
classify the examples without our data loaders, and the ``saved`` attack finds the examples of
a batch by the exact content of its clean points, so any subset or order of the test data
works.

``SavedExamples`` (registered as ``"saved"``) is an attack under the usual contract: for each
point of the batch whose clean image is in the file it returns the stored ``x_adv``; other
points come back unchanged (as AutoAttack returns robust points). It never projects or clamps:
a file whose examples leave the eps-ball or [0, 1] is replayed as it is, so the protocol's
constraint audit catches it. ``audit_examples`` checks a file without any model.

Example::

    attack = SavedExamples("runs/ce/evaluation-examples/worst-case.safetensors")
    record = evaluate(other_model, test_data, [attack])   # transfer the examples
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rlrobust.attacks.base import Attack, check_labels, check_norm
from rlrobust.errors import ConfigError, DataError
from rlrobust.files import atomic_write_bytes

FORMAT = "rlrobust-adversarial-examples/1"
TENSORS = ("x_adv", "x", "y", "index")


@dataclass
class ExampleSet:
    """Adversarial examples with their clean points; see the module docstring for the fields."""

    x_adv: Tensor
    x: Tensor
    y: Tensor
    index: Tensor
    eps: float
    norm: str
    label: str = "saved"
    kind: str = "attack"
    attack_id: Tensor | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.x_adv)


def save_examples(path: str | Path, examples: ExampleSet) -> Path:
    """Write ``examples`` as safetensors, atomically (a temporary file, fsync, a rename)."""
    from safetensors.torch import save

    tensors = {
        "x_adv": examples.x_adv.detach().float().cpu().contiguous(),
        "x": examples.x.detach().float().cpu().contiguous(),
        "y": examples.y.detach().long().cpu().contiguous(),
        "index": examples.index.detach().long().cpu().contiguous(),
    }
    if examples.attack_id is not None:
        tensors["attack_id"] = examples.attack_id.detach().long().cpu().contiguous()
    metadata = {
        "format": FORMAT,
        "kind": examples.kind,
        "label": examples.label,
        "eps": json.dumps(examples.eps),
        "norm": examples.norm,
        **{key: json.dumps(value) for key, value in examples.meta.items()},
    }
    path = Path(path)
    atomic_write_bytes(path, save(tensors, metadata=metadata))  # a crash leaves no half file
    return path


def load_examples(path: str | Path) -> ExampleSet:
    """Read a file written by ``save_examples`` (safetensors only: nothing is unpickled)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"no saved examples at {path}; evaluate with --eval.save_examples (or "
            "save_examples=DIR) to write them"
        )
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except Exception as error:  # safetensors raises its own error types for a corrupt header
        raise DataError(f"{path} is not a readable safetensors file ({error})") from error
    if metadata.get("format") != FORMAT or not set(TENSORS) <= set(tensors):
        raise DataError(
            f"{path} is not a file of saved adversarial examples (format {FORMAT!r} with tensors "
            f"{', '.join(TENSORS)}); write one with rlrobust.attacks.saved.save_examples"
        )
    n = len(tensors["x_adv"])
    if (
        any(len(tensors[key]) != n for key in TENSORS)
        or tensors["x"].shape != tensors["x_adv"].shape
    ):
        raise DataError(f"{path}: x_adv, x, y and index must have one row per example")
    known = {"format", "kind", "label", "eps", "norm"}
    return ExampleSet(
        x_adv=tensors["x_adv"],
        x=tensors["x"],
        y=tensors["y"],
        index=tensors["index"],
        eps=float(json.loads(metadata["eps"])),
        norm=metadata["norm"],
        label=metadata.get("label", path.stem),
        kind=metadata.get("kind", "attack"),
        attack_id=tensors.get("attack_id"),
        meta={k: json.loads(v) for k, v in metadata.items() if k not in known},
    )


def audit_examples(
    examples: ExampleSet | str | Path, eps: float | None = None, norm: str | None = None
) -> dict:
    """The protocol's constraint audit of a saved set against ``eps`` (default: the file's).

    Checks every example against its own clean point: inside the ``norm`` ball of radius
    ``eps`` (1e-5 float tolerance), inside [0, 1], no NaN. Returns the audit dict of the
    evaluation record (``passed``, ``problems``, ``max_perturbation``, ...).
    """
    from rlrobust.attacks.audit import AuditAccumulator

    if not isinstance(examples, ExampleSet):
        examples = load_examples(examples)
    accumulator = AuditAccumulator(
        float(examples.eps if eps is None else eps), check_norm(norm or examples.norm)
    )
    accumulator.add(examples.x_adv, examples.x)
    return accumulator.result()


def _row_keys(x: Tensor) -> list[bytes]:
    """The exact float32 bytes of each clean point: the key that finds its example."""
    rows = x.detach().float().cpu().contiguous().flatten(1).numpy()
    return [row.tobytes() for row in rows]


class SavedExamples(Attack):
    """Replay saved adversarial examples on any model; see the module docstring.

    Args:
        path: a file written by ``save_examples`` (or the protocol's ``save_examples``).
        examples: an ``ExampleSet`` in memory, instead of ``path``.
        eps, norm: the threat model the replay is audited against (default: the file's, i.e.
            the attack's that made the examples). The examples are never projected.
        seed: unused (the replay has no randomness); kept for the attack contract.
    """

    name = "saved"

    def __init__(
        self,
        path: str | Path | None = None,
        examples: ExampleSet | None = None,
        eps: float | None = None,
        norm: str | None = None,
        seed: int = 0,
    ) -> None:
        if (path is None) == (examples is None):
            raise ConfigError(
                "the saved attack needs exactly one of path (a .safetensors file written with "
                "save_examples) or examples (an ExampleSet)"
            )
        self.path = None if path is None else str(path)
        self.examples = load_examples(path) if examples is None else examples
        super().__init__(
            eps=self.examples.eps if eps is None else eps,
            norm=norm or self.examples.norm,
            seed=seed,
        )
        self._lookup = {key: row for row, key in enumerate(_row_keys(self.examples.x))}
        self.last_matched: Tensor | None = None

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        with torch.no_grad():
            check_labels(model(x), y)  # the same shape and label checks as every attack
        rows = [self._lookup.get(key, -1) for key in _row_keys(x)]
        found = torch.tensor([r >= 0 for r in rows], dtype=torch.bool)
        self.last_matched = found
        if not found.any():
            return x
        stored = torch.tensor([r for r in rows if r >= 0], dtype=torch.int64)
        if not torch.equal(self.examples.y[stored], y[found.to(y.device)].cpu()):
            raise DataError(
                "saved examples match the batch's clean images but not its labels; replay them "
                "on the test data (and labels) they were made from"
            )
        x_adv = x.clone()
        x_adv[found.to(x.device)] = self.examples.x_adv[stored].to(x.device, x.dtype)
        return x_adv

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "path": self.path,
            "label": self.examples.label,
            "kind": self.examples.kind,
            "n_saved": len(self.examples),
            "source": self.examples.meta.get("attack"),
        }
