"""A database that cannot take another connection gives 503 + Retry-After, never a 500.

The refusal is real: a PostgreSQL role with ``CONNECTION LIMIT 0`` is refused by the server with
SQLSTATE 53300, the same class as "sorry, too many clients already" when max_connections is hit.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from leaderboard.db import PG_POOL_SIZE, make_engine
from leaderboard.errors import install_error_handlers

pytestmark = pytest.mark.postgres


@pytest.fixture
def refused_url(postgres_url: str) -> Iterator[str]:
    role = f"speedrun_full_{uuid.uuid4().hex[:8]}"
    admin = postgres_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT 0')
    try:
        yield postgres_url.replace("postgres@", f"{role}@", 1)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def test_no_free_database_connection_is_503_with_retry_after(refused_url: str) -> None:
    assert "@" in refused_url and "speedrun_full_" in refused_url
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/touch")
    def touch() -> dict[str, int]:
        engine = create_engine(refused_url)
        try:
            with engine.connect() as conn:
                return {"one": int(conn.scalar(text("SELECT 1")) or 0)}
        finally:
            engine.dispose()

    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.get("/touch", headers={"Accept": "application/json"})
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "5"
    assert answer.json()["error"] == "overloaded"


def test_a_postgresql_process_never_opens_more_than_its_pool(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    try:
        assert engine.pool.size() == PG_POOL_SIZE  # type: ignore[attr-defined]
        assert engine.pool._max_overflow == 0  # type: ignore[attr-defined]
    finally:
        engine.dispose()
