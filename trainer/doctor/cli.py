"""`speedrun doctor` (argparse only at import; torch inside the command)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def _doctor(args: argparse.Namespace) -> int:
    from trainer.doctor.run import format_table, run_doctor

    report = run_doctor(quick=args.quick, extra=args.doctor_extra)
    print(format_table(report), file=sys.stderr)
    text = json.dumps(report, indent=None if args.compact else 2)
    print(text)
    if args.json_out is not None:
        Path(args.json_out).write_text(text + "\n")
    return 1 if report["verdict"] == "not ready" else 0


def register(sub: argparse._SubParsersAction, extra: Sequence[tuple[str, Callable[[bool], Any]]] = ()) -> None:  # type: ignore[type-arg]
    """The `doctor` command; ``extra``: (name, check(gpu) -> Check) pairs of other parts (the
    verifier's sandbox probe), run after the stack check."""
    p = sub.add_parser(
        "doctor",
        help="Check a node before a run: stack, attention backends, throughput, loader, CORE, all-reduce",
        description=(
            "Read-only checks of this machine: one JSON verdict on stdout, a short table on stderr. "
            "On a CPU the GPU parts say 'no GPU'. Exit 1 when a check failed."
        ),
    )
    p.add_argument("--quick", action="store_true", help="smaller shapes and fewer steps (CI, a first look)")
    p.add_argument("--compact", action="store_true", help="the JSON on one line")
    p.add_argument("--json-out", default=None, metavar="FILE", help="also write the JSON verdict to FILE")
    p.set_defaults(func=_doctor, doctor_extra=tuple(extra))
