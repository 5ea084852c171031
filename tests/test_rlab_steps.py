"""RLAB step budget, escalation / stacking with exact removal, and greedy re-probing."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rlrobust.attacks.rlab.attack import RLABSettings, make_env, rlab_attack
from rlrobust.attacks.rlab.env import CLEAN, RLABEnv
from rlrobust.attacks.rlab.filters import operations
from rlrobust.attacks.rlab.greedy import GreedyAgent
from rlrobust.attacks.rlab.metrics import attack_metrics
from rlrobust.attacks.rlab.oracle import QueryOracle
from rlrobust.attacks.rlab.patches import PatchGrid
from rlrobust.attacks.rlab.policy import LearnedAgent, PolicyNet
from rlrobust.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_torch_thread")
BUILT_IN = ["gaussian_noise", "gaussian_blur", "dead_pixel", "illuminate"]


class RowCounter(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.rows = model, 0

    def forward(self, x):
        self.rows += x.shape[0]
        return self.model(x)


class Constant(nn.Module):
    """Ignores its input: class 0 always wins, so no episode ever succeeds."""

    def forward(self, x):
        logits = torch.zeros(x.shape[0], 3)
        logits[:, 0] = 5.0
        return logits


class MaxPlusThird(nn.Module):
    """Class 0 logit 3 - s, class 1 logit 0, s = 2 max(x[0], x[1]) + 1.8 x[2] on a 3-sample
    signal: samples 0 and 1 are redundant evidence, sample 2 is what finishes the attack."""

    def forward(self, x):
        s = 2 * torch.maximum(x[:, 0, 0], x[:, 0, 1]) + 1.8 * x[:, 0, 2]
        return torch.stack([3 - s, torch.zeros_like(s)], dim=1)


def random_agent(num_ops: int, ops, seed: int = 0) -> LearnedAgent:
    torch.manual_seed(seed)
    return LearnedAgent(PolicyNet(num_ops), ops, mode="sample")


# --- step budget ----------------------------------------------------------------------------


def test_step_budget_is_honoured_and_every_query_counted():
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    y = torch.zeros(6, dtype=torch.long)
    s = RLABSettings(patch_size=2, budget=10_000, max_steps=5, refine=False)
    ops = s.operations()
    counter = RowCounter(Constant())
    result = rlab_attack(counter, x, y, random_agent(len(ops), ops), s)
    assert result.steps.tolist() == [5] * 6  # never fooled: every episode spends all its steps
    assert result.queries.tolist() == [6] * 6  # the first query, then one per step
    assert int(result.queries.sum()) == counter.rows
    m = attack_metrics(x, x, result.success, result.attacked, result.queries, result.steps)
    assert m["steps_all"]["median"] == 5.0 and m["queries_all"]["median"] == 6.0


def test_query_budget_still_binds_under_a_step_budget():
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    y = torch.zeros(4, dtype=torch.long)
    s = RLABSettings(patch_size=2, budget=4, max_steps=50, refine=False)
    ops = s.operations()
    result = rlab_attack(Constant(), x, y, random_agent(len(ops), ops), s)
    assert result.queries.tolist() == [4] * 4 and result.steps.tolist() == [3] * 4


def test_greedy_step_budget_counts_probes_as_queries_not_steps():
    x = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(2))
    y = torch.zeros(3, dtype=torch.long)
    s = RLABSettings(patch_size=2, budget=1000, max_steps=2, refine=False)
    result = rlab_attack(Constant(), x, y, GreedyAgent(), s)
    n, probes = 4, 4  # 2 x 2 patches, the strongest level of 4 filters
    assert result.steps.tolist() == [2] * 3
    assert result.queries.tolist() == [1 + n * probes + 2] * 3


def test_bad_step_budget_is_explained():
    with pytest.raises(ConfigError, match="step budget"):
        RLABSettings(max_steps=0).check()
    with pytest.raises(ConfigError, match="stacking"):
        RLABSettings(stacking="pile").check()
    with pytest.raises(ConfigError, match="reprobe"):  # the record must say what ran
        rlab_attack(
            Constant(),
            torch.rand(1, 1, 4, 4),
            torch.zeros(1, dtype=torch.long),
            GreedyAgent(reprobe=True),
            RLABSettings(patch_size=2),
        )


# --- host reads -----------------------------------------------------------------------------


def _never_fooled_episode(stacking: str) -> tuple[RLABEnv, LearnedAgent]:
    """Six episodes that all run their 5 steps (the victim ignores its input)."""
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    s = RLABSettings(patch_size=2, budget=10_000, max_steps=5, stacking=stacking, refine=False)
    env = make_env(Constant(), x, torch.zeros(6, dtype=torch.long), s, torch.Generator())
    return env, random_agent(env.num_ops, env.ops)


@pytest.mark.parametrize("stacking", ["none", "escalate"])
def test_a_step_reads_the_device_once_and_the_agent_once_more(host_syncs, stacking):
    # On a GPU every read makes the host wait. A step reads which episodes are active and
    # whether their actions are valid in one transfer; the agent's loop reads whether any is
    # left. (With stacking="stack" a stacked filter also reads which rows need one.)
    env, agent = _never_fooled_episode(stacking)
    reads, step = [], env.step

    def counted_step(actions):
        with host_syncs() as syncs:
            rewards = step(actions)
        reads.append(syncs.count)
        return rewards

    env.step = counted_step
    agent.run(env, torch.Generator().manual_seed(0))
    assert reads == [1] * 5

    env, agent = _never_fooled_episode(stacking)
    with host_syncs() as syncs:
        agent.run(env, torch.Generator().manual_seed(0))
    assert syncs.count == 2 * 5 + 1  # the loop's last check finds every episode finished


# --- escalation, stacking, exact removal ----------------------------------------------------


def _env(stacking: str, filters=("gaussian_noise", "illuminate"), seed: int = 0) -> RLABEnv:
    x = torch.rand(2, 1, 6, 6, generator=torch.Generator().manual_seed(seed)) * 0.5
    ops = operations(list(filters))
    env = RLABEnv(
        QueryOracle(Constant(), 2),
        x,
        torch.zeros(2, dtype=torch.long),
        PatchGrid((6, 6), 3),
        ops,
        budget=100,
        penalty=0.0,
        generator=torch.Generator().manual_seed(0),
        stacking=stacking,
    )
    return env


def _act(env: RLABEnv, patch: int, op: int) -> None:
    env.step(torch.full((2,), patch * (env.num_ops + 1) + op))


def test_without_stacking_a_distorted_patch_takes_no_add():
    env = _env("none")
    _act(env, 1, 0)
    assert not env.valid_actions()[:, 1, : env.num_ops].any()
    assert env.valid_actions()[:, 1, env.num_ops].all()  # but it can be removed
    with pytest.raises(ValueError, match="not valid"):
        _act(env, 1, 2)


def test_escalation_goes_up_one_filter_and_removal_restores_clean_values():
    env = _env("escalate")  # ops: noise 0.1, 0.25, 0.5, illuminate 0.25, 0.5, 1
    region = env.grid.masks(torch.eye(4, dtype=torch.bool)[[2, 2]])[:, None]
    _act(env, 2, 3)  # illuminate 0.25
    valid = env.valid_actions()[:, 2, : env.num_ops]
    assert valid.tolist() == [[False, False, False, False, True, True]] * 2  # stronger only
    _act(env, 2, 4)
    _act(env, 2, 5)  # level 1 -> 2 -> 3
    assert env.applied[:, 2].tolist() == [5, 5]
    expected = (env.x0 + 1.0).clamp(0, 1)
    assert torch.equal(env.x[region], expected[region])
    assert torch.equal(env.x[~region], env.x0[~region])
    assert not env.valid_actions()[:, 2, : env.num_ops].any()  # nothing stronger is left
    _act(env, 2, env.num_ops)
    assert torch.equal(env.x, env.x0) and env.tabu[:, 2].all() and env.steps.tolist() == [4, 4]


def test_stacked_filter_acts_on_the_distorted_patch_and_removal_restores_it():
    env = _env("stack")
    region = env.grid.masks(torch.eye(4, dtype=torch.bool)[[0, 0]])[:, None]
    _act(env, 0, 2)  # gaussian noise 0.5
    noisy = env.x.clone()
    assert env.valid_actions()[:, 0, 3:6].all()  # another filter on top is allowed
    _act(env, 0, 3)  # illuminate 0.25 on top of the noise
    assert env.applied[:, 0].tolist() == [2, 2] and env.stacked[:, 0].tolist() == [3, 3]
    on_top = (noisy + 0.25).clamp(0, 1)  # illuminate is deterministic: the analytic values
    assert torch.allclose(env.x[region], on_top[region])
    assert torch.equal(env.x[~region], env.x0[~region])
    rebuilt = env.compose(env.applied, torch.arange(2), env.stacked)
    assert torch.equal(rebuilt, env.x)  # composing from scratch gives the incremental input
    assert not env.valid_actions()[:, 0, : env.num_ops].any()  # one layer on top at most
    _act(env, 0, env.num_ops)
    assert torch.equal(env.x, env.x0)
    assert env.applied[:, 0].tolist() == [CLEAN, CLEAN] and env.stacked[:, 0].tolist() == [-1, -1]


def test_stacking_episodes_end_even_without_budgets():
    x = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(3))
    y = torch.zeros(3, dtype=torch.long)
    s = RLABSettings(patch_size=2, budget=10**9, stacking="stack", refine=False)
    ops = s.operations()
    result = rlab_attack(Constant(), x, y, random_agent(len(ops), ops, seed=4), s)
    # an episode ends once every patch is removed for good (at least add + remove per patch);
    # per patch at most: add, two escalations, one stacked filter, one remove
    assert (result.steps >= 4 * 2).all() and (result.steps <= 4 * 5).all()


def test_stacking_attack_results_are_real_and_refine_keeps_them():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3)).eval()
    x = torch.rand(12, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        y = model(x).argmax(dim=1)
    s = RLABSettings(patch_size=4, budget=2000, stacking="stack", reprobe=True, max_steps=12)
    result = rlab_attack(model, x, y, GreedyAgent(reprobe=True), s)
    with torch.no_grad():
        fooled = model(result.x_adv).argmax(dim=1) != y
    assert torch.equal(result.success, fooled) and result.success.any()
    assert (result.steps <= 12).all()
    outside = ~result.masks[:, None].expand_as(x)
    assert torch.equal(result.x_adv[outside], x[outside])


# --- greedy re-probing --------------------------------------------------------------------


def test_reprobing_changes_the_order_and_counts_its_queries():
    x = torch.zeros(1, 1, 3)
    y = torch.zeros(1, dtype=torch.long)
    s = RLABSettings(patch_size=1, filters=["illuminate"], levels="strongest", refine=False)
    once = rlab_attack(MaxPlusThird(), x, y, GreedyAgent(), s)
    s.reprobe = True
    again = rlab_attack(MaxPlusThird(), x, y, GreedyAgent(reprobe=True), s)
    assert once.success.all() and again.success.all()
    # probed once, patches 0 and 1 look best; 1 adds nothing once 0 is there, but is added
    assert once.patch_masks.tolist() == [[True, True, True]] and once.steps.tolist() == [3]
    assert once.queries.tolist() == [1 + 3 + 3]
    # re-probed after patch 0, patch 2 is worth more than patch 1
    assert again.patch_masks.tolist() == [[True, False, True]] and again.steps.tolist() == [2]
    assert again.queries.tolist() == [1 + (3 + 1) + (2 + 1)]


def test_reprobing_stops_when_a_round_is_unaffordable():
    x = torch.rand(2, 1, 4, 4, generator=torch.Generator().manual_seed(6))
    y = torch.zeros(2, dtype=torch.long)
    s = RLABSettings(patch_size=2, budget=40, refine=False, reprobe=True)
    counter = RowCounter(Constant())
    result = rlab_attack(counter, x, y, GreedyAgent(reprobe=True), s)
    # 4 patches x 4 probed filters: rounds cost 16 + 1, 12 + 1 and 8 + 1 queries after the
    # first one (1 + 17 + 13 + 9 = 40, exactly the budget); a fourth round is unaffordable
    assert result.queries.tolist() == [40, 40] and result.steps.tolist() == [3, 3]
    assert int(result.queries.sum()) == counter.rows


def test_make_env_passes_the_new_settings():
    x = torch.rand(2, 1, 4, 4)
    env = make_env(
        Constant(),
        x,
        torch.zeros(2, dtype=torch.long),
        RLABSettings(patch_size=2, max_steps=7, stacking="escalate"),
        torch.Generator().manual_seed(0),
    )
    assert env.max_steps == 7 and env.stacking == "escalate"


def test_agent_training_survives_a_batch_the_victim_gets_all_wrong():
    from rlrobust.attacks.rlab.train_agent import AgentTraining, train_agent

    s = RLABSettings(patch_size=2, max_steps=3)
    ops = s.operations()

    def sample(n, generator):  # labels 1: the constant victim says 0, so nothing is attacked
        return torch.rand(n, 1, 4, 4, generator=generator), torch.ones(n, dtype=torch.long)

    agent, history = train_agent(
        lambda x, y, g: make_env(Constant(), x, y, s, g),
        sample,
        len(ops),
        ops,
        AgentTraining(iterations=2, batch_size=4),
    )
    assert [h["success_rate"] for h in history] == [0.0, 0.0] and agent.ops == ops
