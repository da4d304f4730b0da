"""Queue fairness against a hostile worker (SQLite and PostgreSQL): one active lease per worker
account, abandoned leases requeued without burning the entry, a worker that keeps abandoning is
paused (admin API), lease tokens bound to their account, leases capped by the track's maximum
job duration, per-job upload quotas, refs and digests that must be this job's uploads."""

from __future__ import annotations

import hashlib
import threading
from datetime import timedelta
from typing import Any

from lb_factories import fingerprint, report, run_config, submission, submission_json
from lb_support import Api, Users, make_api
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from contract import protocol
from contract.protocol import LeaseRequest
from contract.tracks import BUILTIN_TRACKS
from leaderboard import migrate
from leaderboard.artifacts.storage import ArtifactStore
from leaderboard.db import make_sessionmaker, session_scope, utcnow
from leaderboard.entries.leases import lease_job
from leaderboard.entries.submission import submit
from leaderboard.jobs.leasing import QueuePolicy, Refused
from leaderboard.jobs.models import Job, LeaseRecord
from leaderboard.seed import seed_all
from leaderboard.settings import Settings
from leaderboard.tracks.models import Track
from leaderboard.users.models import Role
from leaderboard.users.schemas import UserCreate
from leaderboard.users.service import authenticate_principal, create_user

CPU = fingerprint("cpu").model_dump(mode="json")


def _submit(api: Api, users: Users) -> dict[str, Any]:
    r = api.post(protocol.SUBMISSIONS, json=submission_json(), token=users.alice)
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def _lease(api: Api, token: str, worker_id: str = "w1") -> Any:
    return api.post(protocol.LEASE, json={"worker_id": worker_id, "fingerprint": CPU}, token=token)


def _worker(session: Session, name: str) -> str:
    token = create_user(session, UserCreate(name=name, role=Role.worker)).token
    session.commit()
    return token


