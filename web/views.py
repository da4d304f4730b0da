"""HTML routes of the site: thin handlers that call the leaderboard services and render templates.

Every page is server-rendered from the same service functions as its JSON twin under ``/api``.
Forms (sign in, sign out, submit, re-verify, retract) carry a CSRF token bound to a per-browser nonce
cookie; the signed session cookie holds the API token pasted at sign-in and is never rendered.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from leaderboard.artifacts.storage import ArtifactStore
from leaderboard.cache import cached, peek_current
from leaderboard.db import SessionDep, request_session
from leaderboard.entries.schemas import LeaderboardQuery
from leaderboard.entries.service import (
    can_request_reverification,
    entry_detail,
    leaderboard,
    progression,
    request_reverification,
    retract,
    submit,
)
from leaderboard.errors import DomainError, Invalid, NotFound, Unauthorized
from leaderboard.jobs.service import queue
from leaderboard.settings import Settings
from leaderboard.tracks.service import list_prices, list_tracks
from leaderboard.users.models import Role, User
from leaderboard.users.service import Principal, authenticate_principal, require_role
from submissions.schema import Submission
from web import charts, security
from web.render import render

router = APIRouter(include_in_schema=False)


DEFAULT_TRACK = "gpt2-8xh100"
QUEUE_POLL_MS = 2000
MAX_CURVE_POINTS = 400
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
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
SECTION_NAMES = {
    "verified": "verified on this site",
    "reported": "reported history (imported, not verified here; ranked among themselves under their rules)",
    "unranked": "not ranked (pending, failed or withdrawn)",
}
# Messages after a redirect, by key: nothing a user typed is ever reflected through the URL.
FLASHES = {
    "reverify": ("ok", "Re-verification requested: a new job is in the queue."),
    "retracted": ("info", "Entry retracted: it is off the board and its queued jobs are cancelled."),
    "signed-in": ("ok", "Signed in."),
    "submitted": ("ok", "Submission accepted: its verification job is in the queue."),
    "resubmitted": ("info", "This submission was received before (same idempotency key and body): here is its entry."),
    "signed-out": ("info", "Signed out."),
}


# ---------------------------------------------------------------------------- request helpers


@dataclass(frozen=True)
class Viewer:
    """Who is looking: None when signed out, else the principal behind the session cookie."""

    principal: Principal | None

    @property
    def user(self) -> User | None:
        return None if self.principal is None else self.principal.user


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _store(request: Request) -> ArtifactStore:
    store: ArtifactStore = request.app.state.store
    return store


def _secret(request: Request) -> str:
    settings = _settings(request)
    return str(settings.secret_key or settings.resolved_secret_key())


def _viewer(request: Request, session: Session) -> Viewer:

    signed = request.cookies.get(security.SESSION_COOKIE)
    if not signed:
        return Viewer(None)
    token = security.unsign(signed, secret=_secret(request), purpose="session", max_age_s=security.SESSION_MAX_AGE_S)
    if token is None:
        return Viewer(None)
    try:
        return Viewer(authenticate_principal(session, token))
    except Unauthorized:  # revoked since sign-in: treat as signed out
        return Viewer(None)


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _page(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    viewer: Viewer,
    status_code: int = 200,
    forms: bool = True,
) -> HTMLResponse:
    """Render ``template`` with the shared context (viewer, flash, and for pages with forms the
    CSRF token of this browser, whose nonce cookie is set here when missing) and safe headers."""
    html, nonce = _render(request, template, context, viewer=viewer, forms=forms)
    return _respond(request, html, status_code=status_code, new_nonce=nonce)


def _render(
    request: Request, template: str, context: dict[str, Any], *, viewer: Viewer, forms: bool
) -> tuple[str, str | None]:
    """The page's HTML, and the CSRF nonce to set as a cookie when this browser had none."""
    token, new_nonce = "", None
    if forms:
        nonce = request.cookies.get(security.CSRF_COOKIE)
        if not nonce or len(nonce) > 100:
            nonce = new_nonce = security.new_csrf_nonce()
        token = security.csrf_token(nonce, secret=_secret(request))
    flash = FLASHES.get(request.query_params.get("done", ""))
    shared = {
        "user": viewer.user,
        "csrf_token": token,
        "flash": None if flash is None else {"kind": flash[0], "text": flash[1]},
        "progress_percent": progress_percent,
        "json_twin": None,
    }
    return render(template, {**shared, **context}), new_nonce


