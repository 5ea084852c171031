"""The whole RLAB experiment on one trained run, as ``rlrobust attack rlab`` runs it.

Steps, each optional after the first: attack test images with the chosen agent (training and
saving a learned agent first if the agent folder holds none); compare with Square at the same
query budget; score the localisation masks; fine-tune the victim on RLAB examples and measure
RLAB, FGSM and PGD before and after. Results go to ``rlab.json`` and ``rlab.md``, the examples
and masks to ``examples.safetensors``, pictures to ``grid.png``; every file is written atomically.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import save
from torch import Tensor, nn
from tqdm.auto import tqdm

from rlrobust.attacks.fgsm import FGSM
from rlrobust.attacks.pgd import PGD
from rlrobust.attacks.rlab.attack import RLABSettings, make_env, rlab_attack
from rlrobust.attacks.rlab.greedy import GreedyAgent
from rlrobust.attacks.rlab.grids import save_grid
from rlrobust.attacks.rlab.localisation import REFERENCES, score_masks
from rlrobust.attacks.rlab.metrics import attack_metrics
from rlrobust.attacks.rlab.patches import PatchGrid
from rlrobust.attacks.rlab.policy import AGENT_WEIGHTS, LearnedAgent
from rlrobust.attacks.rlab.report import rlab_markdown
from rlrobust.attacks.rlab.retrain import Retraining, finetune_on_examples
from rlrobust.attacks.rlab.train_agent import AgentTraining, train_agent
from rlrobust.attacks.square import Square
from rlrobust.data.dataset import ImageData
from rlrobust.devices import module_device
from rlrobust.errors import ConfigError
from rlrobust.files import atomic_write_bytes, atomic_write_json, atomic_write_text
from rlrobust.weights import save_weights


@dataclass
class RLABExperiment:
    agent: str = "greedy"  # greedy or learned
    agent_dir: str | None = None  # learned: load from here, or train and save here
    training: AgentTraining = field(default_factory=AgentTraining)
    settings: RLABSettings = field(default_factory=RLABSettings)
    square_eps: list[float] = field(default_factory=list)  # Square at the same budget, per eps
    masks: bool = True
    saliency: list[str] = field(
        default_factory=lambda: ["vanilla_gradient", "smoothgrad", "integrated_gradients"]
    )
    foreground_threshold: float = 0.1
    # what masks are scored against: auto (the data set's ground-truth masks if it has them,
    # else the foreground for images and videos, nothing for 1-D signals), or one of
    # localisation.REFERENCES
    mask_reference: str = "auto"
    retrain: Retraining | None = None  # None: no retraining
    retrain_examples: int = 2000
    check_eps: float | None = None  # FGSM / PGD-40 before and after retraining
    grid_rows: int = 8
    progress: bool = False  # tqdm bars for agent training and the attacks

    def check(self) -> None:
        if self.agent not in {"greedy", "learned"}:
            raise ConfigError(f"--agent must be greedy or learned, not {self.agent!r}")
        if self.agent == "learned" and not self.agent_dir:
            raise ConfigError(
                "--agent learned needs --agent-dir DIR: the trained agent is loaded from DIR, "
                "or trained on the run's training images and saved there"
            )
        if self.mask_reference not in {"auto", *REFERENCES}:
            raise ConfigError(
                f"--mask-reference must be auto or one of {', '.join(REFERENCES)}, not "
                f"{self.mask_reference!r}"
            )
        if self.retrain is not None and self.check_eps is None:
            raise ConfigError("retraining measures FGSM and PGD before and after: give --eps")
        self.settings.check()


def load_victim(run_dir: str | Path, n_examples: int, seed: int = 0):
    """(model, test subset of ``n_examples`` images, training split) of a run directory."""
    from rlrobust.runs import load_run_model, load_split, saved_config

    model = load_run_model(run_dir)  # first: it explains a folder that is not a run
    cfg = saved_config(run_dir)
    test = load_split(cfg, "test")
    test = test.take(min(n_examples, len(test)), seed)
    return model, test, load_split(cfg, "train")


def as_float(data: ImageData) -> tuple[Tensor, Tensor]:
    return data.images.float() / 255.0, data.labels



def mask_reference(data: ImageData, choice: str = "auto") -> tuple[str, Tensor | None]:
    """(reference kind, (N, *spatial) ground-truth masks or None) for ``data``'s inputs.

    ``auto``: the data set's own masks (``ImageData.masks``, e.g. Moving-MNIST's per-frame digit
    masks) where it has them; else the foreground for images and videos; nothing for 1-D
    signals, whose classes have no ground-truth localisation (UCR series).
    """
    given = getattr(data, "masks", None)
    given = None if given is None else given.any(dim=1)  # (N, C, *S) -> (N, *S)
    if choice == "auto":
        if given is not None:
            return "ground_truth", given
        return ("none" if data.images.dim() == 3 else "foreground"), None
    if choice == "ground_truth" and given is None:
        raise ConfigError(
            f"--mask-reference ground_truth: the data set {data.name!r} has no ground-truth "
            "masks; use foreground (images) or none"
        )
    return choice, given if choice == "ground_truth" else None


def get_agent(model: nn.Module, exp: RLABExperiment, train: ImageData, log: Callable) -> tuple:
    """(agent, info dict): greedy, a saved learned agent, or one trained now and saved."""
    if exp.agent == "greedy":
        return GreedyAgent(reprobe=exp.settings.reprobe), {"agent": "greedy"}
    directory = Path(exp.agent_dir)
    if (directory / AGENT_WEIGHTS).is_file():
        log(f"loading the RLAB agent in {directory}")
        return LearnedAgent.load(directory), {"agent": "learned", "agent_dir": str(directory)}
    device = module_device(model)
    x_train, y_train = (t.to(device) for t in as_float(train))

    def sample(n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        index = torch.randint(0, x_train.shape[0], (n,), generator=generator, device=device)
        return x_train[index], y_train[index]

    ops = exp.settings.operations()
    log(f"training an RLAB agent for {exp.training.iterations} iterations ...")
    start = time.perf_counter()

    bar = tqdm(total=exp.training.iterations, desc="RLAB agent", disable=not exp.progress)

    def report(it: int, stats: dict) -> None:
        bar.update(1)
        bar.set_postfix(
            success=f"{stats['success_rate']:.2f}", queries=f"{stats['mean_queries']:.1f}"
        )
        if (it + 1) % max(1, exp.training.iterations // 10) == 0 and not exp.progress:
            log(
                f"  iteration {it + 1}: success {stats['success_rate']:.2f}, "
                f"queries {stats['mean_queries']:.1f}"
            )

    agent, history = train_agent(
        lambda x, y, g: make_env(model, x, y, exp.settings, g),
        sample,
        len(ops),
        ops,
        exp.training,
        seed=exp.settings.seed,
        progress=report,
        device=device,
    )
    bar.close()
    seconds = time.perf_counter() - start
    info = {
        "agent": "learned",
        "agent_dir": str(directory),
        "training": asdict(exp.training),
        # the episodes it learned on: an agent may be reused with other budgets or stacking
        "trained_with": {
            "budget": exp.settings.budget,
            "max_steps": exp.settings.max_steps,
            "stacking": exp.settings.stacking,
            "patch_size": exp.settings.patch_size,
        },
        "training_seconds": seconds,
        "training_history": history,
    }
    agent.save(directory, extra=info)
    return agent, info


def square_metrics(model: nn.Module, x: Tensor, y: Tensor, eps: float, budget: int) -> dict:
    """Square (linf, ``eps``) with at most ``budget`` queries per input, in RLAB's metrics."""
    attack = Square(eps=eps, n_queries=budget - 1, seed=0)
    with torch.no_grad():
        attacked = model(x).argmax(dim=1) == y
    x_adv = attack(model, x, y)
    return attack_metrics(x_adv, x, attack.last_success, attacked, attack.last_queries.cpu())


