"""A preset at one scale, resolved: the runs, the paper's config and the computed differences.

The run configs are the paper's protocol plus the scale's named deltas; the paper's config is
the protocol alone. Both are flattened to leaves over the *whole* RunConfig (``iter_fields``),
with every implicit default made explicit (the adversarial section's ``resolved()``, the
objective's option defaults, each evaluation attack's constructor defaults, ``augment=auto``,
RMSprop's alpha), and compared leaf by leaf. A leaf the protocol does not state is itself a
difference ("not in the preset's protocol"), so a default nobody chose cannot hide.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
from dataclasses import dataclass, field
from typing import Any

from rlrobust.config import RunConfig, from_dict, iter_fields
from rlrobust.errors import ConfigError, UnknownNameError
from rlrobust.experiments.presets.common import POST_PREFIXES, PSEUDO_KEYS, Entry, Preset
from rlrobust.experiments.sweep import SweepSpec, expand_points, set_option

NOT_IN_PROTOCOL = "(not in the preset's protocol)"
NO_SUCH_FIELD = "(no such config field in this rlrobust)"
ABSENT = "(absent)"

#: How a run executes, not what it computes: never part of a paper's protocol.
EXECUTION_FIELDS = frozenset(
    {
        "data.data_dir",
        "data.download",
        "data.eval_batch_size",
        "train.device",
        "train.channels_last",
        "train.compile",
        "train.tensorboard",
        "train.deterministic",  # deterministic CUDA kernels: the same update, bit-exact resumes
        "optim.fused",
        "eval.early_exit",  # same per-sample verdicts, only cheaper (docs/evaluation.md)
        "eval.save_examples",
        "eval.checkpoint",
        "eval.oom_backoff",
        # the end-of-epoch overfitting monitor only logs, unless stop_on_overfitting (protocol)
        "adversarial.monitor_size",
        "adversarial.monitor_steps",
        "adversarial.overfit_drop",
    }
)
#: Seeds are the ``runs`` pseudo-key (seeds 0 .. runs - 1), compared there.
SEED_FIELDS = frozenset({"train.seed", "eval.seed"})
#: Attack settings that say how, not what (seeding, batching, logging, EOT is eval.eot_samples).
ATTACK_EXECUTION = frozenset(
    {"seed", "batch_size", "verbose", "early_exit", "eot_samples", "eot_iter", "keep_fooling"}
)
#: torch's RMSprop alpha and Keras' rho when optim.alpha is None (config.py help text).
RMSPROP_ALPHA = {"rmsprop": 0.99, "rmsprop_keras": 0.9}


def config_fields() -> list[str]:
    """Every leaf field of RunConfig, in declaration order."""
    return [key for key, *_ in iter_fields(RunConfig)]


def field_of(key: str) -> str:
    """``objective.options.lam`` -> ``objective.options``; config keys are two parts deep."""
    return ".".join(key.split(".")[:2])


def is_post(key: str) -> bool:
    return key.startswith(POST_PREFIXES)


# --- availability: fields and objectives this rlrobust may not have yet --------------------------


def _objectives() -> set[str]:
    import rlrobust.objectives  # noqa: F401 - registers the objectives
    from rlrobust.registry import OBJECTIVES

    return set(OBJECTIVES.names())


def available(requirement: str, known: set[str]) -> bool:
    if requirement.startswith("objective:"):
        return requirement.split(":", 1)[1] in _objectives()
    return field_of(requirement) in known


def missing_objectives(overrides: dict) -> list[str]:
    """Objective names an arm's config uses that are not registered here."""
    names = {overrides.get("objective.name"), overrides.get("two_stage.warmup_objective")}
    return sorted(n for n in names if isinstance(n, str) and n not in _objectives())


# --- flattening with every implicit default made explicit ----------------------------------------


def _attack_defaults(name: str) -> dict:
    import rlrobust.attacks  # noqa: F401 - registers the attacks
    from rlrobust.registry import ATTACKS

    if name not in ATTACKS:
        return {}
    params = inspect.signature(ATTACKS.get(name).__init__).parameters
    return {
        k: p.default
        for k, p in params.items()
        if k != "self" and p.default is not inspect.Parameter.empty
    }


