"""Training the RLAB policy with REINFORCE across many images (Williams 1992).

Each iteration runs a batch of episodes on training images with actions sampled from the policy,
then ascends sum_t log pi(a_t | s_t) * A_t, where A_t is the discounted return-to-go of the
step's reward (env.py: the fall in true-class probability minus the distortion penalty),
normalised over the batch's live steps, plus a small entropy bonus that keeps the policy from
collapsing early. The victim is only queried; its gradients are never used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rlrobust.attacks.rlab.env import RLABEnv
from rlrobust.attacks.rlab.policy import LearnedAgent, PolicyNet, masked_logits, static_features


@dataclass
class AgentTraining:
    iterations: int = 100
    batch_size: int = 64
    lr: float = 1e-3
    gamma: float = 0.95
    entropy: float = 0.01
    hidden: int = 64


def discounted_returns(rewards: Tensor, alive: Tensor, gamma: float) -> Tensor:
    """(T, B) rewards -> (T, B) return-to-go; steps after an episode ended count as zero."""
    out = torch.zeros_like(rewards)
    running = torch.zeros(rewards.shape[1:], dtype=rewards.dtype, device=rewards.device)
    for t in reversed(range(rewards.shape[0])):
        running = rewards[t] + gamma * running * alive[t]
        out[t] = running
    return out * alive


def run_episode(net: PolicyNet, env: RLABEnv, generator: torch.Generator):
    """Sample one batch of episodes; returns (log-probs, entropies, rewards, alive), each (T, B)."""
    static = static_features(env)
    logps, entropies, rewards, alive = [], [], [], []
    while env.active.any():
        live = env.active.clone()
        # Finished rows: any finite values (a mask: boolean indexing would sync with a GPU).
        logits = masked_logits(net, static, env).masked_fill(~live[:, None], 0.0)
        dist = torch.distributions.Categorical(logits=logits)
        with torch.no_grad():
            actions = torch.multinomial(dist.probs, 1, generator=generator)[:, 0]
        logps.append(dist.log_prob(actions))
        probs = dist.probs.clamp(min=1e-12)
        entropies.append(-(probs * probs.log()).sum(dim=1))
        rewards.append(env.step(actions))
        alive.append(live.float())
    if not logps:  # the victim got every input of the batch wrong: nothing to attack or learn
        empty = torch.zeros(0, env.x0.shape[0], device=env.x0.device)
        return empty, empty, empty, empty
    return torch.stack(logps), torch.stack(entropies), torch.stack(rewards), torch.stack(alive)


def train_agent(
    make_env: Callable[[Tensor, Tensor, torch.Generator], RLABEnv],
    sample_batch: Callable[[int, torch.Generator], tuple[Tensor, Tensor]],
    num_ops: int,
    ops,
    settings: AgentTraining,
    seed: int = 0,
    progress: Callable[[int, dict], None] | None = None,
    device: str | torch.device = "cpu",
) -> tuple[LearnedAgent, list[dict]]:
    """Train a policy on episodes from ``make_env(x, y, generator)`` over batches drawn by
    ``sample_batch(batch_size, generator)``. Returns the agent and one stats dict per iteration."""
    torch.manual_seed(seed)
    # The generator and the policy live on the victim's device (filters draw their noise
    # there); on the CPU this is the stream the agent always had.
    generator = torch.Generator(device=device).manual_seed(seed)
    net = PolicyNet(num_ops, settings.hidden).to(device)
    optimiser = torch.optim.Adam(net.parameters(), lr=settings.lr)
    history = []
    for it in range(settings.iterations):
        x, y = sample_batch(settings.batch_size, generator)
        env = make_env(x, y, generator)
        net.train()
        logp, ent, rewards, alive = run_episode(net, env, generator)
        returns = discounted_returns(rewards, alive, settings.gamma)
        live = alive.bool()
        if live.any():
            mean, std = returns[live].mean(), returns[live].std().clamp(min=1e-6)
            advantage = ((returns - mean) / std) * alive
            n = alive.sum()
            loss = -(logp * advantage).sum() / n - settings.entropy * (ent * alive).sum() / n
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            optimiser.step()
        attacked = env.correct_at_start
        stats = {
            "iteration": it + 1,
            "success_rate": float(env.success[attacked].float().mean()) if attacked.any() else 0.0,
            "mean_queries": float(env.oracle.queries[attacked.cpu()].float().mean())
            if attacked.any()
            else 0.0,
            "mean_return": float(rewards.sum(dim=0)[attacked].mean()) if attacked.any() else 0.0,
        }
        history.append(stats)
        if progress is not None:
            progress(it, stats)
    return LearnedAgent(net, list(ops)), history
