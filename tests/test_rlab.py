"""RLAB: oracle, filters, dual actions, agents, metrics, determinism, 1-D / 3-D inputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rlrobust.attacks.rlab.attack import RLABSettings, make_env, rlab_attack
from rlrobust.attacks.rlab.env import CLEAN, RLABEnv
from rlrobust.attacks.rlab.filters import FILTERS, Operation, operations, register_filter
from rlrobust.attacks.rlab.greedy import GreedyAgent
from rlrobust.attacks.rlab.metrics import attack_metrics, distortions
from rlrobust.attacks.rlab.oracle import GradientAccessError, QueryOracle
from rlrobust.attacks.rlab.patches import PatchGrid
from rlrobust.attacks.rlab.policy import LearnedAgent, PolicyNet
from rlrobust.attacks.rlab.train_agent import AgentTraining, discounted_returns, train_agent
from rlrobust.errors import CheckpointError, ConfigError, UnknownNameError

pytestmark = pytest.mark.usefixtures("one_torch_thread")
BUILT_IN = ["gaussian_noise", "gaussian_blur", "dead_pixel", "illuminate"]


class RowCounter(nn.Module):
    """Wraps a model and counts the rows of every forward pass."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.rows = model, 0

    def forward(self, x):
        self.rows += x.shape[0]
        return self.model(x)


class Constant(nn.Module):
    """Ignores its input: always the same logits (class 3 wins)."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.bias = nn.Parameter(
            torch.arange(classes, dtype=torch.float32) == 3, requires_grad=False
        )

    def forward(self, x):
        return self.bias.float().expand(x.shape[0], -1) * 5.0


@pytest.fixture(scope="module")
def digits_model():
    """A small conv net trained briefly on sklearn's 8x8 digits, and 48 held-out digits."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(data.target, dtype=torch.int64)
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 64, 10)
    )
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(3):
        for i in range(0, 1500, 100):
            loss = F.cross_entropy(model(x[i : i + 100]), y[i : i + 100])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    model.eval().zero_grad(set_to_none=True)
    return model, x[:1500], y[:1500], x[1600:1648].clone(), y[1600:1648].clone()


def settings(**kw) -> RLABSettings:
    return RLABSettings(**{"patch_size": 2, "budget": 300, **kw})


# --- patches --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape,patch,count", [((10,), 3, 4), ((8, 8), 2, 16), ((7, 5), (4, 2), 6), ((4, 6, 6), 2, 18)]
)
def test_patch_grid_covers_every_element_once(shape, patch, count):
    grid = PatchGrid(shape, patch)
    assert grid.num_patches == count
    assert int(grid.sizes().sum()) == torch.Size(shape).numel()
    one = torch.zeros(1, count, dtype=torch.bool)
    one[0, count - 1] = True
    assert int(grid.masks(one).sum()) == int(grid.sizes()[-1])


def test_patch_grid_rejects_bad_shapes():
    with pytest.raises(ConfigError, match="1 to 3 spatial dims"):
        PatchGrid((2, 2, 2, 2), 1)
    with pytest.raises(ConfigError, match="does not fit"):
        PatchGrid((8, 8), (2, 2, 2))


# --- oracle ---------------------------------------------------------------------------------


def test_oracle_refuses_gradients_and_counts_every_query(digits_model):
    model, *_, x, y = digits_model
    counter = RowCounter(model)
    oracle = QueryOracle(counter, 4)
    with pytest.raises(GradientAccessError, match="query-only"):
        oracle.probabilities(x[:4].clone().requires_grad_(True))
    with pytest.raises(GradientAccessError):
        oracle.gradient(x[:4], y[:4])
    assert not hasattr(oracle, "model")
    probs = oracle.probabilities(x[:4])
    oracle.probabilities(x[:2], torch.tensor([1, 3]))
    oracle.probabilities(x[:3], torch.tensor([3, 3, 0]))
    assert not probs.requires_grad
    assert torch.allclose(probs.sum(dim=1), torch.ones(4))
    assert oracle.queries.tolist() == [2, 2, 1, 4]
    assert oracle.total_queries == counter.rows == 9
    assert all(p.grad is None for p in model.parameters())


