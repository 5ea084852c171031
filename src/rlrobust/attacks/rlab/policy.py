"""The learned RLAB agent: a patch-wise policy network over dual add / remove actions.

The policy sees what a black-box attacker can see: the clean input's patches, its own filters'
effect on each patch (no query needed), which patches it has distorted, the change in
true-class probability each of its past actions caused, and the victim's current output. Each
patch gets a feature vector; a shared MLP (with the mean over patches as context, a DeepSets
layout) scores K adds and one remove per patch, so one network serves any number of patches and
1-D, 2-D and 3-D inputs alike. Invalid actions are masked out of the softmax.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import Tensor, nn

from rlrobust.attacks.rlab.env import CLEAN, RLABEnv
from rlrobust.attacks.rlab.filters import Operation
from rlrobust.errors import CheckpointError
from rlrobust.files import atomic_write_bytes, atomic_write_json

GLOBAL_FEATURES = 5
AGENT_WEIGHTS, AGENT_META = "agent.safetensors", "agent.json"


def feature_size(num_ops: int) -> int:
    # patch statistics (3) + centre (3) + filter costs (K) + applied multi-hot (K) + removed (1)
    # + last change of p_y (1) + global features
    return 3 + 3 + num_ops + num_ops + 1 + 1 + GLOBAL_FEATURES


def static_features(env: RLABEnv) -> Tensor:
    """(B, N, 6 + K) features that do not change within an episode."""
    grid = env.grid
    brightness = env.x0.amax(dim=1)  # (B, *S): channel maximum
    mean = grid.patch_means(brightness)
    std = (grid.patch_means(brightness**2) - mean**2).clamp(min=0).sqrt()
    peak = grid.patch_max(brightness)
    centres = grid.centres().to(env.x0.device).expand(env.x0.shape[0], -1, -1)
    diff = (env.candidates - env.x0[:, None]).pow(2).sum(dim=2)  # (B, K, *S)
    cost = grid.patch_means(diff.flatten(0, 1)).view(env.x0.shape[0], env.num_ops, -1)
    cost = (cost * grid.sizes().to(diff.device)).sqrt().transpose(1, 2)  # (B, N, K) patch L2
    return torch.cat([mean[..., None], std[..., None], peak[..., None], centres, cost], dim=2)


def dynamic_features(env: RLABEnv) -> Tensor:
    """(B, N, K + 2 + GLOBAL_FEATURES) features of the current state."""
    b, n = env.applied.shape
    onehot = torch.zeros(b, n, env.num_ops + 1, device=env.applied.device)
    onehot.scatter_(2, (env.applied.clamp(min=CLEAN) + 1)[..., None], 1.0)  # slot 0: clean
    # a stacked top layer marks its operation too (multi-hot), so agents trained without
    # stacking keep their input size
    onehot.scatter_(2, (env.stacked.clamp(min=CLEAN) + 1)[..., None], 1.0)
    used = 1 - env.queries_left().float() / env.budget
    if env.max_steps is not None:  # the budget nearer to running out
        used = torch.maximum(used, env.steps.to(used.device).float() / env.max_steps)
    distorted = (env.applied != CLEAN).float().mean(dim=1)
    glob = torch.stack([env.true_prob(), env.p_start, env.runner_up_prob(), used, distorted], dim=1)
    return torch.cat(
        [
            onehot[..., 1:],
            env.tabu.float()[..., None],
            env.last_delta[..., None],
            glob[:, None, :].expand(-1, n, -1),
        ],
        dim=2,
    )


class PolicyNet(nn.Module):
    """Per-patch scores for K adds and one remove; (B, N, F) -> (B, N, K + 1) logits."""

    def __init__(self, num_ops: int, hidden: int = 64) -> None:
        super().__init__()
        self.num_ops, self.hidden = num_ops, hidden
        self.encode = nn.Sequential(
            nn.Linear(feature_size(num_ops), hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
        )
        self.score = nn.Sequential(
            nn.Linear(2 * hidden, hidden), nn.ReLU(), nn.Linear(hidden, num_ops + 1)
        )

    def forward(self, features: Tensor) -> Tensor:
        h = self.encode(features)
        context = h.mean(dim=1, keepdim=True).expand_as(h)
        return self.score(torch.cat([h, context], dim=2))


def masked_logits(net: PolicyNet, static: Tensor, env: RLABEnv) -> Tensor:
    """(B, N * (K + 1)) logits with invalid actions at -inf."""
    logits = net(torch.cat([static, dynamic_features(env)], dim=2)).flatten(1)
    valid = env.valid_actions().flatten(1)
    return logits.masked_fill(~valid, -torch.inf)


class LearnedAgent:
    """Runs a trained ``PolicyNet``: ``mode`` "greedy" takes the best action, "sample" samples."""

    name = "learned"

    def __init__(self, net: PolicyNet, ops: list[Operation], mode: str = "greedy") -> None:
        if mode not in {"greedy", "sample"}:
            raise ValueError(f"mode must be 'greedy' or 'sample', not {mode!r}")
        self.net, self.ops, self.mode = net, list(ops), mode

    def check_ops(self, env: RLABEnv) -> None:
        if env.ops != self.ops:
            raise CheckpointError(
                f"the agent was trained with operations {[o.label for o in self.ops]} but the "
                f"attack uses {[o.label for o in env.ops]}: use the agent's filters and levels, "
                "or train a new agent"
            )

    def run(self, env: RLABEnv, generator: torch.Generator | None = None) -> None:
        self.check_ops(env)
        self.net.to(env.x0.device)  # the policy acts where the episode's tensors are
        self.net.eval()
        static = static_features(env)
        with torch.no_grad():
            while env.active.any():
                logits = masked_logits(self.net, static, env)
                # Finished rows: any finite values, the action is ignored (a mask, not boolean
                # indexing, which would make the host wait for a GPU at every step).
                logits = logits.masked_fill(env.done[:, None], 0.0)
                if self.mode == "greedy":
                    actions = logits.argmax(dim=1)
                else:
                    actions = torch.multinomial(logits.softmax(dim=1), 1, generator=generator)[:, 0]
                env.step(actions)

    # --- saving and loading -----------------------------------------------------------------

    def save(self, directory: str | Path, extra: dict | None = None) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}
        atomic_write_bytes(directory / AGENT_WEIGHTS, save(tensors))
        meta = {
            "ops": [{"filter": o.filter, "level": o.level} for o in self.ops],
            "hidden": self.net.hidden,
            **(extra or {}),
        }
        atomic_write_json(directory / AGENT_META, meta)
        return directory

    @classmethod
    def load(cls, directory: str | Path, mode: str = "greedy") -> LearnedAgent:
        directory = Path(directory)
        weights, meta_path = directory / AGENT_WEIGHTS, directory / AGENT_META
        if not weights.is_file() or not meta_path.is_file():
            raise CheckpointError(
                f"{directory} holds no RLAB agent ({AGENT_WEIGHTS} and {AGENT_META}); train one "
                "with `rlrobust attack rlab RUN --agent learned --agent-dir DIR`"
            )
        try:
            meta = json.loads(meta_path.read_text())
            ops = [Operation(o["filter"], float(o["level"])) for o in meta["ops"]]
            net = PolicyNet(len(ops), int(meta["hidden"]))
            net.load_state_dict(load_file(str(weights)))
        except (ValueError, KeyError, TypeError, RuntimeError, SafetensorError) as err:
            raise CheckpointError(
                f"cannot read the RLAB agent in {directory} ({err}); retrain it"
            ) from err
        return cls(net, ops, mode)
