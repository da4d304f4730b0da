"""`speedrun submit`, `speedrun verify` and `speedrun worker`: local validation with clear errors,
building a submission from a run directory, the schema export, and verify's exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contract.schema import MAX_LOG_FILE_BYTES, RunConfig, Submission, VerificationReport
from speedrun.cli import main
from submissions.client import submission_from_run_dir
from submissions.schema_export import schema_documents
from tests.submissions.factories import CPU, run_result
from tests.submissions.fork_repos import fork_config, make_forks


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    d = tmp_path / "run"
    d.mkdir()
    result = run_result(
        seed=3,
        core_score=0.4,
        training_seconds=42.0,
        hardware=CPU,
        recipe="cpu_smoke",
        overrides={"num_iterations": 20},
    )
    (d / "result.json").write_text(result.model_dump_json())
    (d / "train.log").write_text("step 1 loss 7.6\n")
    (d / "metrics.jsonl").write_text('{"step": 1, "loss": 7.6}\n')
    return d


def test_export_schema_writes_every_contract_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "--export-schema", str(tmp_path)]) == 0
    for name, text in schema_documents().items():
        assert (tmp_path / name).read_text() == text
    assert len(capsys.readouterr().out.splitlines()) == len(schema_documents())


def test_submit_dry_run_builds_the_submission_from_a_run_dir(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "submit",
            "--from-run",
            str(run_dir),
            "--track",
            "cpu-smoke",
            "--title",
            "my run",
            "--contributor",
            "@me",
            "--dry-run",
        ]
    )
    assert code == 0
    sub = Submission.model_validate_json(capsys.readouterr().out)
    assert sub.run_config == RunConfig.model_validate(
        {
            "trainer": "reference@0.1.0",
            "recipe": "cpu_smoke",
            "overrides": {"num_iterations": 20},
            "hardware_class": "cpu",
            "gpus_per_node": 0,
            "seed": 3,
        }
    )
    assert [f.name for f in sub.logs] == ["train.log", "metrics.jsonl"]
    assert sub.claimed_results[0].training_seconds == 42.0


def test_submit_dry_run_builds_a_fork_submission_from_trainer_url(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["submit", "--from-run", str(run_dir), "--track", "cpu-smoke", "--title", "my fork", "--contributor", "@me"]
    url, commit = "https://github.com/me/nanochat-fork", "ab" * 20
    assert main([*args, "--trainer", f"{url}@{commit}", "--dry-run"]) == 0
    sub = Submission.model_validate_json(capsys.readouterr().out)
    assert sub.run_config.trainer.kind == "git"
    assert (sub.run_config.trainer.git_url, sub.run_config.trainer.commit) == (url, commit)
    for bad, words in (
        (f"{url}@abc1234", "the full 40-hex commit"),  # a short sha names no fixed code
        (f"ssh://git@github.com/me/fork@{commit}", "expected 'reference@"),
        (f"http://github.com/me/fork@{commit}", "expected 'reference@"),  # not https
        (url, "expected '<https clone URL>@<40-hex commit>'"),
    ):
        assert main([*args, "--trainer", bad, "--dry-run"]) == 2, bad
        assert words in capsys.readouterr().err, bad


def test_same_run_gives_the_same_idempotency_key(run_dir: Path) -> None:
    a = submission_from_run_dir(run_dir, track="cpu-smoke", title="t", contributors=["@me"])
    b = submission_from_run_dir(run_dir, track="cpu-smoke", title="t", contributors=["@me"])
    c = submission_from_run_dir(run_dir, track="cpu-smoke", title="other", contributors=["@me"])
    assert a.idempotency_key == b.idempotency_key != c.idempotency_key


def test_oversized_log_keeps_its_tail(run_dir: Path) -> None:
    (run_dir / "train.log").write_text("old line\n" * (MAX_LOG_FILE_BYTES // 9 + 1000) + "the last line\n")
    sub = submission_from_run_dir(run_dir, track="cpu-smoke", title="t", contributors=["@me"])
    log = sub.logs[0].content
    assert len(log.encode()) <= MAX_LOG_FILE_BYTES
    assert log.startswith("[speedrun: the first ") and log.endswith("the last line\n")


def test_submit_names_the_missing_flags(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["submit", "--from-run", str(run_dir), "--track", "cpu-smoke"]) == 2
    err = capsys.readouterr().err
    assert "--title" in err and "--contributor" in err


def test_submit_names_the_bad_field_before_uploading(
    tmp_path: Path, run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sub = submission_from_run_dir(run_dir, track="cpu-smoke", title="t", contributors=["@me"])
    data = json.loads(sub.model_dump_json())
    data["run_config"]["gpus_per_node"] = 99
    path = tmp_path / "submission.json"
    path.write_text(json.dumps(data))
    assert main(["submit", str(path), "--server", "http://127.0.0.1:9"]) == 2
    assert "run_config.gpus_per_node" in capsys.readouterr().err


def test_submit_prescreens_against_the_track(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "submit",
            "--from-run",
            str(run_dir),
            "--track",
            "gpt2-8xh100",
            "--title",
            "t",
            "--contributor",
            "@me",
            "--dry-run",
        ]
    )
    assert code == 2
    assert "run_config.hardware_class" in capsys.readouterr().err


def test_verify_names_a_missing_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(tmp_path / "nope.json"), "--out", str(tmp_path / "o")]) == 2
    assert "nope.json" in capsys.readouterr().err


def test_verify_names_a_bad_config_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "run.json"
    path.write_text(
        json.dumps(
            {
                "trainer": "reference@0.1.0",
                "recipe": "cpu_smoke",
                "hardware_class": "cpu",
                "gpus_per_node": 0,
                "nodes": 0,
            }
        )
    )
    assert main(["verify", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "nodes" in capsys.readouterr().err


@pytest.mark.slow
def test_verify_of_a_crashing_fork_exits_3_with_the_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "run.json"
    path.write_text(fork_config(make_forks(tmp_path), "crash").model_dump_json())
    out = tmp_path / "verify"
    code = main(
        ["verify", str(path), "--runs", "2", "--seeds", "4,5", "--out", str(out), "--quiet", "--allow-local-git"]
    )
    assert code == 3
    printed = capsys.readouterr().out
    assert "verdict: ERROR" in printed and "boom" in printed
    report = VerificationReport.model_validate_json((out / "report.json").read_bytes())
    assert report.track == "cpu-smoke" and report.verdict.value == "error"


def test_worker_needs_a_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SPEEDRUN_TOKEN", raising=False)
    assert main(["worker", "--server", "http://127.0.0.1:9", "--once", "--work-dir", str(tmp_path)]) == 2
    assert "--token" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["0", "-2", "two"])
def test_worker_threads_must_be_a_positive_integer(
    bad: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["worker", "--server", "http://127.0.0.1:9", "--token", "t", "--once", "--work-dir", str(tmp_path)]
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--threads", bad])
    assert exc.value.code == 2
    assert "--threads" in capsys.readouterr().err
