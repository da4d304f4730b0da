"""``/me``: a signed-in user's own entries, jobs, verifications left and weekly quota; and
``/robots.txt``. The page is one person's (``entries.mine.mine``): cached per viewer like every signed-in page
(``web.pages.signed_in``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from sqlalchemy.orm import Session

from leaderboard.entries.mine import mine
from web.pages.common import (
    bytes_response,
    cached_route,
    render_html,
    shared_page,
    sign_in_first,
    viewer_of,
)

router = APIRouter(include_in_schema=False)

ROBOTS = "User-agent: *\nDisallow: /api/\nDisallow: /submit\nDisallow: /me\nDisallow: /login\nAllow: /\n"


@router.get("/me", response_class=HTMLResponse)
async def me_page(request: Request) -> Response:
    # signed in: cached per viewer on the board revision, for the cache's own (short) time to live
    # like the queue's: job progress and the weekly quota move without a new revision
    return await cached_route(request, ("me",), _me, ttl=None)


def _me(request: Request, session: Session) -> Response:
    viewer = viewer_of(request, session)
    user = viewer.user
    if user is None:
        return sign_in_first(request, viewer)
    context = {
        "title": "My entries",
        "nav": "me",
        "json_twin": "/api/me/entries",
        "page_description": "Your entries, your jobs, the verifications you have left and your weekly quota.",
    }

    def html() -> str:
        assert user is not None
        return render_html(request, "me.html", {**context, "me": mine(session, user)}, viewer=viewer, forms=False)

    return bytes_response(request, shared_page(request, session, viewer, ("me",), html, ttl=None))


@router.get("/robots.txt", response_class=PlainTextResponse)
def robots() -> PlainTextResponse:
    """Crawlers may read the board, entries, progression, queue and rules; not the API or forms."""
    return PlainTextResponse(ROBOTS, headers={"Cache-Control": "public, max-age=86400"})
