"""The progression page: the record over time per track."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from leaderboard.db import SessionDep
from leaderboard.entries.service import (
    progression,
)
from leaderboard.errors import NotFound
from leaderboard.tracks.service import list_tracks
from web import charts
from web.pages.common import (
    DEFAULT_TRACK,
    Viewer,
    bytes_response,
    error_page,
    flash_key,
    render_html,
    shared_page,
    viewer_of,
)

router = APIRouter(include_in_schema=False)


@router.get("/progression", response_class=HTMLResponse)
def progression_page(request: Request, session: SessionDep, track: str = DEFAULT_TRACK) -> Response:
    viewer = viewer_of(request, session)
    try:
        page = shared_page(
            session,
            viewer,
            ("progression", track, flash_key(request)),
            lambda: _progression_html(request, session, viewer, track),
        )
    except NotFound:
        return error_page(request, viewer, 404, "No such track", f"There is no track {track!r}.")
    return bytes_response(request, page)


def _progression_html(request: Request, session: Session, viewer: Viewer, track: str) -> str:

    data = progression(session, track)
    records = data.records
    chart = charts.progression_chart(
        [charts.RecordPoint(r.date, r.hours, r.title, r.floor_hours) for r in records if r.hours > 0],
        title=f"Time to GPT-2 · {data.track.name}",
    )
    context = {
        "title": "Progression",
        "nav": "progression",
        "json_twin": f"/api/tracks/{data.track.slug}/progression",
        "track": data.track,
        "tracks": list_tracks(session),
        "chart": chart,
        "records": records,
        "first_hours": records[0].hours if records else None,
        "first_year": records[0].date.year if records else "—",
        "best_hours": records[-1].hours if records else None,
    }
    return render_html(request, "progression.html", context, viewer=viewer, forms=False)[0]
