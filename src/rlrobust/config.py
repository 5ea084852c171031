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
    name: str = option(
        "mnist",
        "data set: images (mnist, fashion-mnist, cifar10, cifar100, digits), signals "
        "(ucr-gunpoint, ucr-arrowhead, ucr-osuleaf, ucr-acsf1, ucr-italypowerdemand, ecg200, "
        "ecg5000), clips (moving-mnist, moving-mnist-wrap), or your own: folder (one subfolder of "
        "images per class) or tensors (a .npz / .safetensors file); `rlrobust train --list` "
        "shows all",
    )
    data_dir: str | None = option(
        None,
        "folder holding mnist/, fashion-mnist/, cifar10/, cifar100/ (default: $RLROBUST_DATA, "
        "else ~/.cache/rlrobust/data); for folder and tensors: your image folder or file",
    )
    options: dict = option(
        {},
        "options of the data set's loader as JSON, e.g. "
        '{"test_fraction": 0.25, "size": [32, 32]} for folder (docs/own_data.md)',
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
        "training objective: cross_entropy, gupta_vpg, kim_policy, kim_warmup, zou_pg, pc_loss",
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
    name: str = option(
        "sgd",
        "optimiser: sgd, adam, adamw, rmsprop (torch's), rmsprop_keras (Keras 2.x RMSprop, "
        "Gupta's; docs/training.md)",
    )
    lr: float = option(0.1, "initial learning rate")
    momentum: float = option(0.9, "momentum (sgd, rmsprop; rmsprop_keras has none)")
    weight_decay: float = option(
        5e-4, "weight decay (L2 added to the gradient; Keras' RMSprop has none: Gupta uses 0)"
    )
    alpha: float | None = option(
        None,
        "RMSprop's squared-gradient average factor (torch alpha, Keras rho); default: 0.99 for "
        "rmsprop, 0.9 for rmsprop_keras",
    )
    keras_decay: float = option(
        0.0,
        "rmsprop_keras: Keras' per-iteration inverse-time lr decay, lr_t = lr / (1 + decay * t) "
        "after t updates (Gupta: 1e-6); not weight decay",
    )
    nesterov: bool = option(False, "Nesterov momentum (sgd)")
    schedule: str = option("constant", "learning-rate schedule: constant, step, cosine")
    milestones: list = option([], "epochs at which the step schedule multiplies the lr by gamma")
    gamma: float = option(0.1, "step schedule factor")
    fused: bool = option(
        False,
        "fast path: the fused (single-kernel) update of sgd, adam or adamw where torch has one "
        "for the device; weights agree with the plain update to rounding (docs/training.md)",
    )


@dataclass
class TrainConfig:
    epochs: int = option(10, "number of training epochs")
    seed: int = option(0, "random seed (data order, action sampling, initialisation)")
    device: str = option("auto", "cpu, cuda, cuda:N or auto (cuda when available)")
    channels_last: bool = option(
        False,
        "fast path: model and 4-D image batches in torch.channels_last memory format, in "
        "training and evaluation (same numbers up to rounding; docs/training.md)",
    )
    amp: str = option(
        "none",
        "fast path: none, or bf16 (bfloat16 autocast around training forward passes and the "
        "attacks' forward passes; losses stay float32; pays off on GPUs)",
    )
    compile: bool = option(
        False,
        "fast path: train through torch.compile(model); checkpoints hold the plain module's "
        "weights (needs a working compiler toolchain)",
    )
    deterministic: bool = option(
        False,
        "deterministic kernels on CUDA (torch.use_deterministic_algorithms, no cuDNN autotuning, "
        "a fixed cuBLAS workspace) so that --resume is bit-exact on a GPU too; slower. On a CPU "
        "resume is bit-exact without it",
    )
    tensorboard: bool = option(
        False,
        "also write the metrics.csv scalars, the stage switch and early stops as TensorBoard "
        "events to RUN/tensorboard (needs pip install 'rlrobust[tensorboard]')",
    )
    checkpoint_every: int | None = option(
        None,
        "every K epochs, measure FGSM accuracy at train.select_eps on the test split (metrics.csv "
        "column select_fgsm_accuracy) and keep those weights in RUN/select/ (Gupta: 20); "
        "default: off",
    )
    select_checkpoint: str = option(
        "last",
        "which weights become model.safetensors: last, or best_fgsm_test (the kept checkpoint "
        "with the best FGSM test accuracy, as Gupta picked it: selection on TEST data, so its "
        "numbers are optimistic; docs/training.md)",
    )
    select_eps: float = option(
        8 / 255, "Linf radius of the FGSM of train.checkpoint_every (Gupta: 8/255)"
    )
    select_examples: int | None = option(
        None,
        "measure the checkpoints on the first N test images (a fixed subset) instead of all",
    )


@dataclass
class EvalConfig:
    attacks: list = option(
        [
            {"name": "fgsm", "settings": {"eps": 0.1}},
            {"name": "pgd", "settings": {"eps": 0.1, "steps": 40, "step_size": 0.01}},
        ],
        'attacks as JSON: [{"name": "pgd", "settings": {"eps": 0.1, "steps": 40}}, ...]; an '
        'optional "label" names the attack in the tables',
    )
    cascade: bool = option(
        False,
        "run each attack only on points still robust after the previous ones (AutoAttack "
        "style); default: every attack on every clean-correct point, so each has its own accuracy",
    )
    n_examples: int | None = option(None, "evaluate on this many test images (default: all)")
    seed: int = option(0, "seed for the choice of test images and the attacks' randomness")
    preset: str | None = option(
        None,
        "named attack list that replaces eval.attacks: quick, standard (AutoAttack's "
        "standard version beside FGSM and PGD-40; the one to cite), thorough, or rand (for "
        "randomised models: EOT-PGD and AutoAttack's rand version)",
    )
    eps: float | None = option(
        None,
        "threat-model radius in pixel units for eval.preset, eval.eps_curve and the masking "
        "checks, e.g. 0.3 for MNIST or 0.0314 (8/255) for CIFAR",
    )
    norm: str = option(
        "linf", "threat model of eval.preset, eval.eps_curve and masking checks: linf or l2"
    )
    surrogate: str | None = option(
        None,
        "run directory (from `rlrobust train`) of a surrogate model: adds transfer attacks "
        "(PGD and momentum PGD crafted on it)",
    )
    eps_curve: list = option(
        [], "eps values for a robust-accuracy-against-eps curve (PGD), e.g. [0.05, 0.1, 0.2]"
    )
    masking: bool = option(False, "also run the gradient-masking checks and give a verdict")
    masking_budget: str = option("quick", "cost of the masking checks: quick or standard")
    early_exit: bool = option(
        True,
        "PGD-type attacks stop iterating on points already fooled (AutoAttack style); the "
        "per-sample verdicts are the same as without it, only cheaper (docs/evaluation.md)",
    )
    eot_samples: int | None = option(
        None,
        "forward passes averaged per gradient step (Expectation over Transformation) for PGD "
        "attacks, and AutoAttack's rand version when > 1; default: 20 if the model's eval-mode "
        "forward pass is random, else 1 (plain attacks); 1 turns EOT off",
    )
    save_examples: bool = option(
        False,
        "write the adversarial inputs of the fooled points, per attack and the per-sample worst "
        "case, to NAME-examples/*.safetensors (replay them on any model with the `saved` attack)",
    )
    checkpoint: bool = option(
        True,
        "write every finished (batch, attack) to NAME.partial/ so that a killed evaluation "
        "continues with `rlrobust evaluate RUN --resume`; removed when the evaluation completes",
    )
    oom_backoff: bool = option(
        True,
        "on an out-of-memory error, halve the batch and start again (the result equals a run "
        "with the smaller data.eval_batch_size from the start) instead of failing",
    )


#: the values of ``optim.name`` (training/optim.py).
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "rmsprop_keras")

