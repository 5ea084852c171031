"""Adversarial training steps: FGSM-AT, PGD-AT and RL-adv (TRADES and L2L live beside this file).

Each defence is a training *step* (``steps.py``): the epoch loop, checkpoints and ``--resume``
are those of plain training. Per batch a step makes adversarial examples and returns the loss
the loop minimises:

- ``fgsm_at``: Gupta 2020, Appendix A, Algorithm 1: x_adv = FGSM(x, y, eps) at the start of
  every step, then train on x_adv only with the *current objective* (cross-entropy, or a policy
  loss: that is Gupta's RL-vs-CE comparison; Gupta's form of RL adversarial training is
  fgsm_at with a policy objective). ``random_start=True`` gives the fast adversarial training of
  Wong, Rice & Kolter 2020 (uniform start in the ball, step alpha = 1.25 eps).
- ``pgd_at``: Madry et al. 2018: train on PGD examples (steps, step size, random start).
- ``rl_adv``: Zou et al. 2026: L_PG(x) + adv_rate * L_PG(x_adv), x_adv from FGSM (or PGD) on
  the gradient of the policy loss, from epoch ``start_epoch`` on (Zou et al.: 50).

Attacks run with the model in eval mode (``model_frozen``) and never touch the parameters'
``.grad``; the loss is then computed in train mode. The attack's random start is drawn from a
seed taken from the epoch generator for every batch, so the noise differs from batch to batch
yet a resumed run replays it exactly (attacks re-seed a private generator on every call).

Every adversarial batch is checked against the threat model (Linf ball and [0, 1]); the stats
``adv_max_perturbation`` and ``adv_violation_rate`` land in metrics.csv as ``train_adv_...``.

End of every epoch (``end_of_epoch``): FGSM and PGD accuracy on a fixed held-out batch (the
first ``monitor_size`` images of the held-out split: validation if held out, else test, both
disjoint from the training images) feed the catastrophic-overfitting detector
(``catastrophic_overfitting``): PGD accuracy collapsing while FGSM accuracy does not fall is
the signature Wong et al. describe for FGSM training.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from rlrobust.attacks import FGSM, PGD
from rlrobust.attacks.base import Attack, clamp01, input_gradient, project, random_start
from rlrobust.config import AdversarialConfig
from rlrobust.data import ImageData, to_unit_float
from rlrobust.objectives.core import (
    Stats,
    apply_baseline,
    binary_rewards,
    greedy_actions,
    log_policy,
    policy_surrogate,
    stats_from,
)
from rlrobust.seeding import make_generator
from rlrobust.training.checkpoint import save_weights

LossFn = Callable[[Tensor, Tensor], Tensor]

# Rounding slack for the threat-model check: x + clamp(delta, -eps, eps) - x can differ from the
# clamped delta by an ulp of the pixel value.
THREAT_MODEL_TOLERANCE = 1e-6
BEST_MONITOR_WEIGHTS = "model-best-monitor-pgd.safetensors"


def draw_seed(generator: torch.Generator | None) -> int:
    """A fresh attack seed for this batch, from the step's (per-epoch) generator."""
    device = generator.device if generator is not None else None  # a CUDA generator draws there
    return int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=device).item())


def threat_model_stats(x_adv: Tensor, x: Tensor, eps: float) -> Stats:
    """``adv_max_perturbation`` (largest |x_adv - x| in the batch) and ``adv_violation_rate``
    (fraction of samples outside the eps-ball or outside [0, 1]; must be 0)."""
    distance = (x_adv - x).flatten(1).abs().amax(dim=1)
    flat = x_adv.flatten(1)
    outside = (
        (distance > eps + THREAT_MODEL_TOLERANCE) | (flat.amin(dim=1) < 0) | (flat.amax(dim=1) > 1)
    )
    values = (distance.max(), outside.float().mean())
    return stats_from(("adv_max_perturbation", "adv_violation_rate"), values)


def prefixed(stats: Stats, prefix: str) -> Stats:
    return {f"{prefix}{name}": value for name, value in stats.items()}


# --------------------------------------------------------------------------- attack losses


