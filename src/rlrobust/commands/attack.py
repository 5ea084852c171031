"""``rlrobust attack``: stand-alone attack experiments with their own outputs (RLAB)."""

from __future__ import annotations

import argparse

NAME = "attack"


def add_parser(sub) -> argparse.ArgumentParser:
    from rlrobust.attacks.rlab.command import add_rlab_parser

    parser = sub.add_parser(
        NAME,
        help="run a stand-alone attack experiment on a trained run (rlab)",
        description="Stand-alone attack experiments with their own outputs; the eps-bounded "
        "attacks (FGSM, PGD, AutoAttack, Square, transfer) run through `rlrobust evaluate`.",
    )
    attack_sub = parser.add_subparsers(dest="attack", metavar="ATTACK", required=True)
    add_rlab_parser(attack_sub)
    return parser


def run(args: argparse.Namespace) -> int:
    from rlrobust.attacks.rlab.command import cmd_attack

    return cmd_attack(args)
