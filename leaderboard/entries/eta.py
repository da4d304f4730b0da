"""How long the queue takes, told honestly: a job's phase, the time left over all its runs, and for a
queued job its place in line and when a worker should take it.

The pace of a track is learned from its recent finished jobs: the verifier's clock gives the
training time of a run (the verification's mean hours), and the rest of each run's share of the
job (scoring CORE and val_bpb on the checkpoint, setting up) is what the job took beyond its
training. A running job has left: the rest of its current run (the trainer's own ETA for the
training, then the track's scoring time) plus every run still to come. Queued jobs are taken
oldest first (``jobs.repository.lease_candidates``), so a job starts once the jobs ahead of it on
its track are done, shared among the workers running that track now (at least one).

``pace_of`` and ``timing`` are pure; ``track_paces`` reads the recent jobs in one query.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from leaderboard.entries.models import Entry, Verification
from leaderboard.jobs.models import Job, JobStatus
from leaderboard.jobs.repository import IS_VERIFICATION

RECENT_JOBS = 20  # finished jobs of a track its pace is learned from
RECENT_SCAN = 400  # finished jobs read to find them


@dataclass(frozen=True)
class Pace:
    """Seconds per verification run on a track."""

    train_s: float  # training, on the verifier's clock
    other_s: float  # scoring and setup: the rest of the run's share of its job
    jobs: int  # finished jobs it was learned from (0: from the entry's claim alone)

    @property
    def run_s(self) -> float:
        return self.train_s + self.other_s

    @property
    def basis(self) -> str:
        if self.jobs:
            return f"learned from the track's last {self.jobs} finished job{'s' if self.jobs != 1 else ''}"
        return "from the claimed training time (no finished job on this track yet; scoring time unknown)"


def pace_of(samples: Sequence[tuple[int, float, float]]) -> Pace | None:
    """A track's pace from (runs, job seconds, mean training seconds per run) of its recent jobs."""
    usable = [(k, d, t) for k, d, t in samples if k > 0 and d > 0 and t >= 0]
    if not usable:
        return None
    train = sum(t for _, _, t in usable) / len(usable)
    other = sum(max(0.0, d / k - t) for k, d, t in usable) / len(usable)
    return Pace(train_s=train, other_s=other, jobs=len(usable))


def track_paces(session: Session) -> dict[int, Pace]:
    """Each track's pace from its last ``RECENT_JOBS`` succeeded jobs (one query)."""
    rows = session.execute(
        select(Job.track_id, Job.runs, Job.leased_at, Job.finished_at, Verification.hours_mean)
        .join(Verification, Verification.job_id == Job.id)
        .where(
            IS_VERIFICATION,
            Job.status == JobStatus.succeeded,
            Job.finished_at.is_not(None),
            Verification.hours_mean.is_not(None),
        )
        .order_by(Job.id.desc())
        .limit(RECENT_SCAN)
    ).all()
    samples: dict[int, list[tuple[int, float, float]]] = {}
    for track_id, runs, leased, finished, hours in rows:
        kept = samples.setdefault(int(track_id), [])
        if leased is None or finished is None or hours is None or len(kept) >= RECENT_JOBS:
            continue
        kept.append((int(runs), (finished - leased).total_seconds(), float(hours) * 3600))
    return {track: pace for track, s in samples.items() if (pace := pace_of(s)) is not None}


@dataclass(frozen=True)
class Timing:
    phase: str | None  # "training run 2/3", "scoring CORE, run 2/3", "waiting for a worker"
    eta_seconds: float | None  # a running job: time left over all its runs
    position: int | None  # a queued job: its place in its track's line (1 = next)
    expected_start_at: datetime | None
    basis: str | None


def _num(p: dict[str, Any], key: str) -> float | None:
    v = p.get(key)
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 else None


