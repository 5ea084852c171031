"""Kim's protocol as data: the entries every Kim preset shares, each citing the seed's sentence.

The quotes are from Kim, "Reinforcement-based Training Approach for Improving Adversarial
Robustness without Sacrificing Accuracy" (seed 001), section "Experiments".
"""

from __future__ import annotations

from rlrobust.experiments.presets.common import (
    Delta,
    Entry,
    chosen,
    fgsm,
    framework_defaults,
    pgd,
    scaled_milestones,
    sgd_without_extras,
    stated,
)

SGD = (
    "Kim, Datasets and Model: 'For all the models, we use the SGD optimizer without any "
    "additional constraints' (so no momentum, no weight decay); 'We set the initial learning "
    "rate to 10^-1'"
)
SCHEDULE = (
    "Kim: 'We set the initial learning rate to 10^-1 and divide by 10 for each 50 and 150 epochs'"
)
EPOCHS = "Kim: 'For the CE loss, we train 100 epochs and for the policy loss, we train 200 epochs'"
MODELS = "Kim: 'we trained LeNet5 (MNIST), VGG13 (CIFAR-10)'"
TWO_STAGE = (
    "Kim: 'First, we warm up the network using the alternative loss Eq (12). Actions are chosen "
    "randomly according to probability. Then, if the test accuracy is higher than 80, we start "
    "to train using the originally defined policy loss Eq (4) without randomness.'"
)
EQ4 = "Kim Eq. 3-4: reward r_k1 = 1, penalty lambda = r_k2 / r_k1; greedy actions, no baseline"
ATTACKS_CIFAR = (
    "Kim: 'FGSM and PGD are set with eps = 0.04. PGD has a step size of alpha = 0.01 and number "
    "of steps k = 40' (Table 1's caption agrees); PGD's random start is not stated: Madry et "
    "al.'s uniform start"
)
ATTACKS_MNIST = (
    "Kim Table 2 caption: 'eps = 0.1 PGD with 40 iterations and a step size of 0.01' (the text "
    "says 0.04 for both data sets, but Table 3's MNIST 'Ours' row equals Table 2's (0.75, 1.5) "
    "cell); PGD's random start is not stated: Madry et al.'s uniform start"
)


def kim_base(data: str) -> dict[str, Entry]:
    """Data, model, optimiser, schedule and attacks of Kim's MNIST or CIFAR-10 experiments."""
    cifar = data == "cifar10"
    entries = {
        **framework_defaults(),
        "data.name": stated(data, "Kim: 'We perform experiments on MNIST and CIFAR-10 datasets'"),
        "data.batch_size": chosen(128, "the paper gives no batch size; 128, the common choice"),
        "data.augment": (
            chosen(
                "crop_flip",
                "no augmentation is mentioned; random crop + flip, without which VGG13 does not "
                "reach the paper's 92 % clean accuracy on CIFAR-10",
            )
            if cifar
            else chosen("none", "no augmentation is mentioned; MNIST is trained without")
        ),
        "model.name": stated("vgg13" if cifar else "lenet5", MODELS),
        **sgd_without_extras(0.1, SGD),
        "optim.schedule": stated("step", SCHEDULE),
        "optim.milestones": stated([50, 150], SCHEDULE),
        "optim.gamma": stated(0.1, SCHEDULE),
        "train.epochs": stated(200, EPOCHS),
    }
    eps = 0.04 if cifar else 0.1
    entries["eval.attacks"] = stated(
        [fgsm(eps), pgd(eps, 40, 0.01)], ATTACKS_CIFAR if cifar else ATTACKS_MNIST
    )
    return entries


def policy(lam1: float | None, lam2: float, warmup: str = "kim_warmup") -> dict[str, Entry]:
    """Kim's two-stage policy arm: Eq. 12 (or CE) warm-up with sampled actions, then Eq. 4."""
    entries = {
        "objective.name": stated("kim_policy", EQ4),
        "objective.options": stated(
            {"lam": lam2, "r_k1": 1.0, "action": "greedy", "baseline": False, "exact": False},
            EQ4 + "; 'without randomness' after the switch",
        ),
        "train.epochs": stated(200, EPOCHS),
    }
    if warmup is None:
        return {**entries, "two_stage.enabled": stated(False, "Kim Table 4: 'Use only Eq (4)'")}
    warm_options = {"lam": lam1, "r_k1": 1.0, "action": "sample"} if warmup == "kim_warmup" else {}
    return {
        **entries,
        "two_stage.enabled": stated(True, TWO_STAGE),
        "two_stage.warmup_objective": stated(warmup, TWO_STAGE),
        "two_stage.warmup_options": stated(warm_options, TWO_STAGE),
        "two_stage.switch_accuracy": stated(0.8, TWO_STAGE),
        "two_stage.switch_epoch": stated(None, TWO_STAGE + " (on accuracy, not at an epoch)"),
    }


def cross_entropy() -> dict[str, Entry]:
    return {
        "objective.name": stated("cross_entropy", "Kim: the CE loss arm"),
        "objective.options": stated({}, "Kim: the CE loss arm"),
        "train.epochs": stated(100, EPOCHS),
    }


def laptop_schedule(policy_epochs: int = 6, ce_epochs: int = 3, ce_arms: tuple = ()) -> list:
    """Kim's epochs and step schedule shrunk for a laptop, the same fractions of the run."""
    milestones = scaled_milestones([50, 150], 200, policy_epochs)
    deltas = [
        Delta(
            "laptop epochs",
            f"{policy_epochs} epochs (CE: {ce_epochs}) keep the paper's 2:1 ratio in laptop "
            "minutes",
            {"train.epochs": policy_epochs},
        ),
        Delta(
            "laptop schedule",
            "the lr drops at the same fractions of the shorter run",
            {"optim.milestones": milestones},
        ),
    ]
    if ce_arms:
        deltas.append(
            Delta(
                "laptop epochs",
                "CE trains half as long, as in the paper",
                {"train.epochs": ce_epochs},
                ce_arms,
            )
        )
    return deltas
