"""Build a registered attack from its name and keyword settings (the CLI and configs' door).

The registrations themselves happen in ``rlrobust/attacks/__init__.py``, which Python runs before
any module of the package, so every registered name is known by the time this is called.
"""

from __future__ import annotations

import inspect
from typing import Any

from rlrobust.attacks.base import Attack
from rlrobust.errors import ConfigError
from rlrobust.registry import ATTACKS


def valid_settings(name: str) -> list[str]:
    """The keyword settings that the attack registered as ``name`` accepts."""
    parameters = inspect.signature(ATTACKS.get(name)).parameters.values()
    return [p.name for p in parameters if p.kind is not inspect.Parameter.VAR_KEYWORD]


def build_attack(name: str, **settings: Any) -> Attack:
    """Construct the attack registered as ``name`` from keyword settings.

    Raises UnknownNameError for an unknown attack and ConfigError for an unknown setting, each
    listing the valid choices.
    """
    valid = valid_settings(name)
    unknown = sorted(set(settings) - set(valid))
    if unknown:
        raise ConfigError(
            f"unknown setting(s) {', '.join(unknown)} for attack {name!r}; "
            f"valid settings: {', '.join(valid)}"
        )
    return ATTACKS.create(name, **settings)
