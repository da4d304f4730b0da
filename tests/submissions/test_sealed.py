"""Hostile forks against the sealed verifier (real bwrap, real processes, forks as local git repos).

Each test is one attack of issue 15 (issue 18's are in test_sealed_attacks.py); the module
docstring of fork_repos.py lists the behaviours.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from contract.schema import Verdict, VerificationReport
from contract.tracks import BUILTIN_TRACKS
from submissions.client import Client
from submissions.sandbox import sandbox_identity, sandbox_problem
from submissions.verify import verify
from submissions.worker import Worker
from tests.processes import peak_rss_kib, processes_with
from tests.submissions.conftest import Hostile, LiveSite
from tests.submissions.factories import CPU, cpu_submission
from tests.submissions.fork_repos import forged_result, fork_config, make_forks

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sandbox_problem() is not None, reason=f"no sandbox here: {sandbox_problem()}"),
]
TRACK = BUILTIN_TRACKS["cpu-smoke"]
TOKEN = "worker-token-that-must-never-leak"


def _verify(hostile: Hostile, behaviour: str, out: Path, **kw: Any) -> VerificationReport:
    kw.setdefault("seeds", [1, 2, 3])
    return verify(
        fork_config(hostile.forks, behaviour),
        track=TRACK,
        runs=3,
        out_dir=out,
        allow_local_git=True,
        hidden=[hostile.work_dir, hostile.token_file, hostile.secret],
        **kw,
    )


def _skeleton(directory: Path) -> set[str]:
    """Names under ``directory`` that exist in the sandbox only as mount points of bound paths."""
    from submissions.sandbox import interpreter_paths

    return {
        p.relative_to(directory).parts[0] for p in interpreter_paths() if p.is_relative_to(directory) and p != directory
    }


def test_forged_result_is_never_verified_and_none_of_its_numbers_is_kept(tmp_path: Path) -> None:
    forged = forged_result()
    forged.update(sealed=True, self_reported_training_seconds=0.5, clock_disagrees=False)
    forks = make_forks(tmp_path / "forks", {"forged": forged})
    report = verify(
        fork_config(forks, "forge"),
        track=TRACK,
        runs=1,
        out_dir=tmp_path / "job",
        seeds=[1],
        allow_local_git=True,
    )
    assert report.verdict is not Verdict.verified, report.reasons
    assert len(report.runs) == 1
    for run in report.runs:
        assert run.core is not None and run.core.core < 0.5  # re-scored, not 0.9
        assert run.self_reported_training_seconds == 0.5  # kept beside, never ranked
        assert run.training_seconds > 0.5 and run.rules_version == "speedrun-v2"
        assert run.hardware.sku == "cpu" and run.hardware.device_type == "cpu"  # the worker's, not the H100
        assert run.sealed is True
        assert run.steps == 2 and run.final_loss is None and run.mfu is None  # the verifier's plan
    assert report.core is not None and report.core.mean < 0.5
    assert report.fork_diff is None  # no common history with the reference: nothing to diff against


@pytest.mark.parametrize(
    ("behaviour", "named"),
    [
        ("link_environ", "run-0/train.log: a symbolic link"),
        ("link_secret", "run-0/result.json: a symbolic link"),
        ("fifo", "run-0/metrics.jsonl: a FIFO"),
        ("sparse", "run-0/train.log: 2147483648 bytes, more than the cap"),
    ],
)
def test_planted_links_fifos_and_huge_files_are_never_read(
    hostile: Hostile, tmp_path: Path, behaviour: str, named: str
) -> None:
    os.environ["SPEEDRUN_TOKEN"] = TOKEN
    try:
        report = _verify(hostile, behaviour, tmp_path / "job")
    finally:
        del os.environ["SPEEDRUN_TOKEN"]
    assert report.verdict is Verdict.error
    assert named in report.reasons[0]
    text = (tmp_path / "job" / "report.json").read_text() + (tmp_path / "job" / "summary.txt").read_text()
    assert TOKEN not in text and "root-only secret" not in text


def test_a_worker_fails_each_bad_job_naming_the_file_and_serves_the_next(
    hostile: Hostile, live_site: LiveSite, tmp_path: Path
) -> None:
    behaviours = ("link_environ", "link_secret", "fifo", "sparse", "crash")
    with Client(live_site.url, live_site.tokens["alice"]) as client:
        jobs = [
            client.submit(cpu_submission(fork_config(hostile.forks, b), key=f"attack-{b.replace('_', '-')}")).job_id
            for b in behaviours
        ]
    os.environ["SPEEDRUN_TOKEN"] = TOKEN
    try:
        with Client(live_site.url, live_site.tokens["gpu-node"]) as client:
            worker = Worker(
                client,
                worker_id="test-node",
                work_dir=tmp_path / "work",
                fingerprint=CPU,
                allow_local_git=True,
                hidden=[hostile.token_file, hostile.secret],
                keep_job_dirs=len(behaviours),  # every job's report is read below (by default the newest 3 stay)
            )
            states = [worker.run_once() for _ in behaviours]
    finally:
        del os.environ["SPEEDRUN_TOKEN"]
    runs = [s.job_id for s in states if s is not None]
    assert len(runs) == len(behaviours)  # run 0 of each job, one after the other, none lost
    assert [live_site.job(j)["attempts"] for j in jobs] == [1] * len(jobs)
    for behaviour, job_id, run_id in zip(behaviours, jobs, runs, strict=True):
        job_dir = tmp_path / "work" / f"job-{run_id}-attempt-1"
        report = json.loads((job_dir / "report.json").read_text())
        assert report["verdict"] == "error", behaviour
        named = {
            "link_environ": "train.log",
            "link_secret": "result.json",
            "fifo": "metrics.jsonl",
            "sparse": "train.log",
        }
        if behaviour in named:
            assert f"run-0/{named[behaviour]}" in report["reasons"][0], report["reasons"]
        job = live_site.job(job_id)
        assert job["status"] == "queued" and job["failure_reason"].startswith("worker test-node: ")
        for name in ("report.json", "summary.txt", "run-0/process.log"):  # what went up, fetched back
            sha = hashlib.sha256((job_dir / name).read_bytes()).hexdigest()
            data = httpx.get(f"{live_site.url}/api/artifacts/{sha}", timeout=10).content
            assert TOKEN.encode() not in data and b"root-only secret" not in data, name


def test_spy_sees_no_credential_no_worker_file_and_no_network(hostile: Hostile, tmp_path: Path) -> None:
    os.environ["SPEEDRUN_TOKEN"] = TOKEN
    os.environ["SPEEDRUN_TOKEN_FILE"] = str(hostile.token_file)
    try:
        report = _verify(hostile, "spy", tmp_path / "job")
    finally:
        del os.environ["SPEEDRUN_TOKEN"], os.environ["SPEEDRUN_TOKEN_FILE"]
    assert report.verdict is Verdict.error  # it trains nothing
    job = tmp_path / "job"
    install = json.loads(next(job.glob("trainer/*/probe-install.json")).read_text())
    train = json.loads((job / "run-0" / "out" / "probe.json").read_text())
    assert (job / "run-0" / "out" / "probe.json").stat().st_uid != 0  # written by an unprivileged kernel uid
    for probe in (install, train):
        where = probe["where"]
        assert probe["uid"] in (65534, sandbox_identity().uid), where  # never kernel root
        assert probe["proc_sys"] == {"writable": False, "readonly_mount": True}, where
        dump = json.dumps(probe)
        assert TOKEN not in dump and "worker-token-from-file" not in dump and "root-only secret" not in dump, where
        assert not any("TOKEN" in k or "SECRET" in k for k in probe["env"]), where
        assert probe["env"]["HOME"].startswith(str(job)), where  # its own HOME inside the job
        for target, outcome in probe["network"].items():
            assert outcome.startswith("unreachable"), (where, target)
        for path, outcome in probe["worker_paths"].items():
            if outcome[0] == "listed":  # only the empty skeleton of a bound interpreter path
                assert set(outcome[1:]) <= _skeleton(Path(path)), (where, path, outcome)
            else:
                assert outcome.startswith("denied"), (where, path, outcome)
        assert TOKEN not in probe["pid1_environ"]


def test_planted_usercustomize_and_pth_reach_neither_the_next_job_nor_the_worker(
    hostile: Hostile, tmp_path: Path
) -> None:
    _verify(hostile, "plant", tmp_path / "job-1")
    planted = (tmp_path / "job-1" / "run-0" / "process.log").read_text()
    assert "planted:" in planted  # it did write some (its own HOME, TMPDIR)
    report = _verify(hostile, "crash", tmp_path / "job-2")  # the next job starts python, pip and the fork
    assert "boom" in (report.log_tail or "")
    assert not hostile.marker.exists()  # no planted code ran in the next job's sandbox nor here
    proc = subprocess.run([sys.executable, "-c", "import site; print('ok')"], capture_output=True, text=True)
    assert proc.stdout.strip() == "ok" and not hostile.marker.exists()  # a fresh worker interpreter too


def test_killing_the_verifier_takes_the_sandbox_down(hostile: Hostile, tmp_path: Path) -> None:
    config = tmp_path / "run.json"
    config.write_text(fork_config(hostile.forks, "hang").model_dump_json())
    cmd = [sys.executable, "-m", "speedrun", "verify", str(config), "--runs", "3", "--seeds", "1,2,3"]
    cmd += ["--out", str(tmp_path / "job"), "--quiet", "--allow-local-git"]
    verifier = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not processes_with(hostile.marker.name):
            assert verifier.poll() is None and time.monotonic() < deadline, "the hanging fork never started"
            time.sleep(0.2)
        os.kill(verifier.pid, signal.SIGKILL)
        verifier.wait()
        deadline = time.monotonic() + 10
        while processes_with(hostile.marker.name) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert processes_with(hostile.marker.name) == []
    finally:
        if verifier.poll() is None:
            verifier.kill()


def test_a_newline_free_gigabyte_of_metrics_keeps_the_verifier_small(hostile: Hostile, tmp_path: Path) -> None:
    peaks = {}
    for behaviour in ("crash", "metrics_bomb"):
        config = tmp_path / f"{behaviour}.json"
        config.write_text(fork_config(hostile.forks, behaviour).model_dump_json())
        cmd = [sys.executable, "-m", "speedrun", "verify", str(config), "--runs", "3", "--seeds", "1,2,3"]
        cmd += ["--out", str(tmp_path / behaviour), "--quiet", "--allow-local-git"]
        peaks[behaviour], code = peak_rss_kib(cmd)
        assert code == 3
    bomb = tmp_path / "metrics_bomb" / "run-0" / "out" / "metrics.jsonl"
    assert bomb.stat().st_size > 1024**3  # the fork did write its gigabyte
    print(f"verifier peak RSS: crash fork {peaks['crash']} KiB, 1 GiB metrics bomb {peaks['metrics_bomb']} KiB")
    assert peaks["metrics_bomb"] - peaks["crash"] < 64 * 1024  # < 64 MiB more than a plain failing run


def test_a_declared_model_entry_point_is_scored_by_the_verifier(tmp_path: Path) -> None:
    forged = forged_result()
    forks = make_forks(tmp_path / "forks", {"forged": forged})
    report = verify(
        fork_config(forks, "entry"), track=TRACK, runs=1, out_dir=tmp_path / "job", seeds=[4], allow_local_git=True
    )
    assert report.verdict is not Verdict.error, report.reasons
    [run] = report.runs
    assert run.core is not None and run.core.core < 0.5 and run.val_bpb is not None and run.val_bpb > 1.0
    request = json.loads((tmp_path / "job" / "run-0" / "model-home" / "request.json").read_text())
    assert request["entry_point"] == "fork_model:load"  # the model process's, never the scorer's
    assert "entry_point" not in json.loads((tmp_path / "job" / "run-0" / "eval" / "request.json").read_text())


def test_a_bad_model_declaration_is_refused_before_anything_runs(tmp_path: Path) -> None:
    from submissions.forks import ForkError, model_entry_point

    for text, why in (
        ("[tool.speedrun]\nmodel = \"os.system('x')\"\n", "expected 'package.module:function'"),
        ('[tool.speedrun]\nmodel = "missing.mod:load"\n', "missing/mod.py is not in the fork"),
        ("[tool.speedrun\n", "not valid TOML"),
    ):
        (tmp_path / "pyproject.toml").write_text(text)
        with pytest.raises(ForkError, match=why.replace("(", r"\(")):
            model_entry_point(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    assert model_entry_point(tmp_path) is None
