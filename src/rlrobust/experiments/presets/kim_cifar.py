"""Kim's CIFAR-10 presets: Table 1 (lambda grid), Table 3's CIFAR column with Table 4's ablation,
Table 5 (against the Probabilistically Compact loss) and Table 6 (TRADES then policy)."""

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
    fgsm,
    laptop_runs,
    pgd,
    smoke_epochs,
    smoke_runs,
    stated,
)
from rlrobust.experiments.presets.kim import (
    GRID_SOURCE,
    grid_references,
    lambda_grid,
    laptop_grid,
    smoke_grid,
)
from rlrobust.experiments.presets.kim_protocol import (
    cross_entropy,
    kim_base,
    laptop_schedule,
    policy,
)
from rlrobust.experiments.presets.kim_tables import LAMBDAS, TABLE1_CIFAR10

POLICY_ARM = "policy (Eq. 12 warm-up + Eq. 4)"
TABLE1_RUNS = "Kim Table 1 caption: '(averaged over 5 runs)'"


def laptop_attacks() -> Delta:
    """FGSM and PGD-40 at eps 0.1 on Fashion-MNIST in place of the CIFAR-10 attacks."""
    return Delta(
        "laptop attacks",
        "eps 0.04 on CIFAR-10 becomes eps 0.1 on Fashion-MNIST (the usual grayscale radius); "
        "PGD keeps 40 steps of 0.01",
        {"eval.attacks": [fgsm(0.1), pgd(0.1, 40, 0.01)]},
    )


def kim_cifar() -> Preset:
    table3 = "Kim Table 3, CIFAR-10 column (VGG13, eps 0.04, PGD 40 x 0.01)"
    table4 = "Kim Table 4 (CIFAR-10 ablation, VGG13, eps 0.04)"
    ce_warm, eq4_only = "CE warm-up + Eq. 4", "Eq. 4 only"
    return Preset(
        name="kim-cifar",
        title="Kim: CE vs policy on CIFAR-10 (Table 3) with the ablation (Table 4)",
        protocol={
            **kim_base("cifar10"),
            "runs": stated(
                5,
                "Table 3's CIFAR 'Ours' row is Table 1's (0.75, 1.25) cell, "
                + TABLE1_RUNS
                + "; the CE row and Table 4 do not say: the same 5",
            ),
        },
        variants={
            "CE": Variant(cross_entropy()),
            POLICY_ARM: Variant(policy(0.75, 1.25)),
            # Table 4: 'CE with Eq (4) (lambda2 = 1.0)' and 'Use only Eq (4) (lambda2 = 1.0)'
            ce_warm: Variant(policy(None, 1.0, warmup="cross_entropy")),
            eq4_only: Variant(policy(None, 1.0, warmup=None)),
        },
        scales={
            "smoke": Scale([SMOKE_DATA, SMOKE_ATTACKS, smoke_epochs(2), smoke_runs()]),
            "laptop": Scale(
                [
                    LAPTOP_FOR_CIFAR,
                    laptop_attacks(),
                    *laptop_schedule(ce_arms=("CE",)),
                    laptop_runs(),
                ]
            ),
            "paper": Scale(),
        },
        references=[
            Reference("clean", 92.12, table3, variant="CE"),
            Reference("fgsm", 4.51, table3, variant="CE", paper_metric="FGSM"),
            Reference("pgd", 0.0, table3, variant="CE", paper_metric="PGD"),
            Reference("clean", 92.16, table3, variant=POLICY_ARM),
            Reference("fgsm", 64.87, table3, variant=POLICY_ARM, paper_metric="FGSM"),
            Reference("pgd", 49.1, table3, variant=POLICY_ARM, paper_metric="PGD"),
            Reference("clean", 92.21, table4, variant=ce_warm),
            Reference("fgsm", 18.77, table4, variant=ce_warm, paper_metric="FGSM"),
            Reference("pgd", 0.0, table4, variant=ce_warm, paper_metric="PGD"),
            Reference(
                "clean", 10.00, table4 + ": Eq. 4 from scratch does not train", variant=eq4_only
            ),
        ],
    )