def robustness(model: nn.Module, x: Tensor, y: Tensor, eps: float) -> dict[str, float]:
    """Clean, FGSM and PGD-40 (step 2.5 eps / 40, random start) accuracy on ``x``."""
    with torch.no_grad():
        clean = model(x).argmax(dim=1) == y
    out = {"clean": float(clean.float().mean())}
    for name, attack in (
        ("fgsm", FGSM(eps=eps)),
        ("pgd40", PGD(eps=eps, steps=40, step_size=2.5 * eps / 40, random_start=True)),
    ):
        with torch.no_grad():
            out[name] = float((model(attack(model, x, y)).argmax(dim=1) == y).float().mean())
    return out


def attack_with_bar(model, x, y, agent, exp: RLABExperiment, desc: str):
    """``rlab_attack`` with a progress bar over inputs when ``exp.progress``."""
    with tqdm(total=x.shape[0], desc=desc, unit="input", disable=not exp.progress) as bar:
        return rlab_attack(model, x, y, agent, exp.settings, progress=bar.update)


def run_rlab(
    model: nn.Module,
    test: ImageData,
    train: ImageData,
    exp: RLABExperiment,
    out: Path,
    log: Callable = print,
) -> dict:
    """Run the experiment; write its files into ``out``; return the record."""
    exp.check()
    out.mkdir(parents=True, exist_ok=True)
    model.eval()
    x, y = (t.to(module_device(model)) for t in as_float(test))
    agent, agent_info = get_agent(model, exp, train, log)
    log(f"RLAB ({agent.name}) on {x.shape[0]} test inputs, budget {exp.settings.budget} queries")
    start = time.perf_counter()
    result = attack_with_bar(model, x, y, agent, exp, "RLAB")
    record: dict = {
        "settings": {**asdict(exp.settings), "operations": [o.label for o in result.ops]},
        **agent_info,
        "rlab": attack_metrics(
            result.x_adv, x, result.success, result.attacked, result.queries, result.steps
        ),
        "attack_seconds": time.perf_counter() - start,
    }
    for eps in exp.square_eps:
        log(f"Square at eps {eps} with the same budget ...")
        record.setdefault("square", {})[str(eps)] = square_metrics(
            model, x, y, eps, exp.settings.budget
        )
    ok = result.success
    if exp.masks and ok.any():
        log("scoring localisation masks ...")
        grid = PatchGrid(x.shape[2:], exp.settings.patch_size)
        kind, given = mask_reference(test, exp.mask_reference)
        record["masks"] = score_masks(
            model,
            x[ok],
            y[ok],
            result.masks[ok],
            result.patch_masks[ok],
            grid,
            exp.saliency,
            exp.foreground_threshold,
            exp.settings.seed,
            reference=kind,
            given=None if given is None else given[ok.to(given.device)].to(x.device),
        )
    if exp.retrain is not None:
        record["retraining"] = retrain_and_compare(model, x, y, train, agent, exp, result, out, log)
    write_outputs(out, model, x, y, result, record, exp)
    return record


