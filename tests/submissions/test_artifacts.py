"""Reading a run's files as hostile input, the bounded metrics tail, the token file, the unsealed path."""

from __future__ import annotations

import os
import resource
from pathlib import Path

import pytest

from submissions import artifacts
from submissions.measure import MAX_LINE_BYTES, MAX_POLL_BYTES, MetricsTail


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    d = tmp_path / "out"
    d.mkdir()
    (d / "result.json").write_text('{"ok": true}')
    secret = tmp_path / "secret"
    secret.write_text("root-only secret")
    os.chmod(secret, 0o600)
    os.symlink("/proc/self/environ", d / "environ.log")
    os.symlink(secret, d / "secret.log")
    os.mkfifo(d / "fifo.log")
    with open(d / "sparse.log", "wb") as f:
        f.truncate(2 * 1024**3)
    os.symlink(tmp_path, d / "up")  # a directory link: a path through it is refused too
    return d


def test_only_regular_files_under_the_cap_are_read(run_dir: Path) -> None:
    assert artifacts.read_bytes(run_dir, "result.json", 100) == b'{"ok": true}'
    for name, why in (
        ("environ.log", "a symbolic link"),
        ("secret.log", "a symbolic link"),
        ("fifo.log", "a FIFO"),
        ("sparse.log", "2147483648 bytes, more than the cap"),
        ("up/secret", "not a plain directory"),
        ("../secret", "not a plain relative path"),
    ):
        with pytest.raises(artifacts.ArtifactError, match=why) as info:
            artifacts.read_bytes(run_dir, name, artifacts.LOG_CAP, label=f"run-0/{name}")
        assert name.split("/")[-1] in info.value.reason or "relative" in info.value.reason
    with pytest.raises(FileNotFoundError):
        artifacts.read_bytes(run_dir, "missing.json", 100)
    with pytest.raises(artifacts.ArtifactError, match="more than the cap of 5"):
        artifacts.read_bytes(run_dir, "result.json", 5)


def test_log_tails_say_why_instead_of_reading(run_dir: Path) -> None:
    assert artifacts.read_tail(run_dir, "environ.log", 1000).startswith("(environ.log: a symbolic link")
    assert "a FIFO" in artifacts.read_tail(run_dir, "fifo.log", 1000)  # and never blocks
    assert "more than the cap" in artifacts.read_tail(run_dir, "sparse.log", 1000)
    (run_dir / "nul.log").write_bytes(b"ok\x00\x1b[31mred\n")
    assert artifacts.read_tail(run_dir, "nul.log", 1000) == "ok[31mred\n"


