"""JSON twins of the pages served like the pages: the serialized bytes are kept in the read cache
per board revision (see ``leaderboard.cache``), and a request whose bytes are cached at the current
revision is answered from the event loop (one indexed read, no Session, no worker thread); else
the value is computed once in a worker thread, in its own transaction."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable, Hashable
from typing import Any

from fastapi import Request, Response
from pydantic import BaseModel, TypeAdapter
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from leaderboard.cache import ReadCache, cached, peek_stale_current
from leaderboard.db import request_session

log = logging.getLogger(__name__)

# the time to live of whole pages and twins whose every change moves the board revision (all but
# the queue, whose progress comes with heartbeats): the safety net refreshes them less often
PAGE_TTL_S = 30.0
REFRESHES_AT_ONCE = 1  # background refreshes running together, per process


async def json_twin(
    request: Request, key: Hashable, compute: Callable[[Session], object], ttl: float | None = None
) -> Response:
    """``compute(session)`` (a schema, or a list of them) as JSON, through the read cache under ``key``.
    Past the cache's time to live, the last bytes of this revision are served while one refresh runs
    in the background (stale-while-revalidate: a refresh never stalls a request)."""
    body, refresh = peek_stale_current(request.app.state, key, ttl)
    if isinstance(body, bytes):
        if refresh:
            background(request, key, lambda: _compute(request, key, compute, ttl))
        return Response(body, media_type="application/json")
    body = await run_in_threadpool(_compute, request, key, compute, ttl)
    return Response(body, media_type="application/json")


_TASKS: set[asyncio.Task[Any]] = set()


def background(request: Request, key: Hashable, work: Callable[[], object], *, cache: ReadCache | None = None) -> None:
    """Run ``work`` in a worker thread without waiting for it; tell the cache (the app's read cache
    unless ``cache`` names another, such as the signed-in pages') when it is over.

    Refreshes run one at a time (``_refresh_gate``): when many keys expire together (the 50 entry
    pages a crawler warmed at once), dozens of CPU-bound threads would share the GIL with the event
    loop and every cached answer would wait behind them; one at a time, the loop keeps its share
    while the stale bytes are served."""
    cache = request.app.state.cache if cache is None else cache
    gate = _refresh_gate(request.app.state)

    async def run() -> None:
        try:
            async with gate:
                await run_in_threadpool(work)
        except Exception:  # a failed refresh leaves the old value; the next expiry tries again
            log.exception("background refresh of %r failed", key)
        finally:
            cache.refreshed(key)

    task = asyncio.get_running_loop().create_task(run())
    _TASKS.add(task)  # keep a reference until it is done
    task.add_done_callback(_TASKS.discard)


def _refresh_gate(state: Any) -> asyncio.Semaphore:
    """The app's gate on the running event loop (a semaphore belongs to one loop; tests run an app
    on several)."""
    gates = getattr(state, "refresh_gates", None)
    if not isinstance(gates, weakref.WeakKeyDictionary):
        gates = weakref.WeakKeyDictionary()
        state.refresh_gates = gates
    loop = asyncio.get_running_loop()
    gate = gates.get(loop)
    if gate is None:
        gate = gates[loop] = asyncio.Semaphore(REFRESHES_AT_ONCE)
    return gate


def _compute(request: Request, key: Hashable, compute: Callable[[Session], object], ttl: float | None) -> bytes:
    with request_session(request) as session:
        return cached(session, key, lambda: _dump(compute(session)), ttl)


def _dump(value: object) -> bytes:
    if isinstance(value, BaseModel):
        return value.model_dump_json().encode()
    return TypeAdapter(type(value)).dump_json(value)
