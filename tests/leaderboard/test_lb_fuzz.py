"""Fuzzing: schemathesis drives every operation of /openapi.json (bounded examples); no 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from lb_support import TEST_SECRET
from schemathesis.checks import not_a_server_error

from leaderboard.app import open_database
from leaderboard.db import session_scope
from leaderboard.settings import Settings
from leaderboard.users.models import Role
from leaderboard.users.schemas import UserCreate
from leaderboard.users.service import create_user
from speedrun.site import create_app

ADMIN: dict[str, str] = {}


@pytest.fixture(scope="module")
def fuzz_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    home: Path = tmp_path_factory.mktemp("fuzz")
    cfg = Settings(home=home, secret_key=TEST_SECRET, base_url="http://testserver", cache_ttl_seconds=0)
    app = create_app(cfg)
    db = open_database(cfg, cache=app.state.cache)  # what the lifespan does; the ASGI test client skips it
    app.state.engine, app.state.sessionmaker = db.engine, db.sessionmaker
    with session_scope(db.sessionmaker) as s:
        ADMIN["token"] = create_user(s, UserCreate(name="fuzz-admin", role=Role.admin)).token
    try:
        # fuzzing phase only (bounded by max_examples below): the coverage phase alone sends ~1000 requests
        phases = {"coverage": {"enabled": False}, "stateful": {"enabled": False}}
        config = schemathesis.Config.from_dict({"phases": phases})
        yield schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
    finally:
        db.close()


schema = schemathesis.pytest.from_fixture("fuzz_schema")


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_operation_answers_5xx(case: Any) -> None:
    response = case.call(headers={"Authorization": f"Bearer {ADMIN['token']}"})
    case.validate_response(response, checks=[not_a_server_error])
