"""The worker protocol: leases with expiry, heartbeats, uploads, one completion, failure and requeue."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

from lb_factories import fingerprint, report, run_config, submission_json
from lb_support import Api, Users, make_api
from sqlalchemy import update
from sqlalchemy.orm import Session

from contract import protocol
from contract.tracks import BUILTIN_TRACKS
from leaderboard.db import utcnow
from leaderboard.jobs.models import Job
from leaderboard.settings import Settings
from leaderboard.users.models import Role
from leaderboard.users.schemas import UserCreate
from leaderboard.users.service import create_user

CPU = fingerprint("cpu").model_dump(mode="json")


def _submit(api: Api, users: Users, **kw: Any) -> dict[str, Any]:
    r = api.post(protocol.SUBMISSIONS, json=submission_json(**kw), token=users.alice)
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def _lease(
    api: Api, users: Users, worker_id: str = "w1", fp: dict[str, Any] | None = None, token: str | None = None
) -> Any:
    body = {"worker_id": worker_id, "fingerprint": fp or CPU}
    return api.post(protocol.LEASE, json=body, token=token or users.worker)


def _second_worker(session: Session) -> str:
    token = create_user(session, UserCreate(name="t-worker-2", role=Role.worker)).token
    session.commit()
    return token


def _expire(session: Session, job_id: int) -> None:
    session.execute(update(Job).where(Job.id == job_id).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
    session.commit()


def _complete_body(lease: dict[str, Any], **kw: Any) -> dict[str, Any]:
    """A one-run report of the leased run, with the seed the site picked."""
    kw = {"seeds": (lease["seed"],), "cores": (0.2,), "hours": (0.01,), **kw}
    rep = report(BUILTIN_TRACKS["cpu-smoke"], run_config(), **kw)
    return {"lease_token": lease["lease_token"], "report": rep.model_dump(mode="json"), "artifacts": []}


def _complete(api: Api, token: str, lease: dict[str, Any], **kw: Any) -> Any:
    body = _complete_body(lease, **kw)
    return api.post(protocol.COMPLETE.format(job_id=lease["job_id"]), json=body, token=token)


def _progress() -> dict[str, Any]:
    return {"run_index": 0, "runs": 2, "step": 10, "steps": 300, "message": "training"}


def test_empty_queue_gives_204(api: Api, users: Users) -> None:
    assert _lease(api, users).status_code == 204


def test_lease_carries_the_config_track_and_claims(api: Api, users: Users, session: Session) -> None:
    sub = _submit(api, users)
    r = _lease(api, users)
    assert r.status_code == 200, r.text
    lease = r.json()
    # one run of the submission's verification job, with a seed the site picked
    assert lease["verification_job_id"] == sub["job_id"] and lease["job_id"] != sub["job_id"]
    assert lease["run_index"] == 0 and lease["attempt"] == 1
    assert lease["runs"] == BUILTIN_TRACKS["cpu-smoke"].min_runs
    assert lease["seed"] not in [c["seed"] for c in lease["claimed_results"]]
    assert lease["track"]["slug"] == "cpu-smoke"
    assert lease["run_config"]["recipe"] == "cpu_smoke"
    assert len(lease["claimed_results"]) == 1
    assert _lease(api, users, "w2").headers["x-lease-refused"]  # 204: one active lease per worker account
    other = _lease(api, users, "w2", token=_second_worker(session)).json()  # a second node takes the next run
    assert other["verification_job_id"] == sub["job_id"] and other["run_index"] == 1
    assert other["seed"] != lease["seed"]
    job = api.get(f"/api/jobs/{sub['job_id']}").json()
    assert job["status"] == "running" and job["progress"]["runs_running"] == 2


def test_a_gpu_worker_does_not_get_a_cpu_job(api: Api, users: Users) -> None:
    _submit(api, users)
    gpu = fingerprint("h100-sxm", 8).model_dump(mode="json")
    assert _lease(api, users, fp=gpu).status_code == 204
    assert _lease(api, users).status_code == 200


def test_a_cost_track_job_goes_only_to_the_submitted_gpu_class(api: Api, users: Users) -> None:
    _submit(api, users, track="gpt2-cost", sku="h100-sxm", gpus=8, core=0.28)  # a claim above the GPT-2 bar
    h200 = fingerprint("h200", 8).model_dump(mode="json")
    four_h100 = fingerprint("h100-sxm", 4).model_dump(mode="json")
    assert _lease(api, users, fp=h200).status_code == 204  # the track allows an H200, the config does not
    assert _lease(api, users, fp=four_h100).status_code == 204  # too few GPUs for the config
    r = _lease(api, users, fp=fingerprint("h100-sxm", 8).model_dump(mode="json"))
    assert r.status_code == 200, r.text
    assert r.json()["run_config"]["hardware_class"] == "h100-sxm"


def test_heartbeat_records_progress_on_the_queue(api: Api, users: Users) -> None:
    _submit(api, users)
    lease = _lease(api, users).json()
    url = protocol.HEARTBEAT.format(job_id=lease["job_id"])
    r = api.post(url, json={"lease_token": lease["lease_token"], "progress": _progress()}, token=users.worker)
    assert r.status_code == 200, r.text
    assert r.json()["cancel"] is False
    job = api.get("/api/queue").json()["jobs"][0]
    assert job["status"] == "running" and job["progress"]["step"] == 10 and job["lease_owner"] == "w1"


def test_expired_lease_is_re_leased_and_completes_once(api: Api, users: Users, session: Session) -> None:
    _submit(api, users)
    first = _lease(api, users, "w1").json()
    _expire(session, first["job_id"])
    other = _second_worker(session)
    second = _lease(api, users, "w2", token=other).json()
    assert second["job_id"] == first["job_id"] and second["attempt"] == 2
    hb = api.post(
        protocol.HEARTBEAT.format(job_id=first["job_id"]),
        json={"lease_token": first["lease_token"], "progress": _progress()},
        token=users.worker,
    )
    assert hb.status_code == 403  # taken over by another account: the first lease cannot come back
    url = protocol.COMPLETE.format(job_id=first["job_id"])
    assert api.post(url, json=_complete_body(first), token=users.worker).status_code == 403  # not its lease now
    ok = api.post(url, json=_complete_body(second), token=other)
    assert ok.status_code == 200, ok.text
    assert ok.json()["status"] == "succeeded"
    assert api.post(url, json=_complete_body(second), token=other).status_code == 409
    assert _lease(api, users, "w3").json()["run_index"] == 1  # run 0 is done: the next run


def test_completion_verifies_and_ranks_the_entry(api: Api, users: Users) -> None:
    sub = _submit(api, users)
    k = BUILTIN_TRACKS["cpu-smoke"].min_runs
    hours = tuple(0.02 * (i + 1) for i in range(k))
    for i in range(k):  # one worker account may verify the CPU track alone, one run per lease
        lease = _lease(api, users).json()
        assert lease["run_index"] == i
        upload = api.post(
            protocol.ARTIFACTS.format(job_id=lease["job_id"]),
            params={"name": f"run-{i}/metrics.jsonl", "kind": "metrics"},
            content=b'{"step": 1, "loss": 3.0, "training_seconds": 1.5}\n{"step": 1, "val_bpb": 1.2}\n',
            headers={protocol.LEASE_TOKEN_HEADER: lease["lease_token"]},
            token=users.worker,
        )
        assert upload.status_code == 201, upload.text
        ref = upload.json()
        body = _complete_body(lease, hours=(hours[i],), cores=(0.2 + 0.01 * i,), metrics_sha256=ref["sha256"])
        body["artifacts"] = [ref]
        r = api.post(protocol.COMPLETE.format(job_id=lease["job_id"]), json=body, token=users.worker)
        assert r.status_code == 200, r.text
        job = api.get(f"/api/jobs/{sub['job_id']}").json()
        assert job["status"] == ("succeeded" if i == k - 1 else "running")
    detail = api.get(f"/api/entries/{sub['entry_id']}").json()
    entry = detail["entry"]
    assert entry["status"] == "verified", detail["verifications"][0]["reasons"]
    assert entry["section"] == "verified" and entry["rank"] == 1
    assert abs(entry["hours"] - sum(hours) / k) < 1e-9  # the mean of the verified runs
    assert entry["cost_usd"] is None  # CPU runs have no reference price
    assert [v["verdict"] for v in detail["verifications"]] == ["verified"]
    assert len(detail["verified_runs"]) == k
    assert "run-0/metrics.jsonl" in [a["name"] for a in detail["artifacts"]]
    curve = detail["curves"][0]["points"]
    assert [p["val_bpb"] for p in curve] == [None, 1.2]
    assert curve[1]["training_seconds"] == 1.5  # eval lines take the time of their step
    board = api.get("/api/tracks/cpu-smoke/leaderboard").json()
    assert [r["id"] for r in board["rows"]] == [sub["entry_id"]]


def test_a_run_reported_with_another_seed_than_the_sites_is_422(api: Api, users: Users) -> None:
    sub = _submit(api, users)
    lease = _lease(api, users).json()
    claimed = lease["claimed_results"][0]["seed"]
    r = _complete(api, users.worker, lease, seeds=(claimed,))
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "report.runs.0.seed"
    assert f"({lease['seed']})" in r.json()["detail"][0]["msg"]
    body = _complete_body(lease)
    body["report"]["runs"] = body["report"]["runs"] * 2  # two runs in a one-run lease
    r = api.post(protocol.COMPLETE.format(job_id=lease["job_id"]), json=body, token=users.worker)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "report.runs"
    assert api.get(f"/api/entries/{sub['entry_id']}").json()["entry"]["status"] == "pending"


def test_report_for_another_track_is_422(api: Api, users: Users) -> None:
    _submit(api, users)
    lease = _lease(api, users).json()
    body = _complete_body(lease)
    body["report"]["track"] = "gpt2-cost"
    r = api.post(protocol.COMPLETE.format(job_id=lease["job_id"]), json=body, token=users.worker)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "report.track"


def test_a_run_is_given_up_only_after_distinct_workers_failed_it(
    settings: Settings, session: Session, users: Users
) -> None:
    api = make_api(settings.model_copy(update={"max_job_attempts": 2}), session)
    try:
        sub = _submit(api, users)
        other = _second_worker(session)
        for attempt in (1, 2):  # the same account giving a run back twice counts once
            held = _lease(api, users).json()
            assert held["run_index"] == 0 and held["attempt"] == attempt
            body = {"lease_token": held["lease_token"], "reason": "worker shutting down", "retryable": True}
            state = api.post(protocol.FAIL.format(job_id=held["job_id"]), json=body, token=users.worker).json()
            assert state["status"] == "queued"
        taken = _lease(api, users, "w2", token=other).json()
        assert taken["job_id"] == held["job_id"] and taken["attempt"] == 3
        again = _lease(api, users).json()  # run 0 is taken: the first account runs run 1 meanwhile
        assert again["run_index"] == 1
        body = {"lease_token": taken["lease_token"], "reason": "config does not build", "retryable": False}
        state = api.post(protocol.FAIL.format(job_id=taken["job_id"]), json=body, token=other).json()
        assert state["status"] == "failed"  # a second account failed it: given up
        entry = api.get(f"/api/entries/{sub['entry_id']}").json()
        assert entry["entry"]["status"] == "error"
        assert entry["jobs"][0]["status"] == "failed"
        assert "2 distinct workers failed" in entry["jobs"][0]["failure_reason"]
        assert entry["jobs"][0]["failure_reason"].startswith("run 0: worker w2: config does not build")
        hb = api.post(
            protocol.HEARTBEAT.format(job_id=again["job_id"]),
            json={"lease_token": again["lease_token"], "progress": _progress()},
            token=users.worker,
        )
        assert hb.status_code == 200 and hb.json()["cancel"] is True  # the other run is called off
    finally:
        api.close()


def test_a_non_retryable_failure_requeues_and_counts_against_the_worker(api: Api, users: Users) -> None:
    sub = _submit(api, users)
    lease = _lease(api, users).json()
    body = {"lease_token": lease["lease_token"], "reason": "config does not build", "retryable": False}
    state = api.post(protocol.FAIL.format(job_id=lease["job_id"]), json=body, token=users.worker).json()
    assert state == {
        "job_id": lease["job_id"],
        "status": "queued",
        "attempts": 1,
        "failure_reason": "worker w1: config does not build",
    }  # one account's word that a config is broken does not end the entry
    assert api.get(f"/api/entries/{sub['entry_id']}").json()["entry"]["status"] == "pending"
    mine = next(w for w in api.get("/api/admin/workers", token=users.admin).json() if w["name"] == "t-worker")
    assert mine["abandoned"] == 1


def test_expired_lease_on_the_last_attempt_fails_the_job(settings: Settings, session: Session, users: Users) -> None:
    api = make_api(settings.model_copy(update={"max_job_attempts": 1}), session)
    try:
        sub = _submit(api, users)
        lease = _lease(api, users).json()
        _expire(session, lease["job_id"])
        assert _lease(api, users, "w2").status_code == 204
        job = api.get(f"/api/jobs/{sub['job_id']}").json()
        assert job["status"] == "failed" and "expired" in job["failure_reason"]
    finally:
        api.close()


def test_upload_needs_the_lease_token(api: Api, users: Users) -> None:
    _submit(api, users)
    lease = _lease(api, users).json()
    r = api.post(
        protocol.ARTIFACTS.format(job_id=lease["job_id"]),
        params={"name": "x.log", "kind": "log"},
        content=b"hello",
        headers={protocol.LEASE_TOKEN_HEADER: "lease_wrong"},
        token=users.worker,
    )
    assert r.status_code == 409


def test_upload_over_the_artifact_limit_is_413(settings: Settings, session: Session, users: Users) -> None:
    api = make_api(settings.model_copy(update={"max_artifact_bytes": 2048}), session)
    try:
        _submit(api, users)
        lease = _lease(api, users).json()
        r = api.post(
            protocol.ARTIFACTS.format(job_id=lease["job_id"]),
            params={"name": "big.log", "kind": "log"},
            content=b"x" * 5000,
            headers={protocol.LEASE_TOKEN_HEADER: lease["lease_token"]},
            token=users.worker,
        )
        assert r.status_code == 413
    finally:
        api.close()


def test_lease_tokens_are_stored_as_digests(api: Api, users: Users, session: Session) -> None:
    _submit(api, users)
    lease = _lease(api, users).json()
    job = session.get(Job, lease["job_id"])
    assert job is not None
    session.refresh(job)
    assert job.lease_token_sha256 == hashlib.sha256(lease["lease_token"].encode()).hexdigest()
