"""Helpers of the leaderboard tests (plain module, so test files import it by a unique name)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from fastapi import FastAPI
from sqlalchemy.orm import Session

from leaderboard.db import get_session
from leaderboard.settings import Settings
from leaderboard.users.models import Role
from leaderboard.users.schemas import UserCreate
from leaderboard.users.service import create_user
from speedrun.site import create_app

TEST_SECRET = "leaderboard-tests-secret"
T = TypeVar("T")


class Api:
    """A synchronous face on ``httpx.AsyncClient`` over the ASGI app (no server, no lifespan)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        # the loop runs in its own thread, so the API can be driven from a test even while another
        # library (Playwright's sync API) keeps an event loop running in the main thread
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="api-loop", daemon=True)
        self._thread.start()
        self._client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def request(self, method: str, url: str, *, token: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self._run(self._client.request(method, url, headers=headers, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", url, **kwargs)

    def close(self) -> None:
        self._run(self._client.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


def make_api(settings: Settings, session: Session) -> Api:
    app = create_app(settings)

    def test_session() -> Iterator[Session]:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise

    app.dependency_overrides[get_session] = test_session
    return Api(app)


@dataclass
class Users:
    admin: str
    alice: str
    bob: str
    worker: str
    ids: dict[str, int]
    worker2: str = ""  # a second worker account: GPT-2 verifications need runs from two


@dataclass
class LiveServer:
    base_url: str
    settings: Settings


def live_tokens(settings: Settings) -> dict[str, str]:
    """Tokens for an admin, a submitter and a worker in a live server's database."""
    from leaderboard.app import open_database
    from leaderboard.db import session_scope

    db = open_database(settings.model_copy(update={"migrate_on_start": False, "seed_on_start": False}))
    out = {}
    with session_scope(db.sessionmaker) as s:
        for name, role in (("admin", Role.admin), ("alice", Role.submitter), ("worker", Role.worker)):
            out[name] = create_user(s, UserCreate(name=f"live-{name}", role=role)).token
    db.close()
    return out
