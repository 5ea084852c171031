"""The evaluation protocol, AutoAttack-shaped (DESIGN principle 5).

Clean accuracy first; then each attack on the points that are still robust; a per-sample robust
flag for every attack; per-attack and worst-case (all attacks together) accuracy; and a
constraint audit. Batches are streamed, so memory does not grow with the test set.

Two orders are offered. ``cascade=False`` (default) attacks every clean-correct point with every
attack, so each attack has its own accuracy (the FGSM and PGD columns of Kim's tables).
``cascade=True`` attacks only points that survived the previous attacks, as AutoAttack does;
the worst case is the same either way, only the cost and the per-attack columns differ.

Iterative attacks (PGD and momentum PGD) count a point as fooled when *any* of their iterates
fools it, not only the last one (AutoAttack's rule; ``keep_fooling`` in ``attacks/pgd.py``).
With ``early_exit`` (the default) they also stop iterating on points already fooled, which
shrinks the working batch; the per-sample verdicts are the same with and without it
(docs/evaluation.md, "Fast paths").

Fast paths shared with training (``devices.py``, off by default): ``channels_last`` puts
the model and the 4-D batches in channels_last layout; ``amp="bf16"`` runs the attacks' forward
passes under bfloat16 autocast, except AutoAttack's (``float32_only``: no test shows its verdicts
agree under bf16). The clean and final verdict passes always run in float32.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from tqdm.auto import tqdm

from rlrobust.attacks import PGD, build_attack
from rlrobust.attacks.audit import AuditAccumulator
from rlrobust.attacks.saved import ExampleSet
from rlrobust.attacks.saved import save_examples as save_saved_examples
from rlrobust.data import ImageData, to_unit_float
from rlrobust.devices import autocast, batch_to_channels_last, model_to_channels_last
from rlrobust.errors import ConfigError, RLRobustError
from rlrobust.evaluation.memory import halve_batch, is_out_of_memory
from rlrobust.evaluation.resume import (
    EvaluationState,
    UnitResult,
    audit_counters,
    merge_audit,
    tensor_digest,
    unit_seed,
)
from rlrobust.evaluation.shards import in_shard, mark_done

WORST_CASE_FILE = "worst-case.safetensors"


def as_attacks(attacks: Sequence) -> list[tuple[str, object]]:
    """Accept attack objects or ``{"name", "settings", "label"?}`` specs; give each a unique label."""
    built, labels = [], set()
    for spec in attacks:
        if isinstance(spec, dict):
            attack = build_attack(spec["name"], **spec.get("settings", {}))
            label = spec.get("label", spec["name"])
        else:
            attack, label = spec, getattr(spec, "name", type(spec).__name__.lower())
        base, k = label, 2
        while label in labels:
            label, k = f"{base}#{k}", k + 1
        labels.add(label)
        built.append((label, attack))
    return built


def protocol_variant(attack, early_exit: bool):
    """The attack as the protocol runs it: PGD-type attacks keep any fooling iterate.

    A copy, so the caller's attack object is left as it is. ``early_exit`` only decides whether
    fooled points leave the working batch; it cannot change a verdict (``attacks/pgd.py``).
    """
    if isinstance(attack, PGD):
        attack = copy.copy(attack)
        attack.keep_fooling = True
        attack.early_exit = bool(early_exit)
    return attack


def fast_path_options(cfg) -> dict:
    """``evaluate``'s fast-path keywords from a run config (``eval.early_exit``, ``train.*``)."""
    return {
        "early_exit": cfg.eval.early_exit,
        "channels_last": cfg.train.channels_last,
        "amp": cfg.train.amp,
    }


@contextmanager
def _seeded(seed: int, start: int, key: str, device: torch.device) -> Iterator[None]:
    """Seed torch's global RNG for one unit of work; the caller's stream is restored afterwards.

    Attacks draw from private generators, but a randomised model draws its noise from the
    global RNG: seeding it per unit (batch start, attack), not per process, makes every unit
    reproducible, so a resumed or retried batch gives the verdicts of an uninterrupted run.
    """
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(unit_seed(seed, start, key))
        yield


def _check_output(logits: torch.Tensor, n: int) -> None:
    if logits.ndim != 2 or logits.shape[0] != n:
        raise RLRobustError(
            f"the model returned shape {tuple(logits.shape)} for {n} inputs; it must return logits of "
            "shape (N, num_classes)"
        )