def retrain_and_compare(model, x, y, train, agent, exp, before, out: Path, log) -> dict:
    n = min(exp.retrain_examples, len(train))
    x_train, y_train = as_float(train.take(n, exp.settings.seed))
    log(f"crafting RLAB examples on {n} training images for retraining ...")
    crafted = attack_with_bar(model, x_train, y_train, agent, exp, "RLAB (training images)")
    ok = crafted.success
    tuned = finetune_on_examples(
        model, x_train, y_train, crafted.x_adv[ok], y_train[ok], exp.retrain
    )
    log("measuring RLAB, FGSM and PGD after retraining ...")
    after = attack_with_bar(tuned, x, y, agent, exp, "RLAB (retrained)")
    save_weights(tuned, out / "retrained.safetensors")
    return {
        "settings": asdict(exp.retrain),
        "n_train_images": n,
        "n_rlab_examples": int(ok.sum()),
        "rlab_before": attack_metrics(
            before.x_adv, x, before.success, before.attacked, before.queries, before.steps
        ),
        "rlab_after": attack_metrics(
            after.x_adv, x, after.success, after.attacked, after.queries, after.steps
        ),
        "eps": exp.check_eps,
        "before": robustness(model, x, y, exp.check_eps),
        "after": robustness(tuned, x, y, exp.check_eps),
        "weights": "retrained.safetensors",
    }


def write_outputs(out: Path, model, x, y, result, record, exp: RLABExperiment) -> None:
    with torch.no_grad():
        before = model(x).argmax(dim=1)
        after = model(result.x_adv).argmax(dim=1)
    tensors = {
        "x": x.contiguous(),
        "x_adv": result.x_adv.contiguous(),
        "labels": y.contiguous(),
        "masks": result.masks.to(torch.uint8).contiguous(),
        "applied": result.applied.contiguous(),
        "success": result.success.to(torch.uint8),
        "queries": result.queries.contiguous(),
        "steps": result.steps.contiguous(),
        "stacked": result.stacked.contiguous(),
        "prediction_before": before,
        "prediction_after": after,
    }
    atomic_write_bytes(out / "examples.safetensors", save({k: v.cpu() for k, v in tensors.items()}))
    shown = result.success.nonzero().squeeze(1)[: exp.grid_rows]
    if shown.numel():
        save_grid(
            out / "grid.png",
            x[shown],
            result.x_adv[shown],
            result.masks[shown],
            labels=y[shown],
            predictions=(before[shown], after[shown]),
            max_rows=exp.grid_rows,
        )
        record["grid"] = "grid.png"
    atomic_write_json(out / "rlab.json", record)
    atomic_write_text(out / "rlab.md", rlab_markdown(record))
