"""Fixtures of the leaderboard tests: real databases, the app over ASGI, and a live server.

- ``engine``: SQLite (a file) and PostgreSQL (the root ``postgres_url``), migrated and seeded
  once per session; tests using it run on both dialects.
- ``session``: one connection per test inside a transaction rolled back at the end; the session
  commits into savepoints, so the app's own commit/rollback logic still runs.
- ``api``: the app over httpx's ASGI transport, its request sessions bound to ``session``.
- ``users``: an admin, two submitters and two worker accounts, with their API tokens.
- ``fresh_engine``: an empty database (a new SQLite file, or a new PostgreSQL schema) whose
  commits are real, for migrations and concurrency tests.
- ``live_server``: uvicorn on 127.0.0.1 (a free port) over a fresh SQLite file, real lifespan.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lb_support import TEST_SECRET, Api, LiveServer, Users, make_api
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session

from leaderboard import migrate
from leaderboard.db import make_engine
from leaderboard.seed import seed_all
from leaderboard.settings import Settings
from leaderboard.users.models import Role
from leaderboard.users.schemas import UserCreate
from leaderboard.users.service import create_user
from speedrun.site import create_app


def _strict_sqlite_transactions(engine: Engine) -> None:
    """pysqlite opens transactions lazily; make BEGIN explicit so test savepoints nest properly."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN")


@pytest.fixture(scope="session", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('lbdb') / 'test.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture(scope="session")
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    if eng.dialect.name == "sqlite":
        _strict_sqlite_transactions(eng)
    migrate.upgrade(eng)
    with Session(eng) as s:
        seed_all(s)
        s.commit()
    try:
        yield eng
    finally:
        eng.dispose()


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
    eng = create_engine(url, connect_args={"options": "-csearch_path=migtest"})
    try:
        yield eng
    finally:
        eng.dispose()
        with admin.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS migtest CASCADE"))
        admin.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    connection = engine.connect()
    outer = connection.begin()
    s = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield s
    finally:
        s.close()
        outer.rollback()
        connection.close()


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return Settings(
        home=tmp_path,
        database_url=db_url,
        secret_key=TEST_SECRET,
        base_url="http://testserver",
        migrate_on_start=False,
        seed_on_start=False,
    )


@pytest.fixture
def api(settings: Settings, session: Session) -> Iterator[Api]:
    client = make_api(settings, session)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def users(session: Session) -> Users:
    tokens: dict[str, str] = {}
    ids: dict[str, int] = {}
    for name, role in (
        ("admin", Role.admin),
        ("alice", Role.submitter),
        ("bob", Role.submitter),
        ("worker", Role.worker),
        ("worker2", Role.worker),
    ):
        issued = create_user(session, UserCreate(name=f"t-{name}", role=role))
        tokens[name] = issued.token
        ids[name] = issued.user.id
    session.commit()
    return Users(ids=ids, **tokens)


@pytest.fixture
def live_server(tmp_path: Path, free_port: int) -> Iterator[LiveServer]:
    import uvicorn

    base_url = f"http://127.0.0.1:{free_port}"
    settings = Settings(home=tmp_path / "site", secret_key=TEST_SECRET, base_url=base_url, lease_seconds=30)
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=free_port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the live server did not start"
        time.sleep(0.02)
    try:
        yield LiveServer(base_url=base_url, settings=settings)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