def attack_leaves(attacks: list, fill_defaults: bool) -> dict[str, Any]:
    """``eval.attacks`` as ``{label: {setting: value}}`` (execution settings dropped)."""
    out: dict[str, Any] = {}
    for spec in attacks:
        label = spec.get("label", spec["name"])
        settings = dict(_attack_defaults(spec["name"])) if fill_defaults else {}
        settings.update(spec.get("settings", {}))
        settings = {k: v for k, v in settings.items() if k not in ATTACK_EXECUTION}
        out[label] = {"name": spec["name"], **settings}
    return out


def _objective_options(name: str, options: dict) -> dict:
    """The options an objective really runs with (its defaults merged in), when registered."""
    from rlrobust.registry import OBJECTIVES

    if name not in _objectives():
        return dict(options)
    try:
        return dict(OBJECTIVES.create(name, **options).options)
    except Exception:  # noqa: BLE001 - the run itself reports bad options; compare as given
        return dict(options)


def flatten_run(config: dict) -> dict[str, Any]:
    """A run's resolved config dict as leaves, every implicit default made explicit."""
    cfg = from_dict(RunConfig, json.loads(json.dumps(config)))
    tree = dataclasses.replace(cfg, adversarial=cfg.adversarial.resolved()).to_dict()
    flat = {key: tree[key.split(".")[0]][key.split(".", 1)[1]] for key in config_fields()}
    flat["objective.options"] = _objective_options(
        flat["objective.name"], flat["objective.options"]
    )
    if "two_stage.warmup_options" in flat:
        flat["two_stage.warmup_options"] = _objective_options(
            flat["two_stage.warmup_objective"], flat["two_stage.warmup_options"]
        )
    if flat.get("data.augment") == "auto":  # training/setup.py: crop_flip for CIFAR, else none
        flat["data.augment"] = "crop_flip" if str(flat["data.name"]).startswith("cifar") else "none"
    if flat.get("optim.alpha", 0) is None:
        flat["optim.alpha"] = RMSPROP_ALPHA.get(flat["optim.name"])
    flat.update(_split_attacks(flat.pop("eval.attacks"), fill_defaults=True))
    return flat


def _split_attacks(attacks: list, fill_defaults: bool) -> dict[str, Any]:
    return {
        f"eval.attacks.{label}": settings
        for label, settings in attack_leaves(attacks, fill_defaults).items()
    }


# --- which leaves matter for a given config ------------------------------------------------------

_FGSM_LIKE = ("fgsm_at",)


def applies(key: str, c: dict) -> bool:
    """Whether leaf ``key`` changes what a run with flat config ``c`` computes."""
    optim, method = c.get("optim.name"), c.get("adversarial.method")
    fgsm_like = method in _FGSM_LIKE or (
        method == "rl_adv" and c.get("adversarial.attack") == "fgsm"
    )
    rules = {
        "optim.momentum": optim not in ("adam", "adamw", "rmsprop_keras"),
        "optim.nesterov": optim == "sgd",
        "optim.alpha": optim in ("rmsprop", "rmsprop_keras"),
        "optim.keras_decay": optim == "rmsprop_keras",
        "optim.milestones": c.get("optim.schedule") == "step",
        "optim.gamma": c.get("optim.schedule") == "step",
        "adversarial.beta": method == "trades",
        "adversarial.adv_rate": method == "rl_adv",
        "adversarial.attack": method == "rl_adv",
        # trades' attack maximises its KL term; attack_loss must stay auto (config.py)
        "adversarial.attack_loss": method != "trades",
        # with a fixed switch epoch the accuracy threshold is never consulted
        "two_stage.switch_accuracy": c.get("two_stage.switch_epoch") is None,
        "adversarial.alpha": fgsm_like,
        "adversarial.steps": not fgsm_like,
        "adversarial.step_size": not fgsm_like,
        "train.select_eps": c.get("train.checkpoint_every") is not None,
        "train.select_examples": c.get("train.checkpoint_every") is not None,
        "eval.masking_budget": c.get("eval.masking") is True,
        "eval.eps": bool(
            c.get("eval.preset")
            or c.get("eval.masking")
            or c.get("eval.surrogate")
            or c.get("eval.eps_curve")
        ),
    }
    if key in rules:
        return rules[key] and _section_on(key, c)
    if key.startswith("adversarial.l2l_"):
        return method == "l2l"
    return _section_on(key, c)


