"""The re-verification policy (docs/RULES.md, "Re-verification"): every counted run is pooled.

An entry's verifications are read in order. A report the site rejects, one without runs, or
one whose runs come from fewer worker accounts than the track's ``min_worker_accounts``, counts
nothing. Every other report's runs join the pool of the entry (per rules version), and
the k-th pooled verification decides on ALL pooled runs with a one-sided t-test at alpha / k:
asking again never forgets a failing run, and each extra look pays for itself with a stricter
alpha. A look is also never better than the verifier's own verdict on its runs. Owners get at
most ``track.max_verifications`` pooled looks; every verdict stays in the history.

Pure functions: no database. ``leaderboard.entries.verification`` stores what they decide.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from contract.schema import RunResult, VerificationReport
from leaderboard.entries.checks import check_report
from leaderboard.tracks.models import Track
from submissions.rules import claim_deltas
from submissions.stats import mean, one_sided_t_test, p_text, sample_std

_ORDER = {"rejected": 0, "error": 1, "failed": 2, "inconclusive": 3, "verified": 4}


def worse(a: str, b: str) -> str:
    """The worse of two verdicts (the site never upgrades a verifier's verdict)."""
    return a if _ORDER.get(a, 0) <= _ORDER.get(b, 0) else b


@dataclass(frozen=True)
class PoolFigures:
    """What the pool of counted runs says; every number computed here from the runs."""

    verdict: str
    reasons: list[str]
    runs: int
    looks: int
    alpha_applied: float
    hours_mean: float
    hours_std: float
    core_mean: float | None
    core_std: float | None
    p_value: float | None
    val_bpb: float | None
    flops: float
    deltas: dict[str, Any] | None


@dataclass(frozen=True)
class Look:
    """One verification as the site reads it now."""

    verification_id: int
    created_at: datetime
    verdict: str
    reasons: list[str]
    site: dict[str, Any]
    pool: PoolFigures | None  # the pool after this look (None when it counted nothing)


@dataclass
class Evaluation:
    looks: list[Look] = field(default_factory=list)
    counted_ids: list[int] = field(default_factory=list)  # verifications in the current pool
    rules_version: str | None = None

    @property
    def current(self) -> Look | None:
        """The last look that counted (its pool is the entry's figures), else the last look."""
        counted = [lk for lk in self.looks if lk.pool is not None]
        return counted[-1] if counted else (self.looks[-1] if self.looks else None)


def pooled_test(cores: Sequence[float], *, threshold: float, alpha: float, looks: int) -> tuple[bool, float]:
    """The policy's test: pooled CORE values pass when the one-sided p < alpha / looks."""
    p_value = one_sided_t_test(cores, threshold).p_value
    return p_value < alpha / max(1, looks), p_value


def pool_figures(track: Track, runs: Sequence[RunResult], looks: int, claimed: Sequence[RunResult]) -> PoolFigures:
    """The pooled decision of ``looks`` verifications: distinct seeds, k >= min_runs, p < alpha / looks."""
    alpha = track.alpha / max(1, looks)
    hours = [r.training_hours for r in runs]
    cores = [r.core_score for r in runs if r.core_score is not None]
    bpbs = [r.val_bpb for r in runs if r.val_bpb is not None]
    deltas = claim_deltas(claimed, runs)
    reasons: list[str] = []
    p_value: float | None = None
    if len(runs) < track.min_runs or len(runs) < 2 or len(cores) != len(runs):
        verdict = "inconclusive"
        reasons.append(f"{len(runs)} counted run(s) with CORE; the track needs at least {max(2, track.min_runs)}")
    else:
        passed, p_value = pooled_test(cores, threshold=track.threshold, alpha=track.alpha, looks=looks)
        summary = (
            f"pool of {len(runs)} runs over {looks} verification(s): mean CORE {mean(cores):.4f} "
            f"(std {sample_std(cores):.4f}) vs threshold {track.threshold}: p = {p_text(p_value)}"
        )
        verdict = "verified" if passed else "failed"
        reasons.append(f"{summary} {'<' if passed else '>='} alpha {track.alpha} / {looks} = {p_text(alpha)}")
    return PoolFigures(
        verdict=verdict,
        reasons=reasons,
        runs=len(runs),
        looks=looks,
        alpha_applied=alpha,
        hours_mean=mean(hours),
        hours_std=sample_std(hours),
        core_mean=mean(cores) if cores else None,
        core_std=sample_std(cores) if cores else None,
        p_value=p_value,
        val_bpb=mean(bpbs) if len(bpbs) == len(runs) else None,
        flops=max(r.flops for r in runs),
        deltas=None if deltas is None else deltas.model_dump(mode="json"),
    )


@dataclass(frozen=True)
class StoredVerification:
    id: int
    created_at: datetime
    report: dict[str, Any]
    runs_asked: int | None = None  # k of the job it answered (None: no job on record)
    accounts: int = 1  # distinct worker accounts whose runs it holds
    flags: list[str] = field(default_factory=list)  # where one account's runs disagree with the others'


def evaluate(
    track: Track,
    entry_config: dict[str, Any],
    entry_rules_version: str,
    claimed: Sequence[RunResult],
    verifications: Sequence[StoredVerification],
) -> Evaluation:
    """Read every verification of an entry in order under the track's current rules."""
    out = Evaluation()
    claimed_seeds = {r.seed for r in claimed}
    counted_seeds: set[int] = set()
    pool: list[RunResult] = []
    looks = 0
    allowed = {track.rules_version, entry_rules_version}
    for v in verifications:
        try:
            report = VerificationReport.model_validate(v.report)
        except ValidationError as exc:  # a report stored under an older contract: it counts nothing
            why = (
                f"site check: the stored report no longer reads under the current contract ({exc.error_count()} errors)"
            )
            out.looks.append(Look(v.id, v.created_at, "error", [why], {"sealed": False, "counted": False}, None))
            continue
        checks = check_report(
            track,
            entry_config,
            report,
            claimed_seeds=claimed_seeds,
            counted_seeds=counted_seeds,
            rules_versions=allowed,
        )
        site: dict[str, Any] = {
            "sealed": checks.sealed,
            "counted": False,
            "clock_flagged": checks.clock_flagged,
            "clock_notes": checks.clock_notes,
            "clock_tolerance": track.clock_tolerance,
            "fork_diff": None
            if report.fork_diff is None
            else report.fork_diff.model_dump(mode="json", exclude={"files"}),
            "accounts": v.accounts,
            "accounts_required": max(1, track.min_worker_accounts),
            "worker_flags": list(v.flags),
        }
        problems = list(checks.problems)
        finished = report.verdict.value != "error"  # an error report may stop short
        if (
            v.runs_asked is not None
            and len(report.runs) != v.runs_asked
            and (finished or len(report.runs) > v.runs_asked)
        ):
            problems.append(f"the report has {len(report.runs)} runs, the job asked for {v.runs_asked}")
        reasons = [f"site check: {p}" for p in problems]
        if problems:
            out.looks.append(Look(v.id, v.created_at, "rejected", reasons, site, None))
            continue
        if report.verdict.value == "error" or not report.runs:
            out.looks.append(Look(v.id, v.created_at, "error", reasons, site, None))
            continue
        if v.accounts < max(1, track.min_worker_accounts):
            why = (
                f"site check: verified by {v.accounts} of {track.min_worker_accounts} workers: on {track.slug} a "
                f"verification counts only when its runs come from {track.min_worker_accounts} worker accounts"
            )
            out.looks.append(Look(v.id, v.created_at, "inconclusive", [*reasons, why], site, None))
            continue
        version = report.runs[0].rules_version
        if version != out.rules_version:  # a new rules version starts a new pool
            pool, looks, out.counted_ids, out.rules_version = [], 0, [], version
        pool.extend(report.runs)
        counted_seeds.update(r.seed for r in report.runs)
        looks += 1
        out.counted_ids.append(v.id)
        figures = pool_figures(track, pool, looks, claimed)
        verdict = worse(report.verdict.value, figures.verdict)
        if verdict != figures.verdict:
            reasons.append(f"site check: the verifier's own verdict on its runs is {report.verdict.value}")
        site.update(counted=True, rules_version=version, pool_runs=figures.runs, looks=looks)
        site.update(alpha_applied=figures.alpha_applied, p_value=figures.p_value, deltas=figures.deltas)
        out.looks.append(Look(v.id, v.created_at, verdict, [*reasons, *figures.reasons], site, figures))
    return out
