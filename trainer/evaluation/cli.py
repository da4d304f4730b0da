"""Command-line groups of this part (argparse only at import; heavy imports inside commands)."""

from __future__ import annotations

import argparse

from speedrun.cli import not_ready


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sub.add_parser("eval", help="CORE and bits-per-byte evaluation", parents=[not_ready("eval", 5)])
