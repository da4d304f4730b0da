"""Signed-out pages come from the read cache, and a change to the board shows at once anyway."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SECRET = "web-cache-tests-secret-key"
pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from leaderboard.settings import Settings
    from speedrun.site import create_app

    home: Path = tmp_path_factory.mktemp("cached-site")
    app = create_app(Settings(home=home, secret_key=SECRET, cache_ttl_seconds=3600))
    with TestClient(app) as c:
        yield c


def rows(html: str) -> list[str]:
    return re.findall(r'data-entry-id="(\d+)"', html)


def test_a_submission_shows_on_the_cached_board_at_once(client: Any, make_submission: Any) -> None:
    from leaderboard.users.models import Role
    from leaderboard.users.schemas import UserCreate
    from leaderboard.users.service import create_user

    cache = client.app.state.cache
    before = client.get("/tracks/gpt2-8xh100?status=all").text
    hits = cache.hits
    assert client.get("/tracks/gpt2-8xh100?status=all").text == before
    assert cache.hits > hits  # the second view came from the cache

    with client.app.state.sessionmaker() as session:
        token = create_user(session, UserCreate(name="cache-submitter", role=Role.submitter)).token
        session.commit()
    body = make_submission("fresh on the board", "cache-test-0001")
    r = client.post("/api/submissions", json=body, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 201, r.text
    after = client.get("/tracks/gpt2-8xh100?status=all").text
    assert len(rows(after)) == len(rows(before)) + 1
    assert "fresh on the board" in after


def test_signed_in_pages_are_not_the_cached_anonymous_ones(client: Any) -> None:
    from leaderboard.users.models import Role
    from leaderboard.users.schemas import UserCreate
    from leaderboard.users.service import create_user

    anonymous = client.get("/").text
    assert "sign in</a>" in anonymous
    with client.app.state.sessionmaker() as session:
        token = create_user(session, UserCreate(name="cache-viewer", role=Role.submitter)).token
        session.commit()
    page = client.get("/submit").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf is not None
    assert (
        client.post("/login", data={"token": token, "csrf_token": csrf.group(1)}, follow_redirects=False).status_code
        == 303
    )
    signed_in = client.get("/").text
    assert "cache-viewer" in signed_in and "sign in</a>" not in signed_in
    client.cookies.clear()
    assert client.get("/").text == anonymous


def test_a_stale_value_is_served_while_one_refresh_runs() -> None:
    """Past its time to live a value of the current revision is still served, and exactly one
    caller is told to refresh it (stale-while-revalidate), until that refresh reports back."""
    import time

    from leaderboard.cache import ReadCache

    cache = ReadCache(ttl_seconds=0.01)
    assert cache.get_or_compute("k", 1, lambda: "v1") == "v1"
    assert cache.peek_stale("k", 2) == (None, False)  # another revision: nothing to serve
    time.sleep(0.05)
    assert cache.peek("k", 1) is None  # expired for the strict reader
    assert cache.peek_stale("k", 1) == ("v1", True)  # the first caller refreshes
    assert cache.peek_stale("k", 1) == ("v1", False)  # the others are served the old value
    assert cache.get_or_compute("k", 1, lambda: "v2") == "v2"  # the refresh
    cache.refreshed("k")
    assert cache.peek_stale("k", 1) == ("v2", False)
    # a caller may keep a value longer than the cache's own time to live, never shorter
    assert cache.peek_stale("k", 1, ttl=3600) == ("v2", False)
    time.sleep(0.05)
    assert cache.peek_stale("k", 1, ttl=3600) == ("v2", False)
    assert cache.peek_stale("k", 1, ttl=0.0) == ("v2", True)


def test_background_refreshes_run_one_at_a_time() -> None:
    """Many keys past their time to live at once (a crawler warmed 50 entry pages together): their
    refreshes run one after another in worker threads, each still served stale until its own is over."""
    import asyncio
    import threading
    import time

    from fastapi import FastAPI
    from starlette.requests import Request

    from leaderboard import twins
    from leaderboard.cache import ReadCache

    app = FastAPI()
    app.state.cache = ReadCache(ttl_seconds=0.01)
    request = Request({"type": "http", "app": app, "method": "GET", "path": "/", "headers": []})
    for i in range(8):
        app.state.cache.get_or_compute(("page", i), 1, lambda: "old")
    time.sleep(0.05)
    lock, running, most, done = threading.Lock(), [0], [0], []

    def refresh(i: int) -> None:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.02)  # the page's work, off the event loop
        app.state.cache.get_or_compute(("page", i), 1, lambda: "new")
        with lock:
            running[0] -= 1
            done.append(i)

    async def expire_all() -> None:
        for i in range(8):
            assert app.state.cache.peek_stale(("page", i), 1) == ("old", True)
            twins.background(request, ("page", i), lambda i=i: refresh(i))
        while twins._TASKS:
            await asyncio.sleep(0.01)

    # a loop of its own in a thread of its own (a browser test may have left one running on this thread)
    runner = threading.Thread(target=lambda: asyncio.run(expire_all()))
    runner.start()
    runner.join(timeout=30)
    assert sorted(done) == list(range(8)) and most[0] == twins.REFRESHES_AT_ONCE == 1
    assert all(app.state.cache.peek_stale(("page", i), 1, ttl=60) == ("new", False) for i in range(8))


def test_the_progression_twin_lists_the_points_the_page_draws(client: Any) -> None:
    records = client.get("/api/tracks/gpt2-8xh100/progression").json()
    every = client.get("/api/tracks/gpt2-8xh100/progression", params={"points": "all"}).json()
    assert len(every["points"]) >= len(records["points"]) > 0
    page = client.get("/progression?track=gpt2-8xh100").text
    for p in records["points"]:
        assert f'href="/entries/{p["entry_id"]}"' in page
    assert client.get("/api/tracks/gpt2-8xh100/progression", params={"points": "some"}).status_code == 422
    # the cheap read gives the same points as the full progression filtered the same way
    from leaderboard.entries.compare import records_by_line
    from leaderboard.entries.schemas import ProgressionPointPublic

    for slug in ("gpt2-8xh100", "gpt2-cost"):
        full = [
            ProgressionPointPublic.model_validate(p)
            for p in client.get(f"/api/tracks/{slug}/progression", params={"points": "all"}).json()["points"]
        ]
        expected = (
            {p.entry_id for p in records_by_line(full)}
            | {p.entry_id for p in records_by_line(full, lambda p: p.cost_usd)}
            | {p.entry_id for p in full if p.is_record}
        )
        fast = client.get(f"/api/tracks/{slug}/progression").json()
        assert {p["entry_id"] for p in fast["points"]} == expected
        assert [r["entry_id"] for r in fast["records"]] == [p.entry_id for p in full if p.is_record]


def test_the_queue_costs_the_same_queries_for_3_jobs_as_for_30(client: Any) -> None:
    """The queue (page and twin) reads jobs, entries, tracks, counts and verdicts in a fixed number
    of queries: never one per job."""
    from sqlalchemy import event, select

    from leaderboard.entries.models import Entry, Verification
    from leaderboard.entries.queue import queue_listing
    from leaderboard.jobs.models import Job, JobStatus

    app = client.app
    engine = app.state.engine

    def add_jobs(n: int) -> None:
        with app.state.sessionmaker() as session:
            entry = session.scalars(select(Entry).limit(1)).one()
            for _ in range(n):
                job = Job(entry_id=entry.id, track_id=entry.track_id, status=JobStatus.succeeded, reason="t", runs=3)
                session.add(job)
                session.flush()
                session.add(
                    Verification(
                        entry_id=entry.id, job_id=job.id, verifier_id="w", reported_verdict="failed",
                        verdict="failed", reasons=[], report={},
                    )
                )  # fmt: skip
            session.commit()

    def queries() -> int:
        app.state.cache.clear()  # the jobs above were written without a revision bump: compute afresh
        seen: list[str] = []

        def count(*args: Any) -> None:
            seen.append(str(args[2]))

        event.listen(engine, "before_cursor_execute", count)
        try:
            with app.state.sessionmaker() as session:
                listing = queue_listing(session)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        assert all(j.verdict == "failed" for j in listing.jobs if j.reason == "t")
        return len(seen)

    add_jobs(3)
    few = queries()
    add_jobs(27)
    assert queries() == few


# ---------------------------------------------------------------------------- signed-in fast path


def _new_user(client: Any, name: str, role: str) -> tuple[str, int]:
    from leaderboard.users.models import Role
    from leaderboard.users.schemas import UserCreate
    from leaderboard.users.service import create_user

    with client.app.state.sessionmaker() as session:
        issued = create_user(session, UserCreate(name=name, role=Role(role)))
        session.commit()
    return issued.token, issued.token_id


def _sign_in(client: Any, token: str) -> dict[str, str]:
    """A fresh browser signed in with ``token``: its cookies (session and CSRF nonce)."""
    client.cookies.clear()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/submit").text)
    assert csrf is not None
    r = client.post("/login", data={"token": token, "csrf_token": csrf.group(1)}, follow_redirects=False)
    assert r.status_code == 303
    client.get(r.headers["location"])  # where the browser lands: sign-in gave it a new CSRF nonce
    return dict(client.cookies)


def _as(client: Any, cookies: dict[str, str]) -> None:
    client.cookies.clear()
    client.cookies.update(cookies)


def _tokens(html: str) -> set[str]:
    return set(re.findall(r'name="csrf_token" value="([^"]+)"', html))


@pytest.fixture
def slow_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths that took the ordinary path (a worker thread and a Session), not the fast one."""
    from web.pages import common

    calls: list[str] = []
    real = common._in_session

    def counted(request: Any, slow: Any) -> Any:
        calls.append(request.url.path)
        return real(request, slow)

    monkeypatch.setattr(common, "_in_session", counted)
    return calls


