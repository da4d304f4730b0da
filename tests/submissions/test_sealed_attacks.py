"""The attacks of issue 18, rebuilt as hostile forks (local git repositories) through a real
`speedrun worker` against a real site: real bwrap, as root and as an unprivileged worker.

1. a fork's model chooses its own score (writes score.json and exits; wraps the scorer's code);
2. the sandbox reaches the host kernel (root worker and unprivileged worker: the spy's uid, /proc/sys);
5. the clock is shortened by final weights written through an early mmap;
6. bounds leak (job dirs kept forever; planted code in training's HOME/TMPDIR reaching scoring).
Attacks 3 and 4 (symlinked CUDA, Docker's masked /proc) and the rest of 2 and 6 are in
test_sandbox_bounds.py.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from submissions.client import Client
from submissions.sandbox import sandbox_problem
from submissions.worker import Worker
from tests.submissions.conftest import LiveSite
from tests.submissions.factories import CPU, cpu_submission
from tests.submissions.fork_repos import forged_result, fork_config, make_forks
from tests.submissions.unprivileged import UID, as_user

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sandbox_problem() is not None, reason=f"no sandbox here: {sandbox_problem()}"),
]


def _entry(site: LiveSite, job_id: int) -> dict[str, Any]:
    job = site.job(job_id)
    data: dict[str, Any] = httpx.get(f"{site.url}/api/entries/{job['entry_id']}", timeout=10).json()
    return data


def _report(site: LiveSite, job_id: int) -> dict[str, Any]:
    """The verification's report of the job's pooled runs, as the site stored it."""
    entry = _entry(site, job_id)
    [ref] = [
        a for a in entry["artifacts"] if a["name"].startswith("verification-") and a["name"].endswith("/report.json")
    ]
    data: dict[str, Any] = httpx.get(f"{site.url}/api/artifacts/{ref['sha256']}", timeout=10).json()
    return data


def _work(
    site: LiveSite, tmp_path: Path, behaviours: tuple[str, ...], **params: Any
) -> tuple[dict[str, int], list[Any]]:
    """Submit one job per behaviour and let one real worker (keeping 1 job dir) run every run it may:
    a job whose run it found broken is left to other accounts, the others are run to the end.
    Returns the jobs and the states of the runs, in the order they ran."""
    forks = make_forks(tmp_path / "forks", {"forged": forged_result(), **params})
    with Client(site.url, site.tokens["alice"]) as client:
        jobs = {
            f"{b}-{i}": client.submit(
                cpu_submission(fork_config(forks, b), key=f"attack18-{b.replace('_', '-')}-{i}")
            ).job_id
            for i, b in enumerate(behaviours)
        }
    with Client(site.url, site.tokens["gpu-node"]) as client:
        worker = Worker(
            client,
            worker_id="node-18",
            work_dir=tmp_path / "work",
            fingerprint=CPU,
            allow_local_git=True,
            keep_job_dirs=1,
        )
        states = []
        while (state := worker.run_once()) is not None:
            states.append(state)
    return jobs, states


def test_a_model_that_writes_its_own_score_and_exits_fails_the_run_and_old_job_dirs_go(
    roomy_site: LiveSite, tmp_path: Path
) -> None:
    jobs, states = _work(roomy_site, tmp_path, ("entry_forge", "entry_forge"))
    assert len(states) == 2  # one run of each: the worker found each job broken, other accounts may look
    for job_id in jobs.values():
        job = roomy_site.job(job_id)  # the run's error, back in the queue for another account
        assert job["status"] == "queued" and _entry(roomy_site, job_id)["verifications"] == []
        assert "the model process stopped answering (loading the model)" in job["failure_reason"], job
    kept = sorted(p.name for p in (tmp_path / "work").glob("job-*"))
    assert kept == [f"job-{states[-1].job_id}-attempt-1"]  # the older job dir was deleted after upload


def test_a_model_that_wraps_the_scorers_code_gets_its_own_core(roomy_site: LiveSite, tmp_path: Path) -> None:
    jobs, _ = _work(roomy_site, tmp_path, ("entry_wrap",))
    wrap = _report(roomy_site, jobs["entry_wrap-0"])
    assert wrap["verdict"] != "verified" and len(wrap["runs"]) == 3
    assert all(run["core"]["core"] < 0.2 for run in wrap["runs"])  # the bigram's own CORE, not 0.86
    assert any("own sandboxed model process" in r for r in wrap["reasons"])
    assert any("val_bpb: computed by the fork's own model process" in r for r in wrap["reasons"])
    assert all("fork's own model process" in run["software"]["val_bpb_by"] for run in wrap["runs"])


def test_weights_written_through_an_early_mmap_stay_on_the_clock(roomy_site: LiveSite, tmp_path: Path) -> None:
    marker = tmp_path / "planted-marker"
    jobs, _ = _work(roomy_site, tmp_path, ("late_work",), marker=str(marker))
    late = _report(roomy_site, jobs["late_work-0"])
    assert len(late["runs"]) == 3, late["reasons"]
    for run in late["runs"]:
        assert run["training_seconds"] >= 5.0  # the process tree lived that long; the old clock read ~0.2 s
        assert run["self_reported_training_seconds"] == 0.5
        assert "kernel uid" in run["software"]["sandbox"]  # which limits applied
    assert not marker.exists()  # what it planted in its HOME/TMPDIR never ran in the scorer or model process


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory the unprivileged worker can reach (pytest's tmp tree is root's, mode 0700)."""
    d = Path(tempfile.mkdtemp(prefix="speedrun-w-", dir="/tmp"))
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs a root test process to start an unprivileged worker")
def test_an_unprivileged_worker_seals_a_spy_as_its_own_uid(roomy_site: LiveSite, shared_dir: Path) -> None:
    forks = make_forks(shared_dir / "forks")
    for root, _dirs, files in os.walk(shared_dir):
        for name in [root, *(os.path.join(root, f) for f in files)]:
            os.lchown(name, UID, UID)
    with Client(roomy_site.url, roomy_site.tokens["alice"]) as client:
        job_id = client.submit(cpu_submission(fork_config(forks, "spy"), key="attack18-spy-unprivileged")).job_id
    home = shared_dir / "home"
    home.mkdir()
    os.chown(home, UID, UID)
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "SPEEDRUN_TOKEN": roomy_site.tokens["gpu-node"]}
    cmd = [sys.executable, "-m", "speedrun", "worker", "--server", roomy_site.url, "--once", "--allow-local-git"]
    done = as_user([*cmd, "--work-dir", str(home / "work"), "--tracks", "cpu-smoke"], env=env, cwd=home, timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    assert roomy_site.job(job_id)["attempts"] == 1  # one run of the job, leased by --once
    probe_file = next((home / "work").glob("job-*-attempt-1/run-0/out/probe.json"))
    probe = json.loads(probe_file.read_text())
    assert probe_file.stat().st_uid == UID and probe["uid"] == 65534  # its own uid outside, nobody inside
    assert probe["proc_sys"] == {"writable": False, "readonly_mount": True}
    assert roomy_site.tokens["gpu-node"] not in json.dumps(probe)
