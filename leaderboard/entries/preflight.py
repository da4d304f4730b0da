"""Pre-flight of a submission: every check that runs before anything is stored or any GPU time is
spent, for the API, the submit form and ``speedrun submit --dry-run`` alike (docs/RULES.md,
"Pre-flight").

A submission is refused when its config cannot run on the track (422 naming the field), when its
own claimed runs fail the track's test (422 with the mean, the bar and p: a verification of runs
like them cannot pass), or when a claimed run is byte-identical to a run of another account's
entry (409 naming that entry). A resubmission of one's own run is allowed and linked as a duplicate.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from contract.schema import RunResult
from contract.schema import Submission as SubmissionModel
from leaderboard.db import utcnow
from leaderboard.entries.actions import check_gpu_quota
from leaderboard.entries.board import entry_url
from leaderboard.entries.models import Entry, Run, RunKind
from leaderboard.entries.records import mean_of_present
from leaderboard.entries.schemas import PreflightPublic
from leaderboard.errors import Conflict, Invalid
from leaderboard.formatting import usd
from leaderboard.tracks.models import Track
from leaderboard.tracks.service import price_on, track_rules
from leaderboard.users.models import User
from submissions.rules import claim_test
from submissions.stats import p_text
from trainer.plan import config_of


def result_digest(result: RunResult) -> str:
    """The sha256 of a claimed run's result.json as the site stores it (the bytes a copy repeats)."""
    return hashlib.sha256(result.model_dump_json(indent=2).encode()).hexdigest()


def check_config(track: Track, sub: SubmissionModel) -> None:
    """The checks that run before any GPU time is spent; each failure names its field (422)."""
    rules = track_rules(track)
    cfg = sub.run_config
    why = rules.allows_hardware(cfg.hardware_class, cfg.gpus_per_node, cfg.nodes)
    if why is not None:
        raise Invalid("run_config.hardware_class", why)
    for i, result in enumerate(sub.claimed_results):
        if result.rules_version not in rules.claim_rules_versions:
            raise Invalid(
                f"claimed_results.{i}.rules_version",
                f"track {track.slug} uses rules {rules.rules_version}, this run was timed under {result.rules_version}",
            )
        why = rules.allows_hardware(result.hardware.sku, result.hardware.device_count, result.hardware.nodes)
        if why is not None:
            raise Invalid(f"claimed_results.{i}.hardware", why)
        if rules.bundle_sha256 and result.core is not None and result.core.bundle_sha256 != rules.bundle_sha256:
            raise Invalid(f"claimed_results.{i}.core.bundle_sha256", "not the eval bundle this track pins")
    if cfg.trainer.kind == "reference":  # a fork's own config is checked when it runs
        try:
            config_of(cfg.recipe, cfg.overrides, cfg.seed)
        except (ValueError, TypeError, KeyError) as exc:
            raise Invalid("run_config.overrides", str(exc)) from exc


def check_trainer_url(sub: SubmissionModel, allow_local: bool) -> None:
    url = sub.run_config.trainer.git_url
    if url is not None and not url.startswith("https://") and not allow_local:
        raise Invalid("run_config.trainer.git_url", "only https:// clone URLs are accepted by this site")


def check_own_digests(sub: SubmissionModel) -> None:
    """A claimed run's metrics log must be one of this submission's logs (the entry page plots it):
    a claim cannot point at another entry's artifact."""
    own = {hashlib.sha256(log.content.encode()).hexdigest() for log in sub.logs}
    for i, result in enumerate(sub.claimed_results):
        cited = result.digests.metrics_log_sha256
        if cited is not None and cited not in own:
            raise Invalid(
                f"claimed_results.{i}.digests.metrics_log_sha256",
                "must be the sha256 of one of this submission's logs",
            )