def _attack_unit(model, attack, x, y, correct, todo, *, cascade, amp, device, keep) -> UnitResult:
    """One attack on one batch: robust flags, seconds, audit counters, breakdown, fooled points."""
    audit = AuditAccumulator(float(attack.eps), attack.norm)
    flags = correct.clone()
    result = UnitResult(flags=flags, fooled=torch.empty(0, dtype=torch.int64))
    index = todo.nonzero().flatten()
    if len(index):
        rows = index.to(x.device)
        if device.type == "cuda":  # time this attack alone, not work queued before it
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        # The attack's passes under autocast (verdicts in float32), except for attacks that
        # declare float32_only (AutoAttack).
        with autocast("none" if getattr(attack, "float32_only", False) else amp, device):
            x_adv = attack(model, x[rows], y[rows])
        with torch.no_grad():
            logits = model(x_adv)
            still = logits.argmax(dim=1) == y[rows]
        if device.type == "cuda":  # the clock waits for the device's queued work
            torch.cuda.synchronize(device)
        result.seconds = time.perf_counter() - started
        audit.add(x_adv.detach(), x[rows])
        audit.add_outputs(logits)
        flags[index] = still.cpu()
        breakdown = getattr(attack, "last_breakdown", None)  # ensembles: members' counts
        if isinstance(breakdown, dict):
            result.breakdown = {member: int(count) for member, count in breakdown.items()}
        result.fooled = index[~still.cpu()]
        if keep:
            result.x_adv = x_adv[~still].detach().float().cpu()
    if cascade:
        flags &= todo
    result.audit = audit_counters(audit)
    return result


