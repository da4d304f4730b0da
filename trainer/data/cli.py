"""Command-line groups of this part (argparse only at import; heavy imports inside commands)."""

from __future__ import annotations

import argparse

from speedrun.cli import not_ready


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sub.add_parser(
        "data", help="Download shards; synthesize a corpus; train the tokenizer", parents=[not_ready("data", 4)]
    )
