"""What every page shares: the viewer behind the session cookie, rendering with the CSRF token,
safe headers, cached page bytes with ETags, error pages, redirects and the POST preamble.

Forms (sign in, sign out, submit, re-verify, retract) carry a CSRF token bound to a per-browser nonce
cookie (minted for a browser without one, ``csrf_token_for``, and set by ``respond`` and
``bytes_response``); the signed session cookie holds the API token pasted at sign-in and is never rendered."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from leaderboard.artifacts.storage import artifact_store
from leaderboard.cache import cached, peek_stale_current
from leaderboard.db import request_session
from leaderboard.deps import app_settings
from leaderboard.errors import DomainError, Invalid
from leaderboard.formatting import hms
from leaderboard.revision import current_revision
from leaderboard.twins import PAGE_TTL_S, background
from leaderboard.users.models import User
from leaderboard.users.service import Principal
from leaderboard.users.sessions import SessionReader, session_principal
from web import security
from web.pages.signed_in import CSRF_SLOT_SCOPE, ViewerPages
from web.render import minutes, pvalue, render

DEFAULT_TRACK = "gpt2-8xh100"
DEFAULT_DESCRIPTION = (
    "Time to GPT-2: the least training time (and dollars) to beat GPT-2 XL's CORE score, "
    "with every ranked number verified by rerunning the submission."
)
QUEUE_POLL_MS = 2000
NEW_NONCE_SCOPE = "speedrun.new_csrf_nonce"  # request.scope key: the nonce minted for a browser without one
MAX_CURVE_POINTS = 400
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)

# Messages after a redirect, by key: nothing a user typed is ever reflected through the URL.
FLASHES = {
    "reverify": ("ok", "Re-verification requested: a new job is in the queue."),
    "retracted": ("info", "Entry retracted: it is off the board and its queued jobs are cancelled."),
    "approved": ("ok", "Code approved: the entry is ranked, and the approval is in the audit log."),
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


# the pages read what the app's lifespan built the same way the API's dependencies do
settings_of = app_settings
store_of = artifact_store


def secret_of(request: Request) -> str:
    settings = settings_of(request)
    return str(settings.secret_key or settings.resolved_secret_key())


def viewer_of(request: Request, session: Session) -> Viewer:
    # the cookie holds a random session id (signed); the server-side session says who it is, and
    # ends on sign-out, token revocation or a disabled user: a replayed cookie signs in no one
    return Viewer(session_principal(session, session_id_of(request)))


def session_id_of(request: Request) -> str | None:
    """The session id in this browser's (signed) session cookie; None when absent or forged."""
    signed = request.cookies.get(security.SESSION_COOKIE)
    if not signed:
        return None
    return security.unsign(signed, secret=secret_of(request), purpose="session", max_age_s=security.SESSION_MAX_AGE_S)


def is_secure(request: Request) -> bool:
    """Cookies are ``Secure`` when the site's public URL is https, whatever a proxy in front says."""
    return request.url.scheme == "https" or bool(settings_of(request).https)


def absolute_url(request: Request, path: str) -> str:
    """``path`` on this site as an absolute URL (the configured base URL, else the request's)."""
    base = str(settings_of(request).base_url or "").rstrip("/") or str(request.base_url).rstrip("/")
    return base + path


