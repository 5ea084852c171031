"""The training cost in backward passes (metrics.csv ``train_backward_passes`` and
``train_backward_passes_per_example``, training/cost.py): each method counts what its definition
says, no_grad forwards and the epoch's surroundings count nothing, the batch size changes nothing,
the fast paths keep the count, and runs from before the columns existed still resume."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from rlrobust.config import load_config
from rlrobust.data import BatchLoader, load_dataset
from rlrobust.models import build_model
from rlrobust.registry import OBJECTIVES
from rlrobust.reporting.run_report import build_report, read_metrics
from rlrobust.seeding import make_generator
from rlrobust.training import fast
from rlrobust.training.cost import count_backward_passes
from rlrobust.training.loop import train_one_epoch
from rlrobust.training.run import train_run
from rlrobust.training.setup import build_step

# Tiny tensors: one torch thread avoids start-up and contention costs (see conftest.py).
pytestmark = pytest.mark.usefixtures("one_torch_thread")

COST = ("train_backward_passes", "train_backward_passes_per_example")
EXAMPLES = 64  # data.train_subset: two batches of 32
BASE = {
    "data.name": "digits",
    "data.train_subset": EXAMPLES,
    "data.test_subset": 32,
    "data.batch_size": 32,
    "model.name": "mlp",
    "train.epochs": 1,
    "train.seed": 1,
    "optim.lr": 0.05,
    "eval.attacks": "[]",
    "adversarial.eps": 0.1,
    # The end-of-epoch monitor runs FGSM and PGD-10 (11 more input-gradient passes) on these
    # held-out images after the epoch: they must not show up in the training cost.
    "adversarial.monitor_size": 16,
}

# Backward passes through the classifier per training example, from each method's definition
# (training/adversarial.py, trades.py, l2l.py). Forwards under torch.no_grad (TRADES' clean
# logits, the greedy actions of an objective attack loss) need no backward and count nothing.
EXPECTED = {
    # Plain training: one backward of the loss.
    "none": ({}, 1),
    # FGSM-AT (Gupta Alg. 1): one input gradient for FGSM, one backward of the loss on x_adv.
    "fgsm_at": ({"adversarial.method": "fgsm_at"}, 2),
    # The same with the policy objective as attack loss: the greedy actions on clean x are a
    # no_grad forward, so still 1 + 1.
    "fgsm_at_objective": (
        {
            "adversarial.method": "fgsm_at",
            "adversarial.attack_loss": "objective",
            "objective.name": "gupta_vpg",
        },
        2,
    ),
    # PGD-AT (Madry), K = 3: the random start needs no gradient; K input gradients + 1 update.
    "pgd_at": ({"adversarial.method": "pgd_at", "adversarial.steps": 3}, 4),
    # TRADES, K = 2: the naive guess is K + 1 = 3, as PGD-AT. But the loss
    # CE(f(x)) + beta * KL(f(x) || f(x_adv)) is built on two forward passes with gradients
    # (natural and adversarial batch, as the reference code), and its one loss.backward() runs
    # through both graphs: 2 passes. The clean logits the attack's KL starts from are computed
    # under no_grad (0). So K + 2 = 4.
    "trades": ({"adversarial.method": "trades", "adversarial.steps": 2}, 4),
    # RL-adv (Zou et al.), FGSM on the policy loss: the greedy actions are a no_grad forward (0),
    # FGSM one input gradient (1); L(x) + adv_rate * L(x_adv) backpropagates through the clean
    # and the adversarial forward (2): 3 -- one more than FGSM-AT, which drops the clean term.
    "rl_adv": (
        {
            "adversarial.method": "rl_adv",
            "adversarial.start_epoch": 0,  # Zou et al. start at epoch 50: plain training before
            "objective.name": "zou_pg",
        },
        3,
    ),
    # RL-adv with PGD, K = 3: K input gradients + the two-forward loss = K + 2 = 5.
    "rl_adv_pgd": (
        {
            "adversarial.method": "rl_adv",
            "adversarial.start_epoch": 0,
            "adversarial.attack": "pgd",
            "adversarial.steps": 3,
            "objective.name": "zou_pg",
        },
        5,
    ),
    # L2L plain: the attacker sees the image only, so making x_adv costs no classifier pass;
    # the naive guess "1, like plain training" misses that the attacker learns by gradient
    # ascent on the classifier's loss: that backward runs through the frozen classifier into
    # the attacker (1). Then the classifier's update (1): 2.
    "l2l_plain": ({"adversarial.method": "l2l", "adversarial.l2l_variant": "plain"}, 2),
    # L2L gradient: the attacker's input holds the normalised input gradient (1, a feature,
    # detached), then the attacker update (1) and the classifier update (1): 3.
    "l2l_gradient": ({"adversarial.method": "l2l", "adversarial.l2l_variant": "gradient"}, 3),
    # The same with the objective as attack loss: the greedy actions are a no_grad forward: 3.
    "l2l_gradient_objective": (
        {
            "adversarial.method": "l2l",
            "adversarial.l2l_variant": "gradient",
            "adversarial.attack_loss": "objective",
            "objective.name": "kim_warmup",
        },
        3,
    ),
    # L2L two_step: two input gradients (one per attacker step, both detached features); the
    # attacker update backpropagates through the classifier once, at the final x_adv (the path
    # back to the first step runs through the attacker and the projection only, not through the
    # classifier); then the classifier update: 2 + 1 + 1 = 4.
    "l2l_two_step": ({"adversarial.method": "l2l", "adversarial.l2l_variant": "two_step"}, 4),
}


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_each_method_costs_the_backward_passes_its_definition_gives(case, tmp_path):
    overrides, per_example = EXPECTED[case]
    train_run(load_config(overrides={**BASE, **overrides}), tmp_path / "run", log=lambda *_: None)
    (row,) = read_csv(tmp_path / "run" / "metrics.csv")
    assert row["train_backward_passes"] == str(per_example * EXAMPLES)  # an integer count
    assert float(row["train_backward_passes_per_example"]) == per_example
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state["metrics"][0]["train_backward_passes"] == per_example * EXAMPLES


def digits_model(data, seed=0):
    torch.manual_seed(seed)
    return build_model(
        "mlp", num_classes=10, in_channels=1, image_size=8, mean=data.mean, std=data.std
    )


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", "train").take(EXAMPLES, seed=0)


def pgd_step():
    cfg = load_config(
        overrides={"adversarial.method": "pgd_at", "adversarial.steps": 3, "adversarial.eps": 0.1}
    )
    return build_step(cfg, None)


@pytest.mark.parametrize("batch_size", [64, 32, 24, 16])
def test_the_count_does_not_depend_on_the_number_of_batches(batch_size, digits):
    # 1, 2, 3 (24 + 24 + 16: a short last batch) and 4 batches: always K + 1 = 4 passes per
    # example, 256 in all. Counting batches instead of examples would give 4, 8, 12 and 16.
    model = digits_model(digits)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    loader = BatchLoader(digits, batch_size, shuffle=True, seed=0)
    stats = train_one_epoch(
        model,
        loader,
        OBJECTIVES.create("cross_entropy"),
        optimizer,
        make_generator(0),
        step=pgd_step(),
    )
    assert stats["backward_passes"] == 4 * EXAMPLES
    assert stats["backward_passes_per_example"] == 4.0


class PlantedStep:
    """Plain training plus planted forwards: ``no_grad`` ones, one with gradients that no
    backward reaches, and ``extra`` input-gradient passes through the frozen model."""

    name = "planted"

    def __init__(self, no_grad: int = 0, unused: int = 0, extra: int = 0) -> None:
        self.no_grad, self.unused, self.extra = no_grad, unused, extra

    def __call__(self, model, x, y, objective, *, epoch, generator):
        from rlrobust.attacks.base import input_gradient, model_frozen
        from rlrobust.attacks.losses import ce_loss

        with torch.no_grad():
            for _ in range(self.no_grad):
                model(x)
        for _ in range(self.unused):
            model(x)  # a graph that no backward runs through
        with model_frozen(model):
            for _ in range(self.extra):
                input_gradient(model, ce_loss, x, y)
        return objective(model(x), y, generator=generator)


@pytest.mark.parametrize(
    ("planted", "per_example"),
    [
        ({}, 1),
        ({"no_grad": 3}, 1),  # no_grad forwards add nothing
        ({"unused": 2}, 1),  # nor do forwards whose output no backward reaches
        ({"extra": 2}, 3),  # input-gradient passes with frozen parameters count
        ({"no_grad": 2, "unused": 1, "extra": 1}, 2),
    ],
)
def test_only_backward_passes_through_the_classifier_count(planted, per_example, digits):
    model = digits_model(digits)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    loader = BatchLoader(digits, 32, shuffle=True, seed=0)
    stats = train_one_epoch(
        model,
        loader,
        OBJECTIVES.create("cross_entropy"),
        optimizer,
        make_generator(0),
        step=PlantedStep(**planted),
    )
    assert stats["backward_passes"] == per_example * EXAMPLES
    assert stats["backward_passes_per_example"] == per_example


def test_two_forwards_one_backward_and_a_repeated_backward_count_each_pass():
    model = torch.nn.Linear(3, 2)
    with count_backward_passes(model) as passes:
        a, b = model(torch.rand(5, 3)), model(torch.rand(4, 3))
        (a.sum() + b.sum()).backward()  # one call, two graphs: 5 + 4
        c = model(torch.rand(2, 3))
        c.sum().backward(retain_graph=True)
        c.sum().backward()  # the same graph twice: two passes of 2
    assert passes.examples == 5 + 4 + 2 + 2


def test_the_hook_is_gone_after_the_epoch_even_when_the_epoch_fails(digits):
    model = digits_model(digits)
    hooks = dict(model._forward_hooks)
    with count_backward_passes(model) as passes:
        assert len(model._forward_hooks) == len(hooks) + 1
        late = model(torch.rand(4, 1, 8, 8))  # backpropagated only after the count closed
    assert model._forward_hooks == hooks
    late.sum().backward()
    model(torch.rand(4, 1, 8, 8)).sum().backward()
    assert passes.examples == 0

    class Failing:
        def __call__(self, *args, **kwargs):
            raise RuntimeError("planted")

    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    with pytest.raises(RuntimeError, match="planted"):
        train_one_epoch(
            model,
            [(torch.rand(4, 1, 8, 8), torch.zeros(4, dtype=torch.long))],
            OBJECTIVES.create("cross_entropy"),
            optimizer,
            step=Failing(),
        )
    assert model._forward_hooks == hooks  # nothing leaks into evaluation or checkpoints


@pytest.mark.parametrize(
    "path",
    [
        {"channels_last": True},
        {"amp": "bf16"},
        {"compile": "aot_eager"},  # AOTAutograd's compiled forward and backward, no C++ build
        {"compile": "aot_eager", "channels_last": True, "amp": "bf16"},
    ],
)
def test_the_fast_paths_keep_the_count(path, digits):
    counts = []
    for fast_path in ({}, path):
        model = digits_model(digits)
        if fast_path.get("channels_last"):
            fast.model_to_channels_last(model)
        train_model = model
        if "compile" in fast_path:
            train_model = fast.compile_model(model, backend=fast_path["compile"])
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
        loader = BatchLoader(digits, 32, shuffle=True, seed=0)
        # Two epochs: each epoch's new hook must count under the graph compiled in the first.
        for epoch in range(2):
            stats = train_one_epoch(
                train_model,
                loader,
                OBJECTIVES.create("cross_entropy"),
                optimizer,
                make_generator(epoch),
                step=pgd_step(),
                epoch=epoch,
                channels_last=fast_path.get("channels_last", False),
                amp=fast_path.get("amp", "none"),
            )
            counts.append(stats["backward_passes"])
        assert not model._forward_hooks and not train_model._forward_hooks
    assert counts == [4 * EXAMPLES] * 4


def strip_cost(run_dir):
    """Make ``run_dir`` look written before the cost columns existed."""
    state_file = run_dir / "state.json"
    state = json.loads(state_file.read_text())
    for row in state["metrics"]:
        for column in COST:
            del row[column]
    state_file.write_text(json.dumps(state))
    rows = read_csv(run_dir / "metrics.csv")
    columns = [c for c in rows[0] if c not in COST]
    with open(run_dir / "metrics.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def test_a_run_from_before_the_columns_resumes_and_reports(tmp_path):
    cfg = load_config(overrides={**BASE, **EXPECTED["pgd_at"][0], "train.epochs": 2})
    train_run(cfg, tmp_path / "whole", log=lambda *_: None)
    train_run(cfg, tmp_path / "old", log=lambda *_: None, stop_after_epoch=1)
    strip_cost(tmp_path / "old")
    assert "train_backward_passes" not in (tmp_path / "old" / "metrics.csv").read_text()
    state = train_run(cfg, tmp_path / "old", resume=True, log=lambda *_: None)

    assert state["finished"]
    whole, old = (
        read_csv(tmp_path / "whole" / "metrics.csv"),
        read_csv(tmp_path / "old" / "metrics.csv"),
    )
    assert [r["train_backward_passes"] for r in whole] == ["256", "256"]
    assert [r["train_backward_passes"] for r in old] == ["", "256"]  # the old epoch: empty
    assert old[1]["train_backward_passes_per_example"] == "4.0"
    rows = read_metrics(tmp_path / "old" / "metrics.csv")
    assert "train_backward_passes" not in rows[0] and rows[1]["train_backward_passes"] == 256
    report = build_report([tmp_path / "old", tmp_path / "whole"], tmp_path / "report")
    assert report["html"].is_file()
