"""The CPU track end to end with the real trainer: `speedrun train` a tiny cpu_smoke run,
`speedrun submit --from-run` it to the real site, where two `speedrun worker` processes under two
worker accounts verify it at once, one run of K=2 each (the track set to ask for two accounts, as
the GPT-2 tracks do), and the entry shows the verdict. (The `speedrun verify` command itself is
tested in test_cli.py on a fork, to keep real training to three runs.)

The runs are cut to a few steps (overrides) and CORE to 11 examples per task, so the track used
here is cpu-smoke with ``max_per_task`` 11, a threshold these runs clear, and 2 runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from contract.schema import Verdict, VerificationReport
from contract.tracks import BUILTIN_TRACKS
from submissions.client import read_run_result
from submissions.rules import decide
from tests.submissions.conftest import LiveSite
from tests.submissions.factories import TINY

pytestmark = pytest.mark.slow

TEST_TRACK = BUILTIN_TRACKS["cpu-smoke"].model_copy(update={"max_per_task": 11, "threshold": -1.0, "min_runs": 2})


def speedrun(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "speedrun", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("train") / "run"
    proc = speedrun(
        "train",
        "--recipe",
        "cpu_smoke",
        "--overrides",
        json.dumps(TINY),
        "--seed",
        "3",
        "--out",
        str(out),
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_submit_from_run_and_a_worker_verifies_it_on_the_site(
    trained_run: Path, roomy_site: LiveSite, tmp_path: Path
) -> None:
    admin = roomy_site.create_user("admin", "admin")
    patch = httpx.patch(
        f"{roomy_site.url}/api/admin/tracks/cpu-smoke",
        json={"max_per_task": 11, "threshold": -1.0, "min_runs": 2, "min_worker_accounts": 2},
        headers={"Authorization": f"Bearer {admin}"},
        timeout=30,
    )
    assert patch.status_code == 200, patch.text
    proc = speedrun(
        "submit",
        "--from-run",
        str(trained_run),
        "--track",
        "cpu-smoke",
        "--title",
        "tiny cpu smoke",
        "--contributor",
        "@alice",
        "--server",
        roomy_site.url,
        env={"SPEEDRUN_TOKEN": roomy_site.tokens["alice"]},
    )
    assert proc.returncode == 0, proc.stderr
    url = proc.stdout.strip()
    assert url.startswith(f"{roomy_site.url}/entries/")
    entry_id = int(url.rsplit("/", 1)[1])

    # two real worker processes, two accounts, started together: each leases one run of the job
    workers = []
    for name in ("gpu-node", "alice-worker"):
        cmd = [sys.executable, "-m", "speedrun", "worker", "--server", roomy_site.url, "--once"]
        cmd += ["--work-dir", str(tmp_path / name), "--worker-id", f"cpu-{name}"]
        env = {**os.environ, "SPEEDRUN_TOKEN": roomy_site.tokens[name]}
        workers.append(subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True))
    logs = [w.communicate(timeout=900)[1] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], [log[-2000:] for log in logs]
    leased = [line for log in logs for line in log.splitlines() if "leased run" in line]
    assert sorted(line.split("leased run ")[1][:3] for line in leased) == ["1/2", "2/2"], leased
    run_dirs = {
        int(p.name.split("-")[1]): p for name in ("gpu-node", "alice-worker") for p in (tmp_path / name).glob("job-*")
    }
    run_jobs = sorted(run_dirs)

    entry = httpx.get(f"{roomy_site.url}/api/entries/{entry_id}", timeout=30).json()
    [verification] = entry["verifications"]
    assert verification["reported_verdict"] == "verified", verification["reasons"]
    assert verification["core_n"] == 2 and verification["p_value"] < 0.05
    names = {a["name"] for a in entry["artifacts"]}
    assert {"run-0/report.json", "run-1/report.json", "run-0/result.json", "run-1/metrics.jsonl"} <= names
    assert "run-1/train.log" in names
    [pooled] = [a for a in entry["artifacts"] if a["name"] == f"verification-{verification['id']}/report.json"]

    # The verification's report: K=2 real cpu_smoke runs with distinct unpredictable seeds, which
    # the site picked and pooled from the two one-run reports of the worker.
    report = VerificationReport.model_validate_json(
        httpx.get(f"{roomy_site.url}/api/artifacts/{pooled['sha256']}", timeout=30).content
    )
    claimed = read_run_result(trained_run)
    assert report.verdict is Verdict.verified
    assert len({r.seed for r in report.runs}) == 2 and claimed.seed not in {r.seed for r in report.runs}
    assert report.core is not None and report.core.n == 2
    assert report.p_value is not None and report.p_value < 0.05
    assert report.training_hours is not None and report.training_hours.mean > 0
    assert report.deltas is not None  # the claim, compared
    # speedrun-v2: sealed, the verifier's clock ranked, CORE re-scored from each checkpoint by the
    # verifier's own code.
    assert report.sealed is True and report.rules_version == "speedrun-v2"
    assert sorted(w["account"] for w in verification["workers"]) == ["alice-worker", "gpu-node"]
    for run_job, run in zip(run_jobs, report.runs, strict=True):
        own = read_run_result(run_dirs[run_job] / "run-0" / "out")
        assert run.sealed is True and run.rules_version == "speedrun-v2"
        assert run.self_reported_training_seconds == own.training_seconds
        assert run.training_seconds > own.training_seconds  # the clock holds start-up and in-process eval
        # sealed training runs with --no-eval (it never sees the eval bundle or the validation shard):
        # the trainer has no CORE of its own here; that the verifier's re-scored CORE equals the
        # in-process CORE to the last digit is test_scoring.py's
        assert run.core is not None and own.core is None and own.val_bpb is None
        assert run.val_bpb is not None
        assert run.hardware.sku == "cpu"
    assert report.training_hours.mean == pytest.approx(sum(r.training_seconds for r in report.runs) / 2 / 3600)
    for run in report.runs:  # the same inputs as the claimed run
        assert run.digests.tokenizer_sha256 == claimed.digests.tokenizer_sha256
        assert run.core is not None and run.core.bundle_sha256 == claimed.digests.eval_bundle_sha256  # scored on it
        assert run.overrides == TINY
    # The same runs against a bar they cannot clear: failed, with the p-value >= alpha.
    strict = TEST_TRACK.model_copy(update={"threshold": 1.0})
    d = decide(report.runs, track=strict, run_config=report.run_config)
    assert d.verdict is Verdict.failed and d.p_value is not None and d.p_value >= strict.alpha
