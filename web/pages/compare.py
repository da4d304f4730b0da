"""Compare any two entries: their numbers side by side and their loss and val_bpb curves overlaid
(the first entry's runs solid, the second's dashed)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from leaderboard.entries.board import entry_detail
from leaderboard.errors import NotFound
from leaderboard.formatting import hms, usd
from web.pages import entry_parts as parts
from web.pages.common import (
    Viewer,
    bytes_response,
    cached_route,
    error_page,
    render_html,
    shared_page,
    store_of,
    viewer_of,
)
from web.render import core_value, hardware, pvalue, signed_hms

router = APIRouter(include_in_schema=False)

MAX_ID = 2**62


def _ids(request: Request) -> tuple[int, int] | None:
    try:
        a, b = int(request.query_params.get("a", "")), int(request.query_params.get("b", ""))
    except ValueError:
        return None
    return (a, b) if 1 <= a <= MAX_ID and 1 <= b <= MAX_ID else None


@router.get("/compare", response_class=HTMLResponse)
async def compare_page(request: Request) -> Response:
    ids = _ids(request)
    return await cached_route(request, None if ids is None else ("compare", *ids), _compare)


def _compare(request: Request, session: Session) -> Response:
    viewer = viewer_of(request, session)
    ids = _ids(request)
    if ids is None:
        if not request.query_params:

            def html() -> str:
                return render_html(request, "compare.html", _context(None, None), viewer=viewer, forms=False)

            return bytes_response(request, shared_page(request, session, viewer, ("compare-form",), html))
        return error_page(request, viewer, 400, "Bad request", "a, b: give two entry numbers, e.g. ?a=8&b=3")
    try:
        store = store_of(request)
        a, b = (entry_detail(session, i, store) for i in ids)
    except NotFound as exc:
        return error_page(request, viewer, 404, "No such entry", str(exc.detail))
    page = shared_page(request, session, viewer, ("compare", *ids), lambda: _html(request, viewer, a, b))
    return bytes_response(request, page)


def _diff(x: float | None, y: float | None, fmt: Any) -> str:
    return "—" if x is None or y is None else fmt(y - x)


def _rows(a: Any, b: Any) -> list[tuple[str, str, str, str]]:
    """(label, A, B, B − A): the numbers of both entries and their difference, one row each."""
    ea, eb = a.entry, b.entry

    def row(label: str, f: Any, attr: str, delta: Any = None) -> tuple[str, str, str, str]:
        x, y = getattr(ea, attr), getattr(eb, attr)
        return label, f(x), f(y), "" if delta is None else _diff(x, y, delta)

    def money(d: float) -> str:
        return ("+" if d > 0 else "−" if d < 0 else "±") + usd(abs(d))

    return [
        ("status", str(ea.badge), str(eb.badge), ""),
        row("training time (h:mm:ss)", hms, "hours", signed_hms),
        row("claimed time", hms, "claimed_hours", signed_hms),
        row("cost", usd, "cost_usd", money),
        row("CORE", core_value, "core_mean", lambda d: f"{d:+.4f}"),
        row("p-value", pvalue, "p_value"),
        row("val_bpb", lambda v: "—" if v is None else f"{v:.5f}", "val_bpb", lambda d: f"{d:+.5f}"),
        ("hardware", hardware(ea), hardware(eb), ""),
        ("rules", ea.rules_version, eb.rules_version, ""),
        ("date", ea.record_date.isoformat(), eb.record_date.isoformat(), ""),
    ]


def _context(a: Any, b: Any) -> dict[str, Any]:
    return {
        "title": "Compare" if a is None else f"Compare #{a.entry.id} and #{b.entry.id}",
        "nav": "board",
        "page_description": "Two entries side by side: numbers and training curves.",
        "a": a,
        "b": b,
        "rows": [] if a is None else _rows(a, b),
        "loss_chart": None,
        "bpb_chart": None,
    }


def _html(request: Request, viewer: Viewer, a: Any, b: Any) -> str:
    context = _context(a, b)
    for key, attr, title, markers in (
        ("loss_chart", "loss", "Training loss", False),
        ("bpb_chart", "val_bpb", "Validation bits per byte", True),
    ):
        first = parts.curve_series(a.curves, attr, markers=markers, prefix=f"#{a.entry.id} ")
        second = parts.curve_series(
            b.curves, attr, markers=markers, prefix=f"#{b.entry.id} ", dashed=True, first_color=len(first)
        )
        series = [*first, *second]
        context[key] = parts.curve_chart(series, attr, title, attr) if series else None
    return render_html(request, "compare.html", context, viewer=viewer, forms=False)
