"""Alembic migrations: up, down and up again on SQLite and PostgreSQL, and in step with the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect

from leaderboard import migrate
from leaderboard.models import Base

TABLES = {"users", "api_tokens", "tracks", "prices", "submissions", "entries", "runs", "verifications", "jobs"}


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
