"""A real `speedrun worker` process against a real `speedrun serve` process (SQLite): a worker
killed mid-run abandons its lease, the run goes to another worker account without burning the
entry and admins see the abandonment; a site that restarts for less than a lease loses no job
(the worker's heartbeat retries stop at the lease's expiry, and the site renews a lease nobody
took over). The job's trainer is a test fork that works for a few seconds per run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from lb_factories import submission_json
from lb_processes import SiteProcess, make_tokens, start_site

from contract import protocol
from leaderboard.users.models import Role
from tests.submissions.fork_repos import fork_config, make_forks

pytestmark = pytest.mark.slow

LEASE_S = 6


def _site(home: Path, port: int) -> SiteProcess:
    env = {"SPEEDRUN_LEASE_SECONDS": str(LEASE_S), "SPEEDRUN_ALLOW_LOCAL_GIT_URLS": "true"}
    return start_site(home, f"sqlite:///{home / 'site.db'}", port, env=env)


def _submit(site: SiteProcess, token: str, forks: dict[str, tuple[str, str]]) -> dict[str, Any]:
    body = submission_json()
    body["run_config"] = json.loads(fork_config(forks, "slow").model_dump_json())
    r = httpx.post(f"{site.url}{protocol.SUBMISSIONS}", json=body, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 201, r.text
    accepted: dict[str, Any] = r.json()
    return accepted


def _worker(site: SiteProcess, token: str, work_dir: Path, worker_id: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "speedrun", "worker", "--server", site.url, "--once", "--allow-local-git"]
    cmd += ["--work-dir", str(work_dir), "--worker-id", worker_id]
    env = {**os.environ, "SPEEDRUN_TOKEN": token}
    return subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)


def _job(site: SiteProcess, job_id: int) -> dict[str, Any]:
    job: dict[str, Any] = httpx.get(f"{site.url}/api/jobs/{job_id}", timeout=10).json()
    return job


def _wait_running_with_progress(site: SiteProcess, job_id: int) -> None:
    deadline = time.monotonic() + 180
    while True:
        job = _job(site, job_id)
        if job["status"] == "running" and job["progress"] is not None:
            return
        assert time.monotonic() < deadline, job
        time.sleep(0.2)


@pytest.fixture(scope="module")
def forks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, str]]:
    return make_forks(tmp_path_factory.mktemp("forks"))


def test_a_killed_workers_job_goes_to_another_worker_and_admins_see_it(
    tmp_path: Path, free_port: int, forks: dict[str, tuple[str, str]]
) -> None:
    roles = {"alice": Role.submitter, "node-a": Role.worker, "node-b": Role.worker, "root": Role.admin}
    tokens = make_tokens(tmp_path, f"sqlite:///{tmp_path / 'site.db'}", roles)
    site = _site(tmp_path, free_port)
    try:
        accepted = _submit(site, tokens["alice"], forks)
        first = _worker(site, tokens["node-a"], tmp_path / "a", "node-a")
        _wait_running_with_progress(site, accepted["job_id"])
        first.kill()  # SIGKILL mid-job: no goodbye to the site
        first.wait(timeout=30)
        time.sleep(LEASE_S + 1)
        second = _worker(site, tokens["node-b"], tmp_path / "b", "node-b")
        _, err = second.communicate(timeout=300)
        assert second.returncode == 0, err[-3000:]
        job = _job(site, accepted["job_id"])
        # node-b took over run 0 (its 2nd attempt) and reported the slow fork's run as an error:
        # one account's error sends the run back to the queue for another, the entry is not burnt
        assert job["status"] == "queued" and job["attempts"] == 2, job
        assert job["failure_reason"].startswith("worker node-b: ")
        detail = httpx.get(f"{site.url}/api/entries/{accepted['entry_id']}", timeout=10).json()
        assert detail["entry"]["status"] == "pending" and detail["verifications"] == []
        admin = {"Authorization": f"Bearer {tokens['root']}"}
        workers = {w["name"]: w for w in httpx.get(f"{site.url}/api/admin/workers", headers=admin).json()}
        assert workers["node-a"]["abandoned"] == 1 and workers["node-a"]["completed"] == 0
        # an error report is the config's fault, not the worker's: it does not count toward a pause
        assert workers["node-b"]["leases"] == 1 and workers["node-b"]["abandoned"] == 0
    finally:
        site.stop()


def test_a_short_site_restart_loses_no_job(tmp_path: Path, free_port: int, forks: dict[str, tuple[str, str]]) -> None:
    tokens = make_tokens(tmp_path, f"sqlite:///{tmp_path / 'site.db'}", {"alice": Role.submitter, "n": Role.worker})
    site = _site(tmp_path, free_port)
    worker = None
    try:
        accepted = _submit(site, tokens["alice"], forks)
        worker = _worker(site, tokens["n"], tmp_path / "w", "node-n")
        _wait_running_with_progress(site, accepted["job_id"])
        site.proc.kill()  # the site goes away mid-job ...
        site.proc.wait(timeout=30)
        time.sleep(LEASE_S * 0.6)
        site = _site(tmp_path, free_port)  # ... and is back before the lease ran out
        _, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err[-3000:]
        job = _job(site, accepted["job_id"])
        # the run's report (the slow fork's error) was taken: the run waits for another account
        assert job["status"] == "queued" and job["attempts"] == 1, (job, err[-2000:])
        assert job["failure_reason"].startswith("worker node-n: ")
        assert "lease lost" not in err
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
        site.stop()


def test_heartbeat_retries_never_wait_past_the_lease(free_port: int) -> None:
    """Against a site that is down, the worker's heartbeat retries stop at the lease's expiry, each
    wait shortened to fit (the plain client backoff would wait 0.5 + 1 + 2 + 4 + 8 + 15 s)."""
    from contract.protocol import Heartbeat, JobProgress
    from submissions.client import Client, ClientError

    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    lease_left_s = 1.5
    hb = Heartbeat(lease_token="lease_x", progress=JobProgress(run_index=0, runs=1))
    with Client(f"http://127.0.0.1:{free_port}", "sr_token", sleep=sleep) as client:  # nothing listens there
        deadline = time.monotonic() + lease_left_s
        with pytest.raises(ClientError) as exc:
            client.heartbeat(1, hb, retry_until=deadline)
    assert exc.value.status == 0 and len(waits) >= 3
    assert sum(waits) <= lease_left_s and max(waits) <= lease_left_s / 4 + 1e-9