def _respond(request: Request, html: str, *, status_code: int = 200, new_nonce: str | None = None) -> HTMLResponse:
    response = HTMLResponse(html, status_code=status_code)
    if new_nonce is not None:
        response.set_cookie(
            security.CSRF_COOKIE, new_nonce, httponly=True, samesite="lax", secure=_secure(request), path="/"
        )
    _harden(response)
    return response


@dataclass(frozen=True)
class PageBytes:
    """A rendered page as the bytes that go on the wire, with its entity tag (a digest of them)."""

    body: bytes
    etag: str

    @classmethod
    def of(cls, html: str) -> PageBytes:
        body = html.encode()
        return cls(body, '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"')


def _shared_page(session: Session, viewer: Viewer, key: tuple[Any, ...], compute: Callable[[], str]) -> PageBytes:
    """Pages without forms look the same to every signed-out visitor: those go through the board's
    read cache (keyed on the board revision, so a change shows at once) as encoded bytes with
    their ETag, so a hit renders, encodes and hashes nothing; signed-in pages are made per request."""

    if viewer.user is not None:
        return PageBytes.of(compute())
    return cached(session, ("web", *key), lambda: PageBytes.of(compute()))


def _page_response(request: Request, page: PageBytes) -> Response:
    """``page`` as a 200, or a 304 when the browser already holds it (``If-None-Match``)."""
    headers = {**_PAGE_HEADERS, "etag": page.etag}
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None and page.etag in (t.strip() for t in if_none_match.split(",")):
        return Response(status_code=304, headers=headers)
    return Response(page.body, media_type="text/html; charset=utf-8", headers=headers)


# the headers of a page that sets no cookie (what ``_harden`` gives it), built once
_PAGE_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-cache",
}


def _harden(response: Response) -> None:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store" if "set-cookie" in response.headers else "no-cache"


def _error_page(request: Request, viewer: Viewer, status_code: int, title: str, message: str) -> HTMLResponse:
    context = {"title": title, "status_code": status_code, "message": message, "nav": ""}
    return _page(request, "error.html", context, viewer=viewer, status_code=status_code, forms=False)


def _redirect(url: str) -> RedirectResponse:
    response = RedirectResponse(url, status_code=303)
    _harden(response)
    return response


async def _form(request: Request) -> dict[str, Any]:
    limit = int(_settings(request).max_request_bytes)
    form = await request.form(max_files=1, max_fields=20, max_part_size=limit)
    return dict(form.items())


def _csrf_ok(request: Request, form: dict[str, Any]) -> bool:
    token = form.get(security.CSRF_FIELD)
    return security.csrf_ok(
        request.cookies.get(security.CSRF_COOKIE),
        token if isinstance(token, str) else None,
        secret=_secret(request),
    )


def _csrf_failed(request: Request, viewer: Viewer) -> HTMLResponse:
    return _error_page(
        request,
        viewer,
        403,
        "Form expired",
        "This form's security token did not match (the page was open too long, or cookies are blocked). "
        "Reload the page and try again.",
    )


async def _posted(request: Request, session: Session) -> tuple[Viewer, dict[str, Any], Response | None]:
    """The viewer and form of a POST, and the page refusing it when its CSRF token does not match."""
    viewer = _viewer(request, session)
    form = await _form(request)
    return viewer, form, None if _csrf_ok(request, form) else _csrf_failed(request, viewer)


def _sign_in_first(request: Request, viewer: Viewer) -> HTMLResponse:
    return _error_page(request, viewer, 401, "Sign in first", "Sign in with your API token on the submit page.")


# ---------------------------------------------------------------------------- number helpers