def _expire(session: Session, job_id: int) -> None:
    session.execute(update(Job).where(Job.id == job_id).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
    session.commit()


def _entry_status(api: Api, entry_id: int) -> str:
    status: str = api.get(f"/api/entries/{entry_id}").json()["entry"]["status"]
    return status


def test_one_worker_account_holds_one_lease_whatever_worker_ids_it_uses(api: Api, users: Users) -> None:
    subs = [_submit(api, users) for _ in range(6)]
    first = _lease(api, users.worker, "node-0")
    assert first.status_code == 200
    for i in range(1, 6):  # the attack: the same token under six worker ids
        again = _lease(api, users.worker, f"node-{i}")
        assert again.status_code == 204, again.text
        assert "active lease" in again.headers["x-lease-refused"]
    queued = api.get("/api/queue", params={"status": "queued"}).json()
    assert {j["entry_id"] for j in queued["jobs"]} == {s["entry_id"] for s in subs[1:]}


def test_concurrent_leases_of_one_account_give_it_one_job(fresh_engine: Engine, tmp_path: Any) -> None:
    migrate.upgrade(fresh_engine)
    factory = make_sessionmaker(fresh_engine)
    with session_scope(factory) as s:
        seed_all(s)
        alice = create_user(s, UserCreate(name="alice", role=Role.submitter)).token
        worker = create_user(s, UserCreate(name="worker", role=Role.worker)).token
    with session_scope(factory) as s:
        for _ in range(6):
            submit(s, authenticate_principal(s, alice), submission(), store=ArtifactStore(tmp_path), base_url="x")
    got: list[int | None] = []
    refused: list[int] = []
    errors: list[str] = []
    barrier = threading.Barrier(6)

    def work(i: int) -> None:
        barrier.wait()
        try:
            with session_scope(factory) as s:
                req = LeaseRequest(worker_id=f"w{i}", fingerprint=fingerprint())
                leased = lease_job(s, authenticate_principal(s, worker), req, QueuePolicy(lease_seconds=60))
                if isinstance(leased, Refused):
                    refused.append(leased.status)
                else:
                    got.append(None if leased is None else leased.job_id)
        except Exception as exc:  # collected and asserted below
            errors.append(repr(exc))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert len([j for j in got if j is not None]) == 1 and refused == [204] * 5, (got, refused)


def test_abandoned_leases_requeue_the_job_and_pause_the_worker(api: Api, users: Users, session: Session) -> None:
    sub = _submit(api, users)
    for _ in range(3):  # lease and vanish, three times (the attack that left entries in 'error')
        leased = _lease(api, users.worker)
        assert leased.status_code == 200, leased.text
        _expire(session, leased.json()["job_id"])
    assert _lease(api, users.worker).status_code == 403  # the third abandonment (reaped now) paused it
    job = api.get(f"/api/jobs/{sub['job_id']}").json()
    assert job["status"] == "queued" and "abandoned" in job["failure_reason"]
    assert _entry_status(api, sub["entry_id"]) == "pending"  # the entry is not burnt
    workers = api.get("/api/admin/workers", token=users.admin).json()
    mine = next(w for w in workers if w["name"] == "t-worker")
    assert mine["paused_at"] is not None and mine["abandoned"] == 3 and "abandoned 3 leases" in mine["paused_reason"]
    honest = _worker(session, "t-honest")
    assert _lease(api, honest).json()["verification_job_id"] == sub["job_id"]  # another worker gets it
    resumed = api.post("/api/admin/workers/t-worker/resume", json={"reason": "fixed the node"}, token=users.admin)
    assert resumed.status_code == 200 and resumed.json()["paused_at"] is None
    audit = api.get("/api/admin/audit", token=users.admin).json()
    assert audit[0]["action"] == "worker.resume"


def test_a_job_is_given_up_only_after_distinct_workers_abandon_it(
    settings: Settings, session: Session, users: Users
) -> None:
    api = make_api(settings.model_copy(update={"max_job_attempts": 2, "pause_worker_after_abandoned": 10}), session)
    try:
        sub = _submit(api, users)
        for _ in range(4):  # one worker abandoning again and again does not burn the entry
            held = _lease(api, users.worker).json()
            assert held["run_index"] == 0
            _expire(session, held["job_id"])
        assert _lease(api, users.worker).status_code == 200  # reaps the 4th; leases again
        assert api.get(f"/api/jobs/{sub['job_id']}").json()["status"] == "running"
        other = _worker(session, "t-other")
        _expire(session, held["job_id"])
        assert _lease(api, other).json()["job_id"] == held["job_id"]  # reaped: still one worker's failures
        _expire(session, held["job_id"])
        assert _lease(api, users.worker).status_code == 204  # reaped: a second worker abandoned it too
        job = api.get(f"/api/jobs/{sub['job_id']}").json()
        assert job["status"] == "failed" and "2 distinct workers" in job["failure_reason"]
        assert _entry_status(api, sub["entry_id"]) == "error"
    finally:
        api.close()


def test_a_lease_token_is_useless_in_another_workers_hands(api: Api, users: Users, session: Session) -> None:
    _submit(api, users)
    held = _lease(api, users.worker).json()
    thief = _worker(session, "t-thief")
    job_id = held["job_id"]
    hb = {"lease_token": held["lease_token"], "progress": {"run_index": 0, "runs": 2}}
    assert api.post(protocol.HEARTBEAT.format(job_id=job_id), json=hb, token=thief).status_code == 403
    up = api.post(
        protocol.ARTIFACTS.format(job_id=job_id),
        params={"name": "x.log", "kind": "log"},
        content=b"x",
        headers={protocol.LEASE_TOKEN_HEADER: held["lease_token"]},
        token=thief,
    )
    assert up.status_code == 403
    rep = report(BUILTIN_TRACKS["cpu-smoke"], run_config()).model_dump(mode="json")
    done = {"lease_token": held["lease_token"], "report": rep, "artifacts": []}
    assert api.post(protocol.COMPLETE.format(job_id=job_id), json=done, token=thief).status_code == 403
    fail = {"lease_token": held["lease_token"], "reason": "x", "retryable": False}
    assert api.post(protocol.FAIL.format(job_id=job_id), json=fail, token=thief).status_code == 403
    assert api.get(f"/api/jobs/{job_id}").json()["status"] == "running"


def test_a_heartbeat_renews_an_expired_lease_nobody_took(api: Api, users: Users, session: Session) -> None:
    sub = _submit(api, users)
    held = _lease(api, users.worker).json()
    _expire(session, held["job_id"])  # the site was down longer than the lease; no one took the job
    hb = {"lease_token": held["lease_token"], "progress": {"run_index": 0, "runs": 2}}
    r = api.post(protocol.HEARTBEAT.format(job_id=held["job_id"]), json=hb, token=users.worker)
    assert r.status_code == 200, r.text
    job = api.get(f"/api/jobs/{sub['job_id']}").json()
    assert job["status"] == "running" and job["attempts"] == 1


def test_a_job_past_its_tracks_maximum_duration_is_taken_back(api: Api, users: Users, session: Session) -> None:
    sub = _submit(api, users)
    session.execute(update(Track).where(Track.slug == "cpu-smoke").values(max_job_seconds=120))
    session.commit()
    held = _lease(api, users.worker).json()
    assert held["lease_expires_at"] <= (utcnow() + timedelta(seconds=121)).isoformat()  # capped by the track
    session.execute(update(Job).where(Job.id == held["job_id"]).values(leased_at=utcnow() - timedelta(seconds=121)))
    session.commit()
    hb = {"lease_token": held["lease_token"], "progress": {"run_index": 0, "runs": 2}}
    r = api.post(protocol.HEARTBEAT.format(job_id=held["job_id"]), json=hb, token=users.worker)
    assert r.status_code == 409 and "maximum duration" in r.json()["detail"]
    job = api.get(f"/api/jobs/{sub['job_id']}").json()
    assert job["status"] == "queued" and "maximum job duration" in job["failure_reason"]
    outcome = session.scalar(select(LeaseRecord.outcome).where(LeaseRecord.job_id == held["job_id"]))
    assert outcome == "timed_out"


def _upload(api: Api, users: Users, held: dict[str, Any], name: str, data: bytes) -> Any:
    return api.post(
        protocol.ARTIFACTS.format(job_id=held["job_id"]),
        params={"name": name, "kind": "log"},
        content=data,
        headers={protocol.LEASE_TOKEN_HEADER: held["lease_token"]},
        token=users.worker,
    )


def test_uploads_of_a_job_are_bounded_in_count_and_bytes(settings: Settings, session: Session, users: Users) -> None:
    quota = {"max_artifacts_per_job": 5, "max_job_artifact_bytes": 4 * 65536}
    api = make_api(settings.model_copy(update=quota), session)
    try:
        _submit(api, users)
        held = _lease(api, users.worker).json()
        for i in range(4):
            assert _upload(api, users, held, f"a{i}.log", bytes([i]) * 65536).status_code == 201
        too_big = _upload(api, users, held, "a4.log", b"z" * 65536)
        assert too_big.status_code == 413 and "quota" in too_big.json()["detail"]
        assert _upload(api, users, held, "a0.log", b"y" * 100).status_code == 201  # replacing a name is fine
        assert _upload(api, users, held, "a4.log", b"z").status_code == 201
        over = [_upload(api, users, held, f"b{i}.log", b"w").status_code for i in range(200)]
        assert set(over) == {413}  # the 200-uploads attack stops at the count quota
        names = {a["name"] for a in api.get(f"/api/jobs/{held['job_id']}").json().get("artifacts", [])}
        assert not any(n.startswith("b") for n in names)
    finally:
        api.close()


def test_complete_refs_must_match_this_jobs_uploads(api: Api, users: Users) -> None:
    sub = _submit(api, users)
    held = _lease(api, users.worker).json()
    ref = _upload(api, users, held, "run-0/train.log", b"real log\n").json()
    rep = report(BUILTIN_TRACKS["cpu-smoke"], run_config(), seeds=(held["seed"],)).model_dump(mode="json")
    url = protocol.COMPLETE.format(job_id=held["job_id"])
    forged = {**ref, "sha256": hashlib.sha256(b"other").hexdigest()}
    r = api.post(
        url, json={"lease_token": held["lease_token"], "report": rep, "artifacts": [forged]}, token=users.worker
    )
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "artifacts.0.sha256"
    other_entry = api.get(f"/api/entries/{sub['entry_id']}").json()["artifacts"][0]["sha256"]  # the claim's log
    rep["runs"][0]["digests"]["metrics_log_sha256"] = other_entry
    r = api.post(url, json={"lease_token": held["lease_token"], "report": rep, "artifacts": [ref]}, token=users.worker)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "report.runs.0.digests.metrics_log_sha256"
    assert api.get(f"/api/jobs/{held['job_id']}").json()["status"] == "running"
    assert _entry_status(api, sub["entry_id"]) == "pending"
