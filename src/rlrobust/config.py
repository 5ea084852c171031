"""Typed run configuration: nested dataclasses, one per concern.

Every field carries a help text (``option(default, "help")``) that the CLI shows under ``--help``.
A config round-trips through JSON; the resolved config is written beside every checkpoint and
result. Overrides use dotted keys: ``--train.epochs 5`` or ``set_by_path(cfg, "train.epochs", 5)``.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from rlrobust.errors import ConfigError


def option(default: Any, help: str) -> Any:  # noqa: A002 - "help" reads best at call sites
    """A dataclass field with a help text; mutable defaults are copied per instance."""
    if isinstance(default, (dict, list)):
        return field(
            default_factory=lambda: json.loads(json.dumps(default)), metadata={"help": help}
        )
    return field(default=default, metadata={"help": help})


@dataclass
class DataConfig:
    name: str = option("mnist", "data set: mnist, fashion-mnist, cifar10, cifar100 or digits")
    data_dir: str | None = option(
        None,
        "folder holding mnist/, fashion-mnist/, cifar10/, cifar100/ (default: $RLROBUST_DATA, "
        "else ~/.cache/rlrobust/data)",
    )
    download: bool = option(False, "download missing files from the canonical URLs (md5-checked)")
    train_subset: int | None = option(None, "use this many random training images (default: all)")
    test_subset: int | None = option(None, "use this many random test images (default: all)")
    validation_fraction: float = option(
        0.0, "hold out this fraction of the training images as a validation split (0: none)"
    )
    batch_size: int = option(128, "training batch size")
    eval_batch_size: int = option(500, "batch size for evaluation and attacks")
    augment: str = option(
        "auto", "training augmentation: auto (crop_flip for CIFAR), none, crop_flip"
    )


@dataclass
class ModelConfig:
    name: str = option("lenet5", "model architecture (see `rlrobust train --list`)")
    options: dict = option({}, "extra keyword arguments for the model constructor, as JSON")


@dataclass
class ObjectiveConfig:
    name: str = option(
        "cross_entropy",
        "training objective: cross_entropy, gupta_vpg, kim_policy, kim_warmup, zou_pg",
    )
    options: dict = option({}, 'objective options as JSON, e.g. {"lam": 1.5, "action": "greedy"}')


@dataclass
class TwoStageConfig:
    """Kim's two-stage schedule: warm up with Eq. 12 (sampled actions), then the main objective."""

    enabled: bool = option(
        False, "warm up with a second objective until held-out accuracy passes a threshold"
    )
    warmup_objective: str = option("kim_warmup", "objective used before the switch (Kim Eq. 12)")
    warmup_options: dict = option({"lam": 0.75}, "options of the warm-up objective, as JSON")
    switch_accuracy: float = option(
        0.80, "held-out accuracy (0-1) that triggers the switch to the main objective (Kim: 80%)"
    )
    switch_epoch: int | None = option(
        None,
        "switch after this epoch instead, whatever the accuracy (Kim Table 6: 75); "
        "default: switch on accuracy",
    )


@dataclass
class OptimConfig:
    name: str = option("sgd", "optimiser: sgd, adam, adamw, rmsprop")
    lr: float = option(0.1, "initial learning rate")
    momentum: float = option(0.9, "momentum (sgd, rmsprop)")
    weight_decay: float = option(5e-4, "weight decay")
    nesterov: bool = option(False, "Nesterov momentum (sgd)")
    schedule: str = option("constant", "learning-rate schedule: constant, step, cosine")
    milestones: list = option([], "epochs at which the step schedule multiplies the lr by gamma")
    gamma: float = option(0.1, "step schedule factor")


@dataclass
class TrainConfig:
    epochs: int = option(10, "number of training epochs")
    seed: int = option(0, "random seed (data order, action sampling, initialisation)")
    device: str = option("auto", "cpu, cuda, cuda:N or auto (cuda when available)")


