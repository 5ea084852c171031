"""rlrobust: policy-gradient training of image classifiers and honest robustness evaluation.

The most used entry points are importable from the top level::

    from rlrobust import evaluate, train_run, load_config
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# name -> module; imported on first use so that `import rlrobust` stays cheap.
_LAZY = {
    "evaluate": "rlrobust.evaluation.protocol",
    "markdown_table": "rlrobust.evaluation.report",
    "train_run": "rlrobust.training.run",
    "load_config": "rlrobust.config",
    "RunConfig": "rlrobust.config",
    "build_model": "rlrobust.models",
    "build_attack": "rlrobust.attacks",
    "load_dataset": "rlrobust.data",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rlrobust' has no attribute {name!r}")