def progress_percent(progress: dict[str, Any] | None) -> int:
    """How far a job is: finished runs plus the running one's share of steps, 0..100."""
    if not progress:
        return 0
    runs = max(1, int(progress.get("runs") or 1))
    steps = progress.get("steps") or 0
    within = min(1.0, (progress.get("step") or 0) / steps) if steps else 0.0
    return max(0, min(100, round(100 * (int(progress.get("run_index") or 0) + within) / runs)))


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return math.fsum(known) / len(known) if known else None


def _deltas(claimed: list[Any], verified: list[Any]) -> list[dict[str, str]]:
    """Verified minus claimed means of hours, CORE and val_bpb, with the better direction marked."""
    out: list[dict[str, str]] = []
    specs = (
        ("training hours", "training_hours", 3, -1),
        ("CORE", "core", 4, 1),
        ("val_bpb", "val_bpb", 5, -1),
    )
    for label, attr, digits, better in specs:
        c = _mean([getattr(r, attr) for r in claimed])
        v = _mean([getattr(r, attr) for r in verified])
        if c is None or v is None:
            continue
        d = v - c
        text = f"{d:+.{digits}f}"
        if attr == "training_hours" and c > 0:
            text += f" ({100 * d / c:+.1f}%)"
        css = "" if d == 0 else ("delta-good" if d * better > 0 else "delta-bad")
        out.append(
            {"label": label, "claimed": f"{c:.{digits}f}", "verified": f"{v:.{digits}f}", "delta": text, "css": css}
        )
    return out


LOG_TAIL_LINES = 40
LOG_TAIL_CHARS = 6000
MAX_INLINE_LOGS = 3


def _log_tails(store: ArtifactStore, artifacts: list[Any]) -> list[dict[str, str]]:
    """The last lines of the entry's text logs, to show inline (escaped by the template like all text)."""
    out: list[dict[str, str]] = []
    # human logs before machine-readable JSON lines
    for a in sorted(artifacts, key=lambda a: a.name.endswith(".jsonl")):
        if a.kind != "log" or len(out) >= MAX_INLINE_LOGS:
            continue
        data = store.read(a.sha256)
        if data is None:
            continue
        text = data[-4 * LOG_TAIL_CHARS :].decode("utf-8", errors="replace")
        tail = "\n".join(text.splitlines()[-LOG_TAIL_LINES:])[-LOG_TAIL_CHARS:]
        out.append({"name": a.name, "sha256": a.sha256, "tail": tail})
    return out


def _thin(points: list[tuple[float, float]], limit: int = MAX_CURVE_POINTS) -> list[tuple[float, float]]:
    """At most ``limit`` points, evenly spaced, always keeping the last."""
    if len(points) <= limit:
        return points
    step = len(points) / limit
    kept = [points[int(i * step)] for i in range(limit - 1)]
    return [*kept, points[-1]]


def _run_name(curve: Any) -> str:
    seed = "" if curve.seed is None else f" seed {curve.seed}"
    return f"{curve.kind}{seed}"


def _curve_chart(curves: list[Any], attr: str, title: str, y_label: str, markers: bool) -> Any:
    series = []
    for c in curves:
        pts = [
            (float(p.training_seconds), float(getattr(p, attr)))
            for p in c.points
            if p.training_seconds is not None and getattr(p, attr) is not None
        ]
        if pts:
            series.append(charts.Series(_run_name(c), _thin(sorted(pts)), markers=markers))
    return charts.line_chart(
        series[: len(charts.PALETTE)],
        title=title,
        x_label="training time",
        y_label=y_label,
        x_kind="seconds",
        frame=charts.Frame(width=560, height=320, left=56),
        css_class=f"curve-chart {attr}",
        empty_message=f"no {y_label} curve recorded",
    )


def _core_chart(tasks: list[Any]) -> Any:
    groups = []
    for name, attr in (("claimed", "claimed"), ("verified", "verified")):
        values = {t.task: float(getattr(t, attr)) for t in tasks if getattr(t, attr) is not None}
        if values:
            groups.append(charts.BarGroup(name, values))
    return charts.bar_chart(
        groups, title="CORE per task (mean accuracy)", value_label="accuracy", css_class="core-bars"
    )


# ---------------------------------------------------------------------------- pages


BOARD_PARAMS = ("sort", "hardware", "status", "rules_version", "page", "per_page")


