"""Reading what a sandboxed step left behind, as hostile input.

Only regular files inside the step's own directory are read: every path component is opened
with ``O_NOFOLLOW`` relative to the directory above it (no symlink anywhere on the way, no
escape through ``..``), the final file with ``O_NONBLOCK`` (a FIFO never blocks the verifier),
then ``fstat`` must say "regular file" under the size cap. Anything else raises
``ArtifactError`` with a reason that names the file; nothing is read from it.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

KIB = 1024
MIB = 1024 * KIB
# Caps of the files a run leaves (bytes).
RESULT_CAP = 4 * MIB
METRICS_CAP = 64 * MIB
LOG_CAP = 16 * MIB
MODEL_CAP = 32 * 1024 * MIB


class ArtifactError(Exception):
    """A file of a run that the verifier refuses to read; ``reason`` names it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISDIR, "a directory"),
    ):
        if test(mode):
            return name
    return "not a regular file"


@contextlib.contextmanager
def open_regular(root: Path, rel: str, cap: int, *, label: str | None = None) -> Iterator[tuple[int, int]]:
    """(fd, size) of the regular file ``root/rel``; ArtifactError naming ``label or rel`` otherwise.

    FileNotFoundError when it does not exist."""
    name = label or rel
    parts = [p for p in rel.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise ArtifactError(f"{name}: not a plain relative path")
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    dir_fd = os.open(root, flags | os.O_DIRECTORY)
    fds = [dir_fd]
    try:
        for part in parts[:-1]:
            try:
                dir_fd = os.open(part, flags | os.O_DIRECTORY, dir_fd=dir_fd)
            except OSError as exc:
                if os.path.lexists(root / part):
                    raise ArtifactError(f"{name}: {part} is not a plain directory ({exc.strerror})") from exc
                raise
            fds.append(dir_fd)
        try:
            st = os.stat(parts[-1], dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            raise
        if not stat.S_ISREG(st.st_mode):
            raise ArtifactError(f"{name}: {_kind(st.st_mode)}, not a regular file; not read")
        try:
            fd = os.open(parts[-1], flags | os.O_NONBLOCK, dir_fd=dir_fd)
        except OSError as exc:
            raise ArtifactError(f"{name}: cannot be opened ({exc.strerror}); not read") from exc
        fds.append(fd)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ArtifactError(f"{name}: {_kind(st.st_mode)}, not a regular file; not read")
        if st.st_size > cap:
            raise ArtifactError(f"{name}: {st.st_size} bytes, more than the cap of {cap}; not read")
        yield fd, st.st_size
    finally:
        for fd in reversed(fds):
            os.close(fd)


def read_bytes(root: Path, rel: str, cap: int, *, label: str | None = None) -> bytes:
    """The content of a regular file under ``root`` (at most ``cap`` bytes, else ArtifactError)."""
    with open_regular(root, rel, cap, label=label) as (fd, size):
        chunks, left = [], min(size, cap) + 1
        while left > 0:
            block = os.read(fd, min(left, MIB))
            if not block:
                break
            chunks.append(block)
            left -= len(block)
        data = b"".join(chunks)
    if len(data) > cap:
        raise ArtifactError(f"{label or rel}: grew past the cap of {cap} bytes while read")
    return data


def check(root: Path, rel: str, cap: int, *, label: str | None = None, required: bool = False) -> int | None:
    """Size of a regular file (None when absent and not required); ArtifactError otherwise."""
    try:
        with open_regular(root, rel, cap, label=label) as (_fd, size):
            return size
    except FileNotFoundError:
        if required:
            raise ArtifactError(f"{label or rel}: missing") from None
        return None


_CONTROL = dict.fromkeys(c for c in range(32) if chr(c) not in "\n\t")


def printable(text: str) -> str:
    """``text`` without NUL and the other control characters a hostile log may hold (tabs, newlines kept)."""
    return text.translate(_CONTROL)


def read_tail(root: Path, rel: str, max_bytes: int, *, label: str | None = None, cap: int = LOG_CAP) -> str:
    """The last ``max_bytes`` of a log as printable text; a note instead when it is not a plain
    file of at most ``cap`` bytes."""
    name = label or rel
    try:
        with open_regular(root, rel, cap=cap, label=label) as (fd, size):
            os.lseek(fd, max(0, size - max_bytes), os.SEEK_SET)
            data = os.read(fd, max_bytes)
    except FileNotFoundError:
        return ""
    except ArtifactError as exc:
        return f"({exc.reason})"
    except OSError as exc:
        return f"({name}: {exc.strerror or exc})"
    return printable(data.decode("utf-8", errors="replace"))


def disk_usage(paths: list[Path], *, max_entries: int = 200_000) -> tuple[int, int]:
    """(bytes allocated, entries) under ``paths`` without following links; stops past max_entries."""
    total = entries = 0
    stack = [str(p) for p in paths]
    while stack and entries <= max_entries:
        top = stack.pop()
        try:
            with os.scandir(top) as it:
                for entry in it:
                    entries += 1
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    total += st.st_blocks * 512
                    if stat.S_ISDIR(st.st_mode):
                        stack.append(entry.path)
        except OSError:
            continue
    return total, entries
