"""The API: ``create_api(settings)``, the ``/api`` routes and ``/openapi.json``; its lifespan opens
the database. The pages are not part of it: ``speedrun.site.create_app`` mounts ``web`` on it.

Nothing happens at import. The lifespan builds the engine and sessionmaker, applies the
migrations (``settings.migrate_on_start``) and seeds the built-in tracks, prices and the public
nanochat history when they are missing (``settings.seed_on_start``).
"""

from __future__ import annotations

import gc
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from contract import __version__
from leaderboard import migrate
from leaderboard.artifacts.routes import router as artifacts_router
from leaderboard.artifacts.storage import ArtifactStore
from leaderboard.cache import CACHE_INFO_KEY, ReadCache
from leaderboard.db import (
    COUNTER_ENGINE_KEY,
    COUNTER_POOL_SIZE,
    SessionDep,
    make_engine,
    make_sessionmaker,
    session_scope,
)
from leaderboard.entries.exports import router as exports_router
from leaderboard.entries.routes import router as entries_router
from leaderboard.errors import install_error_handlers
from leaderboard.jobs.admin_routes import router as workers_router
from leaderboard.jobs.routes import router as jobs_router
from leaderboard.middleware import BodyLimitMiddleware
from leaderboard.revision import RevisionReader
from leaderboard.seed import seed_all
from leaderboard.settings import Settings, get_settings
from leaderboard.tracks.routes import router as tracks_router
from leaderboard.urls import BaseUrlMiddleware
from leaderboard.users.routes import router as users_router
from leaderboard.users.sessions import SessionReader


@dataclass
class Database:
    engine: Engine
    sessionmaker: sessionmaker[Session]
    counter_engine: Engine

    def close(self) -> None:
        self.engine.dispose()
        self.counter_engine.dispose()


def open_database(settings: Settings, *, cache: ReadCache | None = None) -> Database:
    """Engine + sessionmaker for ``settings``; migrations and seed data applied as the settings say."""
    pg_pool = None if settings.resolved_database_url.startswith("sqlite") else settings.database_pool_size
    engine = make_engine(settings.resolved_database_url, echo=settings.sql_echo, pool_size=pg_pool)
    counter_engine = make_engine(settings.resolved_database_url, pool_size=COUNTER_POOL_SIZE)
    if settings.resolved_database_url.startswith("sqlite:///"):
        settings.home.mkdir(parents=True, exist_ok=True)
    if settings.migrate_on_start:
        migrate.upgrade(engine)
    info: dict[str, object] = {COUNTER_ENGINE_KEY: counter_engine}
    if cache is not None:
        info[CACHE_INFO_KEY] = cache
    factory = make_sessionmaker(engine, info=info)
    if settings.seed_on_start:
        with session_scope(factory) as session:
            seed_all(session)
    return Database(engine=engine, sessionmaker=factory, counter_engine=counter_engine)


class Health(BaseModel):
    status: str = Field(description="'ok', 'degraded' (storage full: reads work, writes get 507) or 'unavailable'")
    version: str
    database: str
    storage: str = "ok"


def health(request: Request, session: SessionDep) -> JSONResponse:
    """Liveness and readiness for load balancers and container health checks: 200 when the
    database answers a trivial query (``degraded`` while the last write failed for lack of
    space, or the artifact disk is nearly full), else 503."""
    store: ArtifactStore = request.app.state.store
    storage = store.full or _recent_db_full(request) or _low_disk(store)
    try:
        session.execute(text("SELECT 1"))
        status = "ok" if storage is None else "degraded"
        body, code = Health(status=status, version=__version__, database="ok", storage=storage or "ok"), 200
    except SQLAlchemyError as exc:
        body, code = Health(status="unavailable", version=__version__, database=type(exc).__name__), 503
    return JSONResponse(body.model_dump(), status_code=code)


LOW_DISK_BYTES = 64 * 1024 * 1024
DB_FULL_SHOWN_S = 60.0


def _recent_db_full(request: Request) -> str | None:
    seen: tuple[float, str] | None = getattr(request.app.state, "storage_full", None)
    return seen[1] if seen is not None and time.monotonic() - seen[0] < DB_FULL_SHOWN_S else None


def _low_disk(store: ArtifactStore) -> str | None:
    try:
        free = shutil.disk_usage(store.root if store.root.exists() else store.root.parent).free
    except OSError:
        return None
    return f"{free} bytes free on the artifact disk" if free < LOW_DISK_BYTES else None


def create_api(settings: Settings | None = None) -> FastAPI:
    """The API: ``/api`` (JSON), ``/openapi.json``, the request limits and the JSON error handlers."""
    settings = settings or get_settings()
    if not settings.secret_key:
        settings = settings.model_copy(update={"secret_key": settings.resolved_secret_key()})

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = open_database(settings, cache=app.state.cache)
        app.state.engine = db.engine
        app.state.sessionmaker = db.sessionmaker
        app.state.revision_reader = RevisionReader(db.engine)
        app.state.session_reader = SessionReader(db.engine)
        # everything loaded so far lives as long as the process: keep it out of the collector's
        # full passes, which otherwise show up as the slowest requests
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            app.state.revision_reader.close()
            app.state.session_reader.close()
            db.close()

    app = FastAPI(
        title="speedrun leaderboard",
        version=__version__,
        description="Time-to-GPT-2 speedrun: submissions in, verification jobs out, verified ranks by hours and dollars.",
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc are pages of the site (web.pages.docs): no CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.store = ArtifactStore(settings.resolved_artifacts_dir)
    app.state.cache = ReadCache(ttl_seconds=settings.cache_ttl_seconds)
    install_error_handlers(app)
    for router in (
        tracks_router,
        exports_router,
        entries_router,
        jobs_router,
        workers_router,
        artifacts_router,
        users_router,
    ):
        app.include_router(router)
    app.add_api_route("/api/health", health, methods=["GET"], tags=["health"], response_model=Health)
    artifact_limit, body_limit = settings.max_artifact_bytes, settings.max_request_bytes

    def limit_for(path: str) -> int:
        return artifact_limit if path.endswith("/artifacts") else body_limit

    app.add_middleware(BodyLimitMiddleware, limit_for=limit_for, https=settings.https)
    app.add_middleware(BaseUrlMiddleware, base_url=settings.base_url)
    return app