def test_attack_query_counts_equal_forward_rows(digits_model):
    model, *_, x, y = digits_model
    counter = RowCounter(model)
    result = rlab_attack(counter, x[:16], y[:16], GreedyAgent(), settings())
    assert int(result.queries.sum()) == counter.rows
    assert int(result.queries.max()) <= 300


# --- filters --------------------------------------------------------------------------------


@register_filter("test_invert", levels=(1.0,))
def _invert(x, level, generator):
    return x + level * (1 - 2 * x)


@pytest.mark.parametrize("name", list(FILTERS))
@pytest.mark.parametrize("spatial", [(12,), (8, 8), (3, 6, 6)])
def test_each_filter_stays_in_range_and_changes_only_its_patch(name, spatial):
    x = torch.rand(2, 3, *spatial, generator=torch.Generator().manual_seed(1))
    grid = PatchGrid(spatial, 3)
    ops = operations([name])
    env = RLABEnv(
        QueryOracle(nn.Sequential(nn.Flatten(), nn.LazyLinear(4)), 2),
        x,
        torch.zeros(2, dtype=torch.long),
        grid,
        ops,
        budget=50,
        penalty=0.0,
        generator=torch.Generator().manual_seed(0),
    )
    env.done[:] = False  # act even if the random model gets an input wrong
    patch = grid.num_patches // 2
    for k in range(len(ops)):
        applied = torch.full((2, grid.num_patches), CLEAN)
        applied[:, patch] = k
        out = env.compose(applied, torch.arange(2))
        assert out.min() >= 0 and out.max() <= 1
        inside = grid.masks(applied != CLEAN)[:, None].expand_as(x)
        assert torch.equal(out[~inside], x[~inside])
        assert not torch.equal(out[inside], x[inside]), f"{ops[k].label} changed nothing"


def test_user_filter_is_registered_and_bad_filters_are_refused():
    assert "test_invert" in FILTERS and FILTERS["test_invert"].levels == (1.0,)
    with pytest.raises(ConfigError, match="registered twice"):
        register_filter("illuminate", levels=(1.0,))(_invert)
    with pytest.raises(UnknownNameError, match="gaussian_noise"):
        operations(["sharpen"])
    with pytest.raises(ConfigError, match="at least one"):
        operations([])
    assert [o.level for o in operations(BUILT_IN, "strongest")] == [0.5, 2.0, 1.0, 1.0]


# --- dual actions ---------------------------------------------------------------------------


def test_remove_undoes_add_exactly(digits_model):
    model, *_, x, y = digits_model
    s = settings()
    env = make_env(model, x[:8], y[:8], s, torch.Generator().manual_seed(0))
    env.done[:] = False
    k1 = env.num_ops + 1
    env.step(torch.full((8,), 5 * k1 + 2))  # add op 2 on patch 5
    env.done[:] = False  # keep acting even where that already fooled the model
    env.step(torch.full((8,), 9 * k1 + 7))  # add op 7 on patch 9
    env.done[:] = False
    changed = env.x.clone()
    assert not torch.equal(changed, env.x0)
    env.step(torch.full((8,), 9 * k1 + env.num_ops))  # remove patch 9
    env.done[:] = False
    env.step(torch.full((8,), 5 * k1 + env.num_ops))  # remove patch 5
    assert torch.equal(env.x, env.x0)
    assert (env.applied == CLEAN).all()
    assert env.tabu[:, [5, 9]].all()
    assert not env.valid_actions()[:, 5, : env.num_ops].any()  # a removed patch stays clean
    assert torch.allclose(env.distortion, torch.zeros(8))


def test_invalid_action_is_refused(digits_model):
    model, *_, x, y = digits_model
    env = make_env(model, x[:4], y[:4], settings(), torch.Generator().manual_seed(0))
    env.done[:] = False
    with pytest.raises(ValueError, match="not valid"):
        env.step(torch.full((4,), env.num_ops))  # remove on a clean patch