def render_page(
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
    html = render_html(request, template, context, viewer=viewer, forms=forms)
    return respond(request, html, status_code=status_code)


def render_html(request: Request, template: str, context: dict[str, Any], *, viewer: Viewer, forms: bool) -> str:
    """The page's HTML; with forms, or signed in, it carries this browser's CSRF token
    (``csrf_token_for``: a nonce minted here goes out with the response)."""
    token = ""
    slot = request.scope.get(CSRF_SLOT_SCOPE)
    if slot is not None:  # rendered for the signed-in pages' cache: each answer fills in its token
        token = str(slot)
    elif forms or viewer.user is not None:  # a signed-in page has the sign-out form in its header
        token = csrf_token_for(request)
    flash = FLASHES.get(request.query_params.get("done", ""))
    shared = {
        "user": viewer.user,
        "csrf_token": token,
        "flash": None if flash is None else {"kind": flash[0], "text": flash[1]},
        "flash_key": flash_key(request),
        "job_view": job_view,
        "json_twin": None,
        "page_description": DEFAULT_DESCRIPTION,
        "og_image": None,
        "absolute": lambda path: absolute_url(request, path),
        "path": request.url.path,
    }
    return render(template, {**shared, **context})


def respond(request: Request, html: str, *, status_code: int = 200) -> HTMLResponse:
    response = HTMLResponse(html, status_code=status_code)
    set_new_nonce(request, response)
    harden(response)
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


def shared_page(
    request: Request,
    session: Session,
    viewer: Viewer,
    key: tuple[Any, ...],
    compute: Callable[[], str],
    ttl: float | None = PAGE_TTL_S,
) -> PageBytes:
    """Pages without forms look the same to every signed-out visitor: those go through the board's
    read cache (keyed on the board revision, so a change shows at once) as encoded bytes with
    their ETag, so a hit renders, encodes and hashes nothing. A signed-in viewer's page goes
    through the signed-in pages' cache (``web.pages.signed_in``), keyed on who they are as well,
    with this browser's CSRF token spliced in. ``key``: the page's parameters (``page_key`` adds
    what every page renders from the request)."""
    user = viewer.user
    if user is not None:
        return _signed_in_page(request, session, user, page_key(request, key), compute, ttl)
    return cached(session, ("web", *page_key(request, key)), lambda: PageBytes.of(compute()), ttl)


def page_key(request: Request, key: tuple[Any, ...]) -> tuple[Any, ...]:
    """A page's cache key: its parameters (``key``), and what ``render_html`` takes from the request
    for every page: the path (``og:url``; ``/`` and ``/tracks/gpt2-8xh100`` are one board) and the flash."""
    return (request.url.path, flash_key(request), *key)


def csrf_of(request: Request) -> str | None:
    """The forms' CSRF token for this browser's nonce cookie; None when it has no usable one."""
    nonce = request.cookies.get(security.CSRF_COOKIE)
    if not nonce or len(nonce) > 100:
        return None
    return security.csrf_token(nonce, secret=secret_of(request))


def csrf_token_for(request: Request) -> str:
    """The forms' CSRF token for this browser: its nonce cookie's, else that of a nonce minted once
    for this request, which the response sets as the browser's nonce cookie (``set_new_nonce``)."""
    token = csrf_of(request)
    if token is not None:
        return token
    nonce = request.scope.get(NEW_NONCE_SCOPE)
    if nonce is None:
        nonce = request.scope[NEW_NONCE_SCOPE] = security.new_csrf_nonce()
    return security.csrf_token(str(nonce), secret=secret_of(request))


def set_new_nonce(request: Request, response: Response) -> None:
    """Set the nonce ``csrf_token_for`` minted for this request, if it did, as the browser's cookie."""
    nonce = request.scope.get(NEW_NONCE_SCOPE)
    if nonce is not None:
        response.set_cookie(
            security.CSRF_COOKIE, str(nonce), httponly=True, samesite="lax", secure=is_secure(request), path="/"
        )


def _viewer_pages(request: Request) -> ViewerPages | None:
    pages = getattr(request.app.state, "viewer_pages", None)
    return pages if isinstance(pages, ViewerPages) and pages.cache.enabled else None


def _signed_in_page(
    request: Request,
    session: Session,
    user: User,
    key: tuple[Any, ...],
    compute: Callable[[], str],
    ttl: float | None,
) -> PageBytes:
    """``compute()`` for a signed-in viewer, through the signed-in pages' cache (see ``shared_page``).
    Made per request, with this browser's token, without the cache or in a transaction that wrote.
    A browser without a nonce cookie gets the cached page with the token of the nonce minted for it."""
    pages = _viewer_pages(request)
    if pages is None or session.in_nested_transaction() or session.new or session.dirty:
        return PageBytes.of(compute())
    token = csrf_token_for(request)
    slot = pages.slot

    def with_slot() -> PageBytes:
        request.scope[CSRF_SLOT_SCOPE] = slot
        try:
            html = compute()
        finally:
            del request.scope[CSRF_SLOT_SCOPE]
        if token in html:  # rendered outside the slot (eagerly): this browser's own, never shared
            raise _OwnPage(html)
        return PageBytes.of(html)

    vkey = pages.key(user.id, user.name, str(user.role), key)
    try:
        page = pages.cache.get_or_compute(vkey, current_revision(session), with_slot, ttl)
    except _OwnPage as own:
        return PageBytes.of(own.html)
    return PageBytes(*pages.splice(page.body, page.etag, token))


class _OwnPage(Exception):
    """A signed-in page that holds its browser's CSRF token where the slot should be."""

    def __init__(self, html: str) -> None:
        super().__init__("page rendered with its CSRF token, not the slot")
        self.html = html


async def cached_route(
    request: Request,
    key: tuple[Any, ...] | None,
    slow: Callable[[Request, Session], Response],
    ttl: float | None = PAGE_TTL_S,
) -> Response:
    """A signed-out visitor's page straight from the read cache on the event loop when it holds
    the page under ``key`` (its parameters, as ``slow`` gives them to ``shared_page``) at the
    current revision (one indexed read: no Session, no worker thread); else ``slow`` in a worker
    thread, in its own transaction, committed before the response."""
    if key is not None and security.SESSION_COOKIE not in request.cookies:
        cache_key = ("web", *page_key(request, key))
        page, refresh = peek_stale_current(request.app.state, cache_key, ttl)
        if isinstance(page, PageBytes):
            if refresh:  # past its time to live: served as is while one refresh runs
                background(request, cache_key, lambda: _in_session(request, slow))
            return bytes_response(request, page)
    elif key is not None:
        signed_in = _signed_in_hit(request, page_key(request, key), slow, ttl)
        if signed_in is not None:
            return bytes_response(request, signed_in)
    return await run_in_threadpool(_in_session, request, slow)


def _signed_in_hit(
    request: Request, key: tuple[Any, ...], slow: Callable[[Request, Session], Response], ttl: float | None
) -> PageBytes | None:
    """A signed-in viewer's page from the signed-in pages' cache, on the event loop: the session
    is looked up (one indexed read: a signed-out session, a revoked token or a disabled user
    gets None and the ordinary path), then the revision; None when anything is missing. The
    token spliced in is this browser's (of a nonce minted for it when it has none)."""
    state = request.app.state
    pages = _viewer_pages(request)
    sessions = getattr(state, "session_reader", None)
    reader = getattr(state, "revision_reader", None)
    if pages is None or not isinstance(sessions, SessionReader) or reader is None:
        return None
    if not sessions.healthy() or not reader.healthy():
        return None
    sid = session_id_of(request)
    if sid is None:
        return None
    try:
        who = sessions.read(sid)
        if who is None:
            return None
        revision = reader.read()
    except SQLAlchemyError:
        return None
    vkey: Hashable = pages.key(who.id, who.name, who.role, key)
    page, refresh = pages.cache.peek_stale(vkey, revision, ttl)
    if not isinstance(page, PageBytes):
        return None
    if refresh:  # past its time to live: served as is while one refresh runs
        background(request, vkey, lambda: _in_session(request, slow), cache=pages.cache)
    return PageBytes(*pages.splice(page.body, page.etag, csrf_token_for(request)))


def _in_session(request: Request, slow: Callable[[Request, Session], Response]) -> Response:
    with request_session(request) as session:
        return slow(request, session)


def bytes_response(request: Request, page: PageBytes) -> Response:
    """``page`` as a 200, or a 304 when the browser already holds it (``If-None-Match``); with the
    nonce cookie its token belongs to when that was minted for this request."""
    if NEW_NONCE_SCOPE in request.scope:  # a new token in the page: never a 304, never stored
        response = Response(page.body, media_type="text/html; charset=utf-8", headers={"etag": page.etag})
        set_new_nonce(request, response)
        harden(response)
        return response
    headers = {**PAGE_HEADERS, "etag": page.etag}
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None and page.etag in (t.strip() for t in if_none_match.split(",")):
        return Response(status_code=304, headers=headers)
    return Response(page.body, media_type="text/html; charset=utf-8", headers=headers)


# the headers of a page that sets no cookie (what ``harden`` gives it), built once
PAGE_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-cache",
}