def objective_attack_loss(objective, actions: Tensor) -> LossFn:
    """The current objective as an attack loss, made deterministic (a scalar batch loss).

    Policy objectives sample (or explore) actions; an attack on them would follow a different
    random action at every gradient step. The actions are therefore fixed to ``actions`` (the
    greedy actions on the clean batch): ``loss(logits) = objective(logits, y, actions=actions)``.
    Zou et al.'s loss takes no ``actions`` argument; its fixed-action form is the REINFORCE
    surrogate with its own rewards. A deterministic objective (cross-entropy, or an "exact"
    expectation) is used as it is.
    """
    function = getattr(objective, "function", None)
    options = dict(getattr(objective, "options", {}))
    if not getattr(objective, "stochastic", True) or options.get("exact", False):
        return lambda logits, y: objective(logits, y)[0]
    if function is not None and "actions" in inspect.signature(function).parameters:
        return lambda logits, y: function(logits, y, actions=actions, **options)[0]
    if "reward_correct" in options and "reward_wrong" in options:

        def surrogate(logits: Tensor, y: Tensor) -> Tensor:
            log_probs = log_policy(logits)
            rewards = binary_rewards(
                actions, y, options["reward_correct"], options["reward_wrong"], log_probs.dtype
            )
            if options.get("baseline", False):
                rewards = apply_baseline(rewards)
            return policy_surrogate(log_probs, actions, rewards)

        return surrogate
    # Any other objective: one fixed private stream per gradient evaluation.
    return lambda logits, y: objective(logits, y, generator=make_generator(0))[0]


class ObjectiveLossAttack(Attack):
    """FGSM / PGD (Linf, sign steps) on the current training objective instead of a named loss.

    The same iteration as ``PGD`` (and, with ``steps=1`` and ``step_size=alpha``, as ``FGSM``):
    x_{k+1} = clamp01(P_eps(x_k + step_size * sign(grad L(x_k)))), with L from
    ``objective_attack_loss`` (actions fixed greedily on the clean batch).
    """

    name = "objective_pgd"

    def __init__(
        self,
        objective,
        eps: float,
        steps: int,
        step_size: float,
        random_start: bool,
        seed: int = 0,
    ) -> None:
        super().__init__(eps=eps, norm="linf", seed=seed)
        self.objective = objective
        self.steps = steps
        self.step_size = step_size
        self.random_start = random_start

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        with torch.no_grad():
            actions = greedy_actions(model(x))
        loss_fn = objective_attack_loss(self.objective, actions)
        x_adv = (
            random_start(x, self.eps, "linf", self.generator(x.device)) if self.random_start else x
        )
        for _ in range(self.steps):
            grad = input_gradient(model, loss_fn, x_adv, y)
            x_adv = clamp01(project(x_adv + self.step_size * grad.sign(), x, self.eps, "linf"))
        return x_adv


# --------------------------------------------------------------------------- the detector


def catastrophic_overfitting(history: list[dict[str, float]], drop: float) -> bool:
    """Whether the newest entry of ``history`` shows catastrophic overfitting.

    ``history`` holds one ``{"fgsm": accuracy, "pgd": accuracy}`` per adversarial epoch, oldest
    first. Flagged when PGD accuracy has fallen more than ``drop`` (e.g. 0.2 = 20 points) below
    its best earlier value while FGSM accuracy is at least what it was at that best epoch: the
    model has learned to defeat the single-step attack only (Wong et al. 2020, Sec. 5). A model
    that simply got worse loses FGSM accuracy too and is not flagged.
    """
    if len(history) < 2:
        return False
    earlier = history[:-1]
    best = max(earlier, key=lambda entry: entry["pgd"])
    now = history[-1]
    return best["pgd"] - now["pgd"] > drop and now["fgsm"] >= best["fgsm"]


# --------------------------------------------------------------------------- the base step


