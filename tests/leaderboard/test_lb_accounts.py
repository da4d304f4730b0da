"""Accounts under attack (SQLite and PostgreSQL): revoked tokens and disabled users are refused
on the next request (admin API and CLI, audited); the web session cookie is a server-side
session id, never the API token, and dies with sign-out or revocation; cookies are Secure and
HSTS is sent when the site's public URL is https, whatever the proxy says."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from lb_support import Api, Users, make_api
from sqlalchemy import select
from sqlalchemy.orm import Session

from leaderboard.app import open_database
from leaderboard.audit.models import AuditEvent
from leaderboard.db import session_scope
from leaderboard.errors import Unauthorized
from leaderboard.settings import Settings
from leaderboard.users.models import ApiToken, WebSession
from leaderboard.users.service import authenticate
from speedrun.cli import main


def _me(api: Api, token: str) -> int:
    return api.get("/api/me", token=token).status_code


def _token_id(session: Session, user_id: int) -> int:
    found = session.scalar(select(ApiToken.id).where(ApiToken.user_id == user_id))
    assert found is not None
    return found


def test_a_revoked_token_is_refused_on_the_next_request(api: Api, users: Users, session: Session) -> None:
    assert _me(api, users.alice) == 200
    token_id = _token_id(session, users.ids["alice"])
    assert api.post(f"/api/admin/tokens/{token_id}/revoke", json={}, token=users.bob).status_code == 403
    r = api.post(f"/api/admin/tokens/{token_id}/revoke", json={"reason": "leaked"}, token=users.admin)
    assert r.status_code == 200 and r.json()["revoked_at"] is not None
    refused = api.get("/api/me", token=users.alice)
    assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
    assert api.post("/api/submissions", json={}, token=users.alice).status_code == 401
    listed = api.get("/api/admin/users/t-alice/tokens", token=users.admin).json()
    assert listed[0]["revoked_at"] is not None and "token" not in listed[0]
    event = api.get("/api/admin/audit", token=users.admin).json()[0]
    assert event["action"] == "token.revoke" and event["detail"]["reason"] == "leaked"


def test_a_disabled_user_is_refused_with_every_token_until_enabled(api: Api, users: Users) -> None:
    r = api.post("/api/admin/users/t-bob/disable", json={"reason": "abuse"}, token=users.admin)
    assert r.status_code == 200 and r.json()["disabled_at"] is not None
    assert _me(api, users.bob) == 401
    assert api.post("/api/admin/users/t-admin/disable", json={}, token=users.admin).status_code == 409  # not oneself
    assert api.post("/api/admin/users/t-bob/enable", json={}, token=users.admin).status_code == 200
    assert _me(api, users.bob) == 200
    actions = [e["action"] for e in api.get("/api/admin/audit", token=users.admin).json()[:2]]
    assert actions == ["user.enable", "user.disable"]


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_revokes_tokens_and_disables_users_audited(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = ("--home", str(tmp_path))
    token = _cli(capsys, "admin", "user", "create", "eve", *home)[1].strip()
    other = _cli(capsys, "admin", "user", "create", "ann", *home)[1].strip()
    code, out, _ = _cli(capsys, "admin", "token", "list", "eve", *home)
    assert code == 0 and token not in out
    token_id = re.search(r'"id": (\d+)', out)
    assert token_id is not None
    assert _cli(capsys, "admin", "token", "revoke", token_id.group(1), "--reason", "leaked", *home)[0] == 0
    assert _cli(capsys, "admin", "user", "disable", "ann", *home)[0] == 0
    code, _, err = _cli(capsys, "admin", "token", "revoke", "999", *home)
    assert code == 2 and "no API token 999" in err
    db = open_database(Settings(home=tmp_path, secret_key="x"))
    with session_scope(db.sessionmaker) as s:
        for revoked in (token, other):
            with pytest.raises(Unauthorized):
                authenticate(s, revoked)
        actions = list(s.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))
        assert actions[-2:] == ["token.revoke", "user.disable"]
    db.close()


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def _sign_in(api: Api, token: str) -> str:
    """Sign in through the form; returns the session cookie's value as the browser holds it."""
    page = api.get("/submit")
    r = api.post("/login", data={"token": token, "csrf_token": _csrf(page.text)})
    assert r.status_code == 303, r.text
    found = re.search(r"speedrun_session=([^;]+)", r.headers["set-cookie"])
    assert found is not None
    return found.group(1)


def _signed_in_as(api: Api, cookie: str) -> bool:
    html = api.get("/submit", headers={"Cookie": f"speedrun_session={cookie}"}).text.lower()
    return "signed in as" in html


def test_the_session_cookie_is_a_server_side_session_not_the_token(api: Api, users: Users, session: Session) -> None:
    cookie = _sign_in(api, users.alice)
    assert users.alice not in cookie and users.alice.encode().hex() not in cookie
    assert session.scalar(select(WebSession.id).where(WebSession.user_id == users.ids["alice"])) is not None
    assert _signed_in_as(api, cookie)
    page = api.get("/submit")  # the browser's own cookie jar: session and CSRF cookies
    r = api.post("/logout", data={"csrf_token": _csrf(page.text)})
    assert r.status_code == 303
    assert not _signed_in_as(api, cookie)  # the stolen copy of the cookie, replayed after sign-out


def test_revoking_the_token_ends_its_web_sessions(api: Api, users: Users, session: Session) -> None:
    cookie = _sign_in(api, users.bob)
    assert _signed_in_as(api, cookie)
    token_id = _token_id(session, users.ids["bob"])
    assert api.post(f"/api/admin/tokens/{token_id}/revoke", json={}, token=users.admin).status_code == 200
    assert not _signed_in_as(api, cookie)
    ended = session.scalar(select(WebSession.ended_at).where(WebSession.token_id == token_id))
    assert ended is not None


def _headers(settings: Settings, session: Session, base_url: str, **request: Any) -> Any:
    api = make_api(settings.model_copy(update={"base_url": base_url}), session)
    try:
        page = api.get("/submit", headers={"X-Forwarded-Proto": "http"})
        return page.headers
    finally:
        api.close()


def test_https_base_url_means_secure_cookies_and_hsts_behind_any_proxy(settings: Settings, session: Session) -> None:
    secure = _headers(settings, session, "https://speedrun.example")
    assert secure["strict-transport-security"].startswith("max-age=")
    assert all("Secure" in c for c in secure.get_list("set-cookie")) and secure.get_list("set-cookie")
    plain = _headers(settings, session, "http://127.0.0.1:8000")
    assert "strict-transport-security" not in plain
    assert not any("Secure" in c for c in plain.get_list("set-cookie"))