def harden(response: Response) -> None:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store" if "set-cookie" in response.headers else "no-cache"


def error_page(request: Request, viewer: Viewer, status_code: int, title: str, message: str) -> HTMLResponse:
    context = {"title": title, "status_code": status_code, "message": message, "nav": ""}
    return render_page(request, "error.html", context, viewer=viewer, status_code=status_code, forms=False)


def redirect(url: str) -> RedirectResponse:
    response = RedirectResponse(url, status_code=303)
    harden(response)
    return response


async def read_form(request: Request) -> dict[str, Any]:
    limit = int(settings_of(request).max_request_bytes)
    form = await request.form(max_files=1, max_fields=20, max_part_size=limit)
    return dict(form.items())


def form_csrf_ok(request: Request, form: dict[str, Any]) -> bool:
    token = form.get(security.CSRF_FIELD)
    return security.csrf_ok(
        request.cookies.get(security.CSRF_COOKIE),
        token if isinstance(token, str) else None,
        secret=secret_of(request),
    )


def csrf_failed(request: Request, viewer: Viewer) -> HTMLResponse:
    return error_page(
        request,
        viewer,
        403,
        "Form expired",
        "This form's security token did not match (the page was open too long, or cookies are blocked). "
        "Reload the page and try again.",
    )


async def posted(request: Request, session: Session) -> tuple[Viewer, dict[str, Any], Response | None]:
    """The viewer and form of a POST, and the page refusing it when its CSRF token does not match."""
    viewer = viewer_of(request, session)
    form = await read_form(request)
    return viewer, form, None if form_csrf_ok(request, form) else csrf_failed(request, viewer)


