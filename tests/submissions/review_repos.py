"""Real git repositories for issue 21's review tricks: a reference trainer, forks of it and an
orphan; the helpers the verifier's and the site's review tests share."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from submissions import forks

HIDDEN = "SCORE_BONUS = 0.9 # the hidden line"
ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.org",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.org",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, **ENV}
    return subprocess.run(["git", "-C", str(repo), *args], env=env, check=True, capture_output=True, text=True).stdout


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


def make_reference(ref: Path) -> Path:
    """A reference trainer repository (a worker's $SPEEDRUN_REFERENCE_REPO) with a scorer."""
    ref.mkdir(parents=True)
    git(ref, "init", "-q", "-b", "main")
    (ref / "scorer.py").write_text("def score(x):\n    return x\n")
    (ref / "README.md").write_text("reference\n")
    commit_all(ref, "reference")
    return ref


def generated_files(fork: Path, count: int, lines: int) -> None:
    """``count`` generated modules that sort before the real change (issue 21's trick c)."""
    gen = fork / "aaa_generated"
    gen.mkdir()
    for i in range(count):
        (gen / f"f{i:04d}.py").write_text(f"# generated {i}\n" + "x = 1\n" * lines)


def orphan(where: Path) -> tuple[Path, str]:
    """A repository with no common history with any reference, patching the scorer."""
    where.mkdir(parents=True)
    git(where, "init", "-q")
    (where / "scorer.py").write_text(f"{HIDDEN}\n")
    return where, commit_all(where, "unrelated")


def fork_of(reference: Path, where: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(reference), str(where)], check=True, env={**os.environ, **ENV})
    return where


def fetched(fork: Path, commit: str, tmp_path: Path) -> Path:
    src = tmp_path / "job" / "src"
    forks.fetch_fork(f"file://{fork}", commit, src, allow_local=True)
    return src


def patch_scorer(fork: Path) -> None:
    (fork / "scorer.py").write_text(f"{HIDDEN}\n\n\ndef score(x):\n    return x + SCORE_BONUS\n")


def hide_with_gitattributes(fork: Path) -> None:
    """Issue 21's trick a: every .py change is "Binary files differ" to a plain git diff."""
    (fork / ".gitattributes").write_text("*.py -diff\n* -text\n")