def kim_cifar_lambda() -> Preset:
    table1 = "Kim Table 1 (CIFAR-10, VGG13, eps 0.04; PGD 40 x 0.01; mean of 5 runs)"
    return Preset(
        name="kim-cifar-lambda",
        title="Kim: lambda1 x lambda2 grid on CIFAR-10 with VGG13 (Table 1)",
        protocol={
            **kim_base("cifar10"),
            **policy(0.75, 1.25),  # lam values are the grid's
            "grid": stated(lambda_grid(list(LAMBDAS)), GRID_SOURCE),
            "runs": stated(5, TABLE1_RUNS),
        },
        variants={},
        scales={
            "smoke": Scale(
                [
                    SMOKE_DATA,
                    SMOKE_ATTACKS,
                    smoke_epochs(2),
                    smoke_runs(),
                    smoke_grid([0.75, 1.25]),
                ]
            ),
            "laptop": Scale(
                [
                    LAPTOP_FOR_CIFAR,
                    laptop_attacks(),
                    *laptop_schedule(),
                    laptop_runs(),
                    laptop_grid([0.25, 0.75, 1.25]),
                ]
            ),
            "paper": Scale(),
        },
        references=grid_references(TABLE1_CIFAR10, table1),
    )


PC_ARM = "PC loss (Li et al. 2020)"
PC_EPS = (0.04, 0.12, 0.2)


def kim_pc() -> Preset:
    table5 = "Kim Table 5 (CIFAR-10, white-box)"
    attacks = [fgsm(e, label=f"fgsm-{e:g}") for e in PC_EPS]
    attacks += [pgd(e, 40, 0.01, label=f"pgd-{e:g}") for e in PC_EPS]
    ours = [92.1, 64.8, 34.9, 21.64, 43.8, 16.3, 6.4]
    theirs = [91.2, 53.1, 30.3, 18.7, 27.6, 14.6, 7.5]
    metrics = ["clean"] + [f"fgsm-{e:g}" for e in PC_EPS] + [f"pgd-{e:g}" for e in PC_EPS]
    refs = [
        Reference(
            m,
            v,
            table5 + ", PC column: 'Results are directly from (Li et al. 2020)'",
            variant=PC_ARM,
        )
        for m, v in zip(metrics, theirs, strict=True)
    ]
    refs += [
        Reference(m, v, table5 + ", 'Ours (lambda1 = 0.75, lambda2 = 1.25)'", variant=POLICY_ARM)
        for m, v in zip(metrics, ours, strict=True)
    ]
    pc_source = (
        "Kim Table 5 compares with the Probabilistically Compact loss (Li et al. 2020, "
        "'a drop-in replacement with pre-training CE loss'); Kim did not train it"
    )
    return Preset(
        name="kim-pc",
        title="Kim: policy loss vs the Probabilistically Compact loss on CIFAR-10 (Table 5)",
        protocol={
            **kim_base("cifar10"),
            "eval.attacks": stated(
                attacks,
                "Kim Table 5: FGSM and PGD at eps 0.04, 0.12, 0.2; 'Since the hyperparameters "
                "of the attacks are the same': PGD 40 steps of 0.01",
            ),
            "runs": chosen(
                1,
                "Table 5's 'Ours' (92.1 / 64.8 / 43.8) is not Table 1's 5-run mean "
                "(92.16 / 64.87 / 49.1), so it reads as a single run",
            ),
        },
        variants={
            PC_ARM: Variant(
                {
                    "objective.name": stated("pc_loss", pc_source, requires="objective:pc_loss"),
                    "objective.options": chosen(
                        {"margin": 0.995, "logit_weight": 0.05, "normalise": "code"},
                        "Li et al.'s settings are not in Kim's text: the authors' training "
                        "notebook (margin 0.995, logit weight 0.05, the code's normalisation; "
                        "objectives/pc_loss.py)",
                    ),
                    "two_stage.enabled": chosen(
                        True,
                        "'with pre-training CE loss': the authors' notebook fine-tunes a "
                        "CE-trained model; Kim's CE arm (100 epochs) then PC to epoch 200",
                    ),
                    "two_stage.warmup_objective": chosen("cross_entropy", "CE pre-training"),
                    "two_stage.warmup_options": chosen({}, "CE pre-training"),
                    "two_stage.switch_epoch": chosen(100, "Kim's CE arm trains 100 epochs"),
                    "two_stage.switch_accuracy": chosen(0.8, "unused: the switch is at an epoch"),
                    "train.epochs": chosen(200, "as Kim's policy arm"),
                }
            ),
            POLICY_ARM: Variant(policy(0.75, 1.25)),
        },
        scales={
            "smoke": Scale(
                [
                    SMOKE_DATA,
                    SMOKE_ATTACKS,
                    smoke_epochs(2),
                    Delta(
                        "smoke PC pre-training",
                        "the switch after one epoch",
                        {"two_stage.switch_epoch": 1},
                        (PC_ARM,),
                    ),
                ]
            ),
            "laptop": Scale(
                [
                    LAPTOP_FOR_CIFAR,
                    Delta(
                        "laptop attacks",
                        "on Fashion-MNIST the three radii become 0.1, 0.2 and 0.3",
                        {
                            "eval.attacks": [fgsm(e, label=f"fgsm-{e:g}") for e in (0.1, 0.2, 0.3)]
                            + [pgd(e, 40, 0.01, label=f"pgd-{e:g}") for e in (0.1, 0.2, 0.3)]
                        },
                    ),
                    *laptop_schedule(),
                    Delta(
                        "laptop PC pre-training",
                        "the switch to PC half-way, as 100 of 200",
                        {"two_stage.switch_epoch": 3},
                        (PC_ARM,),
                    ),
                ]
            ),
            "paper": Scale(),
        },
        references=refs,
        source_note=(
            "The PC numbers are Li et al.'s own (Kim copies them); our PC arm is trained here "
            "with the pc_loss objective."
        ),
    )


