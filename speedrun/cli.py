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

from speedrun import __version__

# (module, groups it owns). The order is the order of `speedrun --help`.
_GROUP_MODULES = (
    "speedrun.commands",  # serve, demo
    "leaderboard.cli",  # admin
    "trainer.cli",  # plan, train
    "trainer.data.cli",  # data
    "trainer.evaluation.cli",  # eval
    "submissions.cli",  # submit, verify, worker
)


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="speedrun",
        description=(
            "Race time-to-GPT-2: train a GPT that beats GPT-2 on DCLM CORE, verify it with "
            "statistics, and rank it by hours and dollars."
        ),
    )
    parser.add_argument("--version", action="version", version=f"speedrun {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _GROUP_MODULES:
        importlib.import_module(name).register(sub)
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


def not_ready(group: str, issue: int) -> argparse.ArgumentParser:
    """A parser whose command says plainly that its part is not built yet (exit 3)."""

    def run(_: argparse.Namespace) -> int:
        print(f"speedrun {group}: not available yet in this build (tracked as issue {issue}).", file=sys.stderr)
        return 3

    p = argparse.ArgumentParser(add_help=False)
    p.set_defaults(func=run)
    return p
