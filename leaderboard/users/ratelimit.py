"""An atomic rate limit: one database row per key counts the requests of the current window.

``take`` is a single ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` (SQLite >= 3.35 and
PostgreSQL): the row lock (PostgreSQL) or the write lock (SQLite) serializes concurrent callers,
in one process or many, so no two requests read the same count and exactly ``limit`` requests of
a window get through. It runs in a short transaction of its own, committed at once: holding the
counter's lock for a whole request would queue every request of the key behind it, each holding
a worker thread, until the one that holds the lock cannot get a thread to commit (a deadlock seen
with 60 concurrent posts on PostgreSQL). So every attempt counts, whatever its outcome. The site
gives the counter a small pool of its own (``COUNTER_ENGINE_KEY`` in the session's info): a request
already holds a connection of the main pool, and taking a second one from that pool could wait
forever once every thread holds one.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, case
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from leaderboard.db import COUNTER_ENGINE_KEY, utcnow
from leaderboard.users.models import RateCounter


def take(session: Session, key: str, *, limit: int, window_seconds: int, now: datetime | None = None) -> bool:
    """Count one request under ``key``; False when it is over ``limit`` in the current window.

    A window starts with the first request after the previous one ended and lasts ``window_seconds``.
    """
    now = now or utcnow()
    cutoff = now - timedelta(seconds=window_seconds)
    postgres = session.get_bind().dialect.name == "postgresql"
    insert: Any = postgresql.insert if postgres else sqlite.insert
    table = RateCounter.__table__
    stmt = insert(RateCounter).values(key=key, window_started_at=now, count=1)
    expired = table.c.window_started_at <= cutoff
    upsert = stmt.on_conflict_do_update(
        index_elements=[table.c.key],
        set_={
            "count": case((expired, 1), else_=table.c.count + 1),
            "window_started_at": case((expired, stmt.excluded.window_started_at), else_=table.c.window_started_at),
        },
    ).returning(table.c.count)
    bind = session.info.get(COUNTER_ENGINE_KEY) or session.get_bind()
    if isinstance(bind, Engine):
        with bind.begin() as conn:  # its own transaction, committed before the request goes on
            count = conn.execute(upsert).scalar_one()
    else:  # a session bound to one connection (tests): inside its transaction
        count = session.execute(upsert).scalar_one()
    return int(count) <= limit
