"""Bring your own model: build an ``nn.Module`` from a ``module:function`` string.

The function is called without arguments and must return a module that takes [0, 1] images
and returns logits (normalisation inside), so that rlrobust can evaluate models it did not train.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from torch import nn

from rlrobust.errors import ConfigError


def forget_stale_module(module_name: str, folder: Path) -> None:
    """Drop an imported module of that name when ``folder`` holds another file of that name.

    In one process (a notebook, a test run, a sweep) an earlier ``my_models`` from another
    folder would otherwise be reused and silently build the wrong model.
    """
    loaded = sys.modules.get(module_name)
    local = folder / (module_name.replace(".", "/") + ".py")
    if loaded is None or not local.is_file():
        return
    loaded_file = getattr(loaded, "__file__", None)
    if loaded_file is None or Path(loaded_file).resolve() != local.resolve():
        del sys.modules[module_name]


def load_model_function(spec: str) -> nn.Module:
    """Import ``package.module:function`` and return ``function()``, checked to be an nn.Module.

    The current directory is searched first, so a ``my_models.py`` next to the user works.
    """
    module_name, sep, function_name = spec.partition(":")
    if not sep or not module_name or not function_name:
        raise ConfigError(f"--model {spec!r} must look like MODULE:FUNCTION, e.g. my_models:build")
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    forget_stale_module(module_name, Path(cwd))
    importlib.invalidate_caches()  # a file written since the import system last looked
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(
            f"cannot import {module_name!r} ({error}); run from the folder that holds it or put it "
            "on PYTHONPATH"
        ) from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ConfigError(
            f"{module_name!r} has no function {function_name!r}; check the name after ':'"
        )
    model = function()
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"{spec} returned {type(model).__name__}, not a torch.nn.Module; return the model itself"
        )
    return model.eval()
