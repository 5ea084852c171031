"""Gupta's presets: FGSM adversarial training, CE vs vanilla policy gradient (Table 1), and the
same two arms without adversarial training (the Results' and Appendix's Figure 5 claim).

Quotes are from Gupta 2020 (seed 002), section 3 "Experiment" unless said otherwise.
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
    fgsm,
    framework_defaults,
    laptop_runs,
    pgd,
    smoke_epochs,
    smoke_runs,
    stated,
)

OPTIM = (
    "Gupta: 'for 220 epochs with RMSprop optimizer at learning_rate = 0.0001 and decay = 1e-6 "
    "(The choice of hyperparameter was taken from TensorFlow example model on cifar10)': Keras' "
    "RMSprop(lr=1e-4, decay=1e-6), whose decay is the per-iteration inverse-time lr decay "
    "lr / (1 + decay * iterations), not weight decay"
)
KERAS = "Keras 2.x RMSprop defaults, which the Keras CIFAR-10 example keeps: rho 0.9, no momentum"
FGSM_AT = (
    "Gupta: 'We then performed adversarial training by generating adversarial images using FGSM "
    "attack (at eps = 8/255) ... at the beginning of each training step' (Appendix A, Alg. 1: "
    "FGSM from the clean batch)"
)
SELECT = (
    "Gupta: 'We initially made checkpoints of our model at intervals of 20 epochs ... We picked "
    "the checkpoint at which the respective method performed best on adversarial images "
    "generated using test data. For the RL model, it was the 220th epoch. And for the CE model, "
    "it was the 60th epoch.' (FGSM at eps 8/255, Figure 3)"
)
RL, CE_BEST, CE_LAST = "RL", "CE (best FGSM checkpoint)", "CE (220th epoch)"
NO_AT = (
    "Gupta: 'We first performed the evaluation without any specific adversarial training "
    "approach. We found that the RL method indeed showed better FGSM adversarial accuracy than "
    "the CE method (refer to Appendices, Figure 5). But it was easy to attack the trained model "
    "via AutoAttack'"
)
RL_OBJECTIVE = {
    "objective.name": stated("gupta_vpg", "Gupta Eq. 1 (vanilla policy gradient)"),
    "objective.options": stated(
        {"reward_correct": 1.0, "reward_wrong": -1.0, "baseline": False, "exact": False},
        "Gupta: 'If a_t = y_t, we give a positive reward (+1) ... if a_t != y_t, we give a "
        "negative reward (-1)'; Eq. 1 has no baseline; 'the model takes action by using random "
        "selection based on the softmax probability'",
    ),
}
CE_OBJECTIVE = {
    "objective.name": stated("cross_entropy", "Gupta: the cross-entropy (CE) arm"),
    "objective.options": stated({}, "Gupta: the cross-entropy (CE) arm"),
}


def _select(rule: str, why: str) -> dict:
    return {
        "train.checkpoint_every": stated(20, SELECT, requires="train.checkpoint_every"),
        "train.select_checkpoint": stated(rule, why, requires="train.select_checkpoint"),
    }


def training_protocol() -> dict:
    """Data, model, optimiser and length that Gupta's runs share, with or without adversarial
    training."""
    return {
        **framework_defaults(),
        "data.name": stated("cifar10", "Gupta: 'An empirical evaluation on the cifar10 dataset'"),
        "data.batch_size": chosen(
            32, "Gupta takes the hyper-parameters of the Keras CIFAR-10 example, whose batch is 32"
        ),
        "data.augment": chosen(
            "none",
            "Algorithm 1 shuffles and batches the raw training images; no augmentation is named",
        ),
        "model.name": stated("gupta_cnn", "Gupta Figure 2 (with LayerNorm before the softmax)"),
        "optim.name": stated(
            "rmsprop_keras", OPTIM, requires="optim.keras_decay", fallback="rmsprop"
        ),
        "optim.lr": stated(1e-4, OPTIM),
        "optim.alpha": stated(0.9, KERAS, requires="optim.alpha"),
        "optim.keras_decay": stated(1e-6, OPTIM, requires="optim.keras_decay"),
        "optim.momentum": stated(0.0, KERAS),
        "optim.weight_decay": stated(0.0, OPTIM + "; the example sets no weight decay"),
        "optim.nesterov": chosen(False, "unused by RMSprop"),
        "optim.schedule": stated("constant", OPTIM + "; no other schedule"),
        "optim.milestones": chosen([], "unused without a step schedule"),
        "optim.gamma": chosen(0.1, "unused without a step schedule"),
        "train.epochs": stated(220, "Gupta: 'for 220 epochs'"),
    }


def gupta_fgsm_at() -> Preset:
    table1 = "Gupta Table 1 (CIFAR-10, FGSM-AT eps 8/255, AutoAttack eps 8/255)"
    results = "Gupta, Results: FGSM accuracy at eps 8/255 of the selected checkpoint"
    protocol = {
        **training_protocol(),
        "train.select_eps": stated(CIFAR_EPS, SELECT, requires="train.select_eps"),
        "train.select_examples": stated(
            None,
            "Gupta: 'all the reported accuracy are on cifar10's test data'",
            requires="train.select_examples",
        ),
        "adversarial.method": stated("fgsm_at", FGSM_AT),
        "adversarial.eps": stated(CIFAR_EPS, FGSM_AT),
        "adversarial.random_start": stated(False, FGSM_AT),
        "adversarial.alpha": stated(CIFAR_EPS, FGSM_AT + " (FGSM's step is eps)"),
        "adversarial.attack_loss": chosen(
            "ce", "Algorithm 1 does not say which loss FGSM ascends: cross-entropy, FGSM's own"
        ),
        "adversarial.start_epoch": stated(0, FGSM_AT),
        "adversarial.eps_ramp_epochs": stated(0, FGSM_AT + " (eps fixed)"),
        "eval.attacks": stated(
            [fgsm(CIFAR_EPS), autoattack(CIFAR_EPS)],
            "Gupta Table 1: 'Accuracy ... against AutoAttack (eps = 8/255) on test data'; "
            "Figure 3 / Results: FGSM at eps 8/255",
        ),
        "eval.n_examples": stated(
            None, "Gupta: 'Please note that all the reported accuracy are on cifar10's test data'"
        ),
        "runs": stated(
            1,
            "Gupta Table 1 reports one trained model per row (Appendix C retrains once more "
            "only to check the trend)",
        ),
    }
    variants = {
        RL: Variant(
            {
                **RL_OBJECTIVE,
                **_select("best_fgsm_test", SELECT),
            }
        ),
        CE_BEST: Variant({**CE_OBJECTIVE, **_select("best_fgsm_test", SELECT)}),
        CE_LAST: Variant(
            {**CE_OBJECTIVE, **_select("last", "Gupta Table 1: 'CE (220th epoch)', the last epoch")}
        ),
    }
    smoke_eps = Delta(
        "smoke threat model",
        "eps 0.1 on digits (8 x 8, 17 grey levels); checkpoints every epoch, scored on 64 images",
        {
            "adversarial.eps": 0.1,
            "adversarial.alpha": 0.1,
            "train.select_eps": 0.1,
            "train.checkpoint_every": 1,
            "train.select_examples": 64,
        },
    )
    laptop = Delta(
        "laptop training",
        "20 epochs with checkpoints every 4 (the paper: 220, every 20); eps 0.1 on Fashion-MNIST",
        {
            "train.epochs": 20,
            "train.checkpoint_every": 4,
            "adversarial.eps": 0.1,
            "adversarial.alpha": 0.1,
            "train.select_eps": 0.1,
        },
    )
    laptop_attacks = Delta(
        "laptop attacks",
        "PGD-40 in place of AutoAttack, which takes hours on a CPU",
        {"eval.attacks": [fgsm(0.1), pgd(0.1, 40, 0.01)]},
    )
    return Preset(
        name="gupta-fgsm-at",
        title="Gupta: FGSM adversarial training, CE vs RL (Table 1)",
        protocol=protocol,
        variants=variants,
        scales={
            "smoke": Scale([SMOKE_DATA, SMOKE_ATTACKS, smoke_epochs(2), smoke_eps]),
            "laptop": Scale([LAPTOP_FOR_CIFAR, laptop, laptop_attacks]),
            "paper": Scale(),
        },
        references=[
            Reference("clean", 52.85, table1 + ", RL (220th epoch)", variant=RL),
            Reference(
                "autoattack",
                30.41,
                table1 + ", RL (220th epoch)",
                variant=RL,
                paper_metric="AutoAttack",
            ),
            Reference(
                "fgsm", 37.66, results + " (RL, 220th epoch)", variant=RL, paper_metric="FGSM"
            ),
            Reference("clean", 50.96, table1 + ", CE (60th epoch)", variant=CE_BEST),
            Reference(
                "autoattack",
                26.36,
                table1 + ", CE (60th epoch)",
                variant=CE_BEST,
                paper_metric="AutoAttack",
            ),
            Reference(
                "fgsm", 32.86, results + " (CE, 60th epoch)", variant=CE_BEST, paper_metric="FGSM"
            ),
            Reference("clean", 59.12, table1 + ", CE (220th epoch)", variant=CE_LAST),
            Reference(
                "autoattack",
                17.95,
                table1 + ", CE (220th epoch)",
                variant=CE_LAST,
                paper_metric="AutoAttack",
            ),
        ],
    )


def gupta_no_at() -> Preset:
    """The two arms without adversarial training: FGSM accuracy and AutoAttack (Figure 5)."""
    protocol = {
        **training_protocol(),
        "train.epochs": chosen(
            220, "the text gives no length for the runs without adversarial training: Table 1's"
        ),
        "train.select_checkpoint": chosen(
            "last", "the text does not say which checkpoint Figure 5's numbers come from"
        ),
        "adversarial.method": stated("none", NO_AT),
        "eval.attacks": chosen(
            [fgsm(CIFAR_EPS), autoattack(CIFAR_EPS)],
            "Figure 5: 'Adversarial accuracy (FGSM) is calculated for eps = 8/255'; the text names "
            "AutoAttack without its eps: Table 1's 8/255",
        ),
        "eval.n_examples": stated(
            None, "Gupta: 'Please note that all the reported accuracy are on cifar10's test data'"
        ),
        "runs": chosen(3, "Figure 5 shows one run per arm; three seeds give a spread"),
    }
    laptop = Delta(
        "laptop training",
        "20 epochs (the gupta-fgsm-at laptop length); eps 0.1 on Fashion-MNIST",
        {"train.epochs": 20},
    )
    laptop_attacks = Delta(
        "laptop attacks",
        "FGSM and PGD-40 at eps 0.1; AutoAttack comes from the findings' standard evaluation "
        "with the masking checks (docs/findings.md)",
        {"eval.attacks": [fgsm(0.1), pgd(0.1, 40, 0.01)]},
    )
    return Preset(
        name="gupta-no-at",
        title="Gupta: CE vs RL without adversarial training (Figure 5, 'easy to attack')",
        protocol=protocol,
        variants={RL: Variant(RL_OBJECTIVE), "CE": Variant(CE_OBJECTIVE)},
        scales={
            "smoke": Scale([SMOKE_DATA, SMOKE_ATTACKS, smoke_epochs(2), smoke_runs()]),
            "laptop": Scale([LAPTOP_FOR_CIFAR, laptop, laptop_attacks, laptop_runs()]),
            "paper": Scale(),
        },
        references=[],
        source_note="Gupta gives no number for these runs: Figure 5 is a plot, and AutoAttack's "
        "result is in words ('AutoAttack very easily attacked this')",
    )
