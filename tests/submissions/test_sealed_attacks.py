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
    """The worker's report as uploaded (its job directory may be gone)."""
    entry = _entry(site, job_id)
    [ref] = [a for a in entry["artifacts"] if a["name"] == "report.json"]
    data: dict[str, Any] = httpx.get(f"{site.url}/api/artifacts/{ref['sha256']}", timeout=10).json()
    return data


def test_forks_cannot_choose_their_score_nor_shorten_the_clock_and_job_dirs_do_not_pile_up(
    roomy_site: LiveSite, tmp_path: Path
) -> None:
    marker = tmp_path / "planted-marker"
    forged = forged_result()
    forks = make_forks(tmp_path / "forks", {"forged": forged, "marker": str(marker)})
    behaviours = ("entry_forge", "entry_wrap", "late_work")
    with Client(roomy_site.url, roomy_site.tokens["alice"]) as client:
        jobs = {
            b: client.submit(cpu_submission(fork_config(forks, b), key=f"attack18-{b.replace('_', '-')}")).job_id
            for b in behaviours
        }
    with Client(roomy_site.url, roomy_site.tokens["gpu-node"]) as client:
        worker = Worker(
            client,
            worker_id="node-18",
            work_dir=tmp_path / "work",
            fingerprint=CPU,
            allow_local_git=True,
            keep_job_dirs=1,
        )
        states = [worker.run_once() for _ in behaviours]
    assert [s.job_id for s in states if s is not None] == list(jobs.values())

    # 1a: the model function wrote a perfect score.json and ended its process: the run fails, readably
    forge = _entry(roomy_site, jobs["entry_forge"])["verifications"][-1]
    assert forge["reported_verdict"] == "error"
    assert "the model process stopped answering (loading the model)" in forge["reasons"][0], forge["reasons"]
    # 1b: it wrapped the verifier's evaluate_task and bpb adapter: they are not in the scorer's process
    wrap = _report(roomy_site, jobs["entry_wrap"])
    assert wrap["verdict"] != "verified" and len(wrap["runs"]) == 3
    assert all(run["core"]["core"] < 0.2 for run in wrap["runs"])  # the bigram's own CORE, not 0.86
    assert any("own sandboxed model process" in r for r in wrap["reasons"])
    assert any("val_bpb: computed by the fork's own model process" in r for r in wrap["reasons"])
    assert all("fork's own model process" in run["software"]["val_bpb_by"] for run in wrap["runs"])
    shown = _entry(roomy_site, jobs["entry_wrap"])["verifications"][-1]["reasons"]
    assert any("val_bpb: computed by the fork's own model process" in r for r in shown)  # on the entry page
    # 5: weights written through an mmap opened at once, 5 s of work after: all on the clock
    late = _report(roomy_site, jobs["late_work"])
    assert len(late["runs"]) == 3
    for run in late["runs"]:
        assert run["training_seconds"] >= 5.0  # the process tree lived that long; the old clock read ~0.2 s
        assert run["self_reported_training_seconds"] == 0.5
        assert "kernel uid" in run["software"]["sandbox"]  # which limits applied
    # 6: the code it planted in its HOME/TMPDIR never ran in the scorer or the model process
    assert not marker.exists()
    kept = sorted(p.name for p in (tmp_path / "work").glob("job-*"))
    assert kept == [f"job-{jobs['late_work']}-attempt-1"]  # older job dirs were deleted after upload


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
    probe_file = next((home / "work").glob(f"job-{job_id}-attempt-1/run-0/out/probe.json"))
    probe = json.loads(probe_file.read_text())
    assert probe_file.stat().st_uid == UID and probe["uid"] == 65534  # its own uid outside, nobody inside
    assert probe["proc_sys"] == {"writable": False, "readonly_mount": True}
    assert roomy_site.tokens["gpu-node"] not in json.dumps(probe)