TRADES_SOURCE = (
    "Kim: 'ResNet-18 as a backbone with all the hyperparameters setting used in the original "
    "paper (Zhang et al. 2019): regularization hyperparameter beta = 6.0, SGD optimizer with "
    "momentum 0.9, weight decay 10^-4, 100 epoch and the initial learning rate 0.1 divided by "
    "10 at the 75-th'"
)
TRADES_CODE = (
    "Kim defers to Zhang et al.'s settings; TRADES' CIFAR-10 settings (paper and code): "
    "eps 0.031, 10 steps of 0.007, batch 128, random crop + flip"
)
SWITCH = (
    "Kim: 'After 75 epoch, we replace the CE loss just by using Eq (4) without randomness of "
    "action'"
)
TABLE6_LAMBDAS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5)
TABLE6 = {  # lambda: (clean, PGD-20, AutoAttack), Kim Table 6
    None: (82.31, 52.55, 48.25),
    0.1: (76.21, 52.62, 48.83),
    0.25: (81.14, 53.62, 49.10),
    0.5: (81.22, 54.15, 49.46),
    0.75: (81.20, 53.96, 49.11),
    1.0: (82.07, 53.32, 48.37),
    1.25: (82.41, 53.83, 48.39),
    1.5: (82.83, 53.83, 48.14),
}


def trades_arm(lam: float | None) -> str:
    return "TRADES (CE)" if lam is None else f"TRADES + policy (lambda={lam:g})"


