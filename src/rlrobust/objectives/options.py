"""Option checks shared by the objectives, and the configured callable the registry returns.

The plain loss functions run the same checks as the registry factories, so a bad value fails
with the same message whether it came from a config file or from a direct call.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor

from rlrobust.errors import ConfigError
from rlrobust.objectives.core import Stats

#: keyword arguments of the plain loss functions that are call-time inputs, not options.
CALL_ARGUMENTS = frozenset({"generator", "actions"})


def check_real(
    objective: str,
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    strictly_positive: bool = False,
) -> float:
    """A finite real number inside [minimum, maximum] (``> 0`` if ``strictly_positive``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(
            f"{objective}: option {name!r} must be a number, got {value!r}; write e.g. {name}=1.0"
        )
    value = float(value)
    low = 0.0 if strictly_positive else minimum
    bounds = (
        ("(" if strictly_positive else "[")
        + ("-inf" if low is None else f"{low:g}")
        + ", "
        + ("inf" if maximum is None else f"{maximum:g}")
        + "]"
    )
    if (
        not math.isfinite(value)
        or (minimum is not None and value < minimum)
        or (maximum is not None and value > maximum)
        or (strictly_positive and value <= 0)
    ):
        raise ConfigError(
            f"{objective}: option {name!r} = {value!r} is outside {bounds}; "
            f"choose a value in {bounds}"
        )
    return value


def check_choice(objective: str, name: str, value: Any, choices: Iterable[str]) -> str:
    choices = tuple(choices)
    if value not in choices:
        listing = ", ".join(map(repr, choices))
        raise ConfigError(
            f"{objective}: option {name!r} = {value!r} is not one of {listing}; pick one of those"
        )
    return value


def check_flag(objective: str, name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(
            f"{objective}: option {name!r} must be true or false, got {value!r}; "
            f"write {name}=True or {name}=False"
        )
    return value


def option_defaults(function: Callable[..., Any]) -> dict[str, Any]:
    """The options of a plain loss function: its keyword-only arguments with their defaults."""
    return {
        name: parameter.default
        for name, parameter in inspect.signature(function).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY and name not in CALL_ARGUMENTS
    }


def check_option_keys(objective: str, given: Mapping[str, Any], valid: Iterable[str]) -> None:
    valid = list(valid)
    unknown = sorted(set(given) - set(valid))
    if unknown:
        listing = ", ".join(valid) if valid else "(none: this objective takes no options)"
        raise ConfigError(
            f"{objective}: unknown option(s) {', '.join(map(repr, unknown))}; "
            f"valid options are: {listing}"
        )


class ConfiguredObjective:
    """An objective with its options bound: ``objective(logits, y, generator=None)``.

    Returned by the ``OBJECTIVES`` registry factories. ``stat_keys`` names the stats it logs;
    ``options`` holds every option with defaults filled in, ready to be saved beside a run.
    """

    def __init__(
        self,
        name: str,
        function: Callable[..., tuple[Tensor, Stats]],
        options: Mapping[str, Any],
        stat_keys: tuple[str, ...],
        *,
        stochastic: bool,
    ) -> None:
        self.name = name
        self.function = function
        self.options = dict(options)
        self.stat_keys = stat_keys
        self.stochastic = stochastic  # whether it draws random numbers (takes a generator)

    def __call__(
        self, logits: Tensor, y: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Stats]:
        if self.stochastic:
            return self.function(logits, y, generator=generator, **self.options)
        return self.function(logits, y, **self.options)

    def __repr__(self) -> str:
        options = ", ".join(f"{key}={value!r}" for key, value in self.options.items())
        return f"{self.name}({options})"