def test_metrics_tail_reads_bounded_pieces_and_drops_overlong_lines(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    with open(path, "wb") as f:
        f.write(b'{"step": 1, "num_iterations": 5}\n')
        f.write(b"x" * (3 * MAX_POLL_BYTES))  # an overlong line, spread over several polls
        f.write(b'\n{"step": 2}\n')
    tail = MetricsTail(tmp_path, "metrics.jsonl")
    rows = [tail.poll() for _ in range(5)]
    assert rows[0] == {"step": 1, "num_iterations": 5}
    assert rows[-1] == {"step": 2, "num_iterations": 5}
    assert len(tail.partial) <= MAX_LINE_BYTES


def test_metrics_tail_memory_stays_bounded_on_a_newline_free_gigabyte(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    with open(path, "wb") as f:
        f.truncate(1024**3)  # 1 GiB of NULs, no newline
    tail = MetricsTail(tmp_path, "metrics.jsonl")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(200):
        assert tail.poll() is None
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert tail.offset == 200 * MAX_POLL_BYTES and len(tail.partial) <= MAX_LINE_BYTES
    assert grown_kib < 64 * 1024  # peak RSS grew by less than 64 MiB after 200 MiB were read


def test_worker_token_from_a_0600_file_is_removed_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import argparse

    from submissions.cli import _token

    path = tmp_path / "token"
    path.write_text("tok-from-file\n")
    os.chmod(path, 0o644)
    monkeypatch.setenv("SPEEDRUN_TOKEN_FILE", str(path))
    with pytest.raises(ValueError, match="must be 0600"):
        _token(argparse.Namespace(token=None))
    os.chmod(path, 0o600)
    monkeypatch.setenv("SPEEDRUN_TOKEN_FILE", str(path))
    monkeypatch.setenv("SPEEDRUN_TOKEN", "tok-from-env")
    assert _token(argparse.Namespace(token=None)) == "tok-from-file"
    assert "SPEEDRUN_TOKEN" not in os.environ and "SPEEDRUN_TOKEN_FILE" not in os.environ
    monkeypatch.setenv("SPEEDRUN_TOKEN", "tok-from-env")
    assert _token(argparse.Namespace(token=None)) == "tok-from-env"
    assert "SPEEDRUN_TOKEN" not in os.environ


def test_children_get_only_the_allow_list(monkeypatch: pytest.MonkeyPatch) -> None:
    from submissions.sandbox import clean_env

    monkeypatch.setenv("SPEEDRUN_TOKEN", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    env = clean_env()
    assert "SPEEDRUN_TOKEN" not in env and "AWS_SECRET_ACCESS_KEY" not in env
    assert env["CUDA_VISIBLE_DEVICES"] == "0,1" and env["PYTHONNOUSERSITE"] == "1"


@pytest.mark.slow
def test_without_a_sandbox_the_reference_runs_unsealed_and_a_fork_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from contract.schema import RunConfig, Verdict
    from contract.tracks import BUILTIN_TRACKS
    from submissions import sandbox
    from submissions.verify import verify
    from tests.submissions.fork_repos import fork_config, make_forks

    monkeypatch.setattr(sandbox, "sandbox_problem", lambda **_: "bubblewrap (bwrap) is not installed")
    track = BUILTIN_TRACKS["cpu-smoke"]
    tiny = {"num_iterations": 2, "depth": 2, "device_batch_size": 4, "total_batch_size": 1024, "eval_tokens": 1024}
    config = RunConfig.model_validate(
        {
            "trainer": "reference@0.1.0",
            "recipe": "cpu_smoke",
            "overrides": {**tiny, "core_max_per_task": 11},
            "hardware_class": "cpu",
            "gpus_per_node": 0,
        }
    )
    report = verify(config, track=track, runs=1, out_dir=tmp_path / "ref", seeds=[3])
    assert report.sealed is False and len(report.runs) == 1 and report.runs[0].sealed is False
    assert report.runs[0].core is not None  # re-scored all the same, in its own process
    assert "UNSEALED" in (tmp_path / "ref" / "summary.txt").read_text()
    fork = fork_config(make_forks(tmp_path / "forks"), "crash")
    report = verify(fork, track=track, runs=1, out_dir=tmp_path / "fork", seeds=[3], allow_local_git=True)
    assert report.verdict is Verdict.error and "a fork runs only sealed" in report.reasons[0]
    assert "bwrap" in report.reasons[0]
    refused = verify(config, track=track, runs=1, out_dir=tmp_path / "w", seeds=[3], allow_unsealed=False)
    assert refused.verdict is Verdict.error and "no sandbox" in refused.reasons[0]


def test_every_track_has_a_run_time_cap() -> None:
    from contract.schema import RunConfig
    from contract.tracks import BUILTIN_TRACKS
    from submissions.prescreen import MAX_RUN_TIMEOUT_S, MIN_RUN_TIMEOUT_S, default_run_timeout_s
    from tests.submissions.factories import gpu_config

    cpu = RunConfig.model_validate(
        {"trainer": "reference@0.1.0", "recipe": "cpu_smoke", "hardware_class": "cpu", "gpus_per_node": 0}
    )
    assert default_run_timeout_s(BUILTIN_TRACKS["cpu-smoke"], cpu) == MIN_RUN_TIMEOUT_S
    gpt2 = default_run_timeout_s(BUILTIN_TRACKS["gpt2-8xh100"], gpu_config())
    assert 3 * 99 * 60 <= gpt2 <= MAX_RUN_TIMEOUT_S  # 3 x the record (99 min), or the FLOPs bound
    huge = gpu_config(overrides={"num_iterations": 10**7})
    assert default_run_timeout_s(BUILTIN_TRACKS["gpt2-8xh100"], huge) == MAX_RUN_TIMEOUT_S


@pytest.mark.slow
def test_a_fork_venv_sees_the_outer_venvs_packages_not_only_the_base_interpreters(tmp_path: Path) -> None:
    """The worker itself runs in a venv (as CI and the worker image run it): the fork's venv must see that
    venv's packages, which `--system-site-packages` would not give (it links the base interpreter's).

    The outer venv is built here without the base interpreter's packages: it holds a module of its own
    and, through a .pth as an install would, the packages this test runs with (torch, trainer). Nothing
    depends on what the base interpreter has: on CI it has none of them (.ci/run checks)."""
    import subprocess
    import sys
    import sysconfig

    import torch

    outer = tmp_path / "outer"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(outer)], check=True)
    outer_python = outer / "bin" / "python"
    purelib = subprocess.run(
        [outer_python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(purelib, "only_in_the_outer_venv.py").write_text("WHERE = 'outer venv'\n")
    ours = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    Path(purelib, "the_packages_of_this_test.pth").write_text(
        "".join(f"import site; site.addsitedir({d!r})\n" for d in ours)
    )
    fork_venv = tmp_path / "fork-venv"
    subprocess.run(
        [
            outer_python,
            "-c",
            f"from submissions.forks import make_venv; make_venv(__import__('pathlib').Path({str(fork_venv)!r}))",
        ],
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    probe = "import only_in_the_outer_venv as m, torch, trainer.config; print(m.WHERE); print(torch.__file__)"
    out = subprocess.run([fork_venv / "bin" / "python", "-c", probe], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    where, torch_file = out.stdout.splitlines()[-2:]
    assert where == "outer venv"
    assert Path(torch_file).resolve() == Path(torch.__file__).resolve()


def test_gpu_track_training_reads_the_downloaded_data_without_the_validation_shard() -> None:
    import sys

    from submissions.runner import PreparedTrainer
    from submissions.sandbox import sandbox_problem
    from submissions.verify import train_data
    from tests.submissions.factories import gpu_config

    trainer = PreparedTrainer(python=sys.executable, label="reference@0.1.0", sealed=sandbox_problem() is None)
    data = train_data(gpu_config(), trainer, [])
    assert data is not None
    assert "--no-eval" in data.args  # the trainer skips its own eval: the verifier re-scores
    assert [p.name for p in data.hidden] == ["shard_06542.parquet"]  # the validation shard is masked
    assert data.args[data.args.index("--data-dir") + 1] == str(data.readonly[0])
