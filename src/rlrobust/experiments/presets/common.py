"""The pieces of every reproduction preset: the paper's protocol as data, our scales as named
deltas, the paper's numbers.

A preset states the paper's protocol field by field (``Entry``): each config value the paper
implies, with the sentence or table of the seed it comes from, or "not stated" with the value we
chose and why. A scale (``Scale``) is that protocol plus named deltas (``Delta``), each with its
reason. The differences a report lists are *computed* (``resolve.py``): the resolved run config
against the paper's, field by field, so no default can be inherited silently.

Besides config fields a protocol and a delta may hold these pseudo-keys:

- ``runs``: runs per arm (seeds 0 .. runs - 1);
- ``grid``: ``{dotted key: [values]}``, the grid the paper sweeps (Kim's lambda tables);
- ``arms``: the list of the preset's variants that a scale runs (default: all);
- ``rlab.<setting>`` and ``transfer.<setting>``: the steps that run after training and
  evaluation (RLAB on every run; transfer attacks from one arm's models to the others).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CIFAR_EPS = 8 / 255
#: pseudo-keys of a protocol or delta that are not config fields (module docstring).
PSEUDO_KEYS = ("runs", "grid", "arms")
POST_PREFIXES = ("rlab.", "transfer.")
_NO_FALLBACK = object()


@dataclass(frozen=True)
class Entry:
    """One protocol value: ``stated`` by the paper (``source`` quotes it) or our choice where
    the paper is silent (``source`` says what we chose and why).

    ``requires`` names a config field or ``objective:NAME`` this value needs; where this
    rlrobust lacks it, ``fallback`` (if given) is used instead and the difference is reported.
    """

    value: Any
    source: str
    stated: bool = True
    requires: str | None = None
    fallback: Any = _NO_FALLBACK

    @property
    def has_fallback(self) -> bool:
        return self.fallback is not _NO_FALLBACK


def stated(value: Any, source: str, **kw: Any) -> Entry:
    """A value the paper (or the source named) gives; ``source`` quotes where."""
    return Entry(value, source, True, **kw)


def chosen(value: Any, why: str, **kw: Any) -> Entry:
    """A value the paper does not state: ours, with the reason."""
    return Entry(value, "not stated; " + why, False, **kw)


@dataclass(frozen=True)
class Delta:
    """A named change of the paper's protocol at one scale, with its reason.

    ``arms``: the variants it applies to (empty: every run).
    """

    name: str
    why: str
    overrides: dict
    arms: tuple[str, ...] = ()


@dataclass
class Scale:
    deltas: list[Delta] = field(default_factory=list)
    # differences that no config field shows (e.g. which victims RLAB attacks), in words
    notes: list[str] = field(default_factory=list)


@dataclass
class Variant:
    """One arm of the comparison: protocol entries (or plain values citing ``source``)."""

    protocol: dict[str, Any]
    source: str = ""

    def entries(self) -> dict[str, Entry]:
        return {
            k: v if isinstance(v, Entry) else stated(v, self.source)
            for k, v in self.protocol.items()
        }


@dataclass(frozen=True)
class Reference:
    """One published number: ``variant`` names an arm, ``values`` a grid point."""

    metric: str  # our metric name: clean, fgsm, pgd, autoattack, worst_case, transfer, ...
    value: float  # accuracy in %
    source: str  # paper and table, with its protocol when it differs from the preset's
    variant: str | None = None
    values: dict | None = None
    paper_metric: str = ""  # the paper's column name, when it differs from ours


@dataclass
class Preset:
    name: str
    title: str
    protocol: dict[str, Entry]  # every run: config fields and pseudo-keys (module docstring)
    variants: dict[str, Variant]
    scales: dict[str, Scale]
    references: list[Reference]
    # what a reader should know about the source of the numbers (e.g. not the paper itself)
    source_note: str = ""


SCALES = ("smoke", "laptop", "paper")


# --- evaluation attacks, every setting spelled out ----------------------------------------------
# The execution-only settings (seed, batch size, verbosity, early exit, EOT) are not protocol.


def fgsm(eps: float, label: str | None = None) -> dict:
    settings = {
        "eps": eps,
        "norm": "linf",
        "loss": "ce",
        "targeted": False,
        "target": "random",
        "random_start": False,  # Goodfellow et al.'s FGSM starts from the clean point
        "alpha": None,  # step = eps
    }
    return _spec("fgsm", settings, label)


def pgd(
    eps: float,
    steps: int,
    step_size: float,
    label: str | None = None,
    random_start: bool = True,
    restarts: int = 1,
) -> dict:
    settings = {
        "eps": eps,
        "norm": "linf",
        "steps": steps,
        "step_size": step_size,
        "random_start": random_start,  # Madry et al.'s PGD starts at a random point of the ball
        "restarts": restarts,
        "loss": "ce",
        "targeted": False,
        "target": "random",
    }
    return _spec("pgd", settings, label)


def autoattack(eps: float, label: str | None = None) -> dict:
    """AutoAttack's standard version (Croce and Hein 2020): APGD-CE, APGD-T, FAB-T, Square."""
    settings = {
        "eps": eps,
        "norm": "linf",
        "version": "standard",
        "attacks": None,  # the version's own list
        "n_queries": 5000,
        "n_iter": 100,
    }
    return _spec("autoattack", settings, label)