def _flash_key(request: Request) -> str:
    """The flash a page shows (part of a cached page's key: it is in the page's context)."""
    done = request.query_params.get("done", "")
    return done if done in FLASHES else ""


def _board_query(request: Request) -> LeaderboardQuery:
    raw = {k: v for k, v in request.query_params.items() if k in BOARD_PARAMS and v}
    return LeaderboardQuery.model_validate(raw)


def _board_key(request: Request, slug: str, query: LeaderboardQuery) -> tuple[Any, ...]:
    return ("board", slug, query.model_dump_json(), _flash_key(request))


async def _board_route(request: Request, slug: str) -> Response:
    """A signed-out visitor's board straight from the read cache on the event loop when it holds
    the page at the current revision (one indexed read: no Session, no worker thread); else the
    ordinary path in a worker thread, in its own transaction, committed before the response."""
    if security.SESSION_COOKIE not in request.cookies:
        try:
            key = _board_key(request, slug, _board_query(request))
        except ValidationError:
            key = None
        page = None if key is None else peek_current(request.app.state, ("web", *key))
        if isinstance(page, PageBytes):
            return _page_response(request, page)
    return await run_in_threadpool(_board_in_session, request, slug)


def _board_in_session(request: Request, slug: str) -> Response:
    with request_session(request) as session:
        return _board(request, session, slug)


def _board(request: Request, session: Session, slug: str) -> Response:

    viewer = _viewer(request, session)
    try:
        query = _board_query(request)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        return _error_page(request, viewer, 400, "Bad filter", f"{field}: {err['msg']}")
    try:
        page = _shared_page(
            session,
            viewer,
            _board_key(request, slug, query),
            lambda: _board_html(request, session, viewer, slug, query),
        )
    except NotFound:
        return _error_page(request, viewer, 404, "No such track", f"There is no track {slug!r}.")
    return _page_response(request, page)


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
        }
        params.update(changes)
        kept = {k: v for k, v in params.items() if v not in (None, "")}
        return f"/tracks/{board.track.slug}" + (f"?{urlencode(kept)}" if kept else "")

    twin = url_with().replace(f"/tracks/{board.track.slug}", f"/api/tracks/{board.track.slug}/leaderboard", 1)
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
    }
    return _render(request, "leaderboard.html", context, viewer=viewer, forms=False)[0]


@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> Response:
    """The leaderboard of the default track."""
    return await _board_route(request, DEFAULT_TRACK)


@router.get("/tracks/{slug}", response_class=HTMLResponse)
async def track_board(slug: str, request: Request) -> Response:
    return await _board_route(request, slug)


@router.get("/entries/{entry_id}", response_class=HTMLResponse)
def entry_page(entry_id: int, request: Request, session: SessionDep) -> HTMLResponse:

    viewer = _viewer(request, session)
    try:
        detail = entry_detail(session, entry_id, _store(request))
    except NotFound:
        return _error_page(request, viewer, 404, "No such entry", f"There is no entry #{entry_id}.")
    user = viewer.user
    owner_id = user.id if user is not None and detail.owner is not None and detail.owner == user.name else None
    can_reverify = can_request_reverification(user, detail.entry, owner_id)
    can_retract = user is not None and user.role == Role.admin and detail.entry.status != "retracted"
    runs = [*detail.claimed_runs, *detail.verified_runs, *detail.reported_runs]
    hardware = sorted((k, v) for k, v in (detail.hardware or {}).items() if v is not None)
    context = {
        "title": detail.entry.title,
        "nav": "board",
        "json_twin": f"/api/entries/{entry_id}",
        "entry": detail.entry,
        "track": detail.track_info,
        "description": detail.description,
        "owner": detail.owner,
        "trainer": detail.trainer,
        "recipe": detail.recipe,
        "run_config": detail.run_config,
        "plan": detail.plan,
        "retracted_reason": detail.retracted_reason,
        "runs": runs,
        "deltas": _deltas(detail.claimed_runs, detail.verified_runs),
        "core_chart": _core_chart(detail.core_tasks) if detail.core_tasks else None,
        "loss_chart": _curve_chart(detail.curves, "loss", "Training loss", "loss", markers=False)
        if any(p.loss is not None for c in detail.curves for p in c.points)
        else None,
        "bpb_chart": _curve_chart(detail.curves, "val_bpb", "Validation bits per byte", "val_bpb", markers=True)
        if any(p.val_bpb is not None for c in detail.curves for p in c.points)
        else None,
        "verifications": detail.verifications,
        "jobs": detail.jobs,
        "hardware": hardware,
        "artifacts": detail.artifacts,
        "logs": _log_tails(_store(request), detail.artifacts),
        "can_reverify": can_reverify,
        "can_retract": can_retract,
    }
    return _page(request, "entry.html", context, viewer=viewer, forms=can_reverify or can_retract)


