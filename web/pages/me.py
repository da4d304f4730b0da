"""``/me``: a signed-in user's own entries, jobs, verifications left and weekly quota; and
``/robots.txt``. The page is made per request (it is one person's) from ``entries.mine.mine``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from leaderboard.db import SessionDep
from leaderboard.entries.mine import mine
from web.pages.common import render_page, sign_in_first, viewer_of

router = APIRouter(include_in_schema=False)

ROBOTS = "User-agent: *\nDisallow: /api/\nDisallow: /submit\nDisallow: /me\nDisallow: /login\nAllow: /\n"


@router.get("/me", response_class=HTMLResponse)
def me_page(request: Request, session: SessionDep) -> Response:
    viewer = viewer_of(request, session)
    if viewer.user is None:
        return sign_in_first(request, viewer)
    data = mine(session, viewer.user)
    context = {
        "title": "My entries",
        "nav": "me",
        "json_twin": "/api/me/entries",
        "me": data,
        "page_description": "Your entries, your jobs, the verifications you have left and your weekly quota.",
    }
    return render_page(request, "me.html", context, viewer=viewer, forms=False)


@router.get("/robots.txt", response_class=PlainTextResponse)
def robots() -> PlainTextResponse:
    """Crawlers may read the board, entries, progression, queue and rules; not the API or forms."""
    return PlainTextResponse(ROBOTS, headers={"Cache-Control": "public, max-age=86400"})
