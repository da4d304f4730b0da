"""The progression page: the record over time per track, in hours and in dollars, each line within
one section (verified or reported) and one rules version, with the records listed below."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from leaderboard.entries.compare import progression_records, records_by_line
from leaderboard.entries.schemas import ProgressionPointPublic
from leaderboard.errors import NotFound
from leaderboard.tracks.service import list_prices, list_tracks
from web import charts
from web.pages.common import (
    DEFAULT_TRACK,
    Viewer,
    bytes_response,
    cached_route,
    error_page,
    render_html,
    shared_page,
    viewer_of,
)
from web.render import units

router = APIRouter(include_in_schema=False)


def _points(records: Sequence[ProgressionPointPublic], unit: str) -> list[charts.RecordPoint]:
    return [
        charts.RecordPoint(
            r.date,
            r.hours if unit == "hours" else float(r.cost_usd or 0),
            r.title,
            r.floor_hours if unit == "hours" else None,
            section=r.section,
            rules_version=r.rules_version,
        )
        for r in records
    ]


def _key(track: str) -> tuple[object, ...]:
    return ("progression", track)


@router.get("/progression", response_class=HTMLResponse)
async def progression_page(request: Request) -> Response:
    track = request.query_params.get("track") or DEFAULT_TRACK
    return await cached_route(request, _key(track), lambda r, s: _progression(r, s, track))


def _progression(request: Request, session: Session, track: str) -> Response:
    viewer = viewer_of(request, session)
    try:
        page = shared_page(
            request, session, viewer, _key(track), lambda: _progression_html(request, session, viewer, track)
        )
    except NotFound:
        return error_page(request, viewer, 404, "No such track", f"There is no track {track!r}.")
    return bytes_response(request, page)


def _derivation(p: ProgressionPointPublic, priced: set[str]) -> str | None:
    """How a cost came about: GPUs x hours x the price per GPU-hour it implies, and whether that
    price is the site's reference price for the hardware or one its authors reported."""
    if p.cost_usd is None or not p.gpus or p.hours <= 0:
        return None
    price = p.cost_usd / (p.gpus * p.hours)
    kind = "reference price" if p.hardware_class in priced else "price its authors reported"
    return f"{units(p)} × {p.hours:,.4g} h × ${price:,.2f}/h ({kind})"


def _progression_html(request: Request, session: Session, viewer: Viewer, track: str) -> str:
    data = progression_records(session, track)
    time_records = records_by_line(data.points, lambda p: p.hours)
    cost_records = records_by_line(data.points, lambda p: p.cost_usd)
    name = data.track.name
    priced = {p.sku for p in list_prices(session)}
    unpriced = sorted({p.hardware_class for p in time_records if p.cost_usd is None})
    no_cost = (
        f"no dollar costs: {', '.join(unpriced)} has no reference price, so its {len(time_records)} records are timed only"
        if time_records and not cost_records
        else "no records yet on this track"
    )
    context: dict[str, Any] = {
        "title": "Progression",
        "nav": "progression",
        "json_twin": f"/api/tracks/{data.track.slug}/progression",
        "page_description": f"The record over time on {name}: training time and dollars to beat GPT-2.",
        "track": data.track,
        "tracks": list_tracks(session),
        "chart": charts.Responsive(
            charts.progression_chart(_points(time_records, "hours"), title=f"Time to GPT-2 · {name}"),
            charts.progression_chart(_points(time_records, "hours"), title="Time to GPT-2", narrow=True),
        ),
        "cost_chart": charts.Responsive(
            charts.progression_chart(
                _points(cost_records, "usd"), title=f"Cost to GPT-2 · {name}", unit="usd", empty_message=no_cost
            ),
            charts.progression_chart(
                _points(cost_records, "usd"), title="Cost to GPT-2", unit="usd", narrow=True, empty_message=no_cost
            ),
        ),
        "records": time_records,
        "cost_records": [(r, _derivation(r, priced)) for r in cost_records],
        "first": time_records[0] if time_records else None,
        "best": min(time_records, key=lambda r: r.hours) if time_records else None,
    }
    return render_html(request, "progression.html", context, viewer=viewer, forms=False)
