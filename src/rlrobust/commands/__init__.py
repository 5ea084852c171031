"""The command line, one module per command: ``rlrobust train | evaluate | compare | diagnose |
report | sweep | reproduce | attack | demo | findings``.

Each command module holds its parser and its handler together: ``NAME``, ``add_parser(sub)``
and ``run(args) -> exit code``. Adding a command is one new module and one line in ``COMMANDS``.
Every config field is an option (``--train.epochs 5``, ``--objective.options '{"lam": 1.5}'``),
documented from the config's own help texts, so ``--help`` always matches the code.
"""

from __future__ import annotations

import argparse
import errno
import sys

from rlrobust.commands import (
    attack,
    compare,
    demo,
    diagnose,
    evaluate,
    findings,
    report,
    reproduce,
    sweep,
    train,
)
from rlrobust.commands.common import add_threads, apply_threads
from rlrobust.errors import RLRobustError

#: the commands in the order ``rlrobust --help`` lists them.
COMMANDS = (train, evaluate, compare, diagnose, report, sweep, reproduce, attack, demo, findings)


def build_parser() -> argparse.ArgumentParser:
    parser, _ = _build_parsers()
    return parser


def _build_parsers() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The top-level parser and each command's own (for errors that should show its usage)."""
    parser = argparse.ArgumentParser(
        prog="rlrobust",
        description="Train classifiers (images, signals, video clips) with policy-gradient "
        "objectives and evaluate their adversarial robustness.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    parsers = {}
    for command in COMMANDS:
        parsers[command.NAME] = command.add_parser(sub)
        add_threads(parsers[command.NAME])
    return parser, parsers


#: exit codes: 2 for a usage or config error (as argparse), 1 for a failure of the machine
#: (disk full, unreadable path), 130 for Ctrl-C (128 + SIGINT, what shells expect).
EXIT_ERROR, EXIT_FAILURE, EXIT_INTERRUPTED = 2, 1, 130


def main(argv: list[str] | None = None) -> int:
    parser, parsers = _build_parsers()
    args, extra = parser.parse_known_args(argv)
    if extra:  # show the command's own usage, not the top-level one
        parsers[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    handlers = {command.NAME: command.run for command in COMMANDS}
    where = f"rlrobust {args.command}"
    try:
        apply_threads(args)
        return handlers[args.command](args)
    except RLRobustError as error:
        print(f"{where}: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(
            f"{where}: interrupted; finished checkpoints and records are kept (training and "
            "evaluation continue with --resume)",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except OSError as error:
        print(f"{where}: error: {describe_os_error(error)}", file=sys.stderr)
        return EXIT_FAILURE


def describe_os_error(error: OSError) -> str:
    """One line for a failure of the file system, with what to do about it."""
    path = f" {error.filename}" if error.filename else ""
    reason = error.strerror or str(error)
    if error.errno == errno.ENOSPC:
        return f"the disk is full (writing{path}); free space and rerun with --resume where offered"
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"no permission to write or read{path} ({reason}); choose another --out"
    if error.errno == errno.ENOENT:
        return f"no such file or folder{path}; check the path"
    return f"{reason}{path}"