class AdversarialStep:
    """What every defence shares: settings, the eps schedule, the threat-model check, the
    end-of-epoch monitor and its checkpointed history. Subclasses implement ``adversarial_loss``.

    ``on_adversarial_example``, when set, is called as ``f(x, x_adv, eps)`` with every
    adversarial batch the step makes (tests use it to audit the threat model independently).
    """

    name = "adversarial"

    def __init__(self, settings: AdversarialConfig, seed: int = 0) -> None:
        self.settings = settings.resolved()
        self.seed = seed
        self.history: list[dict[str, float]] = []
        self.on_adversarial_example: Callable[[Tensor, Tensor, float], None] | None = None

    # -- schedule ----------------------------------------------------------------------------

    def active(self, epoch: int) -> bool:
        return epoch >= self.settings.start_epoch

    def eps_at(self, epoch: int) -> float:
        """eps, ramped linearly over the first ``eps_ramp_epochs`` adversarial epochs."""
        ramp = self.settings.eps_ramp_epochs
        if ramp <= 0:
            return self.settings.eps
        done = epoch - self.settings.start_epoch + 1
        return self.settings.eps * min(1.0, done / ramp)

    def scale(self, epoch: int) -> float:
        """eps_t / eps: step sizes shrink with a ramped eps so the attack keeps its shape."""
        return self.eps_at(epoch) / self.settings.eps

    # -- one batch ---------------------------------------------------------------------------

    def __call__(self, model, x, y, objective, *, epoch: int, generator: torch.Generator | None):
        if not self.active(epoch):
            return objective(model(x), y, generator=generator)
        return self.adversarial_loss(model, x, y, objective, epoch=epoch, generator=generator)

    def adversarial_loss(self, model, x, y, objective, *, epoch, generator):
        raise NotImplementedError

    def checked(self, x: Tensor, x_adv: Tensor, eps: float) -> Stats:
        """Hand the batch to the observer; return its threat-model stats."""
        if self.on_adversarial_example is not None:
            self.on_adversarial_example(x, x_adv, eps)
        return threat_model_stats(x_adv, x, eps)

    def make_attack(self, kind: str, objective, epoch: int, seed: int) -> Attack:
        """The FGSM or PGD attack of this batch (the library's own attacks for CE)."""
        s, scale = self.settings, self.scale(epoch)
        eps = self.eps_at(epoch)
        if kind == "fgsm":
            alpha = s.alpha if s.alpha is not None else (1.25 if s.random_start else 1.0) * s.eps
            steps, step_size = 1, alpha * scale
        else:
            steps, step_size = s.steps, s.step_size * scale
        if s.attack_loss == "objective":
            return ObjectiveLossAttack(objective, eps, steps, step_size, s.random_start, seed)
        if kind == "fgsm":
            return FGSM(eps=eps, random_start=s.random_start, alpha=step_size, seed=seed)
        return PGD(
            eps=eps, steps=steps, step_size=step_size, random_start=s.random_start, seed=seed
        )

    # -- end of epoch ------------------------------------------------------------------------

    def end_of_epoch(
        self,
        model: nn.Module,
        epoch: int,
        *,
        heldout: ImageData,
        run_dir: Path | None = None,
        log: Callable[[str], None] = print,
    ) -> tuple[dict[str, float], str | None]:
        """Monitor FGSM / PGD accuracy and flag catastrophic overfitting.

        Returns ``(metrics, stop_reason)``; ``stop_reason`` is ``None`` unless the run should end
        (``stop_on_overfitting``). The weights with the best monitor PGD accuracy so far are kept
        in ``RUN/model-best-monitor-pgd.safetensors``, the model to use after a collapse.
        """
        s = self.settings
        if s.monitor_size == 0 or not self.active(epoch):
            return {}, None
        fgsm_accuracy, pgd_accuracy = self.monitor(model, heldout)
        entry = {"epoch": epoch + 1, "fgsm": fgsm_accuracy, "pgd": pgd_accuracy}
        improved = all(pgd_accuracy > old["pgd"] for old in self.history)
        self.history.append(entry)
        if improved and run_dir is not None:
            save_weights(model, Path(run_dir) / BEST_MONITOR_WEIGHTS)
        flagged = catastrophic_overfitting(self.history, s.overfit_drop)
        metrics = {
            "monitor_fgsm_accuracy": fgsm_accuracy,
            "monitor_pgd_accuracy": pgd_accuracy,
            "catastrophic_overfitting": float(flagged),
        }
        if not flagged:
            return metrics, None
        best = max(self.history[:-1], key=lambda old: old["pgd"])
        message = (
            f"catastrophic overfitting after epoch {epoch + 1}: monitor PGD accuracy "
            f"{pgd_accuracy:.3f} (best {best['pgd']:.3f} after epoch {best['epoch']}) while "
            f"FGSM accuracy is {fgsm_accuracy:.3f}; the FGSM-robustness is not real. "
            f"The best-PGD weights are in {BEST_MONITOR_WEIGHTS}; use PGD training, a random "
            "start with a smaller alpha, or --adversarial.stop_on_overfitting"
        )
        log(f"WARNING: {message}")
        return metrics, (message if s.stop_on_overfitting else None)

    def monitor(self, model: nn.Module, heldout: ImageData) -> tuple[float, float]:
        """FGSM and PGD accuracy (at the full eps) on the first ``monitor_size`` held-out images."""
        s = self.settings
        n = min(s.monitor_size, len(heldout))
        device = next(model.parameters()).device
        x = to_unit_float(heldout.images[:n].to(device))
        y = heldout.labels[:n].to(device)
        attacks = (
            FGSM(eps=s.eps, seed=self.seed),
            PGD(eps=s.eps, steps=s.monitor_steps, step_size=s.eps / 4, seed=self.seed),
        )
        accuracies = []
        for attack in attacks:
            x_adv = attack(model, x, y)
            with torch.no_grad():
                was_training = model.training
                model.eval()
                accuracies.append(float((model(x_adv).argmax(dim=1) == y).float().mean()))
                model.train(was_training)
        return accuracies[0], accuracies[1]

    # -- checkpoints -------------------------------------------------------------------------

    def checkpoint_state(self) -> tuple[dict[str, Tensor], dict]:
        return {}, {"history": self.history}

    def restore_checkpoint_state(self, tensors: dict[str, Tensor], meta: dict) -> None:
        self.history = list(meta.get("history", []))