def square(eps: float, n_queries: int = 5000, label: str | None = None) -> dict:
    """Square (Andriushchenko et al. 2020), the query-based attack, with its published defaults."""
    settings = {
        "eps": eps,
        "norm": "linf",
        "n_queries": n_queries,
        "p_init": 0.8,
        "loss": "margin",
        "rescale_schedule": False,
    }
    return _spec("square", settings, label)


def _spec(name: str, settings: dict, label: str | None) -> dict:
    spec = {"name": name, "settings": settings}
    if label:
        spec["label"] = label
    return spec


# --- entries every paper leaves to us ------------------------------------------------------------


def framework_defaults() -> dict[str, Entry]:
    """Fields none of the papers mention: our choice, the same for every preset, with why."""
    return {
        "data.options": chosen({}, "the data set's standard loader"),
        "data.train_subset": chosen(None, "the whole training set"),
        "data.test_subset": chosen(None, "the whole test set"),
        "data.validation_fraction": chosen(0.0, "no validation split: the papers report test sets"),
        "model.options": chosen({}, "the architecture as our model registry builds it"),
        "train.amp": chosen("none", "float32 throughout, the frameworks' default"),
        "train.checkpoint_every": chosen(None, "no intermediate checkpoint selection"),
        "train.select_checkpoint": chosen("last", "the weights after the last epoch"),
        "train.select_eps": chosen(CIFAR_EPS, "unused without checkpoint selection"),
        "train.select_examples": chosen(None, "unused without checkpoint selection"),
        "two_stage.enabled": chosen(False, "one objective throughout"),
        "adversarial.method": chosen("none", "no adversarial training"),
        "adversarial.stop_on_overfitting": chosen(False, "no early stop"),
        "eval.cascade": chosen(
            False, "the tables give each attack its own column: each attack on every point"
        ),
        "eval.n_examples": chosen(None, "the whole test set"),
        "eval.preset": chosen(None, "the attacks are listed explicitly"),
        "eval.eps": chosen(None, "unused: no eval preset, surrogate or masking checks"),
        "eval.norm": chosen("linf", "the papers' threat model"),
        "eval.surrogate": chosen(None, "no transfer attack in the evaluation"),
        "eval.eps_curve": chosen([], "no eps curve"),
        "eval.masking": chosen(False, "no gradient-masking checks"),
        "eval.masking_budget": chosen("quick", "unused without masking checks"),
        "eval.eot_samples": chosen(None, "automatic: 1 (plain attacks) for deterministic models"),
    }


def sgd_without_extras(lr: float, source: str) -> dict[str, Entry]:
    """Plain SGD: no momentum, no weight decay, no Nesterov (Kim: 'without any additional
    constraints')."""
    return {
        "optim.name": stated("sgd", source),
        "optim.lr": stated(lr, source),
        "optim.momentum": stated(0.0, source),
        "optim.weight_decay": stated(0.0, source),
        "optim.nesterov": stated(False, source),
        "optim.alpha": chosen(None, "unused by SGD"),
        "optim.keras_decay": chosen(0.0, "unused by SGD"),
    }


# --- deltas shared by the scales ------------------------------------------------------------------

SMOKE_DATA = Delta(
    "smoke data and model",
    "seconds on a CPU for the test suite: scikit-learn's digits (320 training images, 8 x 8) and "
    "a small MLP",
    {
        "data.name": "digits",
        "data.train_subset": 320,
        "data.batch_size": 64,
        "data.augment": "none",
        "model.name": "mlp",
        "model.options": {},
        "eval.n_examples": 64,
    },
)
SMOKE_ATTACKS = Delta(
    "smoke attacks",
    "tiny attacks on 64 test images so that a smoke run takes seconds",
    {"eval.attacks": [fgsm(0.1), pgd(0.1, 3, 0.05)]},
)


def smoke_epochs(epochs: int = 2, **extra: Any) -> Delta:
    return Delta(
        "smoke epochs",
        f"{epochs} epoch(s): the mechanics, not the numbers",
        {"train.epochs": epochs, **extra},
    )


def smoke_runs(runs: int = 1) -> Delta:
    return Delta("smoke runs", "one seed keeps the test suite short", {"runs": runs})


LAPTOP_RUNS_WHY = (
    "three seeds: the fewest that give a spread and a Student-t interval across seeds "
    "(docs/findings.md), within laptop minutes"
)


def laptop_runs(runs: int = 3, why: str = LAPTOP_RUNS_WHY) -> Delta:
    return Delta("laptop runs", why, {"runs": runs})


#: CIFAR protocols on a laptop: CIFAR-10 files are not on this machine (docs/data.md).
LAPTOP_FOR_CIFAR = Delta(
    "laptop data for a CIFAR protocol",
    "CIFAR-10 is not on this machine and its models take GPU hours; Fashion-MNIST (real files "
    "here; grayscale 28 x 28, harder than MNIST) with LeNet5 stands in, at eps 0.1",
    {
        "data.name": "fashion-mnist",
        "data.augment": "none",
        "model.name": "lenet5",
        "model.options": {},
        "eval.n_examples": 1000,
    },
)
LAPTOP_FOR_MNIST = Delta(
    "laptop test images",
    "1000 test images keep the attacks within laptop minutes",
    {"eval.n_examples": 1000},
)


def scaled_milestones(milestones: list[int], epochs: int, laptop_epochs: int) -> list[int]:
    """The paper's step-schedule milestones at the same fractions of a shorter run."""
    return [max(1, round(m * laptop_epochs / epochs)) for m in milestones]
