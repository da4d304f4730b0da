"""The verifier on a git fork (a local repository): crash, hang and invalid result give `error`
with the log tail and no statistics; the fork is cloned at its commit into its own venv."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from contract.protocol import JobProgress
from contract.schema import FORK_REVIEW_NOTE, RunConfig, Verdict, VerificationReport
from contract.tracks import BUILTIN_TRACKS
from submissions import forks
from submissions.verify import FORK_DIFF_FILE, REPORT_FILE, SUMMARY_FILE, verify
from tests.processes import processes_with
from tests.submissions.conftest import Hostile
from tests.submissions.fork_repos import fork_config

Forks = dict[str, tuple[str, str]]

TRACK = BUILTIN_TRACKS["cpu-smoke"]
pytestmark = pytest.mark.slow


def _verify(fork: Forks, behaviour: str, out: Path, **kw: Any) -> VerificationReport:
    kw.setdefault("seeds", [1, 2])
    return verify(fork_config(fork, behaviour), track=TRACK, runs=2, out_dir=out, allow_local_git=True, **kw)


def test_crashing_run_is_an_error_with_its_log(fork: Forks, tmp_path: Path) -> None:
    os.environ["SPEEDRUN_TOKEN"] = "secret-token-of-the-worker"
    try:
        report = _verify(fork, "crash", tmp_path / "job")
    finally:
        del os.environ["SPEEDRUN_TOKEN"]
    assert report.verdict is Verdict.error
    assert report.reasons[0].startswith("run 0 (seed 1) exited with code 1")
    assert report.log_tail is not None and "boom: the fork's model diverged" in report.log_tail
    assert "step 4 loss 5" in report.log_tail
    assert report.runs == [] and report.core is None and report.p_value is None  # never a half-report
    assert "secret-token-of-the-worker" not in report.log_tail
    assert report.sealed is True
    saved = VerificationReport.model_validate_json((tmp_path / "job" / REPORT_FILE).read_bytes())
    assert saved == report
    summary = (tmp_path / "job" / SUMMARY_FILE).read_text()
    assert "verdict: ERROR" in summary and "boom" in summary and "sealed (bwrap)" in summary
    assert not (tmp_path / "job" / "run-1").exists()  # stopped at the first broken run
    # the test forks share no history with the reference: no diff, and the report says why (issue 21)
    assert report.fork_diff is None and report.reasons[-1].startswith("fork review: commit ")
    assert "no common history with the reference trainer" in report.reasons[-1]
    assert not (tmp_path / "job" / "trainer" / "src" / ".git").exists()  # training saw the tree only


def test_hanging_run_is_killed_with_everything_it_started(fork: Forks, hostile: Hostile, tmp_path: Path) -> None:
    seen: list[JobProgress] = []
    report = _verify(fork, "hang", tmp_path / "job", run_timeout_s=3.0, progress=seen.append)
    assert report.verdict is Verdict.error
    assert "exceeded the time cap of 3 s" in report.reasons[0]
    assert report.log_tail is not None and "waiting forever" in report.log_tail
    # the detached `sleep` (its own session) died with the sandbox's PID namespace
    deadline = time.monotonic() + 10
    while processes_with(hostile.marker.name) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_with(hostile.marker.name) == []
    assert any(p.step == 3 and p.steps == 10 and p.eta_seconds is not None for p in seen)


def test_invalid_result_is_an_error_naming_the_field(fork: Forks, tmp_path: Path) -> None:
    report = _verify(fork, "garbage", tmp_path / "job")
    assert report.verdict is Verdict.error
    assert "invalid result.json" in report.reasons[0]
    assert "training_seconds" in report.reasons[0]


def test_unknown_commit_is_an_error(fork: Forks, tmp_path: Path) -> None:
    url, _ = fork["crash"]
    config = fork_config({"x": (url, "f" * 40)}, "x")
    report = verify(config, track=TRACK, runs=2, out_dir=tmp_path / "job", seeds=[1, 2], allow_local_git=True)
    assert report.verdict is Verdict.error
    assert "git" in report.reasons[0]


def test_local_and_private_git_urls_are_refused_by_default(fork: Forks, tmp_path: Path) -> None:
    report = verify(fork_config(fork, "crash"), track=TRACK, runs=2, out_dir=tmp_path / "job", seeds=[1, 2])
    assert report.verdict is Verdict.error and "file://" in report.reasons[0]
    from submissions.forks import ForkError, check_git_url

    for url, why in (
        ("https://127.0.0.1/x.git", "not a public address"),
        ("https://localhost/x.git", "not a public address"),
        ("https://10.1.2.3/x.git", "not a public address"),
        ("https://169.254.169.254/latest", "not a public address"),
        ("ssh://git@github.com/a/b.git", "only https://"),
        ("git@github.com:a/b.git", "only https://"),
        ("https://user:secret@github.com/a/b.git", "credentials"),
    ):
        with pytest.raises(ForkError, match=why):
            check_git_url(url, allow_local=False)


def test_reference_version_not_installed_is_an_error(tmp_path: Path) -> None:
    config = RunConfig.model_validate(
        {"trainer": "reference@9.9.9", "recipe": "cpu_smoke", "hardware_class": "cpu", "gpus_per_node": 0}
    )
    report = verify(config, track=TRACK, runs=2, out_dir=tmp_path, seeds=[1, 2])
    assert report.verdict is Verdict.error
    assert "reference@9.9.9 is not installed" in report.reasons[0]


def test_config_off_the_track_is_refused_before_running(tmp_path: Path) -> None:
    config = RunConfig.model_validate(
        {"trainer": "reference@0.1.0", "recipe": "cpu_smoke", "hardware_class": "h100-sxm", "gpus_per_node": 8}
    )
    report = verify(config, track=TRACK, runs=2, out_dir=tmp_path, seeds=[1, 2])
    assert report.verdict is Verdict.error
    assert report.reasons[0].startswith("pre-screen: run_config.hardware_class")
    assert not (tmp_path / "run-0").exists()


def test_bad_arguments_raise(tmp_path: Path, fork: Forks) -> None:
    config = fork_config(fork, "crash")
    with pytest.raises(ValueError, match="seeds"):
        verify(config, track=TRACK, runs=2, out_dir=tmp_path, seeds=[1])
    with pytest.raises(ValueError, match="runs"):
        verify(config, track=TRACK, runs=0, out_dir=tmp_path)


def test_smoke_run_fails_before_the_full_runs(fork: Forks, tmp_path: Path) -> None:
    report = _verify(fork, "crash", tmp_path / "job", smoke_steps=2)
    assert report.verdict is Verdict.error
    assert report.reasons[0].startswith("smoke run (2 steps): run 0 (seed 1) exited with code 1")
    assert report.log_tail is not None and '"num_iterations": 2' in report.log_tail
    assert '"core_max_per_task": 11' in report.log_tail
    assert not (tmp_path / "job" / "run-0").exists()


def test_prescreen_refuses_a_plan_beyond_the_compute_cap() -> None:
    from submissions.verify import prescreen

    track = BUILTIN_TRACKS["gpt2-8xh100"]
    base = {"trainer": "reference@0.1.0", "recipe": "gpt2_speedrun", "hardware_class": "h100-sxm", "gpus_per_node": 8}
    assert prescreen(RunConfig.model_validate(base), track) == []
    huge = RunConfig.model_validate({**base, "overrides": {"num_iterations": 10**8}})
    [problem] = prescreen(huge, track)
    assert problem.startswith("run_config.overrides: the plan needs") and "at most 24 h" in problem


def test_several_gpus_run_under_torchrun(tmp_path: Path) -> None:
    import sys

    from submissions.verify import PreparedTrainer, VerifyError, train_command
    from tests.submissions.factories import gpu_config

    trainer = PreparedTrainer(python=sys.executable, label="reference@0.1.0", sealed=True)
    cmd = train_command(trainer, gpu_config(overrides={"depth": 26}), 7, tmp_path)
    assert cmd[:5] == [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=8", "--standalone"]
    assert cmd[5:] == [
        "-m",
        "speedrun",
        "train",
        "--recipe",
        "gpt2_speedrun",
        "--overrides",
        '{"depth": 26}',
        "--seed",
        "7",
        "--out",
        str(tmp_path),
        "--no-progress",
    ]
    two_nodes = gpu_config(nodes=2)
    with pytest.raises(VerifyError, match="rendezvous"):
        train_command(trainer, two_nodes, 7, tmp_path)
    cmd = train_command(trainer, two_nodes, 7, tmp_path, rdzv_endpoint="node0:29500")
    assert "--nnodes=2" in cmd and "--rdzv-endpoint=node0:29500" in cmd and "--rdzv-backend=c10d" in cmd
    one = RunConfig.model_validate(
        {"trainer": "reference@0.1.0", "recipe": "cpu_smoke", "hardware_class": "cpu", "gpus_per_node": 0}
    )
    assert train_command(trainer, one, 7, tmp_path)[:3] == [sys.executable, "-m", "speedrun"]


def test_a_fork_of_the_reference_is_diffed_for_review_and_runs_without_its_history(
    fork: Forks, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 21: the report carries the review diff against the merge base (every file listed, the
    artifact's sha256), and the checkout the sandbox binds has no .git."""
    url, base = fork["crash"]
    reference = tmp_path / "reference"  # the reference trainer is the forks' first commit
    subprocess.run(["git", "clone", "-q", url.removeprefix("file://"), str(reference)], check=True)
    subprocess.run(["git", "-C", str(reference), "checkout", "-q", "--detach", base], check=True)
    monkeypatch.setenv(forks.REFERENCE_REPO_ENV, str(reference))
    report = _verify(fork, "slow", tmp_path / "job")
    assert report.verdict is Verdict.error  # the slow fork crashes after 4 s: the diff is in the report anyway
    diff = report.fork_diff
    assert diff is not None and diff.base_commit == base and not diff.truncated and not diff.files_truncated
    assert "speedrun/__main__.py" in [f.path for f in diff.files] and diff.files_changed == len(diff.files)
    assert all(f.sha256 is not None and f.size_bytes is not None for f in diff.files)
    text = (tmp_path / "job" / FORK_DIFF_FILE).read_bytes()
    assert hashlib.sha256(text).hexdigest() == diff.sha256 and b"+BEHAVIOUR = 'slow'" in text
    assert not any(r.startswith(FORK_REVIEW_NOTE) for r in report.reasons)
    assert not (tmp_path / "job" / "trainer" / "src" / ".git").exists()