def test_two_signed_in_viewers_get_their_own_pages_from_the_fast_path(
    client: Any, make_submission: Any, slow_calls: list[str]
) -> None:
    from web import security

    admin_token, _ = _new_user(client, "fast-admin", "admin")
    reader_token, _ = _new_user(client, "fast-reader", "submitter")
    r = client.post(
        "/api/submissions",
        json=make_submission("fast path entry", "fast-path-0001"),
        headers={"Authorization": f"Bearer {reader_token}"},
    )
    assert r.status_code == 201, r.text
    entry = f"/entries/{r.json()['entry_id']}"
    admin, reader, reader_2 = (
        _sign_in(client, admin_token),
        _sign_in(client, reader_token),
        _sign_in(client, reader_token),
    )
    assert reader[security.CSRF_COOKIE] != reader_2[security.CSRF_COOKIE]  # two browsers of one user
    try:
        for path in ("/", entry, "/me"):
            for cookies in (admin, reader, reader_2):  # fill the signed-in pages' cache
                _as(client, cookies)
                assert client.get(path).status_code == 200
            slow_calls.clear()
            seen = {}
            for cookies, name, other in (
                (admin, "fast-admin", "fast-reader"),
                (reader, "fast-reader", "fast-admin"),
                (reader_2, "fast-reader", "fast-admin"),
            ):
                _as(client, cookies)
                html = client.get(path).text
                assert f"<strong>{name}</strong>" in html and f"<strong>{other}</strong>" not in html, path
                # this browser's own CSRF token in every form, and no slot left
                mine = security.csrf_token(cookies[security.CSRF_COOKIE], secret=SECRET)
                assert _tokens(html) == {mine}, path
                assert client.app.state.viewer_pages.slot not in html
                seen[cookies[security.CSRF_COOKIE]] = html
            assert slow_calls == [], f"{path} was not answered from the fast path: {slow_calls}"
            if path == entry:  # the admin's page has the retract form, the owner's page has not
                assert f'action="{entry}/retract"' in seen[admin[security.CSRF_COOKIE]]
                assert f'action="{entry}/retract"' not in seen[reader[security.CSRF_COOKIE]]
        # the token a cached page carries works: signing out with it ends that browser's session
        _as(client, reader_2)
        token = _tokens(client.get("/").text).pop()
        assert client.post("/logout", data={"csrf_token": token}, follow_redirects=False).status_code == 303
        _as(client, reader_2)  # a copy of the cookies, replayed
        assert "fast-reader" not in client.get("/").text
        _as(client, reader)  # the user's other browser is still signed in
        assert "<strong>fast-reader</strong>" in client.get("/").text
    finally:
        client.cookies.clear()


