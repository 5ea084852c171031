"""Our number and the verdict of each claim, computed from its records (the rules as code).

A claim's ``kind`` (``claims.py``) names its rule; each rule lives in a module of its own and
fills in the ``Finding`` that ``find`` starts (paper's number, protocol differences, provenance):

- ``paired`` (``paired.py``): arm A claimed more robust than arm B, seed by seed on the same
  test images.
- ``breaks`` (``breaks.py``): AutoAttack takes what FGSM left of a model and leaves it no
  more robust than the baseline.
- ``grid`` (``grid.py``): Kim's MNIST lambda table: every cell trains and no lambda2 tendency.
- ``flatness`` (``flatness.py``): the policy model's minimum is flatter than CE's (Kim Eq. 30):
  the top Hessian eigenvalue of cross-entropy, policy - CE, paired by seed, from diagnose records.
- ``indicators`` (``indicators.py``): RL shows Zou et al.'s static and dynamic gradient
  indicators against SL on the same images, and a higher predictive entropy, from diagnose records.
- ``cost`` (``cost.py``): an L2L variant is non-inferior to PGD-AT in robustness (Bonferroni
  interval above -2 points) and cheaper to train (backward passes, else wall time).
- ``transfer`` (``transfer.py``): examples crafted on a supervised model drop the RL model
  below what white-box attacks leave it (Zou et al.'s transfer numbers).
- ``rlab`` (``rlab.py``): RLAB's learned agent reaches a success rate whose Wilson interval
  contains 100 % (or stays above 95 %), with fewer queries than Square on the images both fooled.

Every verdict is one of ``holds``, ``holds weakly``, ``does not hold`` or ``not testable here``
(``base.py``). A claim without records is "not measured yet" and its row gives the command that
produces them; a kind without a rule says what a rule must compute (``Claim.what_would_test``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rlrobust.findings.base import (
    FAILS,
    HOLDS,
    NOT_MEASURED,
    RESAMPLES,
    UNTESTABLE,
    WEAK,
    Finding,
    paper_side,
    protocol_lines,
    provenance_lines,
)
from rlrobust.findings.breaks import breaks_finding
from rlrobust.findings.claims import Claim
from rlrobust.findings.cost import cost_finding
from rlrobust.findings.flatness import flatness_finding
from rlrobust.findings.grid import grid_finding
from rlrobust.findings.indicators import indicators_finding
from rlrobust.findings.paired import paired_finding, paired_verdict
from rlrobust.findings.records import Collection, read_claim
from rlrobust.findings.rlab import rlab_finding
from rlrobust.findings.transfer import transfer_finding

__all__ = [
    "FAILS",
    "HOLDS",
    "RESAMPLES",
    "UNTESTABLE",
    "WEAK",
    "Finding",
    "find",
    "paired_verdict",
]

Rule = Callable[[Claim, list[Collection], Finding], Finding]
#: kind -> the rule that answers a claim of that kind from its records
RULES: dict[str, Rule] = {
    "paired": paired_finding,
    "flatness": flatness_finding,
    "indicators": indicators_finding,
    "grid": grid_finding,
    "breaks": breaks_finding,
    "cost": cost_finding,
    "rlab": rlab_finding,
    "transfer": transfer_finding,
}


def find(claim: Claim, results: Path) -> Finding:
    """The finding of ``claim`` from ``results/`` alone."""
    collections = read_claim(results, claim.records, claim.evaluations)
    paper, source = paper_side(claim)
    protocol, difference_lines = protocol_lines(claim, collections)
    base = Finding(claim, paper, source, NOT_MEASURED, protocol, UNTESTABLE, "")
    base.details = [f"- {line}" for line in provenance_lines(collections)]
    base.numbers["differences"] = difference_lines
    if not collections:
        base.reason = f"not measured yet: no records in results/{claim.records}/"
        return base
    rule = RULES.get(claim.kind)
    if rule is not None:
        return rule(claim, collections, base)
    base.our_number = "records present, no rule yet"
    base.reason = (
        f"records present, but no rule for a '{claim.kind}' claim is written yet "
        f"(rlrobust/findings/rules.py); it must compute: {claim.what_would_test}"
    )
    return base
