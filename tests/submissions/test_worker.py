"""The worker against the real site: lease, heartbeat, upload, complete; refusal of hardware it
does not have; a killed worker's job leased again after expiry and completed exactly once.

The job's trainer is a git fork made by the test (tests/submissions/forks.py), so these tests
exercise the queue without spending minutes of CPU training; test_end_to_end.py runs the real
trainer."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from contract.protocol import Heartbeat, JobComplete, JobProgress, LeaseRequest
from contract.schema import RunConfig
from contract.tracks import BUILTIN_TRACKS
from submissions.client import Client, ClientError
from submissions.worker import LOCK_FILE, Worker
from tests.submissions.conftest import LiveSite
from tests.submissions.factories import CPU, H100, H200, cpu_submission, gpu_config, run_result, tiny_cpu_config
from tests.submissions.fork_repos import fork_config

pytestmark = pytest.mark.slow


def submit(site: LiveSite, config: RunConfig, key: str = "test-key-0001") -> int:
    with Client(site.url, site.tokens["alice"]) as client:
        accepted = client.submit(cpu_submission(config, key=key))
    assert accepted.job_id is not None
    return accepted.job_id


def worker(site: LiveSite, work_dir: Path, client: Client, **kw: object) -> Worker:
    return Worker(client, worker_id="test-node", work_dir=work_dir, fingerprint=CPU, allow_local_git=True, **kw)  # type: ignore[arg-type]


def test_worker_leases_heartbeats_uploads_and_completes(
    live_site: LiveSite, fork: dict[str, tuple[str, str]], tmp_path: Path
) -> None:
    job_id = submit(live_site, fork_config(fork, "crash"))
    with Client(live_site.url, live_site.tokens["gpu-node"]) as client:
        state = worker(live_site, tmp_path, client).run_once()
        assert state is not None and state.job_id != job_id  # run 0 of the job, a run job of its own
        # the crashing fork's run is an error: the run goes back to the queue for another account
        assert state.status == "queued" and state.attempts == 1
        job = live_site.job(job_id)
        runs = BUILTIN_TRACKS["cpu-smoke"].min_runs
        assert job["progress"] is not None and job["progress"]["runs"] == runs  # heartbeats carried progress
        assert job["status"] == "queued" and job["failure_reason"].startswith("worker test-node: ")
        job_dir = tmp_path / f"job-{state.job_id}-attempt-1"
        for name in ("report.json", "summary.txt", "run-0/process.log"):
            data = (job_dir / name).read_bytes()
            assert client.artifact(hashlib.sha256(data).hexdigest()) == data, name
        # this account found the job broken: none of its runs is handed to it again
        assert client.lease(LeaseRequest(worker_id="other", fingerprint=CPU)) is None
    entry = httpx.get(f"{live_site.url}/api/entries/{job['entry_id']}", timeout=10).json()
    assert entry["entry"]["status"] == "pending"  # one account's error does not end the entry


def test_a_node_of_other_hardware_gets_no_job(live_site: LiveSite, tmp_path: Path) -> None:
    # gpt2-cost allows any NVIDIA GPU, but the config asks for h100-sxm: the site keeps it for such a node.
    config = gpu_config()
    sub = cpu_submission(config, track="gpt2-cost", claimed_results=[run_result(hardware=H100)])
    with Client(live_site.url, live_site.tokens["alice"]) as client:
        job_id = client.submit(sub).job_id
    with Client(live_site.url, live_site.tokens["gpu-node"]) as client:
        w = Worker(client, worker_id="h200-node", work_dir=tmp_path, fingerprint=H200)
        assert w.run_once() is None
    assert live_site.job(job_id)["status"] == "queued" and live_site.job(job_id)["attempts"] == 0
    assert not any(tmp_path.glob("job-*"))  # nothing ran


def test_worker_refuses_a_lease_for_other_hardware_on_its_own() -> None:
    # A guard for any server that offers a job anyway: the worker checks the config against its node.
    from datetime import UTC, datetime

    from contract.protocol import JobLease
    from submissions.worker import hardware_mismatch

    config = gpu_config()
    lease = JobLease(
        job_id=1,
        lease_token="t",
        lease_expires_at=datetime.now(UTC),
        lease_seconds=60,
        attempt=1,
        entry_id=1,
        track=BUILTIN_TRACKS["gpt2-cost"],
        run_config=config,
        runs=3,
        claimed_results=[],
    )
    assert hardware_mismatch(lease, H100) is None
    reason = hardware_mismatch(lease, H200)
    assert reason is not None and "needs h100-sxm" in reason
    four = H100.model_copy(update={"device_count": 4})
    reason = hardware_mismatch(lease, four)
    assert reason is not None and "4 GPU(s)" in reason


def test_a_busy_node_does_not_lease(live_site: LiveSite, fork: dict[str, tuple[str, str]], tmp_path: Path) -> None:
    from filelock import FileLock

    job_id = submit(live_site, fork_config(fork, "crash"))
    with Client(live_site.url, live_site.tokens["gpu-node"]) as client, FileLock(str(tmp_path / LOCK_FILE)):
        assert worker(live_site, tmp_path, client).run_once() is None
    assert live_site.job(job_id)["status"] == "queued"


def test_killed_worker_job_is_leased_again_and_completed_once(
    live_site: LiveSite, fork: dict[str, tuple[str, str]], tmp_path: Path
) -> None:
    job_id = submit(live_site, fork_config(fork, "slow"))
    env = {**os.environ, "SPEEDRUN_TOKEN": live_site.tokens["gpu-node"]}
    cmd = [
        sys.executable,
        "-m",
        "speedrun",
        "worker",
        "--server",
        live_site.url,
        "--once",
        "--allow-local-git",
        "--work-dir",
        str(tmp_path / "first"),
    ]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if f"leased run 1/3 of job {job_id}" in line:
            killed_run = int(line.split("(run job ")[1].split(",")[0])
            break
    else:
        pytest.fail(f"the worker never leased the job: {''.join(seen)}")
    deadline = time.monotonic() + 60
    while live_site.job(job_id)["progress"] is None or "run 1/3" not in live_site.job(job_id)["progress"]["message"]:
        assert time.monotonic() < deadline, live_site.job(job_id)
        time.sleep(0.2)
    proc.kill()  # SIGKILL: no goodbye to the server
    proc.wait(timeout=30)
    assert live_site.job(job_id)["status"] == "running"

    with Client(live_site.url, live_site.tokens["alice-worker"]) as client:
        second = worker(live_site, tmp_path / "second", client, poll_interval_s=0.5)
        time.sleep(live_site.lease_seconds + 0.5)  # the killed worker's lease expires
        state = second.run_once()
    assert state is not None and state.job_id == killed_run and state.attempts == 2  # run 0, exactly once more
    job = live_site.job(job_id)
    assert job["status"] == "queued"  # the slow fork's runs fail: each waits for another account
    assert job["failure_reason"].startswith("worker test-node: ")


def test_stale_lease_cannot_heartbeat_or_complete(
    live_site: LiveSite, fork: dict[str, tuple[str, str]], tmp_path: Path
) -> None:
    job_id = submit(live_site, fork_config(fork, "crash"))
    with Client(live_site.url, live_site.tokens["gpu-node"]) as client:
        stale = client.lease(LeaseRequest(worker_id="vanished", fingerprint=CPU))
        assert stale is not None and stale.verification_job_id == job_id
    time.sleep(live_site.lease_seconds + 0.5)
    with Client(live_site.url, live_site.tokens["alice-worker"]) as client:
        state = worker(live_site, tmp_path, client).run_once()
        assert state is not None and state.job_id == stale.job_id and state.attempts == 2
        report = __import__("json").loads((tmp_path / f"job-{stale.job_id}-attempt-2" / "report.json").read_text())
    with Client(live_site.url, live_site.tokens["gpu-node"]) as client:
        with pytest.raises(ClientError) as exc:
            client.heartbeat(
                stale.job_id, Heartbeat(lease_token=stale.lease_token, progress=JobProgress(run_index=0, runs=2))
            )
        assert exc.value.status == 409
        from contract.schema import VerificationReport

        body = JobComplete(lease_token=stale.lease_token, report=VerificationReport.model_validate(report))
        with pytest.raises(ClientError) as exc:
            client.complete(stale.job_id, body)
        assert exc.value.status == 409
    assert live_site.job(job_id)["attempts"] == 2


def test_a_worker_refuses_a_thread_count_below_one(tmp_path: Path) -> None:
    with Client("http://127.0.0.1:9", "t") as client, pytest.raises(ValueError, match="threads"):
        Worker(client, worker_id="w", work_dir=tmp_path, fingerprint=CPU, threads=0)


def test_the_demos_workers_take_one_run_each_at_once(
    roomy_site: LiveSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`speedrun demo` verifies with k workers (one account each, one thread each): each leases one
    run of the job, the runs overlap, and the job is decided once all k are in."""
    import contextlib

    from speedrun.demo import _verify_locally, run_phases

    monkeypatch.setenv("SPEEDRUN_HOME", str(tmp_path / "home"))
    config = tiny_cpu_config()
    job_id = submit(roomy_site, config)
    roomy_site.create_user("third-node", "worker")
    names = ["gpu-node", "alice-worker", "third-node"]
    work = tmp_path / "workers"
    started = time.time()
    with contextlib.ExitStack() as stack:
        workers = [
            Worker(
                stack.enter_context(Client(roomy_site.url, roomy_site.tokens[name])),
                worker_id=f"node-{i + 1}",
                work_dir=work / str(i + 1),
                fingerprint=CPU,
                threads=1,
            )
            for i, name in enumerate(names)
        ]
        assert _verify_locally(workers, roomy_site.url, job_id) == "succeeded"
    runs = run_phases(work, since=started)
    assert len(runs) == 3 and {r["train_threads"] for r in runs} == {"1"}
    assert max(float(r["train_start"]) for r in runs) < min(float(r["score_end"]) for r in runs)  # at once
    assert sorted(p.parent.name for p in work.glob("*/job-*")) == ["1", "2", "3"]  # a run per worker


def test_no_worker_on_a_machine_lets_its_runs_see_another_workers_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several workers on one machine (``--threads``): each masks every worker's work dir it knows of,
    its own and the others' (registered under HOME), and forgets dirs that are gone."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    dirs = [tmp_path / "project" / ".speedrun" / name for name in ("w1", "w2", "w3")]
    with Client("http://127.0.0.1:9", "t") as client:
        workers = [Worker(client, worker_id=d.name, work_dir=d, fingerprint=CPU) for d in dirs]
        for d in dirs:
            d.mkdir(parents=True)
        first = workers[0].hidden_paths()  # w1 alone so far
        assert dirs[0].resolve() in first and dirs[1].resolve() not in first
        workers[1].hidden_paths()
        dirs[2].rmdir()
        workers[2].hidden_paths()  # registered, then its dir is removed
        seen = workers[0].hidden_paths()
        assert {dirs[0].resolve(), dirs[1].resolve()} <= set(seen) and dirs[2].resolve() not in seen
        assert (tmp_path / "home").resolve() in {p.resolve() for p in seen}
