"""Zou et al.'s preset: SL, RL, SL-adv and RL-adv, attacked with PGD, AutoAttack, Square and
transfer attacks from the SL models.

Our sources hold no numbers from the paper itself (its summary discloses none): the published
percentages come from the public summary of the authors' code README; the training settings
from that code's defaults (the seeds' README lists them).
"""

from __future__ import annotations

from rlrobust.experiments.presets.common import (
    CIFAR_EPS,
    LAPTOP_FOR_CIFAR,
    SMOKE_ATTACKS,
    SMOKE_DATA,
    Delta,
    Preset,
    Reference,
    Scale,
    Variant,
    autoattack,
    chosen,
    framework_defaults,
    pgd,
    smoke_epochs,
    smoke_runs,
    square,
    stated,
)

CODE = "Zou et al.'s public code defaults (seeds README)"
PAPER = "Zou et al. (seed 000)"
ATTACKS = (
    PAPER + ": 'robustness against various attack types, including Projected Gradient Descent "
    "(PGD), AutoAttack, transfer-based, and query-based attacks'; no settings are given: eps "
    "8/255 (CIFAR's usual radius), PGD-20 of 2/255 with a random start, AutoAttack standard, "
    "Square with 5000 queries as the query-based attack"
)


def zou() -> Preset:
    rl = {
        "objective.name": stated(
            "zou_pg", PAPER + ": 'policy-gradient objectives and epsilon-greedy exploration'"
        ),
        "objective.options": stated(
            {
                "epsilon": 0.1,
                "exploration": "batch",
                "exploit": "greedy",
                "reward_correct": 1.0,
                "reward_wrong": 0.0,
                "baseline": False,
            },
            CODE + ": reward 1 for a correct action and 0 otherwise, no baseline, epsilon-greedy "
            "per batch (with probability 0.1 the whole batch acts at random); otherwise greedy "
            "(our reading)",
        ),
    }
    sl = {
        "objective.name": stated("cross_entropy", PAPER + ": supervised learning (SL)"),
        "objective.options": stated({}, PAPER + ": supervised learning (SL)"),
    }
    adv_source = (
        CODE + ": RL-adv optimises L(x) + adv_rate * L(x_adv), x_adv from FGSM on the policy "
        "loss's gradient, FGSM eps 0.01, adv_rate 0.2, adversarial training from epoch 50"
    )
    adv = {
        "adversarial.method": stated("rl_adv", adv_source),
        "adversarial.attack": stated("fgsm", adv_source),
        "adversarial.eps": stated(0.01, adv_source),
        "adversarial.alpha": stated(0.01, adv_source + " (FGSM's step is eps)"),
        "adversarial.random_start": stated(False, adv_source + " (plain FGSM)"),
        "adversarial.adv_rate": stated(0.2, adv_source),
        "adversarial.start_epoch": stated(50, adv_source),
        "adversarial.attack_loss": stated("objective", adv_source),
        "adversarial.eps_ramp_epochs": chosen(0, "no ramp is mentioned"),
    }
    protocol = {
        **framework_defaults(),
        "data.name": stated(
            "cifar10", PAPER + ": 'experiments on CIFAR-10, CIFAR-100, and ImageNet-100'"
        ),
        "data.batch_size": stated(128, CODE + ": batch 128"),
        "data.augment": chosen("none", "the code's augmentation is not in our sources"),
        "model.name": stated(
            "zou_cnn6", "README summary: '6-layer CNN' (widths assumed, models/zou_cnn.py)"
        ),
        "optim.name": stated("adamw", CODE + ": AdamW, lr 1e-3"),
        "optim.lr": stated(1e-3, CODE + ": AdamW, lr 1e-3"),
        "optim.weight_decay": chosen(
            0.01, "the code's AdamW weight decay is not in our sources: torch's AdamW default 0.01"
        ),
        "optim.momentum": chosen(0.0, "unused by AdamW"),
        "optim.nesterov": chosen(False, "unused by AdamW"),
        "optim.alpha": chosen(None, "unused by AdamW"),
        "optim.keras_decay": chosen(0.0, "unused by AdamW"),
        "optim.schedule": chosen("constant", "no schedule is mentioned"),
        "optim.milestones": chosen([], "unused without a step schedule"),
        "optim.gamma": chosen(0.1, "unused without a step schedule"),
        "train.epochs": stated(100, CODE + ": 100 epochs"),
        "eval.attacks": chosen(
            [pgd(CIFAR_EPS, 20, 2 / 255), autoattack(CIFAR_EPS), square(CIFAR_EPS)], ATTACKS
        ),
        "transfer.source_arm": stated(
            "SL", "README summary: 'examples transferred from supervised models'"
        ),
        "transfer.eps": chosen(CIFAR_EPS, "the transfer radius is not given: 8/255"),
        "runs": chosen(3, "the summary does not say; three seeds give a spread"),
    }
    variants = {
        "SL": Variant(sl),
        "RL": Variant(rl),
        "SL-adv": Variant({**sl, **adv}),
        "RL-adv": Variant({**rl, **adv}),
    }
    readme = (
        "Zou et al., public summary of the authors' code README, not the paper (CIFAR-10, 6-layer "
        "CNN; the attack and its settings are not stated; approximate)"
    )
    return Preset(
        name="zou",
        title="Zou et al.: SL / RL / SL-adv / RL-adv",
        protocol=protocol,
        variants=variants,
        scales={
            "smoke": Scale(
                [
                    SMOKE_DATA,
                    SMOKE_ATTACKS,
                    smoke_epochs(2, **{"adversarial.start_epoch": 1}),
                    smoke_runs(),
                    Delta("smoke transfer", "eps 0.1 on digits", {"transfer.eps": 0.1}),
                ]
            ),
            "laptop": Scale(
                [
                    LAPTOP_FOR_CIFAR,
                    Delta(
                        "laptop training",
                        "6 epochs, adversarial from epoch 3 (half-way, as 50 of 100); FGSM eps "
                        "0.01 kept",
                        {"train.epochs": 6, "adversarial.start_epoch": 3},
                    ),
                    Delta(
                        "laptop attacks",
                        "eps 0.1 on Fashion-MNIST; PGD-20 and Square with 1000 queries in place of "
                        "AutoAttack (hours on a CPU)",
                        {
                            "eval.attacks": [pgd(0.1, 20, 0.025), square(0.1, 1000)],
                            "transfer.eps": 0.1,
                        },
                    ),
                ]
            ),
            "paper": Scale(),
        },
        references=[
            Reference("pgd", 5.0, readme, variant="SL", paper_metric="adversarial"),
            Reference("pgd", 55.0, readme, variant="RL", paper_metric="adversarial"),
            Reference("transfer", 8.0, readme, variant="RL", paper_metric="transfer from SL"),
            Reference("transfer", 30.0, readme, variant="RL-adv", paper_metric="transfer from SL"),
        ],
        source_note=(
            "Zou et al.'s percentages are from the public summary of the authors' code README, "
            "not from the paper (whose summary in our sources gives no numbers)."
        ),
    )
