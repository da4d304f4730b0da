"""The code-review box of an entry page: the track's rule in the entry's state, the fork's diff
summary (every file, its flags), the diff itself page by page with per-line classes, and when
an admin may approve it (``leaderboard.entries.review`` decides; this module only shows).

A page of the diff is at most ``PAGE_BYTES`` and starts at a file's ``diff --git`` line when one
fits (a bigger file continues over several pages, cut at line ends). Every byte is shown: bytes
that are not UTF-8, control characters and the invisible ones of Unicode (bidi overrides,
zero-width characters) are written as escapes and their line is marked ``diff-odd``.
"""

from __future__ import annotations

import builtins
import keyword
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from contract.protocol import MAX_ARTIFACT_BYTES
from contract.schema import ForkDiff
from leaderboard.artifacts.storage import ArtifactStore
from leaderboard.entries.board import get_entry_row
from leaderboard.entries.review import approval_refusal, current_fork_diff, diff_refusal, diff_uploaded
from leaderboard.tracks import repository as tracks_repository
from leaderboard.users.models import Role, User

PAGE_BYTES = 256 * 1024
MAX_PAGES = MAX_ARTIFACT_BYTES // (PAGE_BYTES // 2) + 1  # a page is at least half full, or one long line
FILE_START = b"\ndiff --git "
# C0/C1 controls but tab, and Unicode's invisible format characters (Trojan Source)
_ODD = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\u061c\ufeff]")
_FILE_HEAD = (
    "diff --git ",
    "index ",
    "--- ",
    "+++ ",
    "new file mode",
    "deleted file mode",
    "old mode",
    "new mode",
    "similarity",
    "rename ",
    "Binary files",
)
FLAG_TEXT = {
    "gitattributes": "a .gitattributes file: it changes how git shows and converts files (this diff ignores it)",
    "gitmodules": "a .gitmodules file: submodules are not fetched, their code is not in this review",
    "lfsconfig": "an .lfsconfig file: LFS objects are not fetched",
    "lfs-pointer": "a Git LFS pointer: the file's content is not in the fork, only its pointer",
    "submodule": "a submodule (gitlink): only its commit id is in the fork",
    "symlink": "a symbolic link",
    "binary": "binary (a NUL byte): shown as text below, every byte escaped where not printable",
    "large": "larger than 1 MiB",
    "deleted": "deleted by the fork",
}


@dataclass(frozen=True)
class DiffLine:
    css: str
    text: str
    parts: tuple[tuple[str, str], ...] = ()  # (class, text) pieces of a Python line; () for plain text


# Python tokens of one line (stdlib only: comments, strings, numbers, keywords and builtins); a
# string that spans lines is shown as plain text on its later lines, never hidden
_PY_TOKEN = re.compile(
    r"(?P<com>#.*)"
    r"|(?P<str>[rRbBuUfF]{0,2}(?:'''|\"\"\"|'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"))"
    r"|(?P<num>\b\d[\d_]*(?:\.\d[\d_]*)?(?:[eE][+-]?\d+)?\b)"
    r"|(?P<name>\b[A-Za-z_][A-Za-z0-9_]*\b)"
)
_BUILTINS = frozenset(dir(builtins))


