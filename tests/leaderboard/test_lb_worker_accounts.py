"""Issue 21: no single worker account makes a record or ends an entry.

A GPT-2 verification needs runs from two worker accounts (one account may run two of the three
runs, never the third); accounts whose runs disagree are flagged, naming the worker; one account
failing everything it leases leaves every entry alive and gets itself paused; a fork's report of
1 FLOP is refused with the numbers; a CPU entry verified by one account stops counting when the
track asks for two."""

from __future__ import annotations

from typing import Any

from lb_factories import fingerprint, report, run_config, submission_json
from lb_support import Api, Users
from lb_verify import FORK, board, entry, forge_runs, gpu_report, lease_run, run_report, submit

from contract import protocol
from contract.tracks import BUILTIN_TRACKS

CPU = fingerprint("cpu").model_dump(mode="json")


def _complete(api: Api, token: str, lease: dict[str, Any], rep: Any) -> int:
    one = run_report(rep, lease)
    body = {"lease_token": lease["lease_token"], "report": one.model_dump(mode="json"), "artifacts": []}
    return int(api.post(protocol.COMPLETE.format(job_id=lease["job_id"]), json=body, token=token).status_code)


def test_one_account_cannot_verify_a_gpt2_entry_alone(api: Api, users: Users) -> None:
    # the rogue report: fabricated, self-consistent, fast (1.01 h), from one worker account
    sub = submit(api, users.alice)
    rogue = gpu_report(hours=(1.01, 1.01, 1.01))
    for run in (0, 1):  # it may run two of the three runs ...
        lease = lease_run(api, users.worker)
        assert lease["run_index"] == run
        assert _complete(api, users.worker, lease, rogue) == 200
    fp = fingerprint("h100-sxm", 8).model_dump(mode="json")
    third = api.post(protocol.LEASE, json={"worker_id": "again", "fingerprint": fp}, token=users.worker)
    assert third.status_code == 204  # ... never the third: it is left for another account
    job = api.get(f"/api/jobs/{sub['job_id']}").json()
    assert job["status"] == "running" and job["phase"] == "waiting for worker account 2 of 2, 2/3 runs in"
    detail = entry(api, sub["entry_id"])
    assert detail["entry"]["status"] == "pending" and board(api) == []
    assert detail["outcome"]["headline"].startswith("pending: runs from 1 of 2 workers so far (2/3 runs in)")
    rows = api.get("/api/tracks/gpt2-cost/leaderboard?status=all").json()["rows"]
    assert next(r for r in rows if r["id"] == sub["entry_id"])["badge"] == "pending · runs from 1 of 2 workers"
    # an honest second account runs the third run: its clock disagrees with the rogue's, flagged
    lease = lease_run(api, users.worker2)
    assert lease["run_index"] == 2
    assert _complete(api, users.worker2, lease, gpu_report(hours=(2.0, 2.0, 2.0))) == 200
    detail = entry(api, sub["entry_id"])
    [v] = detail["verifications"]
    assert v["site"]["accounts"] == 2 and v["site"]["accounts_required"] == 2
    assert [w["account"] for w in v["workers"]] == ["t-worker", "t-worker", "t-worker2"]
    flags = v["site"]["worker_flags"]
    assert any(f.startswith("t-worker (worker ") and "1.01" not in f and "3636.0 s" in f for f in flags), flags
    audit = api.get("/api/admin/audit", token=users.admin).json()
    assert any(e["action"] == "verification.flagged" for e in audit)
    page = api.get(f"/entries/{sub['entry_id']}").text
    assert "flagged for an admin: t-worker (worker " in page and "verified by 2 of 2 workers" in page


def test_one_account_failing_every_lease_leaves_every_entry_alive_and_is_paused(api: Api, users: Users) -> None:
    entries = [api.post(protocol.SUBMISSIONS, json=submission_json(), token=users.alice).json() for _ in range(4)]
    for n in range(3):
        held = api.post(protocol.LEASE, json={"worker_id": "rogue", "fingerprint": CPU}, token=users.worker).json()
        assert held["verification_job_id"] == entries[n]["job_id"]  # the oldest job it may take
        fail = {"lease_token": held["lease_token"], "reason": "not retryable, I say", "retryable": False}
        state = api.post(protocol.FAIL.format(job_id=held["job_id"]), json=fail, token=users.worker).json()
        assert state["status"] == "queued"
    refused = api.post(protocol.LEASE, json={"worker_id": "rogue", "fingerprint": CPU}, token=users.worker)
    assert refused.status_code == 403 and "paused" in refused.text
    for e in entries:
        assert entry(api, e["entry_id"])["entry"]["status"] == "pending"
    honest = api.post(protocol.LEASE, json={"worker_id": "honest", "fingerprint": CPU}, token=users.worker2).json()
    assert honest["verification_job_id"] == entries[0]["job_id"] and honest["run_index"] == 0


def test_a_fork_reporting_one_flop_is_refused_with_the_numbers(api: Api, users: Users) -> None:
    sub = submit(api, users.alice, trainer=FORK)
    rep = forge_runs(gpu_report(trainer=FORK), lambda r: {"flops": 1.0, "training_seconds": 0.002})
    for i in range(3):
        token = users.worker2 if i % 2 else users.worker
        assert _complete(api, token, lease_run(api, token), rep) == 200
    detail = entry(api, sub["entry_id"])
    assert detail["entry"]["status"] == "rejected" and detail["entry"]["rank"] is None
    reasons = " ".join(detail["verifications"][0]["reasons"])
    assert "reports 1 FLOPs; the reference plan of recipe 'gpt2_speedrun' is" in reasons
    assert "below the physical floor" in reasons


def test_a_verification_by_one_account_stops_counting_when_the_track_asks_for_two(api: Api, users: Users) -> None:
    sub = api.post(protocol.SUBMISSIONS, json=submission_json(), token=users.alice).json()
    rep = report(BUILTIN_TRACKS["cpu-smoke"], run_config())
    for _ in range(rep.runs.__len__()):
        lease = api.post(protocol.LEASE, json={"worker_id": "laptop", "fingerprint": CPU}, token=users.worker).json()
        assert _complete(api, users.worker, lease, rep) == 200
    assert entry(api, sub["entry_id"])["entry"]["status"] == "verified"  # cpu-smoke: one account suffices
    r = api.patch("/api/admin/tracks/cpu-smoke", json={"min_worker_accounts": 2}, token=users.admin)
    assert r.status_code == 200 and r.json()["min_worker_accounts"] == 2
    detail = entry(api, sub["entry_id"])
    assert detail["entry"]["status"] == "inconclusive" and detail["entry"]["rank"] is None
    assert detail["outcome"]["headline"] == "verified by 1 of 2 workers: not counted on CPU smoke"
    bad = api.patch("/api/admin/tracks/cpu-smoke", json={"min_worker_accounts": 0}, token=users.admin)
    assert bad.status_code == 422
