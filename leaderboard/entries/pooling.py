"""A verification job's k runs, once all are in, become one verification of the entry.

Each run job kept its worker's one-run report. The site joins them into one report (the runs in
run order, sealed only if every run was, the verdict the verifier's own rules give on all k runs)
and applies it like any report (``entries.verification``), with who ran which run. Where one
account's runs disagree with the other accounts' beyond the track's noise (hardware, clock,
CORE), the verification is flagged for an admin, naming the worker (audited); whether it counts
at all is the pool's rule (``min_worker_accounts``: ``entries.pool``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy.orm import Session

from contract.protocol import ArtifactRef
from contract.schema import RunResult, VerificationReport
from leaderboard.artifacts.storage import ArtifactStore
from leaderboard.audit.service import record
from leaderboard.db import utcnow
from leaderboard.entries.board import get_entry_row
from leaderboard.entries.verification import apply_verification, claimed_results
from leaderboard.jobs import runs as job_runs
from leaderboard.jobs.models import Job, JobStatus
from leaderboard.tracks import repository as tracks_repository
from leaderboard.tracks.models import Track
from leaderboard.tracks.service import track_rules
from submissions.rules import decide
from submissions.stats import mean, sample_std

CORE_NOISE_FLOOR = 0.02  # CORE points: two honest runs of one config differ by about this much at most
CORE_NOISE_SIGMAS = 3.0


def _hardware(run: RunResult) -> str:
    hw = run.hardware
    return f"{hw.nodes} x {hw.device_count} x {hw.sku} ({hw.device_name})"


def disagreements(track: Track, runs: Sequence[tuple[RunResult, job_runs.RunWorker]]) -> list[str]:
    """Where one account's runs disagree with the other accounts' runs (empty with one account)."""
    by_account: dict[int | None, list[RunResult]] = defaultdict(list)
    names: dict[int | None, str] = {}
    for run, worker in runs:
        by_account[worker.user_id].append(run)
        names[worker.user_id] = f"{worker.account} (worker {worker.worker_id})"
    if len(by_account) < 2:
        return []
    flags: list[str] = []
    for account, mine in by_account.items():
        others = [r for a, rs in by_account.items() if a != account for r in rs]
        who = names[account]
        own_hw, other_hw = {_hardware(r) for r in mine}, {_hardware(r) for r in others}
        if own_hw != other_hw:
            flags.append(f"{who} ran on {', '.join(sorted(own_hw))}; the others on {', '.join(sorted(other_hw))}")
        own_s, other_s = mean([r.training_seconds for r in mine]), mean([r.training_seconds for r in others])
        low, high = sorted((own_s, other_s))
        if low <= 0 or high / low > 1 + track.clock_tolerance:
            flags.append(
                f"{who} timed its runs at {own_s:.1f} s on average, the other accounts' runs at {other_s:.1f} s "
                f"(more than {track.clock_tolerance:.0%} apart)"
            )
        own_core = [r.core_score for r in mine if r.core_score is not None]
        other_core = [r.core_score for r in others if r.core_score is not None]
        if own_core and other_core:
            noise = CORE_NOISE_FLOOR
            if len(other_core) >= 2:
                noise = max(noise, CORE_NOISE_SIGMAS * sample_std(other_core))
            gap = mean(own_core) - mean(other_core)
            if abs(gap) > noise:
                flags.append(
                    f"{who} scored CORE {mean(own_core):.4f} on average, the other accounts' runs "
                    f"{mean(other_core):.4f} (more than {noise:.4f} apart)"
                )
    return flags


def joined_report(
    track: Track, reports: Sequence[VerificationReport], claimed: Sequence[RunResult]
) -> VerificationReport:
    """One report of the k runs, the verdict from the verifier's own rules on all of them."""
    first = reports[0]
    runs = [r.runs[0] for r in reports]
    decision = decide(runs, track=track_rules(track), run_config=first.run_config, claimed=claimed)
    notes = sorted({n for rep in reports for n in rep.reasons if not n.startswith(("run ", "one run of "))})
    verifiers = sorted({rep.verifier.id for rep in reports})
    diffs = {None if rep.fork_diff is None else rep.fork_diff.sha256 for rep in reports}
    reasons = [*decision.reasons, *notes]
    fork_diff = first.fork_diff
    if len(diffs) > 1:  # git diffs one commit pair the same way on every node: one of them lied
        fork_diff = None
        reasons.append("site check: the runs' workers recorded different fork diffs; none is shown for review")
    return VerificationReport.model_validate(
        {
            **first.model_dump(mode="json", exclude={"runs", "verifier"}),
            "verifier": {**first.verifier.model_dump(mode="json"), "id": ", ".join(verifiers)[:100]},
            "runs": [r.model_dump(mode="json") for r in runs],
            "core": decision.core,
            "p_value": decision.p_value,
            "training_hours": decision.training_hours,
            "val_bpb": decision.val_bpb,
            "deltas": decision.deltas,
            "verdict": decision.verdict,
            "reasons": reasons,
            "log_tail": "\n".join(f"[run {i}] {rep.log_tail}" for i, rep in enumerate(reports) if rep.log_tail)[
                -64_000:
            ]
            or None,
            "created_at": utcnow().isoformat(),
            "sealed": all(rep.sealed is True for rep in reports),
            "fork_diff": None if fork_diff is None else fork_diff.model_dump(mode="json"),
        }
    )


def pool_runs(session: Session, job: Job, runs: Sequence[Job], *, store: ArtifactStore) -> None:
    """All k runs of ``job`` are in: apply them to the entry as one verification."""
    entry = get_entry_row(session, job.entry_id)
    track = tracks_repository.by_id(session, entry.track_id)
    assert track is not None
    ordered = sorted(runs, key=lambda r: r.run_index or 0)
    reports = [VerificationReport.model_validate((r.report or {})["report"]) for r in ordered]
    refs = [ArtifactRef.model_validate(a) for r in ordered for a in (r.report or {}).get("artifacts", [])]
    report = joined_report(track, reports, claimed_results(session, entry))
    workers = job_runs.workers_of(session, ordered)
    flags = disagreements(track, list(zip(report.runs, workers, strict=True)))
    accounts = len({w.user_id for w in workers})
    verification = apply_verification(
        session,
        job,
        report,
        refs,
        store=store,
        workers={
            "runs": [
                {"run_index": w.run_index, "account": w.account, "worker_id": w.worker_id, "user_id": w.user_id}
                for w in workers
            ],
            "accounts": accounts,
            "required": max(1, track.min_worker_accounts),
            "flags": flags,
        },
        artifact_jobs=[r.id for r in ordered],
    )
    now = utcnow()
    job.status, job.finished_at, job.progress = JobStatus.succeeded, now, None
    for r in ordered:
        r.report = None  # stored as the verification's report now
    if flags:
        record(session, None, "verification.flagged", "verification", verification.id, job_id=job.id, flags=flags)
    session.flush()
