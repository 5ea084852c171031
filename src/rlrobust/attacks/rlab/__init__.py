"""RLAB: a reinforcement-learning black-box attack with filter distortions (Sarkar et al. 2024).

An agent splits an input (1-D signal, 2-D image or 3-D video) into fixed-size patches and, one
step at a time, adds a filter distortion to a patch or removes one it added earlier, querying the
victim's probabilities only, until the victim misclassifies or the step budget is spent. The set
of distorted patches is a localisation mask. See docs/rlab.md.
"""

from rlrobust.attacks.rlab.attack import RLABResult, RLABSettings, rlab_attack
from rlrobust.attacks.rlab.filters import FILTERS, register_filter
from rlrobust.attacks.rlab.greedy import GreedyAgent
from rlrobust.attacks.rlab.metrics import attack_metrics
from rlrobust.attacks.rlab.oracle import GradientAccessError, QueryOracle
from rlrobust.attacks.rlab.patches import PatchGrid
from rlrobust.attacks.rlab.policy import LearnedAgent

__all__ = [
    "FILTERS",
    "GradientAccessError",
    "GreedyAgent",
    "LearnedAgent",
    "PatchGrid",
    "QueryOracle",
    "RLABResult",
    "RLABSettings",
    "attack_metrics",
    "register_filter",
    "rlab_attack",
]
