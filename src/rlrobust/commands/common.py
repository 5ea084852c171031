"""What every command shares: config options from the dataclasses, logging, registry names."""

from __future__ import annotations

import argparse
import json
import sys
import typing

from rlrobust.config import RunConfig, iter_fields


def _type_name(annotation) -> str:
    options = [a for a in (typing.get_args(annotation) or (annotation,)) if a is not type(None)]
    return "/".join(getattr(a, "__name__", str(a)) for a in options)


def add_config_options(parser: argparse.ArgumentParser, sections: set[str] | None = None) -> None:
    """One ``--section.field`` option per config field; only options given become overrides."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for key, annotation, default, help_text in iter_fields(RunConfig):
        section = key.split(".")[0]
        if sections is not None and key not in sections and section not in sections:
            continue
        group = groups.setdefault(section, parser.add_argument_group(f"{section} options"))
        shown = json.dumps(default) if isinstance(default, (dict, list)) else default
        kwargs = {"nargs": "?", "const": "true"} if annotation is bool else {}
        group.add_argument(
            f"--{key}",
            dest=key,
            default=argparse.SUPPRESS,
            metavar=_type_name(annotation).upper(),
            help=(
                help_text if "default" in help_text else f"{help_text} (default: {shown})"
            ).replace("%", "%%"),
            **kwargs,
        )


def add_threads(parser: argparse.ArgumentParser) -> None:
    """``--threads N``: the CPU threads torch may use (every command has it)."""
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="CPU threads for torch (default: $OMP_NUM_THREADS if set, else torch's choice); "
        "on a shared or busy machine, 1 per process is often fastest",
    )


def apply_threads(args: argparse.Namespace) -> None:
    """Set torch's thread count from ``--threads`` (or $OMP_NUM_THREADS, which torch reads
    itself at start-up, so nothing needs doing then)."""
    threads = getattr(args, "threads", None)
    if threads is None:
        return
    from rlrobust.errors import ConfigError

    if threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {threads}")
    import torch

    torch.set_num_threads(threads)


def is_main_process() -> bool:
    """False on every torchrun rank but rank 0, which alone prints."""
    import os

    return os.environ.get("RANK", "0") == "0"


def add_quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quiet", action="store_true", help="print nothing but errors; no progress bars"
    )


def overrides_from(args: argparse.Namespace) -> dict:
    return {key: value for key, value in vars(args).items() if "." in key}


def progress_enabled(args: argparse.Namespace) -> bool:
    return not getattr(args, "quiet", False) and sys.stderr.isatty()


def make_logger(args: argparse.Namespace):
    return (lambda *_: None) if getattr(args, "quiet", False) else print


#: the registries a command that takes the whole config (train, sweep) names in its help.
CONFIG_NAMES = ("datasets", "models", "objectives", "defences", "attacks", "eval_presets")


def registry_names(*kinds: str) -> str:
    """Help text listing every accepted name of the registries ``kinds`` (datasets, models,
    objectives, attacks) and of the fixed choices (eval presets, defences), one line each."""
    import rlrobust.attacks  # noqa: F401 - importing registers the attacks
    import rlrobust.data  # noqa: F401 - the data sets
    import rlrobust.models  # noqa: F401 - the models
    import rlrobust.objectives  # noqa: F401 - the objectives
    from rlrobust.config import ADVERSARIAL_METHODS
    from rlrobust.evaluation.presets import PRESETS
    from rlrobust.registry import ATTACKS, DATASETS, MODELS, OBJECTIVES

    lines = {
        "datasets": ("data.name", DATASETS.names()),
        "models": ("model.name", MODELS.names()),
        "objectives": ("objective.name", OBJECTIVES.names()),
        "defences": ("adversarial.method", list(ADVERSARIAL_METHODS)),
        "attacks": ("eval.attacks names", ATTACKS.names()),
        "eval_presets": ("eval.preset", list(PRESETS)),
    }
    return "accepted names:\n" + "\n".join(
        f"  {lines[kind][0]}: {', '.join(lines[kind][1])}" for kind in kinds
    )