def kim_trades() -> Preset:
    variants = {
        trades_arm(None): Variant(
            {
                "objective.name": stated("cross_entropy", "Kim Table 6: TRADES (CE)"),
                "objective.options": stated({}, "Kim Table 6: TRADES (CE)"),
            }
        )
    }
    for lam in TABLE6_LAMBDAS:
        variants[trades_arm(lam)] = Variant(
            {
                "objective.name": stated("kim_policy", SWITCH),
                "objective.options": stated(
                    {
                        "lam": lam,
                        "r_k1": 1.0,
                        "action": "greedy",
                        "baseline": False,
                        "exact": False,
                    },
                    SWITCH + f"; Table 6 row lambda = {lam:g}",
                ),
                "two_stage.enabled": stated(True, SWITCH),
                "two_stage.warmup_objective": stated(
                    "cross_entropy",
                    SWITCH + "; 'we do not pre-training using Eq (12)'",
                ),
                "two_stage.warmup_options": stated({}, SWITCH),
                "two_stage.switch_epoch": stated(75, SWITCH),
                "two_stage.switch_accuracy": chosen(0.8, "unused: the switch is at epoch 75"),
            }
        )
    table6 = "Kim Table 6 (CIFAR-10, ResNet-18, TRADES; eps 8/255, PGD-20 step 0.003, AutoAttack)"
    refs = []
    for lam, (clean, pgd20, aa) in TABLE6.items():
        arm = trades_arm(lam)
        refs += [
            Reference("clean", clean, table6, variant=arm),
            Reference("pgd", pgd20, table6, variant=arm, paper_metric="PGD-20"),
            Reference("autoattack", aa, table6, variant=arm, paper_metric="AutoAttack"),
        ]
    two_arms = [trades_arm(None), trades_arm(0.5)]
    return Preset(
        name="kim-trades",
        title="Kim: TRADES vs TRADES then policy fine-tuning (Table 6)",
        protocol={
            **kim_base("cifar10"),
            "data.batch_size": stated(128, TRADES_CODE),
            "data.augment": stated("crop_flip", TRADES_CODE),
            "model.name": stated("resnet18", TRADES_SOURCE),
            "optim.momentum": stated(0.9, TRADES_SOURCE),
            "optim.weight_decay": stated(1e-4, TRADES_SOURCE),
            "optim.milestones": stated([75], TRADES_SOURCE),
            "train.epochs": stated(100, TRADES_SOURCE),
            "optim.nesterov": chosen(False, "TRADES' code uses plain momentum"),
            "adversarial.method": stated("trades", TRADES_SOURCE),
            "adversarial.beta": stated(6.0, TRADES_SOURCE),
            "adversarial.eps": stated(0.031, TRADES_CODE),
            "adversarial.steps": stated(10, TRADES_CODE),
            "adversarial.step_size": stated(0.007, TRADES_CODE),
            "adversarial.random_start": chosen(
                True, "TRADES' code starts near x (x + 0.001 N(0, 1)); ours: a random start"
            ),
            "adversarial.attack_loss": chosen(
                "auto", "unused: the TRADES attack maximises its KL term"
            ),
            "adversarial.start_epoch": stated(0, TRADES_SOURCE + " (adversarial from the start)"),
            "adversarial.eps_ramp_epochs": stated(0, TRADES_CODE + " (no eps ramp)"),
            "eval.attacks": stated(
                [pgd(CIFAR_EPS, 20, 0.003), autoattack(CIFAR_EPS)],
                "Kim Table 6 caption: 'eps = 8/255 PGD with 20 iteration and step size 0.003 "
                "and Auto-Attack' (PGD's random start not stated)",
            ),
            "runs": chosen(1, "Table 6 gives one number per row"),
        },
        variants=variants,
        scales={
            "smoke": Scale(
                [
                    SMOKE_DATA,
                    SMOKE_ATTACKS,
                    smoke_epochs(2),
                    Delta(
                        "smoke TRADES and switch",
                        "eps 0.1 on digits, 2 attack steps, the switch after the first epoch",
                        {
                            "adversarial.eps": 0.1,
                            "adversarial.steps": 2,
                            "adversarial.step_size": 0.05,
                            "optim.milestones": [1],
                            "two_stage.switch_epoch": 1,
                        },
                    ),
                    Delta("smoke arms", "two of Table 6's eight rows", {"arms": two_arms}),
                ]
            ),
            "laptop": Scale(
                [
                    LAPTOP_FOR_CIFAR,
                    laptop_attacks(),
                    Delta(
                        "laptop epochs and TRADES",
                        "8 epochs with the lr drop and the switch at 6 (75 % of the run, as 75 "
                        "of 100); eps 0.1 for Fashion-MNIST, 5 steps of 0.025",
                        {
                            "train.epochs": 8,
                            "optim.milestones": [6],
                            "two_stage.switch_epoch": 6,
                            "adversarial.eps": 0.1,
                            "adversarial.steps": 5,
                            "adversarial.step_size": 0.025,
                        },
                    ),
                    Delta(
                        "laptop learning rate",
                        "0.01, ours: at the paper's 0.1 LeNet5 (no batch norm, unlike ResNet-18) "
                        "diverges under TRADES on Fashion-MNIST; seed 0 of TRADES (CE) fell from "
                        "53 % test accuracy after epoch 1 to 10 % (chance) at epoch 5",
                        {"optim.lr": 0.01},
                    ),
                    Delta(
                        "laptop arms",
                        "TRADES (CE) and the best row (lambda 0.5)",
                        {"arms": two_arms},
                    ),
                    laptop_runs(
                        2,
                        "two seeds, the fewest that give a paired interval across seeds: each "
                        "TRADES run takes about 10 minutes on one CPU thread",
                    ),
                ]
            ),
            "paper": Scale(),
        },
        references=refs,
    )
