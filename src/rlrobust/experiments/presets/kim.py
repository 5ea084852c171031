"""Kim's MNIST presets: CE vs policy (Table 3, MNIST column) and the lambda grid (Table 2)."""

from __future__ import annotations

from rlrobust.experiments.presets.common import (
    LAPTOP_FOR_MNIST,
    SMOKE_ATTACKS,
    SMOKE_DATA,
    Delta,
    Preset,
    Reference,
    Scale,
    Variant,
    laptop_runs,
    smoke_epochs,
    smoke_runs,
    stated,
)
from rlrobust.experiments.presets.kim_protocol import (
    cross_entropy,
    kim_base,
    laptop_schedule,
    policy,
)
from rlrobust.experiments.presets.kim_tables import LAMBDAS, TABLE2_MNIST, cell

POLICY_ARM = "policy (Eq. 12 warm-up + Eq. 4)"
TABLE2_RUNS = "Kim Table 2 caption: '(averaged over 3 runs)'"
LAM_KEYS = ("two_stage.warmup_options.lam", "objective.options.lam")


def kim_mnist() -> Preset:
    table3 = "Kim Table 3, MNIST column (LeNet5; eps 0.1 as Table 2, whose (0.75, 1.5) cell it is)"
    return Preset(
        name="kim-mnist",
        title="Kim: CE vs policy loss on MNIST (Table 3, MNIST column)",
        protocol={
            **kim_base("mnist"),
            "runs": stated(
                3,
                "Table 3's MNIST 'Ours' row is Table 2's (0.75, 1.5) cell, "
                + TABLE2_RUNS
                + "; the CE row does not say: the same 3",
            ),
        },
        variants={
            "CE": Variant(cross_entropy()),
            POLICY_ARM: Variant(policy(0.75, 1.5)),
        },
        scales={
            "smoke": Scale([SMOKE_DATA, SMOKE_ATTACKS, smoke_epochs(2), smoke_runs()]),
            "laptop": Scale([LAPTOP_FOR_MNIST, *laptop_schedule(ce_arms=("CE",)), laptop_runs()]),
            "paper": Scale(),
        },
        references=[
            Reference("clean", 99.19, table3, variant="CE"),
            Reference("fgsm", 71.45, table3, variant="CE", paper_metric="FGSM"),
            Reference("pgd", 46.88, table3, variant="CE", paper_metric="PGD"),
            Reference("clean", 99.21, table3, variant=POLICY_ARM),
            Reference("fgsm", 86.40, table3, variant=POLICY_ARM, paper_metric="FGSM"),
            Reference("pgd", 63.73, table3, variant=POLICY_ARM, paper_metric="PGD"),
        ],
    )


def lambda_grid(values: list[float]) -> dict[str, list]:
    return {LAM_KEYS[0]: list(values), LAM_KEYS[1]: list(values)}


def smoke_grid(corner: list[float]) -> Delta:
    """Smoke scale of a lambda table: a 2 x 2 corner of the 7 x 7 grid."""
    return Delta("smoke grid", "a 2 x 2 corner of the 7 x 7 grid", {"grid": lambda_grid(corner)})


def laptop_grid(values: list[float]) -> Delta:
    """Laptop scale of a lambda table: a 3 x 3 sub-grid."""
    return Delta(
        "laptop grid",
        "a 3 x 3 sub-grid of the 7 x 7 grid: 27 runs with three seeds, about an hour on one core",
        {"grid": lambda_grid(values)},
    )


def grid_references(table: dict, source: str) -> list[Reference]:
    """Every cell of a Kim lambda table as three references (clean, FGSM, PGD)."""
    refs = []
    for lam1 in LAMBDAS:
        for lam2 in LAMBDAS:
            point = {LAM_KEYS[0]: lam1, LAM_KEYS[1]: lam2}
            clean, fgsm_acc, pgd_acc = cell(table, lam1, lam2)
            refs += [
                Reference("clean", clean, source, values=point),
                Reference("fgsm", fgsm_acc, source, values=point, paper_metric="FGSM"),
                Reference("pgd", pgd_acc, source, values=point, paper_metric="PGD"),
            ]
    return refs


GRID_SOURCE = (
    "Kim: 'Experiments were performed while changing the values of lambda = (lambda1, lambda2). "
    "Each value of lambda_i (i = 1, 2) is in {0.1, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5}'"
)


def kim_lambda() -> Preset:
    table2 = "Kim Table 2 (MNIST, LeNet5, eps 0.1; PGD 40 x 0.01; mean of 3 runs)"
    return Preset(
        name="kim-lambda",
        title="Kim: lambda1 (Eq. 12 warm-up) x lambda2 (Eq. 4) grid on MNIST (Table 2)",
        protocol={
            **kim_base("mnist"),
            **policy(0.75, 1.5),  # lam values are the grid's
            "grid": stated(lambda_grid(list(LAMBDAS)), GRID_SOURCE),
            "runs": stated(3, TABLE2_RUNS),
        },
        variants={},
        scales={
            "smoke": Scale(
                [
                    SMOKE_DATA,
                    SMOKE_ATTACKS,
                    smoke_epochs(2),
                    smoke_runs(),
                    smoke_grid([0.75, 1.5]),
                ]
            ),
            "laptop": Scale(
                [
                    LAPTOP_FOR_MNIST,
                    *laptop_schedule(),
                    laptop_runs(),
                    laptop_grid([0.25, 0.75, 1.5]),
                ]
            ),
            "paper": Scale(),
        },
        references=grid_references(TABLE2_MNIST, table2),
    )
