"""Rows an entry is made of, shared by submitting, re-verification and applying a report."""

from __future__ import annotations

import math
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from contract.schema import RunResult
from leaderboard.artifacts.models import EntryArtifact
from leaderboard.entries.models import Entry, Run, RunKind
from leaderboard.jobs.models import Job, JobStatus
from leaderboard.tracks.models import Track
from leaderboard.users.models import User
from submissions.rules import pick_seeds

VAL_BPB_NOTE_CHARS = 300


def run_row(entry_id: int, kind: RunKind, result: RunResult, result_sha256: str | None) -> Run:
    return Run(
        entry_id=entry_id,
        kind=kind,
        run_id=result.run_id,
        seed=result.seed,
        training_seconds=result.training_seconds,
        wall_seconds=result.wall_seconds,
        steps=result.steps,
        tokens=result.tokens,
        flops=result.flops,
        val_bpb=result.val_bpb,
        core=result.core_score,
        core_tasks=None if result.core is None else {k: t.accuracy for k, t in result.core.tasks.items()},
        mfu=result.mfu,
        hardware=result.hardware.model_dump(mode="json"),
        result_sha256=result_sha256,
        metrics_sha256=result.digests.metrics_log_sha256,
        self_reported_training_seconds=result.self_reported_training_seconds,
        clock_disagrees=result.clock_disagrees,
        val_bpb_note=_note(result.software.get("val_bpb")),
    )


def _note(text: str | None) -> str | None:
    """A result's free-text note, cut to its column (it is shown escaped, like all text)."""
    return None if not text else text[:VAL_BPB_NOTE_CHARS]


def queue_job(session: Session, entry: Entry, track: Track, user: User, reason: str, max_attempts: int) -> Job:
    """A queued verification job of ``entry`` (the track's min_runs runs) and its run jobs, which
    workers lease one by one, each up to ``max_attempts`` distinct workers. Each run gets a seed
    picked here, unknown to the submitter until a worker reports it: none of the entry's claimed
    or already run seeds, and no two alike."""
    job = Job(
        entry_id=entry.id,
        track_id=track.id,
        status=JobStatus.queued,
        reason=reason,
        requested_by_id=user.id,
        runs=track.min_runs,
        max_attempts=max_attempts,
    )
    session.add(job)
    session.flush()
    used = {s for s in session.scalars(select(Run.seed).where(Run.entry_id == entry.id)) if s is not None}
    for i, seed in enumerate(pick_seeds(job.runs, avoid=used)):
        session.add(
            Job(
                entry_id=entry.id,
                track_id=track.id,
                status=JobStatus.queued,
                reason="run",
                runs=1,
                max_attempts=max_attempts,
                parent_id=job.id,
                run_index=i,
                seed=seed,
            )
        )
    session.flush()
    return job


def link_artifact(
    session: Session, entry_id: int, job_id: int | None, name: str, kind: str, sha: str, source: str
) -> None:
    session.add(EntryArtifact(entry_id=entry_id, job_id=job_id, sha256=sha, name=name[:200], kind=kind, source=source))


def mean_of_present(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return math.fsum(present) / len(present) if present else None
