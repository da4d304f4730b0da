"""The review diff of a fork: every byte an admin must read before a fork ranks.

The diff is of the fork's commit against its merge base with the reference trainer (a fork with
no common history has none: ``NoDiff`` says why, and a track with code review refuses it). It is
a text diff of every changed file whatever the fork's attributes or drivers say: ``--text
--no-textconv --no-ext-diff``, no system or global attribute file, and the checkout's own
``info/attributes`` (``forks.NEUTRAL_ATTRIBUTES``, which outranks any ``.gitattributes`` in the
tree) forcing ``diff`` on every path. Each changed file is listed (up to
``MAX_FORK_DIFF_FILES``; past it the summary says so and the site refuses approval) with its size
and sha256, and flagged when it is binary, large, a link, a submodule, an LFS pointer or a file
that changes how git reads the tree (``.gitattributes``, ``.gitmodules``, ``.lfsconfig``). The
diff's text is kept up to ``MAX_DIFF_BYTES`` and marked ``truncated`` past it (no approval).
"""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, cast

from contract.protocol import MAX_ARTIFACT_BYTES
from contract.schema import FORK_REVIEW_NOTE, MAX_FORK_DIFF_FILES, ForkDiff, ForkDiffFile, ForkDiffFlag
from submissions import forks

MAX_DIFF_BYTES = MAX_ARTIFACT_BYTES - 1024 * 1024  # the artifact store keeps the whole diff up to here
LARGE_FILE_BYTES = 1024 * 1024
BINARY_SNIFF_BYTES = 8000  # git's own heuristic: a NUL in the first 8000 bytes
LFS_POINTER = b"version https://git-lfs.github.com/spec/v1"
DIFF_ARGS = ("--text", "--no-textconv", "--no-ext-diff", "--no-color", "--no-renames", "--full-index")
NAME_FLAGS: dict[str, ForkDiffFlag] = {
    ".gitattributes": "gitattributes",
    ".gitmodules": "gitmodules",
    ".lfsconfig": "lfsconfig",
}
NULL_SHA = "0" * 40
FLAG_ORDER: tuple[ForkDiffFlag, ...] = (
    "gitattributes",
    "gitmodules",
    "lfsconfig",
    "lfs-pointer",
    "submodule",
    "symlink",
    "binary",
    "large",
    "deleted",
)


@dataclass(frozen=True)
class ReviewDiff:
    base_commit: str
    files: list[ForkDiffFile]  # every changed file, in path order (at most MAX_FORK_DIFF_FILES)
    files_changed: int
    insertions: int
    deletions: int
    text: bytes
    truncated: bool

    def summary(self, artifact: str) -> ForkDiff:
        flags = {f for file in self.files for f in file.flags}
        return ForkDiff(
            base_commit=self.base_commit,
            files_changed=self.files_changed,
            insertions=self.insertions,
            deletions=self.deletions,
            files=self.files,
            files_truncated=self.files_changed > len(self.files),
            flags=[f for f in FLAG_ORDER if f in flags],
            artifact=artifact,
            sha256=hashlib.sha256(self.text).hexdigest(),
            size_bytes=len(self.text),
            truncated=self.truncated,
        )


@dataclass(frozen=True)
class NoDiff:
    """Why there is no diff to review (recorded in the report's reasons)."""

    reason: str

    @property
    def note(self) -> str:
        return f"{FORK_REVIEW_NOTE}{self.reason}"


@dataclass(frozen=True)
class _Raw:
    path: str
    old_mode: str
    new_mode: str
    old_sha: str
    new_sha: str
    status: str


def fork_diff(src: Path, commit: str, *, allow_local: bool) -> ReviewDiff | NoDiff:
    """The fork's review diff against the reference at their merge base (``src``: a fetch_fork checkout)."""
    ref = forks.reference_repo()
    if ref is None:
        return NoDiff("this worker has no git checkout of the reference trainer to diff the fork against")
    try:
        forks.run_git(src, "fetch", "-q", str(ref), "HEAD", allow_local=True, timeout_s=300, what="git fetch reference")
    except forks.ForkError as exc:
        return NoDiff(f"the reference trainer's history cannot be fetched ({exc.reason})")
    try:
        base = forks.run_git(src, "merge-base", "FETCH_HEAD", commit, allow_local=allow_local, what="merge-base")
    except forks.ForkError:
        return NoDiff(
            f"commit {commit} has no common history with the reference trainer: there is no base to diff it "
            "against, so its code cannot be reviewed (fork the reference repository and commit on top of it)"
        )
    base = base.strip()
    raw = _raw_changes(src, base, commit, allow_local=allow_local)
    counts = _numstat(src, base, commit, allow_local=allow_local)
    listed = raw[:MAX_FORK_DIFF_FILES]
    files = _describe(src, listed, counts)
    text, truncated = _diff_text(src, base, commit, allow_local=allow_local)
    return ReviewDiff(
        base_commit=base,
        files=files,
        files_changed=len(raw),
        insertions=sum(a for a, _ in counts.values()),
        deletions=sum(d for _, d in counts.values()),
        text=text,
        truncated=truncated,
    )