@router.post("/entries/{entry_id}/reverify", response_class=HTMLResponse)
async def reverify(entry_id: int, request: Request, session: SessionDep) -> Response:
    viewer, _, refused = await _posted(request, session)
    if refused is not None:
        return refused
    if viewer.principal is None:
        return _sign_in_first(request, viewer)
    try:
        request_reverification(
            session, viewer.principal.user, entry_id, max_attempts=int(_settings(request).max_job_attempts)
        )
    except DomainError as exc:
        session.rollback()
        return _error_page(request, viewer, exc.status, "Not possible", _detail_text(exc.detail))
    return _redirect(f"/entries/{entry_id}?done=reverify")


@router.post("/entries/{entry_id}/retract", response_class=HTMLResponse)
async def retract_entry(entry_id: int, request: Request, session: SessionDep) -> Response:
    """An admin withdraws an entry from the board, saying why (audited by the service)."""
    viewer, form, refused = await _posted(request, session)
    if refused is not None:
        return refused
    if viewer.principal is None:
        return _sign_in_first(request, viewer)
    reason = form.get("reason")
    reason = reason.strip() if isinstance(reason, str) else ""
    if not reason or len(reason) > 2000:
        return _error_page(
            request, viewer, 422, "Reason needed", "reason: say in 1 to 2000 characters why it is retracted"
        )
    try:
        retract(session, viewer.principal.user, entry_id, reason)
    except DomainError as exc:
        session.rollback()
        return _error_page(request, viewer, exc.status, "Not possible", _detail_text(exc.detail))
    return _redirect(f"/entries/{entry_id}?done=retracted")


@router.get("/progression", response_class=HTMLResponse)
def progression_page(request: Request, session: SessionDep, track: str = DEFAULT_TRACK) -> Response:
    viewer = _viewer(request, session)
    try:
        page = _shared_page(
            session,
            viewer,
            ("progression", track, _flash_key(request)),
            lambda: _progression_html(request, session, viewer, track),
        )
    except NotFound:
        return _error_page(request, viewer, 404, "No such track", f"There is no track {track!r}.")
    return _page_response(request, page)


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
    return _render(request, "progression.html", context, viewer=viewer, forms=False)[0]


@router.get("/queue", response_class=HTMLResponse)
def queue_page(request: Request, session: SessionDep, poll_ms: int = QUEUE_POLL_MS) -> HTMLResponse:
    """The queue; its script polls ``/api/queue`` every ``poll_ms`` (250 ms .. 1 min)."""

    viewer = _viewer(request, session)
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
    return _page(request, "queue.html", context, viewer=viewer, forms=False)


@router.get("/about", response_class=HTMLResponse)
def about_page(request: Request, session: SessionDep) -> HTMLResponse:

    viewer = _viewer(request, session)
    context = {
        "title": "Rules",
        "nav": "about",
        "json_twin": "/api/tracks",
        "tracks": list_tracks(session),
        "prices": list_prices(session),
    }
    return _page(request, "about.html", context, viewer=viewer, forms=False)


# ---------------------------------------------------------------------------- sign in and submit


def _submit_context(**extra: Any) -> dict[str, Any]:
    return {"title": "Submit", "nav": "submit", "errors": [], "body": "", "login_error": None, **extra}


