"""Pre-flight at submission (docs/RULES.md): a claim whose own runs fail the track's test is refused
with 422 and its numbers; a byte-identical copy of another account's run is refused with 409 naming
the entry; the dry run answers the same and stores nothing."""

from __future__ import annotations

import json
from typing import Any

from lb_factories import run_result, submission
from lb_support import Api, Users
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from contract import protocol
from leaderboard.entries.models import Entry
from leaderboard.jobs.models import Job

PREFLIGHT = protocol.SUBMISSIONS + "/preflight"


def _body(**kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(submission(**kw).model_dump_json())
    return out


def _stored(session: Session) -> tuple[int, int]:
    return int(session.scalar(select(func.count(Entry.id))) or 0), int(session.scalar(select(func.count(Job.id))) or 0)


def test_a_claim_below_the_bar_is_refused_with_its_numbers(api: Api, users: Users, session: Session) -> None:
    before = _stored(session)
    r = api.post(protocol.SUBMISSIONS, json=_body(core=0.0246), token=users.alice)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"][0]
    assert detail["field"] == "claimed_results"
    assert "0.0246" in detail["msg"] and "bar 0.05" in detail["msg"] and "cpu-smoke" in detail["msg"]
    assert _stored(session) == before  # nothing queued, nothing stored


def test_claimed_runs_that_fail_the_t_test_are_refused_with_p(api: Api, users: Users) -> None:
    body = _body(core=0.06)
    runs = [run_result(s, core=c) for s, c in ((1, 0.051), (2, 0.09), (3, 0.049))]
    body["claimed_results"] = [json.loads(r.model_dump_json()) for r in runs]
    r = api.post(protocol.SUBMISSIONS, json=body, token=users.alice)
    assert r.status_code == 422, r.text
    msg = r.json()["detail"][0]["msg"]
    assert "p = " in msg and "needs < alpha 0.05" in msg and "mean CORE 0.0633" in msg


def test_a_copy_of_another_accounts_run_is_refused_naming_the_entry(api: Api, users: Users, session: Session) -> None:
    original = _body(title="the original", key="original-0001")
    first = api.post(protocol.SUBMISSIONS, json=original, token=users.alice)
    assert first.status_code == 201, first.text
    entry_id = first.json()["entry_id"]
    before = _stored(session)
    copy = {**original, "title": "totally mine", "idempotency_key": "copy-0001"}  # the same runs, byte for byte
    r = api.post(protocol.SUBMISSIONS, json=copy, token=users.bob)
    assert r.status_code == 409, r.text
    assert f"entry #{entry_id}" in r.json()["detail"] and "the original" in r.json()["detail"]
    assert _stored(session) == before
    # the owner may submit their own run again (it is linked as a duplicate, not refused)
    again = api.post(protocol.SUBMISSIONS, json={**copy, "idempotency_key": "original-0002"}, token=users.alice)
    assert again.status_code == 201, again.text


def test_the_dry_run_answers_like_a_submission_and_stores_nothing(api: Api, users: Users, session: Session) -> None:
    before = _stored(session)
    ok = api.post(PREFLIGHT, json=_body(core=0.2), token=users.alice)
    assert ok.status_code == 200, ok.text
    assert ok.json()["ok"] is True and ok.json()["verification_runs"] >= 2
    assert any("passes the track's test" in c for c in ok.json()["checks"])
    bad = api.post(PREFLIGHT, json=_body(core=0.01), token=users.alice)
    assert bad.status_code == 422 and "bar 0.05" in bad.json()["detail"][0]["msg"]
    assert _stored(session) == before
    assert api.post(PREFLIGHT, json=_body(), token=users.worker).status_code == 403