def check_claim(track: Track, sub: SubmissionModel) -> None:
    """422 when the claim's own runs fail the track's test (the same t-test that ranks)."""
    verdict = claim_test(sub.claimed_results, threshold=track.threshold, alpha=track.alpha)
    if verdict.problem is not None:
        raise Invalid("claimed_results", f"{verdict.problem} (track {track.slug})")


def copied_entry(session: Session, user: User, claimed: Sequence[RunResult]) -> tuple[int, Entry] | None:
    """(index of the claim, the other account's entry) when a claimed run repeats one of its runs
    byte for byte (its result.json, or its metrics log), else None."""
    digests = {result_digest(r): i for i, r in enumerate(claimed)}
    logs = {r.digests.metrics_log_sha256: i for i, r in enumerate(claimed) if r.digests.metrics_log_sha256}
    same = (Run.result_sha256.in_(list(digests))) | (Run.metrics_sha256.in_(list(logs)) if logs else False)
    row = session.execute(
        select(Run.result_sha256, Run.metrics_sha256, Entry)
        .join(Entry, Entry.id == Run.entry_id)
        .where(Run.kind == RunKind.claimed, same, Entry.owner_id.is_not(None), Entry.owner_id != user.id)
        .order_by(Entry.id)
        .limit(1)
    ).first()
    if row is None:
        return None
    index = digests.get(row[0] or "", logs.get(row[1] or "", 0))
    return index, row[2]


def check_copies(session: Session, user: User, sub: SubmissionModel) -> None:
    found = copied_entry(session, user, sub.claimed_results)
    if found is not None:
        i, entry = found
        raise Conflict(
            f"claimed_results.{i} is byte-identical to a run of entry #{entry.id} “{entry.title}” "
            f"({entry_url(entry.id)}), submitted by another account: submit runs of your own"
        )


def estimate(session: Session, track: Track, sub: SubmissionModel) -> tuple[float | None, float | None]:
    """(hours, dollars) of the verification this submission asks for: the track's k runs of the
    claimed mean time on the config's GPUs at today's reference price (None when unknown)."""
    hours = mean_of_present(r.training_hours for r in sub.claimed_results)
    if hours is None:
        return None, None
    cfg = sub.run_config
    gpus = cfg.gpus_per_node * cfg.nodes
    price = price_on(session, cfg.hardware_class, utcnow().date())
    runs_hours = hours * track.min_runs
    if price is None or not gpus:
        return runs_hours, None
    return runs_hours, runs_hours * gpus * price.usd_per_gpu_hour


def preflight(
    session: Session, user: User, track: Track, sub: SubmissionModel, *, allow_local: bool
) -> PreflightPublic:
    """Every check of a submission, in the order ``submit`` runs them; raises the first refusal."""
    check_config(track, sub)
    check_trainer_url(sub, allow_local)
    check_own_digests(sub)
    check_claim(track, sub)
    check_copies(session, user, sub)
    check_gpu_quota(session, user, track)
    verdict = claim_test(sub.claimed_results, threshold=track.threshold, alpha=track.alpha)
    hours, dollars = estimate(session, track, sub)
    checks = [
        f"run config fits track {track.slug} (hardware, rules {track.rules_version}, overrides)",
        "claimed metrics logs are this submission's own",
        "no claimed run repeats another account's entry",
        "within your weekly GPU-run quota",
    ]
    if verdict.core_mean is not None:
        p = "" if verdict.p_value is None else f", p = {p_text(verdict.p_value)} < {track.alpha}"
        checks.append(f"the claim passes the track's test: mean CORE {verdict.core_mean:.4f} > {track.threshold}{p}")
    cost = f" ≈ {usd(dollars)}" if dollars is not None else ""
    if hours is not None:
        checks.append(f"verification: {track.min_runs} runs of about {hours / track.min_runs:.2f} h each{cost}")
    return PreflightPublic(
        track=track.slug,
        checks=checks,
        verification_runs=track.min_runs,
        estimated_hours=hours,
        estimated_cost_usd=dollars,
    )
