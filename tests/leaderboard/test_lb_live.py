"""Over real HTTP on 127.0.0.1: the submissions client and the worker protocol against uvicorn."""

from __future__ import annotations

import httpx
import pytest
from lb_factories import fingerprint, report, submission
from lb_support import LiveServer, live_tokens

from contract.protocol import Heartbeat, JobComplete, JobProgress, LeaseRequest
from submissions.client import Client, ClientError


def test_client_submits_and_a_worker_verifies_over_http(live_server: LiveServer) -> None:
    tokens = live_tokens(live_server.settings)
    board_url = f"{live_server.base_url}/api/tracks/cpu-smoke/leaderboard"
    assert httpx.get(board_url).json()["total"] == 0  # now cached at this board revision
    sub = submission()
    with Client(live_server.base_url, tokens["alice"], retries=0) as client:
        accepted = client.submit(sub)
        assert client.submit(sub) == accepted  # idempotent replay
    assert accepted.url == f"{live_server.base_url}/entries/{accepted.entry_id}"
    with Client(live_server.base_url, tokens["worker"], retries=0) as worker:
        i, runs = 0, 1
        while i < runs:  # one run per lease: the CPU track counts one worker account's runs
            lease = worker.lease(LeaseRequest(worker_id="live", fingerprint=fingerprint()))
            assert lease is not None and lease.verification_job_id == accepted.job_id and lease.run_index == i
            assert lease.seed is not None
            runs = lease.runs
            worker.heartbeat(
                lease.job_id, Heartbeat(lease_token=lease.lease_token, progress=JobProgress(run_index=i, runs=runs))
            )
            log = f"run {i} ok\n".encode()
            ref = worker.upload_artifact(
                lease.job_id, lease.lease_token, name=f"run-{i}/train.log", kind="log", data=log
            )
            rep = report(lease.track, lease.run_config, seeds=(lease.seed,), cores=(0.2 + 0.01 * i,), hours=(0.01,))
            done = JobComplete(lease_token=lease.lease_token, report=rep, artifacts=[ref])
            state = worker.complete(lease.job_id, done)
            assert state.status == "succeeded"
            assert worker.artifact(ref.sha256) == log
            with pytest.raises(ClientError) as exc:
                worker.complete(lease.job_id, done)
            assert exc.value.status == 409
            i += 1
    entry = httpx.get(f"{live_server.base_url}/api/entries/{accepted.entry_id}").json()
    assert entry["entry"]["status"] == "verified", entry["verifications"]
    rows = httpx.get(board_url).json()["rows"]  # the verification moved the revision: no stale page
    assert [(r["id"], r["rank"]) for r in rows] == [(accepted.entry_id, 1)]


def test_openapi_and_docs_are_served(live_server: LiveServer) -> None:
    spec = httpx.get(f"{live_server.base_url}/openapi.json").json()
    assert "/api/submissions" in spec["paths"] and "/api/worker/lease" in spec["paths"]
    assert httpx.get(f"{live_server.base_url}/docs").status_code == 200
