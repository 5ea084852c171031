"""Errors that rlrobust raises for bad input.

Every message names the problem and the fix, so a user can act on it without reading code.
All of them derive from ``RLRobustError`` (itself a ``ValueError``), so callers can catch one type.
"""

from __future__ import annotations


class RLRobustError(ValueError):
    """Base class: something the user handed in cannot be used as it is."""


class UnknownNameError(RLRobustError, KeyError):
    """A model, objective, attack or data set name that no registry knows."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class ConfigError(RLRobustError):
    """A config key or value that does not exist or is out of range."""


class DataError(RLRobustError):
    """A missing or corrupted data file, or labels / inputs that break the contract."""


class CheckpointError(RLRobustError):
    """A checkpoint that is missing, corrupted or does not match the model."""


class RunDirectoryError(RLRobustError):
    """A run directory that already holds a finished run, or cannot be resumed."""
