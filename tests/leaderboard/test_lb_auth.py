"""Authentication and roles: 401 without a valid token, 403 for the wrong role or someone else's entry."""

from __future__ import annotations

from lb_factories import fingerprint, report, run_config, submission_json
from lb_support import Api, Users
from lb_verify import complete
from sqlalchemy import select
from sqlalchemy.orm import Session

from contract import protocol
from contract.tracks import BUILTIN_TRACKS
from leaderboard.audit.models import AuditEvent
from leaderboard.users.models import ApiToken


def test_missing_token_is_401(api: Api) -> None:
    r = api.post(protocol.SUBMISSIONS, json=submission_json())
    assert r.status_code == 401
    assert r.json()["error"] == "unauthorized"
    assert r.headers["www-authenticate"] == "Bearer"


def test_invalid_token_is_401(api: Api) -> None:
    assert api.post(protocol.SUBMISSIONS, json=submission_json(), token="sr_not-a-token").status_code == 401


def test_worker_tokens_cannot_submit(api: Api, users: Users) -> None:
    r = api.post(protocol.SUBMISSIONS, json=submission_json(), token=users.worker)
    assert r.status_code == 403
    assert r.json()["error"] == "forbidden"


def test_submitters_cannot_lease(api: Api, users: Users) -> None:
    body = {"worker_id": "x", "fingerprint": fingerprint().model_dump(mode="json")}
    assert api.post(protocol.LEASE, json=body, token=users.alice).status_code == 403


def test_a_submitter_cannot_reverify_another_users_entry(api: Api, users: Users) -> None:
    entry_id = api.post(protocol.SUBMISSIONS, json=submission_json(), token=users.alice).json()["entry_id"]
    # finish the first job so that a re-verification could be queued at all
    assert complete(api, users, report(BUILTIN_TRACKS["cpu-smoke"], run_config()), sku="cpu", gpus=0) == 200
    assert api.post(f"/api/entries/{entry_id}/reverify", json={}, token=users.bob).status_code == 403
    r = api.post(f"/api/entries/{entry_id}/reverify", json={"reason": "new driver"}, token=users.alice)
    assert r.status_code == 201, r.text
    assert r.json()["reason"] == "reverify"
    assert api.post(f"/api/entries/{entry_id}/reverify", json={}, token=users.admin).status_code == 409  # one queued


def test_reported_history_cannot_be_reverified(api: Api, users: Users) -> None:
    row = api.get("/api/tracks/gpt2-8xh100/leaderboard").json()["rows"][0]
    assert api.post(f"/api/entries/{row['id']}/reverify", json={}, token=users.admin).status_code == 409


def test_only_admins_retract_and_it_is_audited(api: Api, users: Users, session: Session) -> None:
    entry_id = api.post(protocol.SUBMISSIONS, json=submission_json(), token=users.alice).json()["entry_id"]
    url = f"/api/admin/entries/{entry_id}/retract"
    assert api.post(url, json={"reason": "mine"}, token=users.alice).status_code == 403
    r = api.post(url, json={"reason": "broken timer"}, token=users.admin)
    assert r.status_code == 200 and r.json()["status"] == "retracted"
    event = session.scalar(select(AuditEvent).where(AuditEvent.action == "entry.retract"))
    assert event is not None and event.actor_id == users.ids["admin"] and event.detail["reason"] == "broken timer"
    assert api.get("/api/queue").json()["jobs"][0]["status"] == "cancelled"


def test_admin_edits_tracks_and_prices_audited(api: Api, users: Users, session: Session) -> None:
    assert api.patch("/api/admin/tracks/cpu-smoke", json={"min_runs": 3}, token=users.alice).status_code == 403
    r = api.patch("/api/admin/tracks/cpu-smoke", json={"min_runs": 3}, token=users.admin)
    assert r.status_code == 200 and r.json()["min_runs"] == 3
    bad = api.patch("/api/admin/tracks/cpu-smoke", json={"alpha": 2}, token=users.admin)
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "alpha"
    price = {"sku": "h100-sxm", "usd_per_gpu_hour": 2.5, "effective_date": "2026-09-01"}
    assert api.post("/api/admin/prices", json=price, token=users.admin).status_code == 201
    actions = set(session.scalars(select(AuditEvent.action)))
    assert {"track.update", "price.add"} <= actions


def test_tokens_are_stored_only_as_digests(users: Users, session: Session) -> None:
    stored = list(session.scalars(select(ApiToken.token_sha256)))
    assert users.alice not in stored
    assert all(len(s) == 64 for s in stored)


def test_admin_creates_users_and_sees_the_token_once(api: Api, users: Users) -> None:
    r = api.post("/api/admin/users", json={"name": "carol", "role": "worker"}, token=users.admin)
    assert r.status_code == 201
    token = r.json()["token"]
    assert api.get("/api/me", token=token).json()["role"] == "worker"
    assert all("token" not in u for u in api.get("/api/admin/users", token=users.admin).json())
