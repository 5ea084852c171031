"""Reproduction presets for the learned attackers: L2L (Dai et al.) and RLAB (Sarkar et al.).

Neither paper's numbers are in our sources beyond RLAB's headline claim (100 % average success
rate), so these presets report our measurements; everything our sources do not state is marked
"not stated" with our choice, and no model is named as the paper's unless the source names it.
"""

from __future__ import annotations

from rlrobust.experiments.presets.common import (
    CIFAR_EPS,
    LAPTOP_FOR_CIFAR,
    SMOKE_ATTACKS,
    SMOKE_DATA,
    Delta,
    Entry,
    Preset,
    Reference,
    Scale,
    Variant,
    chosen,
    fgsm,
    framework_defaults,
    laptop_runs,
    pgd,
    smoke_epochs,
    stated,
)

L2L = "Dai et al. (L2L, seed 004 and the seeds README)"


def _our_cifar_training(why: str) -> dict[str, Entry]:
    """ResNet-18, 100 epochs of SGD 0.1 (momentum 0.9, wd 5e-4, cosine): our choice, not theirs."""
    return {
        "data.batch_size": chosen(128, why),
        "data.augment": chosen("crop_flip", why),
        "model.name": chosen("resnet18", why),
        "optim.name": chosen("sgd", why),
        "optim.lr": chosen(0.1, why),
        "optim.momentum": chosen(0.9, why),
        "optim.weight_decay": chosen(5e-4, why),
        "optim.nesterov": chosen(False, why),
        "optim.alpha": chosen(None, "unused by SGD"),
        "optim.keras_decay": chosen(0.0, "unused by SGD"),
        "optim.schedule": chosen("cosine", why),
        "optim.milestones": chosen([], "unused by the cosine schedule"),
        "optim.gamma": chosen(0.1, "unused by the cosine schedule"),
        "train.epochs": chosen(100, why),
        "objective.name": chosen("cross_entropy", why),
        "objective.options": chosen({}, why),
    }


def l2l_preset() -> Preset:
    silent = (
        "the abstract and the code facts in our sources name no classifier, optimiser or epoch "
        "count: ResNet-18, SGD 0.1 with momentum 0.9, wd 5e-4, cosine, 100 epochs are our choice"
    )
    pgd_at = {
        "adversarial.eps": stated(0.031, L2L + ": eps 0.031"),
        "adversarial.steps": chosen(10, "the inner PGD of the PGD-AT baseline: Madry et al.'s 10"),
        "adversarial.step_size": chosen(0.007, "Madry et al.'s CIFAR step 0.007"),
        "adversarial.random_start": chosen(True, "Madry et al.'s random start"),
        "adversarial.attack_loss": chosen("ce", "cross-entropy, the classifier's loss"),
        "adversarial.start_epoch": chosen(0, "adversarial from the start"),
        "adversarial.eps_ramp_epochs": chosen(0, "no ramp is mentioned"),
        "adversarial.l2l_arch": chosen("slim", "the attacker's layers are not in our sources"),
        "adversarial.l2l_lr": chosen(
            1e-3, "the attacker's optimiser is not in our sources: Adam 1e-3"
        ),
    }

    def arm(method: str, variant: str | None = None) -> Variant:
        values = {"adversarial.method": stated(method, L2L), **pgd_at}
        if variant is not None:
            values["adversarial.l2l_variant"] = stated(
                variant, L2L + ": variants plain L2L, gradient L2L, 2-step L2L"
            )
        return Variant(values)

    return Preset(
        name="l2l",
        title=(
            "Dai et al.: learning to defend by learning to attack (L2L) vs PGD adversarial training"
        ),
        protocol={
            **framework_defaults(),
            **_our_cifar_training(silent),
            "data.name": stated("cifar10", L2L + ": 'Experiments over CIFAR-10 and CIFAR-100'"),
            "eval.attacks": stated(
                [pgd(0.031, s, 0.003, label=f"pgd-{s}") for s in (10, 20, 100)],
                L2L + ": evaluated with PGD eps 0.031, step 0.003, 10/20/100 steps, random start",
            ),
            "runs": chosen(1, "not stated"),
        },
        variants={
            "PGD-AT": arm("pgd_at"),
            "L2L plain": arm("l2l", "plain"),
            "L2L gradient": arm("l2l", "gradient"),
            "L2L 2-step": arm("l2l", "two_step"),
        },
        scales={
            "smoke": Scale(
                [
                    SMOKE_DATA,
                    smoke_epochs(1),
                    Delta(
                        "smoke threat model",
                        "eps 0.1 on digits, 2 attack steps, a 5-step PGD",
                        {
                            "adversarial.eps": 0.1,
                            "adversarial.steps": 2,
                            "adversarial.step_size": 0.05,
                            "eval.attacks": [pgd(0.1, 5, 0.03)],
                        },
                    ),
                ]
            ),
            "laptop": Scale(
                [
                    Delta(
                        "laptop data",
                        "CIFAR-10 is not on this machine: MNIST with LeNet5 at the standard MNIST "
                        "threat model eps 0.3 (10 steps of 0.05, ramped over 2 epochs), Adam 1e-3 "
                        "for 5 epochs",
                        {
                            "data.name": "mnist",
                            "data.augment": "none",
                            "model.name": "lenet5",
                            "optim.name": "adam",
                            "optim.lr": 1e-3,
                            "optim.weight_decay": 0.0,
                            "optim.schedule": "constant",
                            "train.epochs": 5,
                            "adversarial.eps": 0.3,
                            "adversarial.steps": 10,
                            "adversarial.step_size": 0.05,
                            "adversarial.eps_ramp_epochs": 2,
                            "eval.n_examples": 1000,
                            "eval.attacks": [
                                pgd(0.3, 20, 0.03, label="pgd-20"),
                                pgd(0.3, 100, 0.01, label="pgd-100"),
                            ],
                        },
                    ),
                    laptop_runs(
                        2,
                        "two seeds, the fewest that give an interval across seeds: each seed's "
                        "four arms take about an hour of training and AutoAttack on one CPU thread",
                    ),
                ]
            ),
            "paper": Scale(),
        },
        references=[],
    )