class _LazyBatch:
    """A batch moved to the device only if one of its units must be computed."""

    def __init__(self, data, start, size, device, channels_last) -> None:
        self.data, self.start, self.size = data, start, size
        self.device, self.channels_last = device, channels_last
        self.tensors: tuple[torch.Tensor, torch.Tensor] | None = None

    def get(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.tensors is None:
            images = self.data.images[self.start : self.start + self.size]
            x = to_unit_float(images.to(self.device))
            x = batch_to_channels_last(x) if self.channels_last else x
            labels = self.data.labels[self.start : self.start + self.size].to(self.device)
            self.tensors = (x, labels)
        return self.tensors


def _run_batches(model, data, labelled, batch_size, state, options) -> list:
    """Every (batch, attack) unit, each loaded from ``state`` if stored there, else computed."""
    device, cascade, seed = options["device"], options["cascade"], options["seed"]
    results = []
    n_batches = (len(data) + batch_size - 1) // batch_size
    for b in tqdm(range(n_batches), desc="evaluate", disable=not options["progress"], leave=False):
        if not in_shard(b, options.get("shard")):
            continue  # another shard's batch (shards.py)
        start = b * batch_size
        batch = _LazyBatch(data, start, batch_size, device, options["channels_last"])

        clean = state.load(b, "clean") if state else None
        if clean is None:
            x, y = batch.get()
            with _seeded(seed, start, "clean", device), torch.no_grad():
                logits = model(x)
            _check_output(logits, len(x))
            nonfinite = int((~torch.isfinite(logits.flatten(1))).any(dim=1).sum())
            clean = UnitResult(
                flags=(logits.argmax(dim=1) == y).cpu(), audit={"nonfinite_outputs": nonfinite}
            )
            if state:
                state.save(b, "clean", clean)
        robust = clean.flags.clone()
        units = []
        for position, (_, attack) in enumerate(labelled):
            key = f"a{position:03d}"
            unit = state.load(b, key) if state else None
            if unit is None:
                x, y = batch.get()
                todo = robust if cascade else clean.flags
                with _seeded(seed, start, key, device):
                    unit = _attack_unit(
                        model,
                        attack,
                        x,
                        y,
                        clean.flags,
                        todo.clone(),
                        cascade=cascade,
                        amp=options["amp"],
                        device=device,
                        keep=options["keep_examples"],
                    )
                if state:
                    state.save(b, key, unit)
            robust &= unit.flags
            units.append(unit)
        results.append((clean, units))
    return results


def _fingerprint(model, data, labelled, batch_size, options) -> dict:
    """What the units depend on; resuming with anything else is refused (``resume.py``)."""
    return {
        "model": tensor_digest(list(model.state_dict().items())),
        "data": tensor_digest([("images", data.images), ("labels", data.labels)]),
        "n_examples": len(data),
        "attacks": [
            [label, attack.describe() if hasattr(attack, "describe") else type(attack).__name__]
            for label, attack in labelled
        ],
        "requested_batch_size": int(batch_size),
        **{key: options[key] for key in ("cascade", "early_exit", "amp", "channels_last", "seed")},
        "keep_examples": options["keep_examples"],
    }


def evaluate(
    model: torch.nn.Module,
    data: ImageData,
    attacks: Sequence = (),
    *,
    batch_size: int = 500,
    device: str | torch.device = "cpu",
    cascade: bool = False,
    progress: bool = False,
    early_exit: bool = True,
    channels_last: bool = False,
    amp: str = "none",
    seed: int = 0,
    state_dir: str | Path | None = None,
    resume: bool = False,
    save_examples: str | Path | None = None,
    oom_backoff: bool = True,
    shard: tuple[int, int] | None = None,
) -> dict:
    """Evaluate ``model`` on ``data`` under ``attacks``; returns a JSON-able record.

    The record holds ``clean_accuracy``, one entry per attack with its ``accuracy`` (standalone,
    or cumulative when ``cascade``) and ``audit``, the worst-case ``robust_accuracy``, and
    ``per_sample`` flags (``clean_correct``, one list per attack, ``robust``).

    ``early_exit``, ``channels_last`` and ``amp`` are the fast paths (module docstring); with
    ``channels_last`` the model's 4-D weights are switched to that layout (same values).

    ``seed`` seeds torch's global RNG per (batch, attack) for randomised models (the attacks
    have their own seeds). ``state_dir``: write every finished (batch, attack) there, so that a
    killed evaluation continues with ``resume=True`` (``resume.py``); the folder is removed when
    the evaluation completes. ``save_examples``: a folder for the fooled points' adversarial
    inputs, per attack and the per-sample worst case (``attacks/saved.py``). ``oom_backoff``:
    on an out-of-memory error, halve the batch and start again (``memory.py``).

    ``shard=(K, N)``: compute only shard K of N into ``state_dir`` and return
    ``{"shard": [K, N], ...}`` instead of a record; a resumed evaluation assembles the record
    once every shard is stored (``shards.py``).
    """
    if len(data) == 0:
        raise RLRobustError(
            f"{data.name} holds no images to evaluate: every accuracy would be a meaningless 0; "
            "check the data set and eval.n_examples / data.test_subset"
        )
    device = torch.device(device)
    labelled = [(label, protocol_variant(a, early_exit)) for label, a in as_attacks(attacks)]
    options = {
        "device": device,
        "cascade": bool(cascade),
        "early_exit": bool(early_exit),
        "amp": amp,
        "channels_last": bool(channels_last),
        "seed": int(seed),
        "progress": progress,
        "keep_examples": save_examples is not None,
    }
    state = None
    if shard is not None:
        if state_dir is None:
            raise ConfigError("a shard writes into the partial state: give state_dir")
        # Shards share one state folder, and halving the batch would drop the other shards'
        # units: an out-of-memory error ends a shard with advice instead (below).
        resume, oom_backoff = True, False
    if state_dir is not None:
        fingerprint = _fingerprint(model, data, labelled, batch_size, options)
        state = EvaluationState(state_dir, fingerprint, resume=resume)
        batch_size = state.batch_size  # smaller than asked if an earlier try ran out of memory
    elif resume:
        raise ConfigError("resume=True needs state_dir: the folder of the interrupted evaluation")

    was_training = model.training
    model.eval()
    if channels_last:
        model_to_channels_last(model)
    try:
        while True:
            try:
                results = _run_batches(
                    model, data, labelled, batch_size, state, {**options, "shard": shard}
                )
                break
            except (torch.OutOfMemoryError, RuntimeError) as error:
                if shard is not None and is_out_of_memory(error):
                    raise RLRobustError(
                        f"shard {shard[0]}/{shard[1]} ran out of memory at batch size "
                        f"{batch_size}; shards share one batch size, so rerun every shard with "
                        "a smaller data.eval_batch_size (and an empty partial state)"
                    ) from None
                if not oom_backoff or not is_out_of_memory(error):
                    raise
                # Start again from the first batch: batches finished at the old size would
                # differ from a run at the new size (random starts are drawn per batch).
                note = " from the first batch"
                batch_size = halve_batch(batch_size, error, "evaluation", device, note)
                if state:
                    state.restart(batch_size)
    finally:
        model.train(was_training)
    if shard is not None:
        mark_done(state_dir, shard)
        return {"shard": list(shard), "batches": len(results), "state_dir": str(state_dir)}

    from rlrobust.evaluation.intervals import add_accuracy_intervals  # Wilson, per accuracy

    record = add_accuracy_intervals(_record(data, labelled, results, batch_size, options))
    if save_examples is not None:
        record["saved_examples"] = write_examples(
            save_examples, data, labelled, results, batch_size
        )
    if state:
        state.finish()
    return record


def _record(data, labelled, results, batch_size, options) -> dict:
    n = len(data)
    empty = torch.empty(0, dtype=torch.bool)
    clean = torch.cat([c.flags for c, _ in results]) if results else empty
    robust = clean.clone()
    entries, per_attack = [], {}
    for position, (label, attack) in enumerate(labelled):
        units = [u[position] for _, u in results]
        flags = torch.cat([u.flags for u in units]) if units else clean
        robust &= flags
        audit = AuditAccumulator(float(attack.eps), attack.norm)
        breakdown: dict[str, int] | None = None
        for unit in units:
            merge_audit(audit, unit.audit)
            if unit.breakdown is not None:
                breakdown = breakdown or {}
                for member, count in unit.breakdown.items():
                    breakdown[member] = breakdown.get(member, 0) + int(count)
        entries.append(
            {
                **({"breakdown": breakdown} if breakdown is not None else {}),
                "label": label,
                "attack": attack.describe() if hasattr(attack, "describe") else {"name": label},
                "accuracy": float(flags.float().mean()) if n else 0.0,
                "seconds": sum(u.seconds for u in units),
                "audit": audit.result(),
            }
        )
        if units:
            per_attack[label] = flags.int().tolist()
    nonfinite = sum(int((c.audit or {}).get("nonfinite_outputs", 0)) for c, _ in results)
    outputs = {
        "checked": n,
        "nonfinite_clean_outputs": nonfinite,
        "passed": nonfinite == 0,
        "problems": (
            [
                f"the model returned NaN or inf logits for {nonfinite} of {n} clean inputs; "
                "its accuracies mean nothing: fix the model (or its weights) first"
            ]
            if nonfinite
            else []
        ),
    }
    return {
        "n_examples": n,
        "cascade": options["cascade"],
        "early_exit": options["early_exit"],
        "batch_size": batch_size,
        "seed": options["seed"],
        "clean_accuracy": float(clean.float().mean()) if n else 0.0,
        "attacks": entries,
        "robust_accuracy": float(robust.float().mean()) if n else 0.0,
        "output_audit": outputs,
        "audit_passed": outputs["passed"] and all(e["audit"]["passed"] for e in entries),
        "per_sample": {
            "labels": data.labels.tolist(),
            "clean_correct": clean.int().tolist(),
            **per_attack,
            "robust": robust.int().tolist(),
        },
    }


def _file_name(label: str) -> str:
    return "attack-" + re.sub(r"[^A-Za-z0-9._-]+", "_", label) + ".safetensors"


def write_examples(directory, data, labelled, results, batch_size) -> dict:
    """Write each attack's fooled points and the per-sample worst case (``attacks/saved.py``).

    The worst case of a point is the example of the first attack in the list that fooled it
    (any example that fools the model shows the point is not robust).
    """
    directory = Path(directory)
    labels = [label for label, _ in labelled]
    meta = {"attacks": labels, "n_examples": len(data), "data": data.name}
    files, worst = {}, {}
    for position, (label, attack) in enumerate(labelled):
        index, x_adv = [], []
        for b, (_, units) in enumerate(results):
            unit = units[position]
            if len(unit.fooled):  # a batch the attack fooled nothing in (or never ran on)
                index.append(unit.fooled + b * batch_size)
                x_adv.append(unit.x_adv)
        index = torch.cat(index) if index else torch.empty(0, dtype=torch.int64)
        x_adv = torch.cat(x_adv) if x_adv else torch.empty(0, *data.images.shape[1:])
        for i, row in zip(index.tolist(), x_adv, strict=True):
            worst.setdefault(i, (position, row))
        examples = _example_set(data, index, x_adv, attack.eps, attack.norm, label)
        examples.meta = {**meta, "attack": attack.describe() if hasattr(attack, "describe") else {}}
        files[label] = save_saved_examples(directory / _file_name(label), examples).name
    out = {"directory": str(directory), "files": files}
    norms = {attack.norm for _, attack in labelled}
    if len(norms) == 1:  # a worst case over one threat model only
        order = sorted(worst)
        index = torch.tensor(order, dtype=torch.int64)
        rows = [worst[i][1] for i in order]
        x_adv = torch.stack(rows) if rows else torch.empty(0, *data.images.shape[1:])
        eps = max(float(attack.eps) for _, attack in labelled)
        examples = _example_set(data, index, x_adv, eps, norms.pop(), "worst-case")
        examples.kind, examples.meta = "worst-case", meta
        examples.attack_id = torch.tensor([worst[i][0] for i in order], dtype=torch.int64)
        out["worst_case"] = save_saved_examples(directory / WORST_CASE_FILE, examples).name
    return out


def _example_set(data, index, x_adv, eps, norm, label) -> ExampleSet:
    return ExampleSet(
        x_adv=x_adv,
        x=to_unit_float(data.images[index]),
        y=data.labels[index],
        index=index,
        eps=float(eps),
        norm=norm,
        label=label,
    )