def test_reward_is_probability_fall_minus_distortion_penalty(digits_model):
    model, *_, x, y = digits_model
    env = make_env(model, x[:6], y[:6], settings(penalty=0.5), torch.Generator().manual_seed(0))
    env.done[:] = False
    p0 = env.true_prob().clone()
    reward = env.step(torch.full((6,), 3 * (env.num_ops + 1) + 11))
    with torch.no_grad():
        p1 = torch.softmax(model(env.x), dim=1).gather(1, y[:6, None]).squeeze(1)
    l2 = (env.x - env.x0).flatten(1).norm(dim=1)
    assert torch.allclose(reward, (p0 - p1) - 0.5 * l2, atol=1e-6)


# --- agents ---------------------------------------------------------------------------------


def test_greedy_successes_are_real_and_refine_keeps_them(digits_model):
    model, *_, x, y = digits_model
    plain = rlab_attack(model, x, y, GreedyAgent(), settings(refine=False))
    refined = rlab_attack(model, x, y, GreedyAgent(), settings(refine=True))
    for result in (plain, refined):
        with torch.no_grad():
            fooled = model(result.x_adv).argmax(dim=1) != y
        assert torch.equal(result.success, fooled & result.attacked)
        assert result.success.float().mean() > 0.6
    assert torch.equal(plain.success, refined.success)
    d_plain = distortions(plain.x_adv, x)["l2"][plain.success]
    d_refined = distortions(refined.x_adv, x)["l2"][refined.success]
    assert (d_refined <= d_plain + 1e-5).all() and d_refined.sum() < d_plain.sum()
    assert (refined.queries >= plain.queries).all()  # refining costs queries, counted


def test_victim_that_ignores_its_input_is_never_fooled():
    x = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    y = torch.full((5,), 3)
    model = Constant()
    for agent in (GreedyAgent(), LearnedAgent(PolicyNet(12), operations(BUILT_IN))):
        result = rlab_attack(model, x, y, agent, settings(budget=1000))
        metrics = attack_metrics(result.x_adv, x, result.success, result.attacked, result.queries)
        assert not result.success.any() and metrics["success_rate"] == 0.0
        assert metrics["n_attacked"] == 5 and metrics["n_success"] == 0
        assert metrics["l2"]["mean"] != metrics["l2"]["mean"]  # NaN: no successful input


def test_budget_limits_queries_and_too_small_budget_is_explained(digits_model):
    model, *_, x, y = digits_model
    with pytest.raises(ConfigError, match="budget of at least"):
        rlab_attack(model, x, y, GreedyAgent(), settings(budget=20))
    agent = LearnedAgent(
        PolicyNet(12),
        operations(BUILT_IN),
    )
    result = rlab_attack(model, x, y, agent, settings(budget=5, refine=False))
    assert int(result.queries.max()) <= 5


def test_fixed_seed_gives_the_same_episode(digits_model):
    model, x_train, y_train, x, y = digits_model
    a = rlab_attack(model, x, y, GreedyAgent(), settings(seed=3))
    b = rlab_attack(model, x, y, GreedyAgent(), settings(seed=3))
    assert torch.equal(a.x_adv, b.x_adv) and torch.equal(a.queries, b.queries)
    assert torch.equal(a.applied, b.applied)
    agent_a, hist_a = _train(model, x_train, y_train, iterations=2)
    agent_b, hist_b = _train(model, x_train, y_train, iterations=2)
    assert hist_a == hist_b
    for pa, pb in zip(agent_a.net.parameters(), agent_b.net.parameters(), strict=True):
        assert torch.equal(pa, pb)
    agent_a.mode = agent_b.mode = "sample"
    ra = rlab_attack(model, x, y, agent_a, settings(seed=1))
    rb = rlab_attack(model, x, y, agent_b, settings(seed=1))
    assert torch.equal(ra.x_adv, rb.x_adv)


def _train(model, x_train, y_train, iterations, s=None):
    s = s or settings()

    def sample(n, g):
        i = torch.randint(0, x_train.shape[0], (n,), generator=g)
        return x_train[i], y_train[i]

    ops = s.operations()
    return train_agent(
        lambda xb, yb, g: make_env(model, xb, yb, s, g),
        sample,
        len(ops),
        ops,
        AgentTraining(iterations=iterations, batch_size=32),
        seed=0,
    )


