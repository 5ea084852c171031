"""Declarative reproduction presets: the paper's protocol, our three scales, the paper's numbers.

Each preset names the arms it compares (``variants``: dotted-key overrides) or a grid, and for
each scale the data, model, epochs, optimiser, attacks and seeds (``Scale``). ``smoke`` runs on
scikit-learn's digits with an MLP for one or two epochs and tiny attacks (seconds, for tests);
``laptop`` on MNIST with LeNet5 for a few epochs; ``paper`` with the paper's data set, model,
epochs and attack settings. The published numbers (``Reference``) are typed in with the table
they come from (seed papers; summary in the project's reference-number notes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rlrobust.errors import UnknownNameError

SCALES = ("smoke", "laptop", "paper")
CIFAR_EPS = 8 / 255


@dataclass(frozen=True)
class Reference:
    """One published number: ``group`` is a variant name or a grid-point label (``values``)."""

    metric: str  # our metric name: clean, fgsm, pgd, autoattack, worst_case, transfer
    value: float  # accuracy in %
    source: str  # paper and table, with its protocol when it differs from the preset's
    variant: str | None = None
    values: dict | None = None
    paper_metric: str = ""  # the paper's column name, when it differs from ours


@dataclass
class Scale:
    overrides: dict  # dotted keys for every point (data, model, epochs, optimiser, attacks)
    seeds: list[int]
    per_variant: dict[str, dict] = field(default_factory=dict)
    grid: dict[str, list] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # differences no field comparison shows
    # After training and evaluation, RLAB (greedy) on every run with these settings:
    # patch_size, budget, n_examples (see experiments/presets_attacks.py).
    rlab: dict | None = None


@dataclass
class Preset:
    name: str
    title: str
    paper: dict[str, str]  # the paper's protocol in words: data, model, epochs, optimiser, attacks
    variants: dict[str, dict]
    scales: dict[str, Scale]
    references: list[Reference]


# --- attack lists -------------------------------------------------------------------------------


def fgsm(eps: float) -> dict:
    return {"name": "fgsm", "settings": {"eps": eps}}


def pgd(eps: float, steps: int, step_size: float) -> dict:
    settings = {"eps": eps, "steps": steps, "step_size": step_size, "seed": 0}
    return {"name": "pgd", "settings": settings}


def autoattack(eps: float) -> dict:
    settings = {"eps": eps, "norm": "linf", "version": "standard", "seed": 0}
    return {"name": "autoattack", "settings": settings}


# --- the common settings of each scale ------------------------------------------------------------

SMOKE = {
    "data.name": "digits",
    "data.train_subset": 320,
    "data.batch_size": 64,
    "data.eval_batch_size": 256,
    "model.name": "mlp",
    "train.epochs": 1,
    "train.device": "cpu",
    "optim.name": "sgd",
    "optim.lr": 0.05,
    "optim.weight_decay": 0.0,
    "eval.n_examples": 64,
    "eval.attacks": [fgsm(0.1), pgd(0.1, 3, 0.05)],
}
LAPTOP = {
    "data.name": "mnist",
    "data.batch_size": 128,
    "model.name": "lenet5",
    "train.epochs": 5,
    "optim.name": "sgd",
    "optim.lr": 0.05,
    "optim.schedule": "cosine",
    "eval.n_examples": 1000,
    "eval.attacks": [fgsm(0.1), pgd(0.1, 40, 0.01)],
}
# Kim's MNIST protocol (LeNet5, SGD 0.1 divided by 10 at epochs 50 and 150; eps 0.1, PGD 40 x 0.01).
KIM_MNIST_PAPER = {
    "data.name": "mnist",
    "model.name": "lenet5",
    "optim.name": "sgd",
    "optim.lr": 0.1,
    "optim.schedule": "step",
    "optim.milestones": [50, 150],
    "optim.gamma": 0.1,
    "train.epochs": 200,
    "eval.attacks": [fgsm(0.1), pgd(0.1, 40, 0.01)],
}
KIM_MNIST_WORDS = {
    "data": "mnist",
    "model": "lenet5",
    "epochs": "100 (CE) / 200 (policy)",
    "optimiser": "sgd lr 0.1, /10 at epochs 50 and 150",
    "attacks": "fgsm eps 0.1; pgd 40 steps of 0.01 at eps 0.1",
}

POLICY = {
    "objective.name": "kim_policy",
    "objective.options": {"lam": 1.5, "action": "greedy"},
    "two_stage.enabled": True,
    "two_stage.warmup_objective": "kim_warmup",
    "two_stage.warmup_options": {"lam": 0.75},
    "two_stage.switch_accuracy": 0.8,
}
CE = {"objective.name": "cross_entropy"}


def _kim_mnist() -> Preset:
    variants = {
        "CE": CE,
        "policy (Eq. 12 warm-up + Eq. 4)": POLICY,
        "CE warm-up + Eq. 4": {
            **POLICY,
            "two_stage.warmup_objective": "cross_entropy",
            "two_stage.warmup_options": {},
        },
        "Eq. 4 only": {**POLICY, "two_stage.enabled": False},
    }
    table3 = "Kim Table 3 (MNIST, LeNet5; eps 0.1 as Table 2's caption, the text says 0.04)"
    policy = "policy (Eq. 12 warm-up + Eq. 4)"
    return Preset(
        name="kim-mnist",
        title="Kim: CE vs policy loss on MNIST (Table 3) with the ablation (Table 4)",
        paper=KIM_MNIST_WORDS,
        variants=variants,
        scales={
            "smoke": Scale({**SMOKE, "train.epochs": 2}, [0]),
            "laptop": Scale(LAPTOP, [0, 1]),
            "paper": Scale(
                KIM_MNIST_PAPER,
                [0, 1, 2],
                per_variant={"CE": {"train.epochs": 100}},
                notes=[
                    "Table 4's ablation is on CIFAR-10 (VGG13); this preset runs it on MNIST",
                ],
            ),
        },
        references=[
            Reference("clean", 99.19, table3, variant="CE"),
            Reference("fgsm", 71.45, table3, variant="CE", paper_metric="FGSM"),
            Reference("pgd", 46.88, table3, variant="CE", paper_metric="PGD"),
            Reference("clean", 99.21, table3, variant=policy),
            Reference("fgsm", 86.40, table3, variant=policy, paper_metric="FGSM"),
            Reference("pgd", 63.73, table3, variant=policy, paper_metric="PGD"),
            Reference(
                "clean",
                10.00,
                "Kim Table 4 (CIFAR-10, VGG13: Eq. 4 from scratch does not train)",
                variant="Eq. 4 only",
            ),
        ],
    )


def _kim_lambda() -> Preset:
    paper_values = [0.1, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5]
    keys = ("two_stage.warmup_options.lam", "objective.options.lam")

    def grid(values: list[float]) -> dict[str, list]:
        return {keys[0]: list(values), keys[1]: list(values)}

    table2 = "Kim Table 2 (MNIST, LeNet5, eps 0.1; PGD 40 x 0.01)"
    cell = {keys[0]: 0.75, keys[1]: 1.5}
    return Preset(
        name="kim-lambda",
        title="Kim: lambda1 (Eq. 12 warm-up) x lambda2 (Eq. 4) grid on MNIST (Table 2)",
        paper={**KIM_MNIST_WORDS, "epochs": "200", "grid": "7 x 7 over " + str(paper_values)},
        variants={},
        scales={
            "smoke": Scale(
                {**SMOKE, **POLICY, "train.epochs": 2},
                [0],
                grid=grid([0.75, 1.5]),
                notes=["smoke: a 2 x 2 grid {0.75, 1.5} instead of Kim's 7 x 7"],
            ),
            "laptop": Scale(
                {**LAPTOP, **POLICY},
                [0, 1],
                grid=grid([0.25, 0.75, 1.5]),
                notes=["laptop: a 3 x 3 grid {0.25, 0.75, 1.5} instead of Kim's 7 x 7"],
            ),
            "paper": Scale({**KIM_MNIST_PAPER, **POLICY}, [0], grid=grid(paper_values)),
        },
        references=[
            Reference("clean", 99.21, table2, values=cell),
            Reference("fgsm", 86.40, table2, values=cell, paper_metric="FGSM"),
            Reference("pgd", 63.73, table2, values=cell, paper_metric="PGD"),
        ],
    )


def _gupta() -> Preset:
    def adversarial(eps: float) -> dict:
        # Gupta Alg. 1: FGSM from the clean point (no random start), step eps.
        return {"adversarial.method": "fgsm_at", "adversarial.eps": eps}

    variants = {"CE": CE, "RL": {"objective.name": "gupta_vpg"}}
    table1 = "Gupta Table 1 (CIFAR-10, FGSM-AT eps 8/255, AutoAttack eps 8/255)"
    return Preset(
        name="gupta-fgsm-at",
        title="Gupta: FGSM adversarial training, CE vs RL (Table 1)",
        paper={
            "data": "cifar10",
            "model": "gupta_cnn",
            "epochs": "220 (best CE checkpoint at 60)",
            "optimiser": "rmsprop lr 0.0001",
            "attacks": "autoattack standard at eps 8/255",
        },
        variants=variants,
        scales={
            "smoke": Scale({**SMOKE, **adversarial(0.1), "adversarial.monitor_size": 0}, [0]),
            "laptop": Scale(
                {**LAPTOP, **adversarial(0.1), "adversarial.monitor_size": 256}, [0, 1]
            ),
            "paper": Scale(
                {
                    "data.name": "cifar10",
                    "model.name": "gupta_cnn",
                    "optim.name": "rmsprop",
                    "optim.lr": 1e-4,
                    "optim.weight_decay": 1e-6,
                    "train.epochs": 220,
                    **adversarial(CIFAR_EPS),
                    "eval.attacks": [fgsm(CIFAR_EPS), autoattack(CIFAR_EPS)],
                },
                [0, 1, 2],
                notes=[
                    "paper: Gupta keeps the best checkpoint on adversarial test accuracy (CE at "
                    "epoch 60); we report the last epoch",
                    "paper: RMSprop 'decay 1e-6' is read as weight decay 1e-6",
                ],
            ),
        },
        references=[
            Reference("clean", 52.85, table1, variant="RL"),
            Reference("autoattack", 30.41, table1, variant="RL", paper_metric="AutoAttack"),
            Reference("clean", 50.96, table1 + ", CE best at epoch 60", variant="CE"),
            Reference(
                "autoattack",
                26.36,
                table1 + ", CE best at epoch 60",
                variant="CE",
                paper_metric="AutoAttack",
            ),
        ],
    )


def _zou() -> Preset:
    rl = {"objective.name": "zou_pg", "objective.options": {"epsilon": 0.1}}
    adv = {"adversarial.method": "rl_adv", "adversarial.monitor_size": 0}
    variants = {"SL": CE, "RL": rl, "SL-adv": {**CE, **adv}, "RL-adv": {**rl, **adv}}
    readme = "Zou et al., README summary (CIFAR-10, 6-layer CNN; attack not stated, approximate)"
    return Preset(
        name="zou",
        title="Zou et al.: SL / RL / SL-adv / RL-adv",
        paper={
            "data": "cifar10",
            "model": "zou_cnn6",
            "epochs": "100 (adversarial from epoch 50)",
            "optimiser": "adamw lr 0.001, batch 128",
            "attacks": "pgd at eps 8/255 (not stated in the summary)",
        },
        variants=variants,
        scales={
            "smoke": Scale({**SMOKE, "train.epochs": 2, "adversarial.start_epoch": 1}, [0]),
            "laptop": Scale({**LAPTOP, "adversarial.start_epoch": 2}, [0, 1]),
            "paper": Scale(
                {
                    "data.name": "cifar10",
                    "data.batch_size": 128,
                    "model.name": "zou_cnn6",
                    "optim.name": "adamw",
                    "optim.lr": 1e-3,
                    "train.epochs": 100,
                    "eval.attacks": [fgsm(CIFAR_EPS), pgd(CIFAR_EPS, 20, 2 / 255)],
                },
                [0, 1, 2],
                notes=[
                    "paper: transfer numbers (RL about 8 %, RL-adv about 30 % under examples "
                    "from supervised models) need a surrogate run; not measured by this preset",
                ],
            ),
        },
        references=[
            Reference("pgd", 5.0, readme, variant="SL", paper_metric="adversarial"),
            Reference("pgd", 55.0, readme, variant="RL", paper_metric="adversarial"),
            Reference("transfer", 8.0, readme, variant="RL", paper_metric="transfer from SL"),
            Reference("transfer", 30.0, readme, variant="RL-adv", paper_metric="transfer from SL"),
        ],
    )


def _kim_trades() -> Preset:
    policy = {
        "objective.name": "kim_policy",
        "objective.options": {"lam": 0.5, "action": "greedy"},
        "two_stage.enabled": True,
        "two_stage.warmup_objective": "cross_entropy",
        "two_stage.warmup_options": {},
    }
    variants = {"TRADES (CE)": CE, "TRADES + policy": policy}

    def trades(eps: float, steps: int, step_size: float) -> dict:
        return {
            "adversarial.method": "trades",
            "adversarial.eps": eps,
            "adversarial.steps": steps,
            "adversarial.step_size": step_size,
            "adversarial.beta": 6.0,
            "adversarial.monitor_size": 0,
        }

    table6 = "Kim Table 6 (CIFAR-10, ResNet-18, eps 8/255)"
    return Preset(
        name="kim-trades",
        title="Kim: TRADES vs TRADES then policy fine-tuning (Table 6)",
        paper={
            "data": "cifar10",
            "model": "resnet18",
            "epochs": "100 (policy from epoch 75)",
            "optimiser": "sgd lr 0.1 momentum 0.9 wd 1e-4, /10 at epoch 75",
            "attacks": "pgd 20 steps and autoattack at eps 8/255",
        },
        variants=variants,
        scales={
            "smoke": Scale(
                {**SMOKE, "train.epochs": 2, **trades(0.1, 2, 0.05)},
                [0],
                per_variant={"TRADES + policy": {"two_stage.switch_epoch": 1}},
            ),
            "laptop": Scale(
                {**LAPTOP, **trades(0.1, 5, 0.025)},
                [0, 1],
                per_variant={"TRADES + policy": {"two_stage.switch_epoch": 4}},
            ),
            "paper": Scale(
                {
                    "data.name": "cifar10",
                    "model.name": "resnet18",
                    "optim.name": "sgd",
                    "optim.lr": 0.1,
                    "optim.momentum": 0.9,
                    "optim.weight_decay": 1e-4,
                    "optim.schedule": "step",
                    "optim.milestones": [75],
                    "train.epochs": 100,
                    **trades(0.0314, 10, 0.007),
                    "eval.attacks": [pgd(CIFAR_EPS, 20, 2 / 255), autoattack(CIFAR_EPS)],
                },
                [0, 1, 2],
                per_variant={"TRADES + policy": {"two_stage.switch_epoch": 75}},
            ),
        },
        references=[
            Reference("clean", 82.31, table6, variant="TRADES (CE)"),
            Reference("pgd", 52.55, table6, variant="TRADES (CE)", paper_metric="PGD-20"),
            Reference("autoattack", 48.25, table6, variant="TRADES (CE)", paper_metric="AA"),
            Reference("clean", 81.22, table6, variant="TRADES + policy"),
            Reference("pgd", 54.15, table6, variant="TRADES + policy", paper_metric="PGD-20"),
            Reference("autoattack", 49.46, table6, variant="TRADES + policy", paper_metric="AA"),
        ],
    )


def _all_presets() -> dict[str, Preset]:
    # Imported here: the L2L and RLAB presets build on this module's scales and attack lists.
    from rlrobust.experiments.presets_attacks import l2l_preset, rlab_preset

    presets = (
        _kim_mnist(),
        _kim_lambda(),
        _gupta(),
        _zou(),
        _kim_trades(),
        l2l_preset(),
        rlab_preset(),
    )
    return {p.name: p for p in presets}


PRESETS: dict[str, Preset] = _all_presets()


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise UnknownNameError(
            f"unknown reproduction preset {name!r}; choose one of: {', '.join(PRESETS)}"
        )
    return PRESETS[name]


def _attack_words(attacks: list[dict]) -> str:
    words = []
    for spec in attacks:
        s = spec.get("settings", {})
        if spec["name"] == "pgd":
            words.append(
                f"pgd {s.get('steps')} steps of {s.get('step_size'):g} at eps {s['eps']:g}"
            )
        else:
            words.append(f"{spec['name']} eps {s.get('eps', 0):g}")
    return "; ".join(words)


def scale_words(preset: Preset, scale: str) -> dict[str, str]:
    """The chosen scale's protocol in the words of ``Preset.paper``."""
    o = preset.scales[scale].overrides
    words = {
        "data": o.get("data.name", "?")
        + (f" ({o['data.train_subset']} training images)" if o.get("data.train_subset") else ""),
        "model": o.get("model.name", "?"),
        "epochs": str(o.get("train.epochs", "?")),
        "optimiser": f"{o.get('optim.name', 'sgd')} lr {o.get('optim.lr', 0.1):g}",
        "attacks": _attack_words(o.get("eval.attacks", []))
        + (f" on {o['eval.n_examples']} test images" if o.get("eval.n_examples") else ""),
    }
    return words


def differences(preset: Preset, scale: str) -> list[str]:
    """Each protocol difference of ``scale`` from the paper, in plain words."""
    if scale not in preset.scales:
        raise UnknownNameError(f"unknown scale {scale!r}; choose one of: {', '.join(SCALES)}")
    lines = []
    if scale != "paper":
        ours = scale_words(preset, scale)
        for key, theirs in preset.paper.items():
            if key in ours and ours[key] != theirs:
                lines.append(f"{scale}: {key} {ours[key]} instead of {theirs}")
    spec = preset.scales[scale]
    lines += spec.notes
    lines.append(
        f"{scale}: {len(spec.seeds)} seed(s) {spec.seeds}, mean ± std over seeds; the paper "
        "reports single runs"
    )
    return lines
