"""Command-line groups of this part (argparse only at import; heavy imports inside commands)."""

from __future__ import annotations

import argparse

from speedrun.cli import not_ready


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sub.add_parser("submit", help="Submit a run config to a leaderboard server", parents=[not_ready("submit", 6)])
    sub.add_parser(
        "verify", help="Reproduce a run config K times and decide with statistics", parents=[not_ready("verify", 6)]
    )
    sub.add_parser(
        "worker", help="Lease verification jobs from a server and run them", parents=[not_ready("worker", 6)]
    )