@pytest.mark.parametrize("end", ["revoke", "disable", "sign-out"])
def test_an_ended_session_is_refused_on_the_next_request(client: Any, end: str, slow_calls: list[str]) -> None:
    from leaderboard.users.service import revoke_token, set_disabled
    from leaderboard.users.sessions import end_session
    from web import security

    name = f"fast-ended-{end}"
    token, token_id = _new_user(client, name, "submitter")
    cookies = _sign_in(client, token)
    try:
        for path in ("/", "/me", "/about"):
            client.get(path)
        slow_calls.clear()
        assert f"<strong>{name}</strong>" in client.get("/").text
        assert f"<strong>{name}</strong>" in client.get("/me").text
        assert slow_calls == []  # both from the fast path
        with client.app.state.sessionmaker() as session:
            if end == "revoke":
                revoke_token(session, token_id, actor=None)
            elif end == "disable":
                set_disabled(session, name, True, actor=None)
            else:
                sid = security.unsign(
                    cookies[security.SESSION_COOKIE], secret=SECRET, purpose="session", max_age_s=3600
                )
                assert end_session(session, sid)
            session.commit()
        _as(client, cookies)
        board = client.get("/").text
        assert name not in board and "sign in</a>" in board
        assert name not in client.get("/about").text
        assert client.get("/me").status_code == 401
    finally:
        client.cookies.clear()
