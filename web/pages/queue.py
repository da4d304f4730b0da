"""The queue page; its script polls ``/api/queue``. Served like the board (cached bytes on the
event loop); its progress is at most the read cache's time to live old (heartbeats do not move the
board revision), refreshed in the background."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from leaderboard.entries.queue import queue_listing
from web.pages.common import bytes_response, cached_route, render_html, shared_page, viewer_of

router = APIRouter(include_in_schema=False)

QUEUE_POLL_MS = 2000


def _key(request: Request) -> tuple[object, ...]:
    try:
        poll_ms = int(request.query_params.get("poll_ms", QUEUE_POLL_MS))
    except ValueError:
        poll_ms = QUEUE_POLL_MS
    poll_ms = min(60_000, max(250, poll_ms))
    return ("queue", poll_ms)


@router.get("/queue", response_class=HTMLResponse)
async def queue_page(request: Request) -> Response:
    """The queue; its script polls ``/api/queue`` every ``poll_ms`` (250 ms .. 1 min)."""
    return await cached_route(request, _key(request), _queue, ttl=None)  # the cache's own TTL: heartbeats


def _queue(request: Request, session: Session) -> Response:
    viewer = viewer_of(request, session)
    key = _key(request)

    def html() -> str:
        data = queue_listing(session)
        context = {
            "title": "Queue",
            "nav": "queue",
            "json_twin": "/api/queue",
            "jobs": data.jobs,
            "counts": data.counts,
            "now": datetime.now(UTC),
            "poll_ms": key[1],
            "page_description": "The public verification queue: each job's state, verdict, progress and failure reason.",
        }
        return render_html(request, "queue.html", context, viewer=viewer, forms=False)

    return bytes_response(request, shared_page(request, session, viewer, key, html, ttl=None))
