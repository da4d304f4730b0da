"""The `speedrun` command: one subcommand group per user journey.

This module only builds the argument parser. Each part registers its own groups from a light
module (argparse only at import); the heavy imports (torch, fastapi, sqlalchemy) happen inside
the command functions, so `speedrun --help` and `speedrun serve` start fast.

A group exposes ``register(subparsers)``; every leaf parser sets ``func`` to a callable taking
the parsed ``argparse.Namespace`` and returning an exit code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from leaderboard import cli as admin_cli
from speedrun import __version__
from speedrun import commands as site_commands
from submissions import cli as verifier_cli
from trainer import cli as trainer_cli
from trainer.data import cli as data_cli
from trainer.evaluation import cli as eval_cli

# Each part registers its groups from a light module (argparse at import; the heavy imports inside
# the commands). The order is the order of `speedrun --help`.
_GROUPS = (
    site_commands,  # serve, demo
    admin_cli,  # admin
    trainer_cli,  # plan, train
    data_cli,  # data
    eval_cli,  # eval
    verifier_cli,  # submit, verify, worker
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="speedrun",
        description=(
            "Race time-to-GPT-2: train a GPT that beats GPT-2 on DCLM CORE, verify it with "
            "statistics, and rank it by hours and dollars."
        ),
    )
    parser.add_argument("--version", action="version", version=f"speedrun {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in _GROUPS:
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:  # a group given without its subcommand
        parser.parse_args([*(argv if argv is not None else sys.argv[1:]), "--help"])
        return 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
