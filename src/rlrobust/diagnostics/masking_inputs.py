"""What ``evaluation/suite.py`` hands the masking diagnostics, and what it must not run.

Two jobs, kept here so the suite only calls them:

- ``without_gradient_attacks``: a model with no gradient path (M14) would crash every white-box
  attack with an autograd traceback; the suite then runs only the black-box attacks, and the
  masking verdict says "no usable gradient".
- ``masking_inputs``: the evaluation record's per-sample flags, which labels are white-box and
  one-step, and AutoAttack's per-member breakdown (or why it is missing) for M07, M12 and M13.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from rlrobust.data import ImageData, to_unit_float

# Attacks that see only outputs or craft on another model; everything else is white-box.
BLACK_BOX = frozenset({"square", "transfer"})
ONE_STEP = frozenset({"fgsm"})
ENSEMBLES = frozenset({"autoattack"})
PROBE_POINTS = 8  # points whose input gradient decides "the model has a gradient path"


def spec_name(spec: Any) -> str:
    """An attack spec's registry name: ``spec["name"]`` or the attack object's ``name``."""
    return spec["name"] if isinstance(spec, dict) else getattr(spec, "name", "")


def spec_label(spec: Any) -> str:
    return spec.get("label", spec["name"]) if isinstance(spec, dict) else spec_name(spec)


def without_gradient_attacks(
    model: torch.nn.Module, data: ImageData, specs: Sequence[Any], device: Any
) -> tuple[list[Any], dict[str, Any] | None]:
    """``(specs to run, None)``, or, when the model has no gradient path, ``(black-box specs,
    {"reason", "dropped"})`` naming the white-box attacks that cannot run."""
    from rlrobust.diagnostics.masking import gradient_path_problem

    if len(data) == 0 or all(spec_name(s) in BLACK_BOX for s in specs):
        return list(specs), None
    x = to_unit_float(data.images[:PROBE_POINTS].to(device))
    y = data.labels[:PROBE_POINTS].to(device)
    problem = gradient_path_problem(model, x, y)
    if problem is None:
        return list(specs), None
    kept = [s for s in specs if spec_name(s) in BLACK_BOX]
    dropped = [spec_label(s) for s in specs if spec_name(s) not in BLACK_BOX]
    return kept, {"reason": problem, "dropped": dropped}


def masking_inputs(record: dict) -> dict[str, Any]:
    """``diagnose_masking`` keywords from an evaluation record (``protocol.evaluate``'s)."""
    per_sample = record["per_sample"]
    entries = [e for e in record["attacks"] if e["label"] in per_sample]
    whitebox = [e["label"] for e in entries if e["attack"].get("name") not in BLACK_BOX]
    one_step = [e["label"] for e in entries if e["attack"].get("name") in ONE_STEP]
    attacked = sum(per_sample.get("clean_correct", []))
    ensembles = {}
    for e in entries:
        if e["attack"].get("name") not in ENSEMBLES:
            continue
        reason = None
        if "breakdown" not in e:
            reason = (
                "no point was attacked (no clean-correct point)"
                if attacked == 0
                else "the ensemble returned no per-member breakdown (attacks/autoattack.py: "
                "pyautoattack's batches did not match the recorder's schedule)"
            )
        ensembles[e["label"]] = {
            "breakdown": e.get("breakdown"),
            "n_points": record["n_examples"],
            "reason": reason,
        }
    return {
        "extra_results": {e["label"]: per_sample[e["label"]] for e in entries},
        "whitebox": whitebox,
        "one_step": one_step,
        "ensembles": ensembles,
    }
