"""The leaderboard pages (``/``, ``/tracks/{slug}``) and the rules page (``/about``, ``rules.py``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from leaderboard.entries.board import leaderboard
from leaderboard.entries.compare import baseline_public, record_banner
from leaderboard.entries.schemas import LeaderboardQuery
from leaderboard.errors import NotFound
from leaderboard.tracks.service import list_tracks
from web.pages.banner import banner_text, banner_view
from web.pages.common import (
    DEFAULT_TRACK,
    Viewer,
    bytes_response,
    cached_route,
    error_page,
    render_html,
    settings_of,
    shared_page,
    viewer_of,
)
from web.pages.rules import rules_context

router = APIRouter(include_in_schema=False)

STATUS_OPTIONS = [
    ("ranked", "ranked (verified + reported)"),
    ("all", "all"),
    ("verified", "verified"),
    ("reported", "reported"),
    ("pending", "pending"),
    ("failed", "failed"),
    ("inconclusive", "inconclusive"),
    ("error", "error"),
    ("retracted", "retracted"),
]
SORT_OPTIONS = [
    ("time", "time (rank)"),
    ("cost", "cost (rank)"),
    ("core", "CORE (high first)"),
    ("date", "date (new first)"),
    ("val_bpb", "val_bpb (low first)"),
    ("p_value", "p-value (low first)"),
]
SECTION_NAMES = {
    "verified": "verified on this site",
    "reported": "reported history (imported, not verified here; ranked among themselves under their rules)",
    "unranked": "not ranked (pending, failed or withdrawn)",
}

# ---------------------------------------------------------------------------- pages


BOARD_PARAMS = ("sort", "hardware", "status", "rules_version", "page", "per_page", "q")


def _board_query(request: Request) -> LeaderboardQuery:
    raw = {k: v for k, v in request.query_params.items() if k in BOARD_PARAMS and v}
    return LeaderboardQuery.model_validate(raw)


def _board_key(slug: str, query: LeaderboardQuery) -> tuple[Any, ...]:
    return ("board", slug, query.model_dump_json())


async def _board_route(request: Request, slug: str) -> Response:
    try:
        key: tuple[Any, ...] | None = _board_key(slug, _board_query(request))
    except ValidationError:
        key = None
    return await cached_route(request, key, lambda r, s: _board(r, s, slug))


def _board(request: Request, session: Session, slug: str) -> Response:

    viewer = viewer_of(request, session)
    try:
        query = _board_query(request)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        return error_page(request, viewer, 400, "Bad filter", f"{field}: {err['msg']}")
    try:
        page = shared_page(
            request,
            session,
            viewer,
            _board_key(slug, query),
            lambda: _board_html(request, session, viewer, slug, query),
        )
    except NotFound:
        return error_page(request, viewer, 404, "No such track", f"There is no track {slug!r}.")
    return bytes_response(request, page)


def _board_html(request: Request, session: Session, viewer: Viewer, slug: str, query: Any) -> str:

    board = leaderboard(session, slug, query)
    default_per_page = LeaderboardQuery().per_page

    def url_with(**changes: Any) -> str:
        params: dict[str, Any] = {
            "sort": board.sort,
            "hardware": board.hardware,
            "status": None if board.status == "ranked" else board.status,
            "rules_version": board.rules_version,
            "page": board.page if board.page > 1 else None,
            "per_page": board.per_page if board.per_page != default_per_page else None,
            "q": query.q or None,
        }
        params.update(changes)
        kept = {k: v for k, v in params.items() if v not in (None, "")}
        return f"/tracks/{board.track.slug}" + (f"?{urlencode(kept)}" if kept else "")

    twin = url_with().replace(f"/tracks/{board.track.slug}", f"/api/tracks/{board.track.slug}/leaderboard", 1)
    csv_url = url_with(page=None, per_page=None).replace(
        f"/tracks/{board.track.slug}", f"/api/tracks/{board.track.slug}/leaderboard.csv", 1
    )
    banner = record_banner(session, board.track.id, board.track.ranking)
    context = {
        "title": board.track.name,
        "nav": "board",
        "json_twin": twin,
        "track": board.track,
        "tracks": list_tracks(session),
        "rows": board.rows,
        "sort": board.sort,
        "filters": {"hardware": board.hardware, "status": board.status, "rules_version": board.rules_version},
        "filtered": bool(board.hardware or board.rules_version or board.status != "ranked"),
        "hardware_options": board.hardware_options,
        "rules_options": board.rules_versions,
        "status_options": STATUS_OPTIONS,
        "section_names": SECTION_NAMES,
        "page": board.page,
        "pages": max(1, board.pages),
        "total": board.total,
        "url_with": url_with,
        "csv_url": csv_url,
        "search": query.q or "",
        "banner": banner_view(banner),
        "baseline": baseline_public(session, board.track.id),
        "sort_options": SORT_OPTIONS,
        "page_description": banner_text(banner, board.track),
    }
    return render_html(request, "leaderboard.html", context, viewer=viewer, forms=False)


@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> Response:
    """The leaderboard of the default track."""
    return await _board_route(request, DEFAULT_TRACK)


@router.get("/tracks/{slug}", response_class=HTMLResponse)
async def track_board(slug: str, request: Request) -> Response:
    return await _board_route(request, slug)


@router.get("/about", response_class=HTMLResponse)
async def about_page(request: Request) -> Response:
    return await cached_route(request, ("about",), _about)


def _about(request: Request, session: Session) -> Response:
    viewer = viewer_of(request, session)

    def html() -> str:
        settings = settings_of(request)
        context = {
            "title": "Rules",
            "nav": "about",
            "json_twin": "/api/tracks",
            "page_description": "The rules in force: what a record is, the rules versions, every track setting, "
            "pooling, quotas, sealing, fork review and prices.",
            **rules_context(session, settings.max_job_seconds, settings.submit_rate_per_minute),
        }
        return render_html(request, "about.html", context, viewer=viewer, forms=False)

    return bytes_response(request, shared_page(request, session, viewer, ("about",), html))