@router.get("/submit", response_class=HTMLResponse)
def submit_page(request: Request, session: SessionDep) -> HTMLResponse:
    return _page(request, "submit.html", _submit_context(), viewer=_viewer(request, session))


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, session: SessionDep) -> Response:
    _, form, refused = await _posted(request, session)
    if refused is not None:
        return refused
    token = form.get("token")
    token = token.strip() if isinstance(token, str) else ""
    try:
        authenticate_principal(session, token)
    except Unauthorized as exc:
        context = _submit_context(login_error=f"token: {_detail_text(exc.detail)}")
        return _page(request, "submit.html", context, viewer=Viewer(None), status_code=401)
    response = _redirect("/submit?done=signed-in")
    response.set_cookie(
        security.SESSION_COOKIE,
        security.sign(token, secret=_secret(request), purpose="session"),
        max_age=security.SESSION_MAX_AGE_S,
        httponly=True,
        samesite="lax",
        secure=_secure(request),
        path="/",
    )
    # a new CSRF nonce on sign-in, so a token planted before sign-in is useless after it
    response.delete_cookie(security.CSRF_COOKIE, path="/")
    return response


@router.post("/logout", response_class=HTMLResponse)
async def logout(request: Request, session: SessionDep) -> Response:
    _, _, refused = await _posted(request, session)
    if refused is not None:
        return refused
    response = _redirect("/submit?done=signed-out")
    response.delete_cookie(security.SESSION_COOKIE, path="/")
    response.delete_cookie(security.CSRF_COOKIE, path="/")
    return response


def _detail_text(detail: Any) -> str:
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        return "; ".join(
            f"{d.get('field') or 'body'}: {d.get('msg')}" if isinstance(d, dict) else str(d) for d in detail
        )
    return str(detail)


def _errors_of(exc: Exception) -> list[dict[str, str]]:
    """Validation failures as ``{"field", "msg"}`` items, each naming the field it is about."""
    if isinstance(exc, ValidationError):
        return [{"field": ".".join(str(p) for p in e["loc"]) or "body", "msg": str(e["msg"])} for e in exc.errors()]
    if isinstance(exc, Invalid) and isinstance(exc.detail, list):
        return [{"field": str(d.get("field") or "body"), "msg": str(d.get("msg"))} for d in exc.detail]
    if isinstance(exc, DomainError):
        return [{"field": "", "msg": _detail_text(exc.detail)}]
    return [{"field": "body", "msg": str(exc)}]


@router.post("/submit", response_class=HTMLResponse)
async def submit_form(request: Request, session: SessionDep) -> Response:
    viewer, form, refused = await _posted(request, session)
    if refused is not None:
        return refused
    if viewer.principal is None:
        context = _submit_context(login_error="token: sign in with an API token before submitting")
        return _page(request, "submit.html", context, viewer=viewer, status_code=401)
    pasted = form.get("body")
    text = pasted if isinstance(pasted, str) else ""
    upload = form.get("file")
    if isinstance(upload, UploadFile) and upload.filename:
        text = (await upload.read()).decode("utf-8", errors="replace")
    text = text.strip()
    shown = text if len(text) <= 200_000 else ""  # refill the form, unless it is too large to echo

    def failed(errors: list[dict[str, str]], status_code: int = 422) -> HTMLResponse:
        session.rollback()
        return _page(
            request, "submit.html", _submit_context(errors=errors, body=shown), viewer=viewer, status_code=status_code
        )

    if not text:
        return failed([{"field": "body", "msg": "paste a submission JSON or choose a file"}])
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        return failed([{"field": "body", "msg": f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"}])
    try:
        require_role(viewer.principal.user, Role.submitter, Role.admin)
        submission = Submission.model_validate(payload)
        settings = _settings(request)
        outcome = submit(
            session,
            viewer.principal,
            submission,
            store=_store(request),
            base_url=settings.base_url,
            max_attempts=settings.max_job_attempts,
            rate_per_minute=settings.submit_rate_per_minute,
        )
    except ValidationError as exc:
        return failed(_errors_of(exc))
    except DomainError as exc:
        return failed(_errors_of(exc), status_code=exc.status)
    done = "submitted" if outcome.created else "resubmitted"
    return _redirect(f"/entries/{outcome.accepted.entry_id}?done={done}")