def running_timing(progress: dict[str, Any] | None, runs: int, pace: Pace) -> Timing:
    """A running job's phase and the time left over all its runs."""
    p = progress or {}
    index = int(_num(p, "run_index") or 0)
    total = max(1, int(_num(p, "runs") or runs))
    index = min(index, total - 1)
    step, steps, eta = _num(p, "step"), _num(p, "steps"), _num(p, "eta_seconds")
    done, running = _num(p, "runs_done"), _num(p, "runs_running")
    if done is not None and running is not None:  # a verification job: its runs run on several nodes
        if running == 0:  # some runs in, none running: the rest wait for a (second) worker account
            accounts, wanted = int(_num(p, "accounts") or 0), int(_num(p, "min_accounts") or 1)
            who = f"worker account {accounts + 1} of {wanted}" if accounts < wanted else "a worker"
            return Timing(f"waiting for {who}, {int(done)}/{total} runs in", None, None, None, pace.basis)
        after = max(0, total - int(done) - int(running)) * pace.run_s
    else:
        after = (total - index - 1) * pace.run_s
    where = f"run {index + 1}/{total}"
    if str(p.get("phase") or "") == "scoring" or (step is not None and steps and step >= steps):
        return Timing(f"scoring CORE, {where}", pace.other_s + after, None, None, pace.basis)
    if step is not None and steps:
        left = eta if eta is not None else pace.train_s * (1 - step / steps)
        return Timing(f"training {where}", left + pace.other_s + after, None, None, pace.basis)
    return Timing(f"preparing {where}", pace.run_s + after, None, None, pace.basis)


def queue_timings(
    jobs: Sequence[Job], paces: dict[int, Pace], claimed_hours: dict[int, float | None], now: datetime
) -> dict[int, Timing]:
    """Timing of every running and queued job of ``jobs`` (the whole line of each track)."""
    out: dict[int, Timing] = {}
    busy: dict[int, list[float]] = {}  # per track: seconds left of each running job

    def pace_for(job: Job) -> Pace:
        known = paces.get(job.track_id)
        if known is not None:
            return known
        hours = claimed_hours.get(job.entry_id)
        return Pace(train_s=(hours or 0.0) * 3600, other_s=0.0, jobs=0)

    for job in sorted(jobs, key=lambda j: j.id):
        if job.status == JobStatus.running:
            t = running_timing(job.progress, job.runs, pace_for(job))
            out[job.id] = t
            busy.setdefault(job.track_id, []).append(t.eta_seconds or 0.0)
    ahead: dict[int, float] = {}
    position: dict[int, int] = {}
    for job in sorted(jobs, key=lambda j: j.id):  # workers take the oldest first
        if job.status != JobStatus.queued:
            continue
        pace = pace_for(job)
        running = busy.get(job.track_id, [])
        workers = max(1, len(running))
        position[job.track_id] = position.get(job.track_id, 0) + 1
        wait = (sum(running) + ahead.get(job.track_id, 0.0)) / workers
        known = pace.jobs > 0 or pace.train_s > 0
        out[job.id] = Timing(
            phase="waiting for a worker",
            eta_seconds=None,
            position=position[job.track_id],
            expected_start_at=now + timedelta(seconds=wait) if known else None,
            basis=pace.basis + f"; {workers} worker{'s' if workers != 1 else ''} on this track now",
        )
        ahead[job.track_id] = ahead.get(job.track_id, 0.0) + job.runs * pace.run_s
    return out


def line_timings(session: Session, now: datetime) -> dict[int, Timing]:
    """Timing of every running and queued job (the whole line, whatever a page lists): two queries."""
    rows = session.execute(
        select(Job, Entry.claimed_hours)
        .join(Entry, Entry.id == Job.entry_id)
        .where(IS_VERIFICATION, Job.status.in_([JobStatus.queued, JobStatus.running]))
    ).all()
    jobs = [job for job, _ in rows]
    if not jobs:
        return {}
    claimed = {job.entry_id: hours for job, hours in rows}
    return queue_timings(jobs, track_paces(session), claimed, now)