@dataclass
class EvalConfig:
    attacks: list = option(
        [
            {"name": "fgsm", "settings": {"eps": 0.1}},
            {"name": "pgd", "settings": {"eps": 0.1, "steps": 40, "step_size": 0.01}},
        ],
        'attacks as JSON: [{"name": "pgd", "settings": {"eps": 0.1, "steps": 40}}, ...]',
    )
    cascade: bool = option(
        False,
        "run each attack only on points still robust after the previous ones (AutoAttack "
        "style); default: every attack on every clean-correct point, so each has its own accuracy",
    )
    n_examples: int | None = option(None, "evaluate on this many test images (default: all)")
    seed: int = option(0, "seed for the choice of test images and the attacks' randomness")


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    two_stage: TwoStageConfig = field(default_factory=TwoStageConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


# --- building, loading and overriding -------------------------------------------------------


def from_dict(cls: type, values: dict, path: str = "") -> Any:
    """Build dataclass ``cls`` from a (possibly partial) dict; unknown keys are an error."""
    if not isinstance(values, dict):
        raise ConfigError(f"config section {path or '<root>'!r} must be a mapping, got {values!r}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        where = f" in section {path!r}" if path else ""
        raise ConfigError(
            f"unknown config key(s) {unknown}{where}; valid keys are: {', '.join(known)}"
        )
    kwargs = {}
    hints = typing.get_type_hints(cls)
    for name, value in values.items():
        sub = hints[name]
        key = f"{path}.{name}" if path else name
        if dataclasses.is_dataclass(sub):
            kwargs[name] = from_dict(sub, value, key)
        else:
            kwargs[name] = coerce(value, hints[name], key)
    return cls(**kwargs)


def coerce(value: Any, annotation: Any, key: str) -> Any:
    """Convert a value (possibly a command-line string) to the field's declared type."""
    options = typing.get_args(annotation) if typing.get_origin(annotation) else (annotation,)
    if value is None or (isinstance(value, str) and value.lower() in {"none", "null"}):
        if type(None) in options:
            return None
        raise ConfigError(f"config key {key!r} cannot be empty; give a value")
    target = next(t for t in options if t is not type(None))
    try:
        if target is bool:
            if isinstance(value, str):
                lowered = value.lower()
                if lowered not in {"true", "false", "1", "0", "yes", "no"}:
                    raise ValueError(value)
                return lowered in {"true", "1", "yes"}
            return bool(value)
        if target in (int, float):
            if isinstance(value, bool):
                raise ValueError(value)
            converted = target(value)
            if target is int and isinstance(value, float) and value != converted:
                raise ValueError(value)
            return converted
        if target in (dict, list):
            if isinstance(value, str):
                value = json.loads(value)
            if not isinstance(value, target):
                raise ValueError(value)
            return value
        return str(value)
    except (ValueError, json.JSONDecodeError):
        raise ConfigError(
            f"config key {key!r} expects {getattr(target, '__name__', target)}, got {value!r}"
            + ("; write it as JSON, e.g. '{\"lam\": 1.5}'" if target in (dict, list) else "")
        ) from None


def load_config(
    path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> RunConfig:
    """Read a JSON or TOML config file (optional) and apply dotted-key overrides."""
    values: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(
                f"config file {path} does not exist; check the path given to --config"
            )
        text = path.read_text()
        try:
            values = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        except (json.JSONDecodeError, tomllib.TOMLDecodeError) as error:
            raise ConfigError(
                f"config file {path} is not valid {path.suffix[1:] or 'JSON'}: {error}"
            ) from None
    cfg = from_dict(RunConfig, values)
    for key, value in (overrides or {}).items():
        set_by_path(cfg, key, value)
    validate(cfg)
    return cfg


def set_by_path(cfg: RunConfig, key: str, value: Any) -> None:
    """Set ``cfg.<section>.<field>`` from a dotted key, with type conversion."""
    parts = key.split(".")
    target: Any = cfg
    for i, part in enumerate(parts):
        if not dataclasses.is_dataclass(target):
            raise ConfigError(f"config key {key!r} goes too deep; {'.'.join(parts[:i])} is a value")
        names = [f.name for f in dataclasses.fields(target)]
        if part not in names:
            where = ".".join(parts[:i]) or "the top level"
            raise ConfigError(f"unknown config key {key!r}: {where} has {', '.join(names)}")
        if i == len(parts) - 1:
            annotation = typing.get_type_hints(type(target))[part]
            if dataclasses.is_dataclass(annotation):
                raise ConfigError(f"config key {key!r} is a section; set one of its fields instead")
            setattr(target, part, coerce(value, annotation, key))
        else:
            target = getattr(target, part)


def iter_fields(cls: type = RunConfig, prefix: str = ""):
    """Yield (dotted key, annotation, default, help) for every leaf field."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(hints[f.name]):
            yield from iter_fields(hints[f.name], key + ".")
        else:
            default = (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            )
            yield key, hints[f.name], default, f.metadata.get("help", "")


def validate(cfg: RunConfig) -> None:
    """Range checks that no type can express; each error says how to fix it."""
    checks = [
        (cfg.train.epochs >= 1, "train.epochs must be >= 1"),
        (cfg.data.batch_size >= 1, "data.batch_size must be >= 1"),
        (cfg.data.eval_batch_size >= 1, "data.eval_batch_size must be >= 1"),
        (0.0 <= cfg.data.validation_fraction < 1.0, "data.validation_fraction must be in [0, 1)"),
        (cfg.optim.lr > 0, "optim.lr must be > 0"),
        (
            cfg.optim.schedule in {"constant", "step", "cosine"},
            "optim.schedule must be constant, step or cosine",
        ),
        (
            cfg.optim.name in {"sgd", "adam", "adamw", "rmsprop"},
            "optim.name must be sgd, adam, adamw or rmsprop",
        ),
        (
            cfg.data.augment in {"auto", "none", "crop_flip"},
            "data.augment must be auto, none or crop_flip",
        ),
        (
            0.0 <= cfg.two_stage.switch_accuracy <= 1.0,
            "two_stage.switch_accuracy is a fraction in [0, 1], e.g. 0.8",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    for spec in cfg.eval.attacks:
        if not isinstance(spec, dict) or "name" not in spec:
            raise ConfigError(
                'each entry of eval.attacks needs a name, e.g. {"name": "pgd", "settings": {"eps": 0.1}}'
            )
        extra = set(spec) - {"name", "settings"}
        if extra:
            raise ConfigError(
                f"eval.attacks entry {spec!r} has unknown keys {sorted(extra)}; use name and settings"
            )