# --------------------------------------------------------------------------- the steps


class AttackTrainingStep(AdversarialStep):
    """``fgsm_at`` (Gupta Alg. 1; Wong et al. with a random start) and ``pgd_at`` (Madry):
    the current objective on x_adv only."""

    def __init__(self, settings: AdversarialConfig, kind: str, seed: int = 0) -> None:
        super().__init__(settings, seed)
        self.kind = kind
        self.name = f"{kind}_at"

    def adversarial_loss(self, model, x, y, objective, *, epoch, generator):
        attack = self.make_attack(self.kind, objective, epoch, draw_seed(generator))
        x_adv = attack(model, x, y)
        loss, stats = objective(model(x_adv), y, generator=generator)
        return loss, {**prefixed(stats, "adv_"), **self.checked(x, x_adv, attack.eps)}


class RLAdvStep(AdversarialStep):
    """``rl_adv`` (Zou et al. 2026): L(x) + adv_rate * L(x_adv), with L the current objective.

    Clean-batch stats keep their names; those on x_adv get the prefix ``adv_``.
    """

    name = "rl_adv"

    def adversarial_loss(self, model, x, y, objective, *, epoch, generator):
        attack = self.make_attack(self.settings.attack, objective, epoch, draw_seed(generator))
        x_adv = attack(model, x, y)
        clean_loss, stats = objective(model(x), y, generator=generator)
        adv_loss, adv_stats = objective(model(x_adv), y, generator=generator)
        loss = clean_loss + self.settings.adv_rate * adv_loss
        return loss, {
            **stats,
            **prefixed(adv_stats, "adv_"),
            **stats_from(("clean_loss", "adv_loss"), (clean_loss, adv_loss)),
            **self.checked(x, x_adv, attack.eps),
        }


__all__ = [
    "AdversarialStep",
    "AttackTrainingStep",
    "ObjectiveLossAttack",
    "RLAdvStep",
    "catastrophic_overfitting",
    "draw_seed",
    "objective_attack_loss",
    "threat_model_stats",
]
