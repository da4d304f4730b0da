"""Sign in and sign out: a server-side session is opened and ended here; its cookie holds only a
random session id (signed), never the API token."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from leaderboard.db import SessionDep
from leaderboard.errors import Unauthorized
from leaderboard.users.service import authenticate_principal
from leaderboard.users.sessions import end_session, start_session
from web import security
from web.pages.common import (
    Viewer,
    detail_text,
    is_secure,
    posted,
    redirect,
    render_page,
    secret_of,
    session_id_of,
    settings_of,
)
from web.pages.submit import submit_context

router = APIRouter(include_in_schema=False)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, session: SessionDep) -> Response:
    _, form, refused = await posted(request, session)
    if refused is not None:
        return refused
    token = form.get("token")
    token = token.strip() if isinstance(token, str) else ""
    try:
        principal = authenticate_principal(session, token)
    except Unauthorized as exc:
        context = submit_context(request, login_error=f"token: {detail_text(exc.detail)}")
        return render_page(request, "submit.html", context, viewer=Viewer(None), status_code=401)
    ttl = min(settings_of(request).session_ttl_seconds, security.SESSION_MAX_AGE_S)
    sid = start_session(session, principal, ttl_seconds=ttl)
    response = redirect("/submit?done=signed-in")
    response.set_cookie(
        security.SESSION_COOKIE,
        security.sign(sid, secret=secret_of(request), purpose="session"),
        max_age=ttl,
        httponly=True,
        samesite="lax",
        secure=is_secure(request),
        path="/",
    )
    # a new CSRF nonce on sign-in, so a token planted before sign-in is useless after it
    response.delete_cookie(security.CSRF_COOKIE, path="/")
    return response


@router.post("/logout", response_class=HTMLResponse)
async def logout(request: Request, session: SessionDep) -> Response:
    _, _, refused = await posted(request, session)
    if refused is not None:
        return refused
    end_session(session, session_id_of(request))  # a copy of the cookie is worthless from now on
    response = redirect("/submit?done=signed-out")
    response.delete_cookie(security.SESSION_COOKIE, path="/")
    response.delete_cookie(security.CSRF_COOKIE, path="/")
    return response
