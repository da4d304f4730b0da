"""The public surfaces as data: every `speedrun` command with its options and defaults, the HTTP
API's OpenAPI document and the site's routes. tests/foundation/test_surface.py compares them with
the snapshots in snapshots/ (rewrite those with `python -m tests.foundation.surface` only when a
change of the surface is intended, and say so in the commit)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return repr(value) if not isinstance(value, Path) else str(value)


def cli_surface() -> dict[str, Any]:
    from speedrun.cli import build_parser

    out: dict[str, Any] = {}

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        options = []
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in sorted(action.choices.items()):
                    walk(sub, f"{path} {name}")
                continue
            options.append(
                {
                    "flags": list(action.option_strings) or [action.dest],
                    "dest": action.dest,
                    "default": _jsonable(action.default),
                    "required": action.required,
                    "nargs": _jsonable(action.nargs),
                    "choices": _jsonable(sorted(action.choices, key=str)) if action.choices else None,
                    "kind": type(action).__name__,
                }
            )
        out[path] = options

    walk(build_parser(), "speedrun")
    return out


def _routes(routes: Any, prefix: str = "") -> list[str]:
    out: list[str] = []
    for r in routes:
        original = getattr(r, "original_router", None)  # an included router (FastAPI >= 0.16x)
        if original is not None:
            out += _routes(original.routes, prefix + r.include_context.prefix)
            continue
        methods = sorted(getattr(r, "methods", None) or ["MOUNT"])
        out.append(f"{','.join(methods)} {prefix}{r.path}")
    return out


def http_surface(app: Any) -> dict[str, Any]:
    return {"openapi": app.openapi(), "routes": sorted(_routes(app.routes))}


def make_app(home: Path) -> Any:
    from leaderboard.settings import Settings

    try:
        from speedrun.site import create_app
    except ImportError:  # before the composition root existed (the snapshots were taken there)
        from leaderboard.app import create_app  # type: ignore[no-redef]
    return create_app(Settings(home=home, secret_key="x" * 32))


def write_snapshots(home: Path) -> None:
    SNAPSHOTS.mkdir(exist_ok=True)
    (SNAPSHOTS / "cli.json").write_text(json.dumps(cli_surface(), indent=1, sort_keys=True) + "\n")
    (SNAPSHOTS / "http.json").write_text(json.dumps(http_surface(make_app(home)), indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    import tempfile

    write_snapshots(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()))