def page_bounds(text: bytes, page_bytes: int = PAGE_BYTES) -> list[tuple[int, int]]:
    """Byte ranges of the diff's pages: each at most ``page_bytes`` (a longer single line aside),
    cut at a file's start when one is in the page's second half, else at a line end."""
    bounds: list[tuple[int, int]] = []
    start = 0
    while start < len(text):
        end = min(start + page_bytes, len(text))
        if end < len(text):
            cut = text.rfind(FILE_START, start + page_bytes // 2, end)
            if cut == -1:
                cut = text.rfind(b"\n", start, end)
            if cut == -1:  # one line longer than a page: to its end
                cut = text.find(b"\n", end)
                cut = len(text) - 1 if cut == -1 else cut
            end = cut + 1
        bounds.append((start, end))
        start = end
    return bounds


def _visible(raw: bytes) -> tuple[str, bool]:
    """The line as text with every byte visible; True when something had to be escaped."""
    try:
        text, odd = raw.decode("utf-8"), False
    except UnicodeDecodeError:
        text, odd = raw.decode("utf-8", errors="backslashreplace"), True
    if _ODD.search(text):
        text, odd = _ODD.sub(lambda m: f"\\u{ord(m.group()):04x}", text), True
    return text, odd


def python_parts(code: str) -> tuple[tuple[str, str], ...]:
    """``code`` cut into (class, text) pieces whose texts join to ``code`` exactly."""
    parts: list[tuple[str, str]] = []
    pos = 0
    for m in _PY_TOKEN.finditer(code):
        word = m.group()
        if m.lastgroup == "name":
            if keyword.iskeyword(word) or keyword.issoftkeyword(word):
                css = "py-kw"
            elif word in _BUILTINS:
                css = "py-builtin"
            else:
                continue
        else:
            css = f"py-{m.lastgroup}"
        if m.start() > pos:
            parts.append(("", code[pos : m.start()]))
        parts.append((css, word))
        pos = m.end()
    if pos < len(code):
        parts.append(("", code[pos:]))
    return tuple(parts)


def diff_lines(chunk: bytes) -> list[DiffLine]:
    """The lines of a page of unified diff, each with its class (file head, hunk, +, -, context),
    and Python's tokens marked in the lines of a ``.py`` file."""
    out = []
    python = False
    for raw in chunk.split(b"\n"):
        text, odd = _visible(raw)
        parts: tuple[tuple[str, str], ...] = ()
        if text.startswith(_FILE_HEAD):
            css = "diff-file"
            if text.startswith("diff --git "):
                python = text.endswith(".py")
        elif text.startswith("@@"):
            css = "diff-hunk"
        else:
            css = {"+": "diff-add", "-": "diff-del"}.get(text[:1], "diff-ctx")
            if python and text:
                parts = (("", text[0]), *python_parts(text[1:]))
        out.append(DiffLine(f"{css} diff-odd" if odd else css, text, parts))
    if out and out[-1].text == "":
        out.pop()
    return out


def review_rule(fork: bool, fork_review: str, status: str, review_status: str | None) -> str:
    """The track's rule on code review, as it applies to this entry in its state (never "not
    required" for a fork on a track that requires it)."""
    if not fork:
        return "Code review: the reference trainer needs none (its code is the site's own)."
    if fork_review != "required":
        return "Code review is not required on this track."
    if review_status == "approved":
        return "Code review is required on this track: this fork's code was approved."
    if status == "awaiting_review":
        return "Code review is required on this track: verified, awaiting code review (unranked until an admin approves the diff below)."
    if status in ("failed", "inconclusive", "error", "rejected"):
        return (
            "Code review is required on this track; this fork's verification did not pass, "
            "so there is nothing to approve."
        )
    if status == "retracted":
        return "Code review is required on this track; this entry was retracted, so there is nothing to approve."
    return "Code review is required on this track; it starts once this fork's verification passes."


def code_review(
    session: Session,
    store: ArtifactStore | None,
    detail: Any,
    user: User | None,
    page: int,
) -> dict[str, Any]:
    """The review box's context: the rule, the current diff (summary, files, page ``page`` of its
    text) and, for an admin, whether approval is possible now and why not."""
    entry = detail.entry
    trainer = detail.run_config.get("trainer") if isinstance(detail.run_config, dict) else None
    fork = isinstance(trainer, dict) and trainer.get("kind") == "git"
    track = detail.track_info
    row = get_entry_row(session, entry.id)
    diff = current_fork_diff(session, row) if fork else None
    box: dict[str, Any] = {
        "fork": fork,
        "rule": review_rule(fork, track.fork_review, str(entry.status), entry.review_status),
        "required": fork and track.fork_review == "required",
        "diff": diff,
        "by": detail.reviewed_by,
        "at": detail.reviewed_at,
        "flag_text": FLAG_TEXT,
        "can_approve": False,
        "approve_refusal": None,
        "diff_url": None,
        "flagged_files": [],
        "refusal": None,
        "pages": 0,
        "page": 1,
        "lines": [],
    }
    if diff is None:
        return box
    box.update(_diff_view(session, store, entry.id, diff, page))
    if user is not None and user.role == Role.admin and str(entry.status) == "awaiting_review":
        track_row = tracks_repository.by_id(session, row.track_id)
        assert track_row is not None
        box["approve_refusal"] = approval_refusal(session, row, track_row)
        box["can_approve"] = box["approve_refusal"] is None
    return box


def _diff_view(
    session: Session, store: ArtifactStore | None, entry_id: int, diff: ForkDiff, page: int
) -> dict[str, Any]:
    stored = diff_uploaded(session, entry_id, diff.sha256)
    text = store.read(diff.sha256) if store is not None and stored else None
    flagged = [f for f in diff.files if f.flags]
    view: dict[str, Any] = {
        "diff_url": f"/api/artifacts/{diff.sha256}" if stored else None,
        "flagged_files": flagged,
        "refusal": diff_refusal(session, entry_id, diff),
        "pages": 0,
        "page": 1,
        "lines": [],
    }
    if text is None:
        return view
    bounds = page_bounds(text)
    page = min(max(page, 1), max(len(bounds), 1))
    view.update(pages=len(bounds), page=page)
    if bounds:
        start, end = bounds[page - 1]
        view.update(lines=diff_lines(text[start:end]), first_byte=start, last_byte=end)
    return view