def _section_on(key: str, c: dict) -> bool:
    if key.startswith("two_stage.") and key != "two_stage.enabled":
        return c.get("two_stage.enabled") is True
    if key.startswith("adversarial.") and key != "adversarial.method":
        return c.get("adversarial.method") not in (None, "none")
    return True


# --- the resolved plan ----------------------------------------------------------------------------


@dataclass
class Arm:
    """One variant (or the single arm of a grid preset) at one scale."""

    name: str | None
    paper: dict[str, Entry]  # protocol entries: common and the variant's
    overrides: dict  # what the run applies on top of the defaults (config fields only)
    why: dict[str, str]  # config field -> why ours differs from the paper (delta or fallback)
    missing: list[str] = field(default_factory=list)  # unregistered objectives: arm not run


@dataclass
class Plan:
    preset: Preset
    scale: str
    arms: list[Arm]
    spec: SweepSpec
    points: list  # sweep points (variant, values, seed, config)
    post: dict[str, Any]  # rlab.* / transfer.* settings of this scale
    differences: list[dict]

    def to_json(self) -> dict:
        return {
            "preset": self.preset.name,
            "scale": self.scale,
            "runs": [
                {"variant": p.variant, "values": p.values, "seed": p.seed, "config": p.config}
                for p in self.points
            ],
            "references": [
                {
                    "variant": r.variant if r.variant is not None else _label(r.values),
                    "values": r.values,
                    "metric": r.metric,
                    "paper_metric": r.paper_metric or r.metric,
                    "value": r.value,
                    "source": r.source,
                }
                for r in self.preset.references
            ],
            "protocol": protocol_json(self.preset),
            "differences": self.differences,
            "notes": list(self.preset.scales[self.scale].notes),
        }


def _label(values: dict | None) -> str | None:
    return ", ".join(f"{k}={v}" for k, v in values.items()) if values else None


def protocol_json(preset: Preset) -> dict:
    """The paper's protocol: every entry with its value and source, per arm."""

    def entries(items: dict[str, Entry]) -> dict:
        return {
            k: {"value": e.value, "stated": e.stated, "source": e.source} for k, e in items.items()
        }

    return {
        "common": entries(preset.protocol),
        "variants": {name: entries(v.entries()) for name, v in preset.variants.items()},
    }


def _pseudo(entries: dict[str, Entry], key: str, default: Any) -> Any:
    return entries[key].value if key in entries else default


def build_plan(preset: Preset, scale: str) -> Plan:
    """Resolve ``preset`` at ``scale``: the sweep to run and the computed differences."""
    if scale not in preset.scales:
        raise UnknownNameError(
            f"unknown scale {scale!r} for preset {preset.name!r}; choose one of: "
            f"{', '.join(preset.scales)}"
        )
    known = set(config_fields())
    deltas = preset.scales[scale].deltas
    variant_names = list(preset.variants) or [None]
    pseudo, post_ours, pseudo_why = _scale_pseudo(preset, deltas)
    chosen_arms = pseudo["arms"] if pseudo["arms"] is not None else variant_names
    arms = [_arm(preset, name, deltas, known) for name in variant_names]
    run_arms = [a for a in arms if a.name in chosen_arms and not a.missing]
    if not run_arms:
        missing = sorted({m for a in arms for m in a.missing})
        raise ConfigError(
            f"preset {preset.name!r} has no arm that can run here: objective(s) "
            f"{', '.join(missing)} are not registered; install the plug-in that provides them"
        )
    spec = SweepSpec(
        base={},
        grid={k: list(v) for k, v in pseudo["grid"].items()},
        seeds=list(range(pseudo["runs"])),
        variants={a.name: a.overrides for a in run_arms if a.name is not None},
        evaluate=True,
    )
    if not spec.variants:  # a grid preset: one arm, its overrides are the base
        spec.base = _base_dict(run_arms[0].overrides if run_arms else {})
    else:
        spec.base = _base_dict({})
    points = expand_points(spec)
    differences = _differences(preset, arms, points, known)
    differences += _pseudo_differences(preset, pseudo, pseudo_why, arms, variant_names)
    differences += _post_differences(preset, post_ours, pseudo_why)
    return Plan(preset, scale, run_arms, spec, points, post_ours, differences)


def _base_dict(overrides: dict) -> dict:
    cfg = RunConfig()
    for key, value in overrides.items():
        set_option(cfg, key, value)
    return cfg.to_dict()