RLAB = "Sarkar et al. 2024 (RLAB, seed 003)"
RLAB_CODE = "RLAB's public code (seeds README)"


def rlab_preset() -> Preset:
    claim = RLAB + " abstract: '100 % average success rate' (their data and victims)"
    victims = (
        "the paper attacks pretrained victims (images, ECG signals, videos) whose training is not "
        "part of it; ours are trained here"
    )
    return Preset(
        name="rlab",
        title=(
            "Sarkar et al.: RLAB (learned agent, and the greedy baseline) against CE and "
            "policy victims"
        ),
        protocol={
            **framework_defaults(),
            **_our_cifar_training(victims),
            "data.name": stated(
                "imagenet", RLAB + ": 2-D images (ImageNet-size, 224 x 224), ECG, video"
            ),
            "eval.attacks": chosen([fgsm(CIFAR_EPS), pgd(CIFAR_EPS, 20, 2 / 255)], victims),
            "rlab.agent": stated("learned", RLAB + ": 'The RL algorithm learns a policy'"),
            "rlab.patch_size": stated(32, RLAB_CODE + ": 32 x 32 patches (of 224 x 224 images)"),
            "rlab.max_steps": stated(
                4000, RLAB_CODE + ": 'up to 4000 steps'; the paper's budget is in steps"
            ),
            "rlab.budget": chosen(
                1_000_000, "the paper caps steps, not queries: a query cap that never binds"
            ),
            "rlab.n_examples": chosen(1000, "the number of attacked images is not in our sources"),
            "rlab.training_iterations": chosen(
                100, "the agent's training length is not in our sources: 100 REINFORCE iterations"
            ),
            "runs": chosen(1, "pretrained victims: one each"),
        },
        variants={
            "CE": Variant({}),
            "policy (Kim)": Variant(
                {
                    "objective.name": chosen(
                        "kim_policy", "a policy-trained victim beside CE (ours)"
                    ),
                    "objective.options": chosen(
                        {
                            "lam": 1.25,
                            "r_k1": 1.0,
                            "action": "greedy",
                            "baseline": False,
                            "exact": False,
                        },
                        "Kim's CIFAR lambda2",
                    ),
                    "two_stage.enabled": chosen(True, "Kim's two-stage schedule"),
                    "two_stage.warmup_objective": chosen("kim_warmup", "Kim Eq. 12"),
                    "two_stage.warmup_options": chosen(
                        {"lam": 0.75, "r_k1": 1.0, "action": "sample"}, "Kim's CIFAR lambda1"
                    ),
                    "two_stage.switch_accuracy": chosen(0.8, "Kim's 80 %"),
                    "two_stage.switch_epoch": chosen(None, "switch on accuracy"),
                }
            ),
        },
        scales={
            "smoke": Scale(
                [
                    SMOKE_DATA,
                    SMOKE_ATTACKS,
                    smoke_epochs(2),
                    Delta(
                        "smoke RLAB",
                        "2 x 2 patches on 8 x 8 digits, 50 steps, 32 images, 2 agent iterations",
                        {
                            "eval.attacks": [fgsm(0.1)],
                            "rlab.patch_size": 2,
                            "rlab.max_steps": 50,
                            "rlab.budget": 200,
                            "rlab.n_examples": 32,
                            "rlab.training_iterations": 2,
                        },
                    ),
                ]
            ),
            "laptop": Scale(
                [
                    LAPTOP_FOR_CIFAR,
                    Delta(
                        "laptop victims and RLAB",
                        "LeNet5 victims for 5 epochs; 4 x 4 patches on 28 x 28 images, 500 steps, "
                        "500 images, 30 agent iterations",
                        {
                            "train.epochs": 5,
                            "eval.attacks": [fgsm(0.1), pgd(0.1, 20, 0.025)],
                            "rlab.patch_size": 4,
                            "rlab.max_steps": 500,
                            "rlab.budget": 5000,
                            "rlab.n_examples": 500,
                            "rlab.training_iterations": 30,
                        },
                    ),
                ]
            ),
            "paper": Scale(
                [
                    Delta(
                        "victims we can train",
                        "ImageNet, ECG and video victims are not available here: CIFAR-10 "
                        "victims, with 4 x 4 patches (the paper's 32 x 32 patches cover 1/49 of "
                        "a 224 x 224 image; 4 x 4 cover 1/64 of a 32 x 32 one)",
                        {"data.name": "cifar10", "rlab.patch_size": 4},
                    )
                ]
            ),
        },
        references=[
            Reference(
                "rlab_learned_success", 100.0, claim, variant="CE", paper_metric="success rate"
            ),
        ],
    )
