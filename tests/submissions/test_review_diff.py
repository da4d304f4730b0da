"""The review diff against the four tricks of issue 21, each a real git repository: a
``.gitattributes`` that hides a patch as "Binary files differ", a blob added and deleted in
history, 2,000 generated files in front of the real change, and a fork with no common history."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from contract.schema import Verdict, VerificationReport, VerifierIdentity
from submissions import forks, review, sandbox
from submissions.report import summary_text
from submissions.sandbox import Limits, Step, launch, sandbox_problem
from tests.submissions.factories import gpu_config
from tests.submissions.review_repos import (
    HIDDEN,
    commit_all,
    fetched,
    fork_of,
    generated_files,
    git,
    hide_with_gitattributes,
    orphan,
    patch_scorer,
)


def test_gitattributes_cannot_hide_a_patch_as_binary(reference: Path, tmp_path: Path) -> None:
    fork = fork_of(reference, tmp_path / "fork")
    hide_with_gitattributes(fork)
    patch_scorer(fork)
    commit = commit_all(fork, "speed-ups")
    plain = git(fork, "diff", "HEAD~1", "HEAD")
    assert "Binary files" in plain and HIDDEN not in plain  # the trick works on a plain git diff
    src = fetched(fork, commit, tmp_path)
    diff = review.fork_diff(src, commit, allow_local=True)
    assert isinstance(diff, review.ReviewDiff)
    assert HIDDEN.encode() in diff.text and b"Binary files" not in diff.text
    summary = diff.summary("fork.diff")
    scorer = next(f for f in summary.files if f.path == "scorer.py")
    assert scorer.insertions == 4 and scorer.deletions == 1
    assert summary.insertions > 0 and "gitattributes" in summary.flags
    assert next(f for f in summary.files if f.path == ".gitattributes").flags == ["gitattributes"]
    assert (src / "scorer.py").read_text().startswith(HIDDEN)  # the checkout is the commit, byte for byte


def test_binary_lfs_and_submodule_files_are_listed_and_flagged(reference: Path, tmp_path: Path) -> None:
    fork = fork_of(reference, tmp_path / "fork")
    blob = b"\x00\x01weights" * 200_000
    (fork / "weights.bin").write_bytes(blob)
    (fork / "data.txt").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:" + "a" * 64 + "\n")
    (fork / ".gitmodules").write_text('[submodule "x"]\n\tpath = x\n\turl = https://example.org/x\n')
    (fork / "README.md").unlink()
    (fork / os.fsdecode(b"odd\xffname.py")).write_text("x = 1\n")  # a name that is not UTF-8
    commit = commit_all(fork, "assets")
    diff = review.fork_diff(fetched(fork, commit, tmp_path), commit, allow_local=True)
    assert isinstance(diff, review.ReviewDiff)
    files = {f.path: f for f in diff.summary("fork.diff").files}
    weights = files["weights.bin"]
    assert weights.binary and weights.size_bytes == len(blob) and set(weights.flags) == {"binary", "large"}
    assert weights.sha256 == hashlib.sha256(blob).hexdigest()
    assert files["data.txt"].flags == ["lfs-pointer"] and files[".gitmodules"].flags == ["gitmodules"]
    assert files["README.md"].flags == ["deleted"] and files["README.md"].size_bytes == len("reference\n")
    assert set(diff.summary("fork.diff").flags) >= {"binary", "large", "lfs-pointer", "gitmodules", "deleted"}
    assert any(path.startswith("odd") for path in files) and b"+x = 1" in diff.text


def test_history_is_gone_before_training_sees_the_checkout(reference: Path, tmp_path: Path) -> None:
    fork = fork_of(reference, tmp_path / "fork")
    secret = b"SECRET-PRETRAINED-WEIGHTS" + os.urandom(2 * 1024 * 1024)
    (fork / "weights.bin").write_bytes(secret)
    commit_all(fork, "add weights")
    (fork / "weights.bin").unlink()
    patch_scorer(fork)
    commit = commit_all(fork, "remove them again")
    src = fetched(fork, commit, tmp_path)
    assert git(src, "cat-file", "-t", git(fork, "rev-parse", "HEAD~1:weights.bin").strip()).strip() == "blob"
    diff = review.fork_diff(src, commit, allow_local=True)
    assert isinstance(diff, review.ReviewDiff) and b"SECRET-PRETRAINED" not in diff.text  # absent from the diff
    forks.drop_history(src)
    assert not (src / ".git").exists()
    for path in src.rglob("*"):
        assert path.is_dir() or b"SECRET-PRETRAINED" not in path.read_bytes(), path


@pytest.mark.skipif(sandbox_problem() is not None, reason=f"no sandbox here: {sandbox_problem()}")
def test_a_sandboxed_step_cannot_reach_the_history_of_a_prepared_fork(reference: Path, tmp_path: Path) -> None:
    """What the verifier binds (the checkout, read-only; the job dir hidden) holds no history."""
    fork = fork_of(reference, tmp_path / "fork")
    (fork / "weights.bin").write_bytes(b"SECRET-PRETRAINED-WEIGHTS" + os.urandom(1024 * 1024))
    commit_all(fork, "add weights")
    (fork / "weights.bin").unlink()
    patch_scorer(fork)
    commit = commit_all(fork, "remove them again")
    src = fetched(fork, commit, tmp_path)
    review.fork_diff(src, commit, allow_local=True)
    forks.drop_history(src)
    home = tmp_path / "home"
    home.mkdir()
    probe = (
        "import os, subprocess, sys, json\n"
        "src = sys.argv[1]\n"
        "names = sorted(os.listdir(src))\n"
        "log = subprocess.run(['git', '-C', src, 'rev-list', '--all'], capture_output=True, text=True)\n"
        "found = any(b'SECRET-PRETRAINED' in open(os.path.join(d, f), 'rb').read()\n"
        "            for d, _, fs in os.walk(src) for f in fs)\n"
        "print(json.dumps({'names': names, 'git_rc': log.returncode, 'found': found}))\n"
    )
    step = Step(
        argv=[sys.executable, "-c", probe, str(src)],
        cwd=home,
        writable=[home],
        readonly=[src],
        hidden=[tmp_path / "job", fork, reference],
        env={"HOME": str(home)},
    )
    proc = launch(step, Limits(wall_s=120), sealed=True, stdout=subprocess.PIPE)
    out, _ = proc.communicate(timeout=120)
    proc.release()
    assert proc.returncode == 0, out
    seen = json.loads(out.decode().strip().splitlines()[-1])
    assert seen["names"] == ["README.md", "scorer.py"] and seen["git_rc"] != 0 and seen["found"] is False
    assert sandbox.sandbox_problem() is None


def test_two_thousand_generated_files_do_not_hide_the_real_change(reference: Path, tmp_path: Path) -> None:
    fork = fork_of(reference, tmp_path / "fork")
    generated_files(fork, 2000, 400)
    patch_scorer(fork)
    commit = commit_all(fork, "generated code and a scorer patch")
    diff = review.fork_diff(fetched(fork, commit, tmp_path), commit, allow_local=True)
    assert isinstance(diff, review.ReviewDiff)
    summary = diff.summary("fork.diff")
    assert summary.files_changed == 2001 and len(summary.files) == 2001 and not summary.files_truncated
    assert summary.files[-1].path == "scorer.py" and not summary.truncated
    assert HIDDEN.encode() in diff.text


def test_a_diff_past_its_cap_is_marked_truncated(
    reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fork = fork_of(reference, tmp_path / "fork")
    (fork / "big.py").write_text("y = 2\n" * 50_000)
    patch_scorer(fork)
    commit = commit_all(fork, "big")
    monkeypatch.setattr(review, "MAX_DIFF_BYTES", 64 * 1024)
    monkeypatch.setattr(review, "MAX_FORK_DIFF_FILES", 1)
    diff = review.fork_diff(fetched(fork, commit, tmp_path), commit, allow_local=True)
    assert isinstance(diff, review.ReviewDiff)
    summary = diff.summary("fork.diff")
    assert summary.truncated and summary.size_bytes == 64 * 1024
    assert summary.files_truncated and summary.files_changed == 2 and len(summary.files) == 1


def test_a_fork_with_no_common_history_has_no_diff_and_says_why(reference: Path, tmp_path: Path) -> None:
    fork, commit = orphan(tmp_path / "orphan")
    diff = review.fork_diff(fetched(fork, commit, tmp_path), commit, allow_local=True)
    assert isinstance(diff, review.NoDiff)
    assert "no common history with the reference trainer" in diff.note and diff.note.startswith("fork review: ")


def test_the_summary_names_flagged_files_and_a_cut(reference: Path, tmp_path: Path) -> None:
    fork = fork_of(reference, tmp_path / "fork")
    hide_with_gitattributes(fork)
    patch_scorer(fork)
    commit = commit_all(fork, "speed-ups")
    diff = review.fork_diff(fetched(fork, commit, tmp_path), commit, allow_local=True)
    assert isinstance(diff, review.ReviewDiff)
    summary = diff.summary("fork.diff").model_copy(update={"truncated": True})
    report = VerificationReport(
        track="cpu-smoke",
        verifier=VerifierIdentity(id="t", version="0"),
        run_config=gpu_config(),
        core_threshold=0.25,
        alpha=0.05,
        verdict=Verdict.error,
        created_at=datetime.now(UTC),
        fork_diff=summary,
    )
    text = summary_text(report)
    assert "flagged .gitattributes: gitattributes" in text and "CUT at a cap: the diff (cannot be approved)" in text
