"""The queue page; its script polls ``/api/queue``."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from leaderboard.db import SessionDep
from leaderboard.jobs.service import queue
from web.pages.common import (
    render_page,
    viewer_of,
)

router = APIRouter(include_in_schema=False)

QUEUE_POLL_MS = 2000


@router.get("/queue", response_class=HTMLResponse)
def queue_page(request: Request, session: SessionDep, poll_ms: int = QUEUE_POLL_MS) -> HTMLResponse:
    """The queue; its script polls ``/api/queue`` every ``poll_ms`` (250 ms .. 1 min)."""

    viewer = viewer_of(request, session)
    data = queue(session)
    context = {
        "title": "Queue",
        "nav": "queue",
        "json_twin": "/api/queue",
        "jobs": data.jobs,
        "counts": data.counts,
        "now": datetime.now(UTC),
        "poll_ms": min(60_000, max(250, poll_ms)),
    }
    return render_page(request, "queue.html", context, viewer=viewer, forms=False)
