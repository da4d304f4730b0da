"""Alembic migrations: up, down and up again on SQLite and PostgreSQL, and in step with the models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from leaderboard import migrate
from leaderboard.db import make_engine
from leaderboard.models import Base

TABLES = {"users", "api_tokens", "tracks", "prices", "submissions", "entries", "runs", "verifications", "jobs"}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def fresh_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty database: a new SQLite file, or a new schema in the session's PostgreSQL database."""
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'mig.db'}")
        yield eng
        eng.dispose()
        return
    url: str = request.getfixturevalue("postgres_url")
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS migtest CASCADE"))
        conn.execute(text("CREATE SCHEMA migtest"))
    from sqlalchemy import create_engine

    eng = create_engine(url, connect_args={"options": "-csearch_path=migtest"})
    try:
        yield eng
    finally:
        eng.dispose()
        with admin.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS migtest CASCADE"))
        admin.dispose()


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def test_upgrade_downgrade_upgrade(fresh_engine: Engine) -> None:
    migrate.upgrade(fresh_engine)
    assert _tables(fresh_engine) >= TABLES
    assert migrate.current_revision(fresh_engine) == migrate.head_revision()
    migrate.downgrade(fresh_engine)
    assert _tables(fresh_engine) <= {"alembic_version"}
    assert migrate.current_revision(fresh_engine) is None
    migrate.upgrade(fresh_engine)
    assert _tables(fresh_engine) >= TABLES


def test_migrations_match_the_models(fresh_engine: Engine) -> None:
    migrate.upgrade(fresh_engine)
    with fresh_engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []


def test_revisions_are_date_prefixed() -> None:
    files = sorted(p.name for p in (migrate.MIGRATIONS_DIR / "versions").glob("*.py"))
    assert files and all(name[:11].replace("_", "").isdigit() for name in files)