def sign_in_first(request: Request, viewer: Viewer) -> HTMLResponse:
    return error_page(request, viewer, 401, "Sign in first", "Sign in with your API token on the submit page.")


def flash_key(request: Request) -> str:
    """The flash a page shows (part of a cached page's key: it is in the page's context)."""
    done = request.query_params.get("done", "")
    return done if done in FLASHES else ""


def detail_text(detail: Any) -> str:
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        return "; ".join(
            f"{d.get('field') or 'body'}: {d.get('msg')}" if isinstance(d, dict) else str(d) for d in detail
        )
    return str(detail)


def errors_of(exc: Exception) -> list[dict[str, str]]:
    """Validation failures as ``{"field", "msg"}`` items, each naming the field it is about."""
    if isinstance(exc, ValidationError):
        return [{"field": ".".join(str(p) for p in e["loc"]) or "body", "msg": str(e["msg"])} for e in exc.errors()]
    if isinstance(exc, Invalid) and isinstance(exc.detail, list):
        return [{"field": str(d.get("field") or "body"), "msg": str(d.get("msg"))} for d in exc.detail]
    if isinstance(exc, DomainError):
        return [{"field": "", "msg": detail_text(exc.detail)}]
    return [{"field": "body", "msg": str(exc)}]


def progress_percent(progress: dict[str, Any] | None) -> int:
    """How far a job is: finished runs plus the running one's share of steps, 0..100."""
    if not progress:
        return 0
    runs = max(1, int(progress.get("runs") or 1))
    steps = progress.get("steps") or 0
    within = min(1.0, (progress.get("step") or 0) / steps) if steps else 0.0
    return max(0, min(100, round(100 * (int(progress.get("run_index") or 0) + within) / runs)))


# what a job's state cell says: the verdict of a finished job decides its colour, never the job state
VERDICT_TEXT = {
    "verified": "verified",
    "awaiting_review": "verified · awaiting review",
    "failed": "failed",
    "inconclusive": "inconclusive",
    "error": "error",
}


def job_view(job: Any) -> dict[str, Any]:
    """How a job (a ``JobPublic``) is shown: its state, its verdict with p, its bar and the line
    under it. Mirrored by static/queue.js for the live redraw (same words, same numbers)."""
    status = str(job.status)
    p = job.progress or {}
    verdict = job.verdict
    finished = status in ("succeeded", "failed", "cancelled")
    percent = 100 if status == "succeeded" else progress_percent(p)
    parts: list[str] = []
    phase = getattr(job, "phase", None)
    if status == "running" and (p or phase):
        parts.append(phase or f"run {int(p.get('run_index') or 0) + 1}/{p.get('runs') or job.runs}")
        if p.get("step") is not None and p.get("steps") and not (phase or "").startswith("scoring"):
            parts.append(f"step {p['step']}/{p['steps']}")
        eta = getattr(job, "eta_seconds", None)
        if eta is not None:
            parts.append(f"ETA {minutes(float(eta))} for all {p.get('runs') or job.runs} runs")
        message = str(p.get("message") or "")
        if message and not message.startswith("run "):
            parts.append(message)
    elif status == "queued" and getattr(job, "position", None) is not None:
        parts.append(f"#{job.position} in line on {job.track}")
        if job.expected_start_at is not None:
            parts.append(f"expected start {job.expected_start_at:%Y-%m-%d %H:%M} UTC")
    elif finished and job.duration_seconds is not None:
        parts.append(("took " if status == "succeeded" else "stopped after ") + hms(job.duration_seconds, seconds=True))
    verdict_text = None
    if verdict:
        verdict_text = VERDICT_TEXT.get(verdict, verdict)
        if job.verdict_p_value is not None:
            verdict_text += f" (p = {pvalue(job.verdict_p_value)})"
    return {
        "state": "finished" if status == "succeeded" else status,
        "verdict": verdict,
        "verdict_text": verdict_text,
        "percent": percent,
        "bar": status in ("running", "succeeded"),
        "line": " · ".join(parts),
    }
