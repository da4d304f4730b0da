"""Nothing a user types or calls changes by accident: every `speedrun` command, option and default,
the OpenAPI document and the site's routes equal the snapshots (taken before the redesign moved
the code; tests/foundation/surface.py rewrites them when a change is intended)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.foundation.surface import SNAPSHOTS, cli_surface, http_surface, make_app


def _snapshot(name: str) -> object:
    return json.loads((SNAPSHOTS / name).read_text())


def test_every_command_option_and_default_is_unchanged() -> None:
    now = json.loads(json.dumps(cli_surface(), sort_keys=True))
    before = _snapshot("cli.json")
    assert isinstance(before, dict)
    assert sorted(now) == sorted(before), "commands added or removed"
    for command, options in before.items():
        assert now[command] == options, command


def test_the_openapi_document_and_the_routes_are_unchanged(tmp_path: Path) -> None:
    now = json.loads(json.dumps(http_surface(make_app(tmp_path)), sort_keys=True))
    before = _snapshot("http.json")
    assert isinstance(before, dict)
    assert now["routes"] == before["routes"]
    assert sorted(now["openapi"]["paths"]) == sorted(before["openapi"]["paths"])
    assert now["openapi"] == before["openapi"]
