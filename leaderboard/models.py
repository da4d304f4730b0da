"""Every table of the site, imported once so that ``Base.metadata`` is complete (Alembic, tests)."""

from leaderboard.artifacts.models import Artifact, EntryArtifact
from leaderboard.audit.models import AuditEvent
from leaderboard.db import Base
from leaderboard.entries.models import Entry, EntryStatus, Run, RunKind, Submission, Verification
from leaderboard.jobs.models import Job, JobStatus, LeaseRecord, WorkerAccount
from leaderboard.revision import BoardRevision
from leaderboard.tracks.models import Price, Track
from leaderboard.users.models import ApiToken, RateCounter, Role, User, WebSession

__all__ = [
    "ApiToken",
    "Artifact",
    "AuditEvent",
    "Base",
    "BoardRevision",
    "Entry",
    "EntryArtifact",
    "EntryStatus",
    "Job",
    "JobStatus",
    "LeaseRecord",
    "Price",
    "RateCounter",
    "Role",
    "Run",
    "RunKind",
    "Submission",
    "Track",
    "User",
    "Verification",
    "WebSession",
    "WorkerAccount",
]
