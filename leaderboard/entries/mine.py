"""A signed-in user's own page (``/me`` and ``GET /api/me/entries``): their entries with the outcome line
and the re-verifications left on each, their jobs with phase, ETA and place in line, and their
weekly GPU-run quota on each track that has one. A fixed number of queries whatever the count."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from leaderboard.db import utcnow
from leaderboard.entries import repository
from leaderboard.entries.actions import counted_verifications
from leaderboard.entries.board import entry_public, job_public
from leaderboard.entries.compare import record_banner
from leaderboard.entries.models import Entry
from leaderboard.entries.outcome import outcome
from leaderboard.entries.queue import entry_jobs
from leaderboard.entries.schemas import MineEntryPublic, MinePublic, QuotaPublic
from leaderboard.jobs.models import Job
from leaderboard.jobs.repository import IS_VERIFICATION
from leaderboard.tracks import repository as tracks_repository
from leaderboard.tracks.schemas import TrackPublic
from leaderboard.users.models import Role, User

MAX_ENTRIES = 200
MAX_JOBS = 50


def mine(session: Session, user: User) -> MinePublic:
    tracks = {t.id: t for t in tracks_repository.all_tracks(session)}
    entries = list(
        session.scalars(select(Entry).where(Entry.owner_id == user.id).order_by(Entry.id.desc()).limit(MAX_ENTRIES))
    )
    by_id = {e.id: e for e in entries}
    rows = session.scalars(
        select(Job).where(Job.requested_by_id == user.id, IS_VERIFICATION).order_by(Job.id.desc()).limit(MAX_JOBS)
    ).all()
    jobs = [
        job_public(j, by_id[j.entry_id], tracks[j.track_id].slug)
        for j in rows
        if j.entry_id in by_id and j.track_id in tracks
    ]
    jobs = entry_jobs(session, jobs)
    admin = user.role == Role.admin
    out_entries = []
    for e in entries:
        track = tracks[e.track_id]
        public = entry_public(e, track)
        tp = TrackPublic.model_validate(track)
        banner = record_banner(session, track.id, track.ranking)
        own_jobs = [j for j in jobs if j.entry_id == e.id]
        used = counted_verifications(e)
        out_entries.append(
            MineEntryPublic(
                entry=public,
                outcome=outcome(public, tp, banner, own_jobs, public.p_value),
                verifications_used=used,
                verifications_left=None if admin else max(0, track.max_verifications - used),
            )
        )
    since = utcnow() - timedelta(days=7)
    used_runs = repository.verified_runs_since(session, user.id, since)
    quotas = [
        QuotaPublic(
            track=t.slug, weekly_gpu_runs=t.weekly_gpu_runs, used=used_runs, left=max(0, t.weekly_gpu_runs - used_runs)
        )
        for t in tracks.values()
        if t.weekly_gpu_runs is not None and "cpu" not in t.hardware_classes and not admin
    ]
    return MinePublic(user=user.name, role=user.role.value, entries=out_entries, jobs=jobs, quotas=quotas)