def _raw_changes(src: Path, base: str, commit: str, *, allow_local: bool) -> list[_Raw]:
    out = forks.run_git(
        src,
        "diff",
        "--raw",
        "-z",
        "--no-renames",
        "--no-abbrev",
        base,
        commit,
        allow_local=allow_local,
        what="diff --raw",
    )
    fields = out.split("\0")
    changes = []
    for meta, path in zip(fields[0::2], fields[1::2], strict=False):
        if not meta.startswith(":"):
            continue
        old_mode, new_mode, old_sha, new_sha, status = meta[1:].split(" ")[:5]
        changes.append(_Raw(path, old_mode, new_mode, old_sha, new_sha, status))
    return sorted(changes, key=lambda c: c.path)


def _numstat(src: Path, base: str, commit: str, *, allow_local: bool) -> dict[str, tuple[int, int]]:
    out = forks.run_git(
        src, "diff", "--numstat", "-z", *DIFF_ARGS, base, commit, allow_local=allow_local, what="diff --numstat"
    )
    counts = {}
    for record in out.split("\0"):
        parts = record.split("\t", 2)
        if len(parts) == 3:
            added, deleted, path = parts
            counts[path] = (int(added) if added.isdigit() else 0, int(deleted) if deleted.isdigit() else 0)
    return counts


def _describe(src: Path, changes: list[_Raw], counts: dict[str, tuple[int, int]]) -> list[ForkDiffFile]:
    """Each change with the size, sha256 and flags of its blob (the old blob for a deletion)."""
    argv = forks.git_argv(src, "cat-file", "--batch", allow_local=False)
    proc = subprocess.Popen(argv, env=forks.git_env(src), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    stdin, stdout = cast(IO[bytes], proc.stdin), cast(IO[bytes], proc.stdout)
    files = []
    try:
        for c in changes:
            flags: list[ForkDiffFlag] = []
            name_flag = NAME_FLAGS.get(PurePosixPath(c.path).name)
            if name_flag:
                flags.append(name_flag)
            if "160000" in (c.old_mode, c.new_mode):
                flags.append("submodule")
            if "120000" in (c.old_mode, c.new_mode):
                flags.append("symlink")
            deleted = c.new_sha == NULL_SHA
            blob = c.old_sha if deleted else c.new_sha
            size = digest = None
            binary = False
            if (c.old_mode if deleted else c.new_mode) != "160000":
                size, digest, head = _blob(stdin, stdout, blob)
                binary = b"\0" in head[:BINARY_SNIFF_BYTES]
                if head.startswith(LFS_POINTER):
                    flags.append("lfs-pointer")
                if binary:
                    flags.append("binary")
                if size > LARGE_FILE_BYTES:
                    flags.append("large")
            if deleted:
                flags.append("deleted")
            added, removed = counts.get(c.path, (0, 0))
            files.append(
                ForkDiffFile(
                    path=c.path[:500],
                    insertions=added,
                    deletions=removed,
                    binary=binary,
                    size_bytes=size,
                    sha256=digest,
                    flags=flags,
                )
            )
    finally:
        stdin.close()
        stdout.close()  # cat-file stops at once, also when a read above failed half-way
        proc.wait(timeout=60)
    return files


def _blob(stdin: IO[bytes], stdout: IO[bytes], sha: str) -> tuple[int, str, bytes]:
    """(size, sha256, first bytes) of a blob, streamed through ``git cat-file --batch``."""
    stdin.write(sha.encode() + b"\n")
    stdin.flush()
    header = stdout.readline().split()
    if len(header) != 3 or header[1] != b"blob":
        raise forks.ForkError(f"git cat-file {sha}: not a blob ({b' '.join(header).decode(errors='replace')})")
    size = int(header[2])
    h = hashlib.sha256()
    head = b""
    left = size
    while left:
        chunk = stdout.read(min(left, 1 << 20))
        if not chunk:
            raise forks.ForkError(f"git cat-file {sha}: short read")
        if len(head) < BINARY_SNIFF_BYTES:
            head += chunk[: BINARY_SNIFF_BYTES - len(head)]
        h.update(chunk)
        left -= len(chunk)
    stdout.read(1)  # the newline after the contents
    return size, h.hexdigest(), head


def _diff_text(src: Path, base: str, commit: str, *, allow_local: bool) -> tuple[bytes, bool]:
    """The unified text diff, read up to ``MAX_DIFF_BYTES`` (True: it was longer, and cut)."""
    argv = forks.git_argv(src, "diff", *DIFF_ARGS, base, commit, allow_local=allow_local)
    proc = subprocess.Popen(argv, env=forks.git_env(src), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = cast(IO[bytes], proc.stdout)
    chunks, size = [], 0
    try:
        while size <= MAX_DIFF_BYTES:
            chunk = out.read(1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        if size > MAX_DIFF_BYTES:
            proc.kill()
        out.close()
        code = proc.wait(timeout=forks.GIT_TIMEOUT_S)
    text = b"".join(chunks)
    if len(text) > MAX_DIFF_BYTES:
        return text[:MAX_DIFF_BYTES], True
    if code != 0:
        raise forks.ForkError(f"git diff: exit code {code}")
    return text, False