def test_reinforce_training_lowers_queries(digits_model):
    model, x_train, y_train, x, y = digits_model
    agent, history = _train(model, x_train, y_train, iterations=30)
    first = sum(h["mean_queries"] for h in history[:5]) / 5
    last = sum(h["mean_queries"] for h in history[-5:]) / 5
    assert last < 0.8 * first, (first, last)
    result = rlab_attack(model, x, y, agent, settings())
    assert result.success[result.attacked].float().mean() > 0.8


def test_agent_save_load_round_trip_and_refuses_other_filters(digits_model, tmp_path):
    model, x_train, y_train, x, y = digits_model
    agent, _ = _train(model, x_train, y_train, iterations=1)
    agent.save(tmp_path / "agent", extra={"note": "test"})
    loaded = LearnedAgent.load(tmp_path / "agent")
    a = rlab_attack(model, x, y, agent, settings())
    b = rlab_attack(model, x, y, loaded, settings())
    assert torch.equal(a.x_adv, b.x_adv)
    with pytest.raises(CheckpointError, match="trained with operations"):
        rlab_attack(model, x, y, loaded, settings(filters=["illuminate"]))
    (tmp_path / "agent" / "agent.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="retrain"):
        LearnedAgent.load(tmp_path / "agent")
    with pytest.raises(CheckpointError, match="holds no RLAB agent"):
        LearnedAgent.load(tmp_path / "nowhere")


def test_discounted_returns_by_hand():
    rewards = torch.tensor([[1.0], [2.0], [4.0]])
    alive = torch.tensor([[1.0], [1.0], [0.0]])
    returns = discounted_returns(rewards * alive, alive, gamma=0.5)
    assert returns[:, 0].tolist() == [2.0, 2.0, 0.0]


# --- other dimensionalities -----------------------------------------------------------------


def _tiny(conv: type[nn.Module], flat: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        conv(2, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(flat, 3)
    ).eval()


@pytest.mark.parametrize(
    "conv,shape",
    [(nn.Conv1d, (2, 24)), (nn.Conv3d, (2, 4, 6, 6))],
)
def test_signals_and_videos_are_attacked(conv, shape):
    model = _tiny(conv, 4 * torch.Size(shape[1:]).numel())
    x = torch.rand(6, *shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = model(x).argmax(dim=1)  # every input correct at the start
    s = settings(budget=400)
    result = rlab_attack(model, x, y, GreedyAgent(), s)
    assert result.masks.shape == (6, *shape[1:])
    with torch.no_grad():
        fooled = model(result.x_adv).argmax(dim=1) != y
    assert torch.equal(result.success, fooled) and result.success.any()
    ops = s.operations()
    learned = LearnedAgent(PolicyNet(len(ops)), ops)
    result = rlab_attack(model, x, y, learned, s)
    assert int(result.queries.max()) <= 400
    outside = ~result.masks[:, None].expand_as(x)
    assert torch.equal(result.x_adv[outside], x[outside])


def test_metrics_by_hand():
    x = torch.zeros(2, 1, 2, 2)
    x_adv = x.clone()
    x_adv[0, 0, 0, 0] = 0.6
    x_adv[0, 0, 1, 1] = 0.8
    d = distortions(x_adv, x)
    assert d["l0"].tolist() == [2, 0] and d["l0_fraction"][0] == 0.5
    assert torch.isclose(d["l2"][0], torch.tensor(1.0)) and torch.isclose(
        d["linf"][0], torch.tensor(0.8)
    )
    m = attack_metrics(
        x_adv, x, torch.tensor([True, False]), torch.tensor([True, True]), torch.tensor([7, 100])
    )
    assert m["success_rate"] == 0.5 and m["queries_success"]["mean"] == 7.0
    assert m["queries_all"]["mean"] == 53.5


def test_operation_labels():
    assert Operation("gaussian_blur", 2.0).label == "gaussian_blur@2"
