"""The verifier on a git fork (a local repository): crash, hang and invalid result give `error`
with the log tail and no statistics; the fork is cloned at its commit into its own venv."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from submissions.schema import RunConfig, Verdict, VerificationReport
from submissions.tracks import BUILTIN_TRACKS
from submissions.verify import REPORT_FILE, SUMMARY_FILE, verify
from tests.submissions.forks import fork_config

TRACK = BUILTIN_TRACKS["cpu-smoke"]
pytestmark = pytest.mark.slow


def test_crashing_run_is_an_error_with_its_log(fork: tuple[str, str], tmp_path: Path) -> None:
    os.environ["SPEEDRUN_TOKEN"] = "secret-token-of-the-worker"
    try:
        report = verify(
            fork_config(fork, "crash"), track=TRACK, runs=2, out_dir=tmp_path, seeds=[1, 2], sandbox_user=None
        )
    finally:
        del os.environ["SPEEDRUN_TOKEN"]
    assert report.verdict is Verdict.error
    assert report.reasons[0].startswith("run 0 (seed 1) exited with code 1")
    assert report.log_tail is not None and "boom: the fork's model diverged" in report.log_tail
    assert "step 4 loss 5" in report.log_tail
    assert report.runs == [] and report.core is None and report.p_value is None  # never a half-report
    assert "secret-token-of-the-worker" not in report.log_tail  # credentials are not handed to the fork
    assert "token=None" in report.log_tail
    saved = VerificationReport.model_validate_json((tmp_path / REPORT_FILE).read_bytes())
    assert saved == report
    summary = (tmp_path / SUMMARY_FILE).read_text()
    assert "verdict: ERROR" in summary and "boom" in summary
    assert not (tmp_path / "run-1").exists()  # stopped at the first broken run


def test_hanging_run_is_stopped_at_the_time_cap(fork: tuple[str, str], tmp_path: Path) -> None:
    seen = []
    report = verify(
        fork_config(fork, "hang"),
        track=TRACK,
        runs=2,
        out_dir=tmp_path,
        seeds=[5, 6],
        run_timeout_s=3.0,
        sandbox_user=None,
        progress=seen.append,
    )
    assert report.verdict is Verdict.error
    assert "exceeded the time cap of 3 s" in report.reasons[0]
    assert report.log_tail is not None and "waiting forever" in report.log_tail
    pid = int((tmp_path / "run-0" / "pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the whole process group was killed
    assert any(p.step == 3 and p.steps == 10 and p.eta_seconds is not None for p in seen)


def test_invalid_result_is_an_error_naming_the_field(fork: tuple[str, str], tmp_path: Path) -> None:
    report = verify(
        fork_config(fork, "garbage"), track=TRACK, runs=2, out_dir=tmp_path, seeds=[1, 2], sandbox_user=None
    )
    assert report.verdict is Verdict.error
    assert "invalid result.json" in report.reasons[0]
    assert "training_seconds" in report.reasons[0]


def test_unknown_commit_is_an_error(fork: tuple[str, str], tmp_path: Path) -> None:
    url, _ = fork
    config = fork_config((url, "f" * 40), "crash")
    report = verify(config, track=TRACK, runs=2, out_dir=tmp_path, seeds=[1, 2], sandbox_user=None)
    assert report.verdict is Verdict.error
    assert "git" in report.reasons[0]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="the sandbox user applies to root only")
def test_root_runs_a_fork_as_the_sandbox_user(fork: tuple[str, str], tmp_path: Path) -> None:
    report = verify(fork_config(fork, "crash"), track=TRACK, runs=2, out_dir=tmp_path, seeds=[1, 2])
    assert report.verdict is Verdict.error
    if "cannot run" in report.reasons[0]:
        # This interpreter lives where 'nobody' cannot read it (e.g. /root/.pyenv): refused, clearly.
        assert "sandbox user 'nobody'" in report.reasons[0]
    else:
        # It ran as nobody: the fork crashed as designed, in a run directory owned by nobody.
        assert "exited with code 1" in report.reasons[0]
        assert (tmp_path / "run-0").stat().st_uid != 0
    json.loads((tmp_path / REPORT_FILE).read_text())


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


def test_bad_arguments_raise(tmp_path: Path, fork: tuple[str, str]) -> None:
    config = fork_config(fork, "crash")
    with pytest.raises(ValueError, match="seeds"):
        verify(config, track=TRACK, runs=2, out_dir=tmp_path, seeds=[1])
    with pytest.raises(ValueError, match="runs"):
        verify(config, track=TRACK, runs=0, out_dir=tmp_path)


def test_smoke_run_fails_before_the_full_runs(fork: tuple[str, str], tmp_path: Path) -> None:
    report = verify(
        fork_config(fork, "crash"),
        track=TRACK,
        runs=2,
        out_dir=tmp_path,
        seeds=[1, 2],
        sandbox_user=None,
        smoke_steps=2,
    )
    assert report.verdict is Verdict.error
    assert report.reasons[0].startswith("smoke run (2 steps): run 0 (seed 1) exited with code 1")
    assert report.log_tail is not None and '"num_iterations": 2' in report.log_tail
    assert '"core_max_per_task": 11' in report.log_tail
    assert not (tmp_path / "run-0").exists()


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

    trainer = PreparedTrainer(python=sys.executable, cwd=None, label="reference@0.1.0")
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
