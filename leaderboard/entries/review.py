"""Code review of a fork (tracks with ``fork_review: required``): the diff an admin reads, and
when approving it is refused.

The diff under review is the one of the entry's CURRENT verification (``entry.pool``), read from
its stored report with every file listed. Approval is refused (409, with the reason) when there
is no diff (no common history with the reference trainer, none recorded), when the diff or its
file list was cut at a cap, when the diff itself was not uploaded, or when the admin read a
different diff from the one recorded now (``diff_sha256``).
"""

from __future__ import annotations

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from contract.schema import ForkDiff
from leaderboard.artifacts.models import EntryArtifact
from leaderboard.entries.models import Entry, EntryStatus, Verification
from leaderboard.entries.verification import is_fork
from leaderboard.tracks.models import Track


def current_fork_diff(session: Session, entry: Entry) -> ForkDiff | None:
    """The fork diff of the entry's current verification, with its file list; None without one."""
    vid = (entry.pool or {}).get("current_verification_id")
    verification = session.get(Verification, vid) if isinstance(vid, int) else None
    raw = (verification.report or {}).get("fork_diff") if verification is not None else None
    if not raw:
        return None
    try:
        return ForkDiff.model_validate(raw)
    except ValidationError:
        return None


def diff_uploaded(session: Session, entry_id: int, sha256: str) -> bool:
    """Whether the diff artifact is stored with the entry (what the reviewer reads on its page)."""
    query = select(EntryArtifact.id).where(
        EntryArtifact.entry_id == entry_id, EntryArtifact.sha256 == sha256, EntryArtifact.attached.is_(True)
    )
    return session.execute(query.limit(1)).first() is not None


def diff_refusal(session: Session, entry_id: int, diff: ForkDiff | None) -> str | None:
    """Why ``diff`` cannot be approved as the whole of a fork's code; None when it can."""
    if diff is None:
        return (
            "no diff of this fork against the reference trainer is recorded by its current verification "
            "(a fork with no common history with the reference has none): there is nothing to approve"
        )
    if diff.truncated:
        return (
            f"the diff was cut at its size cap ({diff.size_bytes:,} bytes kept): a diff that is not shown in full "
            "cannot be approved; the fork must change less"
        )
    if diff.files_truncated or len(diff.files) < diff.files_changed:
        return (
            f"{diff.files_changed:,} files changed and the summary lists {len(diff.files):,}: a diff whose files "
            "are not all listed cannot be approved; the fork must change fewer files"
        )
    if not diff_uploaded(session, entry_id, diff.sha256):
        return "the diff itself was not uploaded by the verifier: there is nothing to read, so nothing to approve"
    return None


def approval_refusal(session: Session, entry: Entry, track: Track, diff_sha256: str | None = None) -> str | None:
    """None when an admin may approve the entry's code now, else why not (the 409's detail)."""
    if not is_fork(entry):
        return "the reference trainer needs no code review"
    if track.fork_review != "required":
        return f"code review is not required on track {track.slug}"
    if entry.status != EntryStatus.awaiting_review:
        return f"only an entry awaiting code review can be approved; this one is {entry.status.value}"
    diff = current_fork_diff(session, entry)
    refusal = diff_refusal(session, entry.id, diff)
    if refusal is not None:
        return refusal
    assert diff is not None
    if diff_sha256 is not None and diff_sha256 != diff.sha256:
        return (
            f"the diff recorded now (sha256 {diff.sha256[:16]}…) is not the one you read "
            f"({diff_sha256[:16]}…): read the current diff, then approve"
        )
    return None