def _scale_pseudo(preset: Preset, deltas: list) -> tuple[dict, dict, dict]:
    """runs / grid / arms and the post-step settings, paper's with the scale's deltas on top."""
    common = preset.protocol
    pseudo = {
        "runs": _pseudo(common, "runs", 1),
        "grid": _pseudo(common, "grid", {}),
        "arms": _pseudo(common, "arms", None),
    }
    post = {k: e.value for k, e in common.items() if is_post(k)}
    why: dict[str, str] = {}
    for delta in deltas:
        for key, value in delta.overrides.items():
            if key in PSEUDO_KEYS:
                pseudo[key] = value
            elif is_post(key):
                post[key] = value
            else:
                continue
            why[key] = f"{delta.name}: {delta.why}"
    return pseudo, post, why


def _arm(preset: Preset, name: str | None, deltas: list, known: set[str]) -> Arm:
    paper = {k: e for k, e in preset.protocol.items() if k not in PSEUDO_KEYS and not is_post(k)}
    if name is not None:
        paper.update(preset.variants[name].entries())
    overrides: dict = {}
    why: dict[str, str] = {}
    for key, entry in paper.items():
        usable = field_of(key) in known and (
            entry.requires is None or available(entry.requires, known)
        )
        if usable:
            overrides[key] = entry.value
        elif entry.has_fallback and field_of(key) in known:
            overrides[key] = entry.fallback
            why[field_of(key)] = (
                f"this rlrobust lacks {entry.requires or key}; falls back to {entry.fallback!r}"
            )
    for delta in deltas:
        if delta.arms and name not in delta.arms:
            continue
        for key, value in delta.overrides.items():
            if key in PSEUDO_KEYS or is_post(key) or field_of(key) not in known:
                continue  # a delta for a field this rlrobust lacks has nothing to change
            overrides[key] = value
            why[field_of(key)] = f"{delta.name}: {delta.why}"
    return Arm(name, paper, overrides, why, missing_objectives(overrides))


def _paper_flat(arm: Arm, values: dict) -> dict[str, Any]:
    """The paper's config for ``arm`` at grid point ``values``, as leaves (stated entries only)."""
    flat: dict[str, Any] = {}
    for key, entry in arm.paper.items():
        flat[key] = json.loads(json.dumps(entry.value))
    for key, value in values.items():  # a grid point: the same on both sides
        if key in flat or field_of(key) == key:
            flat[key] = value
        else:
            flat.setdefault(field_of(key), {})[key.split(".", 2)[2]] = value
    if "eval.attacks" in flat:
        flat.update(_split_attacks(flat.pop("eval.attacks"), fill_defaults=False))
    return flat


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float | int) and not isinstance(b, bool):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(b, float) and isinstance(a, int) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def diff_flat(paper: dict, ours: dict, why: dict[str, str], known: set[str]) -> list[dict]:
    """Leaf-by-leaf differences of a run (``ours``) from the paper; execution and seed fields
    and leaves that change nothing for either config are left out."""
    out = []
    keys = list(ours) + [k for k in paper if k not in ours]
    for key in keys:
        base = field_of(key)
        if base in EXECUTION_FIELDS or base in SEED_FIELDS:
            continue
        if not (applies(base, paper) or applies(base, ours)):
            continue
        if key.startswith("eval.attacks."):
            out += _attack_differences(key, paper.get(key), ours.get(key), why)
            continue
        if key not in paper:
            out.append(_row(key, NOT_IN_PROTOCOL, ours[key], _inherited(key)))
        elif base not in known:
            out.append(
                _row(key, paper[key], NO_SUCH_FIELD, f"this rlrobust has no config field {key}")
            )
        elif not _same(paper[key], ours[key]):
            out.append(_row(key, paper[key], ours[key], why.get(base, _silent(key))))
    return out


def _attack_differences(key: str, paper: dict | None, ours: dict | None, why: dict) -> list[dict]:
    reason = why.get("eval.attacks", _silent("eval.attacks"))
    if paper is None or ours is None:
        return [_row(key, paper or ABSENT, ours or ABSENT, reason)]
    rows = []
    for setting in list(ours) + [s for s in paper if s not in ours]:
        leaf = f"{key}.{setting}"
        if setting not in paper:
            rows.append(_row(leaf, NOT_IN_PROTOCOL, ours[setting], _inherited(leaf)))
        elif setting not in ours:
            rows.append(_row(leaf, paper[setting], NO_SUCH_FIELD, "the attack has no such setting"))
        elif not _same(paper[setting], ours[setting]):
            rows.append(_row(leaf, paper[setting], ours[setting], reason))
    return rows


