"""Database plumbing: the declarative Base, engines, and the one place transactions end.

``session_scope`` is the one place a transaction ends (commit on success, rollback on error);
``get_session``, the FastAPI dependency every route uses, and the CLI both go through it.
Services and repositories only ``flush()``.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

from fastapi import Depends, Request
from sqlalchemy import DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every dialect (SQLite stores it naive, in UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime()}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=FULL")  # a 201 survives power loss, not only a killed process
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


# as many kept connections as sync routes can run at once (anyio's thread limit, 40): a smaller
# pool opens and closes an overflow connection per request under load (SQLite: 4 PRAGMAs each)
POOL_SIZE = 40
# PostgreSQL counts every connection of every process against its max_connections (100 by
# default): a process keeps at most this many (Settings.database_pool_size), and requests beyond
# them wait for one instead of opening more ("too many clients" would fail them)
PG_POOL_SIZE = 20
# the rate counter's own small pool: a request that already holds a connection may take one of
# these for one statement; holders never wait on anything else, so the two pools cannot deadlock
COUNTER_POOL_SIZE = 2
COUNTER_ENGINE_KEY = "counter_engine"


def make_engine(url: str, *, echo: bool = False, pool_size: int | None = None) -> Engine:
    """An engine for ``url``; SQLite files get WAL, foreign keys and a busy timeout.

    ``pool_size`` bounds the connections kept (PostgreSQL: the most it opens, no overflow).
    """
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=pool_size or POOL_SIZE,
            max_overflow=20,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, echo=echo, pool_size=pool_size or PG_POOL_SIZE, max_overflow=0, pool_pre_ping=True)


def make_sessionmaker(engine: Engine, info: dict[str, Any] | None = None) -> sessionmaker[Session]:
    """Sessions that keep loaded objects readable after commit; ``info`` is shared by all of them."""
    return sessionmaker(bind=engine, expire_on_commit=False, info=info or {})


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """The one place a transaction ends: commit when the block succeeds, roll back when it raises."""
    with factory() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def get_session(request: Request) -> Iterator[Session]:
    """FastAPI dependency: one session (and transaction) per request, through ``session_scope``.

    Declare it as ``SessionDep`` (scope ``"function"``): the commit then happens before the
    response is sent, so a client never sees a 201 for a transaction that did not commit.
    FastAPI's default scope for ``yield`` dependencies ends them after the response is sent.
    """
    factory: sessionmaker[Session] = request.app.state.sessionmaker
    with session_scope(factory) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


@contextmanager
def request_session(request: Request) -> Iterator[Session]:
    """What ``SessionDep`` gives a route, for an ``async`` route that needs a session only on its
    slow path (call it in a worker thread): ``get_session``, or the app's override of it (tests
    override it with a zero-argument generator); committed when the block succeeds."""
    provider = request.app.dependency_overrides.get(get_session, get_session)
    takes_request = bool(inspect.signature(provider).parameters)
    with contextmanager(provider)(*((request,) if takes_request else ())) as session:
        yield session
