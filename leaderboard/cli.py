"""Command-line groups of this part (argparse only at import; heavy imports inside commands)."""

from __future__ import annotations

import argparse

from speedrun.cli import not_ready


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sub.add_parser("serve", help="Run the leaderboard site", parents=[not_ready("serve", 7)])
    sub.add_parser(
        "demo", help="Start the site, train, submit and verify a CPU run end to end", parents=[not_ready("demo", 7)]
    )
    sub.add_parser("admin", help="Manage users, tokens, tracks and prices", parents=[not_ready("admin", 7)])
