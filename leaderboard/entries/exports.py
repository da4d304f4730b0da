"""Downloads of the board: a CSV of any leaderboard view (all its pages) and an Atom feed of the
verified records of every track, each serialized once per board revision."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Annotated
from xml.sax.saxutils import escape

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session

import submissions
from leaderboard.cache import cached
from leaderboard.db import SessionDep
from leaderboard.entries.board import leaderboard, progression
from leaderboard.entries.schemas import EntryPublic, LeaderboardQuery
from leaderboard.errors import NotFound
from leaderboard.formatting import hms
from leaderboard.tracks.service import list_tracks
from leaderboard.urls import absolute, cents

router = APIRouter(tags=["board"])

CSV_COLUMNS = (
    "section", "rank", "status", "title", "url", "contributors", "hardware_class", "gpus", "rules_version",
    "hours", "time_hms", "cost_usd", "core_mean", "core_std", "core_n", "p_value", "val_bpb", "record_date",
    "commit", "verified_at",
)  # fmt: skip
MAX_CSV_PAGES = 1000  # x 200 rows


def _row(e: EntryPublic) -> list[object]:
    return [
        e.section, e.rank if e.rank is not None else "", e.badge, e.title, absolute(f"/entries/{e.id}"),
        "; ".join(e.contributors), e.hardware_class, e.gpus, e.rules_version,
        "" if e.hours is None else f"{e.hours:.6f}", "" if e.hours is None else hms(e.hours), "" if e.cost_usd is None else f"{cents(e.cost_usd):.2f}",
        "" if e.core_mean is None else f"{e.core_mean:.6f}", "" if e.core_std is None else f"{e.core_std:.6f}",
        "" if e.core_n is None else e.core_n, "" if e.p_value is None else f"{e.p_value:.6g}",
        "" if e.val_bpb is None else f"{e.val_bpb:.5f}", e.record_date.isoformat(), e.commit or "",
        "" if e.verified_at is None else e.verified_at.isoformat(),
    ]  # fmt: skip


def board_csv(session: Session, slug: str, query: LeaderboardQuery) -> bytes:
    """Every row of the board view ``query`` describes (its filters and sort, all pages) as CSV."""
    q = query.model_copy(update={"page": 1, "per_page": 200})
    return cached(session, ("leaderboard.csv", slug, q.model_dump_json()), lambda: _board_csv(session, slug, q))


def _board_csv(session: Session, slug: str, q: LeaderboardQuery) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for page in range(1, MAX_CSV_PAGES + 1):
        board = leaderboard(session, slug, q.model_copy(update={"page": page}))
        writer.writerows(_row(e) for e in board.rows)
        if page >= board.pages:
            break
    return out.getvalue().encode()


def records_atom(session: Session) -> bytes:
    """The verified records of every track, newest first, as an Atom feed."""
    return cached(session, ("records.atom",), lambda: _records_atom(session))


def _records_atom(session: Session) -> bytes:
    items = []
    for track in list_tracks(session):
        for r in progression(session, track.slug).records:
            if r.section == "verified":
                items.append((track, r))
    items.sort(key=lambda item: (item[1].date, item[1].entry_id), reverse=True)

    def stamp(d: object) -> str:
        moment = d if isinstance(d, datetime) else datetime.combine(d, time(0), tzinfo=UTC)  # type: ignore[arg-type]
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    updated = stamp(items[0][1].date) if items else "2019-02-14T00:00:00Z"
    feed = absolute("/records.atom")
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">',
        "<title>speedrun: new verified records</title>",
        f"<id>{escape(feed)}</id><updated>{updated}</updated>",
        f'<link rel="self" type="application/atom+xml" href="{escape(feed)}"/>',
        f'<link rel="alternate" type="text/html" href="{escape(absolute("/"))}"/>',
        "<author><name>speedrun leaderboard</name></author>",
    ]
    for track, r in items:
        url = absolute(f"/entries/{r.entry_id}")
        cost = "" if r.cost_usd is None else f", ${cents(r.cost_usd):,.2f}"
        summary = (
            f"{track.name}: {hms(r.hours)} training{cost} on {r.gpus} × {r.hardware_class} (verified on this site)"
        )
        parts.append(
            f"<entry><title>{escape(f'Record: {r.title} ({hms(r.hours)})')}</title><id>{escape(url)}</id>"
            f'<link rel="alternate" type="text/html" href="{escape(url)}"/>'
            f"<updated>{stamp(r.date)}</updated><summary>{escape(summary)}</summary></entry>"
        )
    parts.append("</feed>\n")
    return "\n".join(parts).encode()


SCHEMA_DIR = Path(submissions.__file__).resolve().parent / "json_schema"
SCHEMAS = sorted(p.name.removesuffix(".schema.json") for p in SCHEMA_DIR.glob("*.schema.json"))


@router.get("/api/schemas", tags=["contract"])
def schema_index() -> dict[str, str]:
    """The JSON Schemas of the contract (submission, run result, verification report, ...) by name."""
    return {name: absolute(f"/api/schemas/{name}.schema.json") for name in SCHEMAS}


@router.get(
    "/api/schemas/{name}.schema.json",
    tags=["contract"],
    response_class=FileResponse,
    responses={200: {"content": {"application/schema+json": {}}}, 404: {"description": "no such schema"}},
)
def schema_file(name: str) -> FileResponse:
    """One JSON Schema of the contract, e.g. ``submission``."""
    if name not in SCHEMAS:
        raise NotFound(f"no schema {name!r}; known: {', '.join(SCHEMAS)}")
    return FileResponse(SCHEMA_DIR / f"{name}.schema.json", media_type="application/schema+json")


@router.get(
    "/api/tracks/{slug}/leaderboard.csv", response_class=Response, responses={200: {"content": {"text/csv": {}}}}
)
def leaderboard_csv(slug: str, query: Annotated[LeaderboardQuery, Query()], session: SessionDep) -> Response:
    """Every row of a leaderboard view as CSV (the filters and sort of the page; all pages)."""
    body = board_csv(session, slug, query)
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{slug}-leaderboard.csv"'},
    )


@router.get("/records.atom", response_class=Response, responses={200: {"content": {"application/atom+xml": {}}}})
def records_feed(request: Request, session: SessionDep) -> Response:
    """An Atom feed of new verified records, every track."""
    return Response(records_atom(session), media_type="application/atom+xml; charset=utf-8")