def _inherited(key: str) -> str:
    return (
        f"default inherited silently: the preset's protocol does not state {key}; add the "
        "paper's value (or 'not stated' with our choice) to the preset"
    )


def _silent(key: str) -> str:
    return f"no delta of this scale changes {key}: a silent difference (a bug in the preset)"


def _row(key: str, paper: Any, ours: Any, why: str) -> dict:
    return {"field": key, "paper": paper, "ours": ours, "why": why}


def _differences(preset: Preset, arms: list[Arm], points: list, known: set[str]) -> list[dict]:
    """Per-run differences, merged: one row per (field, paper, ours) with the arms it holds for."""
    by_arm = {a.name: a for a in arms}
    merged: dict[str, dict] = {}
    runs_per_arm: dict[str | None, int] = {}
    for point in points:
        arm = by_arm[point.variant]
        runs_per_arm[point.variant] = runs_per_arm.get(point.variant, 0) + 1
        for row in diff_flat(
            _paper_flat(arm, point.values), flatten_run(point.config), arm.why, known
        ):
            tag = json.dumps([row["field"], row["paper"], row["ours"]], sort_keys=True, default=str)
            entry = merged.setdefault(tag, {**row, "arms": []})
            if point.variant not in entry["arms"]:
                entry["arms"].append(point.variant)
    all_arms = set(runs_per_arm)
    rows = []
    for entry in merged.values():
        entry["arms"] = [] if set(entry["arms"]) == all_arms else entry["arms"]
        rows.append(entry)
    return rows


def _pseudo_differences(
    preset: Preset, ours: dict, why: dict, arms: list[Arm], variant_names: list
) -> list[dict]:
    common = preset.protocol
    rows = []
    paper_runs = _pseudo(common, "runs", None)
    if paper_runs is None:
        rows.append(_row("runs", NOT_IN_PROTOCOL, ours["runs"], _inherited("runs")))
    elif ours["runs"] != paper_runs:
        rows.append(_row("runs", paper_runs, ours["runs"], why.get("runs", _silent("runs"))))
    paper_grid = _pseudo(common, "grid", {})
    for key in list(paper_grid) + [k for k in ours["grid"] if k not in paper_grid]:
        theirs, mine = paper_grid.get(key, ABSENT), ours["grid"].get(key, ABSENT)
        if not _same(theirs, mine):
            rows.append(_row(f"grid.{key}", theirs, mine, why.get("grid", _silent("grid"))))
    names = [n for n in variant_names if n is not None]
    chosen_arms = ours["arms"] if ours["arms"] is not None else names
    if names and chosen_arms != names:
        rows.append(_row("arms", names, chosen_arms, why.get("arms", _silent("arms"))))
    for arm in arms:
        if arm.missing and arm.name in chosen_arms:
            rows.append(
                _row(
                    f"arms.{arm.name}",
                    "run",
                    "not run",
                    f"objective(s) {', '.join(arm.missing)} not registered in this rlrobust",
                )
            )
    for row in rows:
        row["arms"] = []
    return rows


def _post_differences(preset: Preset, ours: dict, why: dict) -> list[dict]:
    paper = {k: e.value for k, e in preset.protocol.items() if is_post(k)}
    rows = []
    for key in list(paper) + [k for k in ours if k not in paper]:
        if key not in paper:
            rows.append(_row(key, NOT_IN_PROTOCOL, ours[key], _inherited(key)))
        elif not _same(paper[key], ours.get(key, ABSENT)):
            rows.append(_row(key, paper[key], ours.get(key, ABSENT), why.get(key, _silent(key))))
    for row in rows:
        row["arms"] = []
    return rows


def difference_lines(plan: Plan) -> list[str]:
    """The differences in plain words, one line each (for reports and ``--plan``)."""
    lines = []
    for row in plan.differences:
        arms = f" [{', '.join(map(str, row['arms']))}]" if row.get("arms") else ""
        lines.append(
            f"{plan.scale}: {row['field']}{arms} {_short(row['ours'])} instead of "
            f"{_short(row['paper'])} ({row['why']})"
        )
    if not lines:
        lines.append(f"{plan.scale}: none: every field is the paper's")
    return lines


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)
