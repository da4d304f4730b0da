"""Command-line groups of this part (argparse only at import; heavy imports inside commands)."""

from __future__ import annotations

import argparse

from speedrun.cli import not_ready


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sub.add_parser("plan", help="Resolve a recipe into dims, batch, steps and LRs", parents=[not_ready("plan", 3)])
    sub.add_parser("train", help="Train a recipe and write a timed run result", parents=[not_ready("train", 3)])