#: the defences that ``adversarial.method`` names (docs/defences.md).
ADVERSARIAL_METHODS = ("none", "fgsm_at", "pgd_at", "trades", "rl_adv", "l2l")
L2L_VARIANTS = ("plain", "gradient", "two_step")
L2L_ARCHS = ("slim", "two_layer")


@dataclass
class AdversarialConfig:
    """Adversarial defences: each method is a training step of the same loop (docs/defences.md).

    Every perturbation is in the Linf ball of radius ``eps`` around the clean image and in
    [0, 1]. Fields left at ``None`` take the method's default (see ``resolved``).
    """

    method: str = option(
        "none",
        "defence: none, fgsm_at (Gupta Alg. 1; Wong et al. with random_start), pgd_at (Madry), "
        "trades (Zhang et al.), rl_adv (Zou et al.), l2l (learned attacker)",
    )
    eps: float | None = option(
        None,
        "Linf radius in [0, 1] pixel units (default: 0.01 for rl_adv as Zou et al., else 8/255)",
    )
    attack: str = option("fgsm", "rl_adv only: the attack that makes x_adv, fgsm or pgd")
    steps: int = option(10, "iterations of the PGD attacks (pgd_at, trades, rl_adv with pgd)")
    step_size: float | None = option(None, "step of the PGD attacks (default: eps / 4)")
    random_start: bool | None = option(
        None,
        "start the attack from a uniform point of the eps-ball (default: no for FGSM, as Gupta "
        "Alg. 1 and Zou et al.; true gives Wong et al.'s fast AT; yes for PGD, as Madry)",
    )
    alpha: float | None = option(
        None, "FGSM step (default: eps, or 1.25 * eps with a random start as Wong et al.)"
    )
    attack_loss: str = option(
        "auto",
        "loss the attack maximises: ce, or objective (the current objective with actions fixed "
        "greedily on clean x); auto: objective for rl_adv, ce for fgsm_at, pgd_at and l2l",
    )
    start_epoch: int | None = option(
        None,
        "first epoch (0-based) trained adversarially; earlier ones train on clean images "
        "(default: 50 for rl_adv as Zou et al., else 0)",
    )
    eps_ramp_epochs: int = option(
        0, "grow eps linearly to its value over the first k adversarial epochs (0: no ramp)"
    )
    adv_rate: float = option(0.2, "rl_adv: weight of L_PG(x_adv) (Zou et al.: 0.2)")
    beta: float = option(6.0, "trades: weight of the KL term (Zhang et al.: 6; Kim Table 6: 6)")
    l2l_variant: str = option(
        "gradient",
        "l2l: plain (image only), gradient (image and its input gradient) or two_step",
    )
    l2l_arch: str = option("slim", "l2l attacker network: slim (4 narrow convs) or two_layer")
    l2l_lr: float = option(1e-3, "l2l: Adam learning rate of the attacker network")
    monitor_size: int = option(
        512,
        "images of the held-out split (validation if held out, else test) attacked with FGSM "
        "and PGD after every epoch to detect catastrophic overfitting (0: off)",
    )
    monitor_steps: int = option(10, "PGD steps of the end-of-epoch monitor")
    overfit_drop: float = option(
        0.2,
        "flag catastrophic overfitting when monitor PGD accuracy falls this far (0-1) below its "
        "best while FGSM accuracy does not fall",
    )
    stop_on_overfitting: bool = option(
        False, "end the run when catastrophic overfitting is flagged (Wong et al.'s early stop)"
    )

    def resolved(self) -> AdversarialConfig:
        """A copy with every ``None`` / ``auto`` replaced by the method's default."""
        eps = self.eps if self.eps is not None else (0.01 if self.method == "rl_adv" else 8 / 255)
        fgsm = self.method == "fgsm_at" or (self.method == "rl_adv" and self.attack == "fgsm")
        attack_loss = self.attack_loss
        if attack_loss == "auto":
            attack_loss = "objective" if self.method == "rl_adv" else "ce"
        return dataclasses.replace(
            self,
            eps=eps,
            step_size=self.step_size if self.step_size is not None else eps / 4,
            random_start=self.random_start if self.random_start is not None else not fgsm,
            attack_loss=attack_loss,
            start_epoch=(
                self.start_epoch
                if self.start_epoch is not None
                else (50 if self.method == "rl_adv" else 0)
            ),
        )


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    two_stage: TwoStageConfig = field(default_factory=TwoStageConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    adversarial: AdversarialConfig = field(default_factory=AdversarialConfig)

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
    spelled_empty = isinstance(value, str) and value.lower() in {"none", "null"}
    if value is None or (spelled_empty and type(None) in options):
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
                try:
                    value = json.loads(value)
                except json.JSONDecodeError as error:
                    raise ConfigError(
                        f"config key {key!r} is not valid JSON: {error.msg} at character "
                        f"{error.pos} of {value!r}; {_json_example(key, target)}"
                    ) from None
            if not isinstance(value, target):
                raise ValueError(value)
            return value
        return str(value)
    except ConfigError:
        raise
    except ValueError:
        raise ConfigError(
            f"config key {key!r} expects {getattr(target, '__name__', target)}, got {value!r}"
            + (f"; {_json_example(key, target)}" if target in (dict, list) else "")
        ) from None


#: examples shown when a JSON-valued key is malformed: the key's own shape where it is known.
JSON_EXAMPLES = {
    "eval.attacks": '\'[{"name": "pgd", "settings": {"eps": 0.3, "steps": 40}}, {"name": "fgsm"}]\'',
    "eval.eps_curve": "'[0.05, 0.1, 0.2]'",
}


def _json_example(key: str, target: type) -> str:
    example = JSON_EXAMPLES.get(key) or ("'[1, 2]'" if target is list else '\'{"lam": 1.5}\'')
    return f"write it as JSON: a {'list' if target is list else 'object'}, e.g. {example}"


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
        if path.suffix.lower() in (".yaml", ".yml"):
            raise ConfigError(
                f"config file {path} is YAML, which rlrobust does not read; write the same "
                "sections as JSON (.json) or TOML (.toml)"
            )
        text = path.read_text()
        kind = "TOML" if path.suffix == ".toml" else "JSON"
        try:
            values = tomllib.loads(text) if kind == "TOML" else json.loads(text)
        except (json.JSONDecodeError, tomllib.TOMLDecodeError) as error:
            raise ConfigError(
                f"config file {path} is not valid {kind}: {error}"
                + ("" if path.suffix in (".json", ".toml") else "; name it .json or .toml")
            ) from None
        if not isinstance(values, dict):
            raise ConfigError(
                f"config file {path} must hold an object of sections (data, model, ...), "
                f"got a {type(values).__name__}"
            )
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
            cfg.optim.name in OPTIMIZERS,
            f"optim.name must be one of {', '.join(OPTIMIZERS)}",
        ),
        (
            cfg.optim.alpha is None or 0.0 <= cfg.optim.alpha < 1.0,
            f"optim.alpha = {cfg.optim.alpha} must lie in [0, 1), e.g. 0.9 (Keras' rho)",
        ),
        (
            cfg.optim.keras_decay >= 0.0,
            f"optim.keras_decay = {cfg.optim.keras_decay} must be >= 0 (Gupta: 1e-6)",
        ),
        (
            cfg.optim.keras_decay == 0.0 or cfg.optim.name == "rmsprop_keras",
            "optim.keras_decay is the lr decay of optim.name = rmsprop_keras only; set it to 0 "
            "or use rmsprop_keras",
        ),
        (
            cfg.data.augment in {"auto", "none", "crop_flip"},
            "data.augment must be auto, none or crop_flip",
        ),
        (
            0.0 <= cfg.two_stage.switch_accuracy <= 1.0,
            "two_stage.switch_accuracy is a fraction in [0, 1], e.g. 0.8",
        ),
        (
            cfg.eval.n_examples is None or cfg.eval.n_examples >= 1,
            f"eval.n_examples = {cfg.eval.n_examples}: an evaluation needs at least one test "
            "image; give a positive count, or leave it out for the whole test split",
        ),
        (
            cfg.data.test_subset is None or cfg.data.test_subset >= 1,
            "data.test_subset must be >= 1 (or left out for the whole test split)",
        ),
        (
            cfg.data.train_subset is None or cfg.data.train_subset >= 1,
            "data.train_subset must be >= 1 (or left out for the whole training split)",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    validate_adversarial(cfg.adversarial, cfg.train.epochs)
    validate_fast_paths(cfg)
    validate_selection(cfg.train)
    if cfg.eval.norm not in {"linf", "l2"}:
        raise ConfigError("eval.norm must be linf or l2")
    if cfg.eval.masking_budget not in {"quick", "standard"}:
        raise ConfigError("eval.masking_budget must be quick or standard")
    needs_eps = cfg.eval.preset or cfg.eval.masking or cfg.eval.surrogate
    if needs_eps and cfg.eval.eps is None:
        raise ConfigError(
            "eval.preset, eval.surrogate and eval.masking need the threat model: give --eval.eps "
            "(e.g. 0.3 for MNIST, 0.0314 for CIFAR-10)"
        )
    for spec in cfg.eval.attacks:
        if not isinstance(spec, dict) or "name" not in spec:
            raise ConfigError(
                'each entry of eval.attacks needs a name, e.g. {"name": "pgd", "settings": {"eps": 0.1}}'
            )
        extra = set(spec) - {"name", "settings", "label"}
        if extra:
            raise ConfigError(
                f"eval.attacks entry {spec!r} has unknown keys {sorted(extra)}; use name, "
                "settings and (optionally) label"
            )


#: values of ``train.amp``, and the optimisers that have a fused update in torch.
AMP_MODES = ("none", "bf16")
FUSED_OPTIMIZERS = ("sgd", "adam", "adamw")


def validate_fast_paths(cfg: RunConfig) -> None:
    """The opt-in fast paths (docs/training.md): values and combinations that cannot work."""
    _choice(cfg.train.amp, "train.amp", AMP_MODES)
    if cfg.optim.fused and cfg.optim.name not in FUSED_OPTIMIZERS:
        raise ConfigError(
            f"optim.fused: torch has no fused {cfg.optim.name} update (only "
            f"{', '.join(FUSED_OPTIMIZERS)}); set optim.fused false or choose one of those"
        )


#: values of ``train.select_checkpoint`` (training/selection.py).
SELECT_CHECKPOINTS = ("last", "best_fgsm_test")


def validate_selection(train: TrainConfig) -> None:
    """Gupta's checkpoint selection (training/selection.py): values that cannot work."""
    _choice(train.select_checkpoint, "train.select_checkpoint", SELECT_CHECKPOINTS)
    every = train.checkpoint_every
    checks = [
        (
            every is None or every >= 1,
            f"train.checkpoint_every = {every} must be >= 1 (Gupta: 20), or none to turn it off",
        ),
        (
            0.0 < train.select_eps <= 1.0,
            f"train.select_eps = {train.select_eps} must lie in (0, 1] (pixel units, e.g. 8/255)",
        ),
        (
            train.select_examples is None or train.select_examples >= 1,
            f"train.select_examples = {train.select_examples} must be >= 1, or none for all",
        ),
        (
            train.select_checkpoint == "last" or every is not None,
            "train.select_checkpoint = best_fgsm_test chooses among the checkpoints that "
            "train.checkpoint_every keeps; set train.checkpoint_every (e.g. 20)",
        ),
        (
            train.select_checkpoint == "last" or every is None or every <= train.epochs,
            f"train.checkpoint_every = {every} exceeds train.epochs = {train.epochs}, so no "
            "checkpoint would be kept to select from; lower train.checkpoint_every",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def _choice(value: str, key: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{key} = {value!r} is unknown; choose one of: {', '.join(choices)}")


def validate_adversarial(adv: AdversarialConfig, epochs: int) -> None:
    """Range checks of the ``adversarial`` section; each error names the field and the fix."""
    _choice(adv.method, "adversarial.method", ADVERSARIAL_METHODS)
    _choice(adv.attack, "adversarial.attack", ("fgsm", "pgd"))
    _choice(adv.attack_loss, "adversarial.attack_loss", ("auto", "ce", "objective"))
    _choice(adv.l2l_variant, "adversarial.l2l_variant", L2L_VARIANTS)
    _choice(adv.l2l_arch, "adversarial.l2l_arch", L2L_ARCHS)
    checks = [
        (
            adv.eps is None or 0.0 < adv.eps <= 1.0,
            f"adversarial.eps = {adv.eps} must lie in (0, 1]: it is a radius in [0, 1] pixel "
            "units, e.g. 8/255 = 0.0314 or 0.3 for MNIST",
        ),
        (adv.steps >= 1, f"adversarial.steps = {adv.steps} must be >= 1, e.g. 10"),
        (
            adv.step_size is None or adv.step_size > 0,
            f"adversarial.step_size = {adv.step_size} must be > 0 (default: eps / 4)",
        ),
        (
            adv.alpha is None or adv.alpha > 0,
            f"adversarial.alpha = {adv.alpha} must be > 0 (default: eps or 1.25 * eps)",
        ),
        (
            adv.start_epoch is None or adv.start_epoch >= 0,
            f"adversarial.start_epoch = {adv.start_epoch} must be >= 0",
        ),
        (
            adv.eps_ramp_epochs >= 0,
            f"adversarial.eps_ramp_epochs = {adv.eps_ramp_epochs} must be >= 0 (0: no ramp)",
        ),
        (adv.adv_rate >= 0, f"adversarial.adv_rate = {adv.adv_rate} must be >= 0, e.g. 0.2"),
        (adv.beta >= 0, f"adversarial.beta = {adv.beta} must be >= 0, e.g. 6.0 (Zhang et al.)"),
        (adv.l2l_lr > 0, f"adversarial.l2l_lr = {adv.l2l_lr} must be > 0, e.g. 0.001"),
        (adv.monitor_size >= 0, f"adversarial.monitor_size = {adv.monitor_size} must be >= 0"),
        (adv.monitor_steps >= 1, f"adversarial.monitor_steps = {adv.monitor_steps} must be >= 1"),
        (
            0.0 < adv.overfit_drop <= 1.0,
            f"adversarial.overfit_drop = {adv.overfit_drop} is a fraction in (0, 1], e.g. 0.2",
        ),
        (
            not adv.stop_on_overfitting or adv.monitor_size > 0,
            "adversarial.stop_on_overfitting needs the monitor; set adversarial.monitor_size > 0",
        ),
        (
            adv.method == "rl_adv" or adv.attack == "fgsm",
            "adversarial.attack chooses rl_adv's attack only; for PGD adversarial training "
            "set adversarial.method = pgd_at",
        ),
        (
            adv.method != "trades" or adv.attack_loss == "auto",
            "adversarial.attack_loss does not apply to trades (its attack maximises the KL "
            "term); leave it at auto",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    start = adv.resolved().start_epoch
    if adv.method != "none" and start >= epochs:
        raise ConfigError(
            f"adversarial.start_epoch is {start} but the run has only {epochs} epochs, so "
            f"{adv.method} would never train adversarially; lower adversarial.start_epoch "
            "or raise train.epochs"
        )
