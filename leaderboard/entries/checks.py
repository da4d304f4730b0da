"""The site's own checks of one verification report: is it a report of THIS entry's runs?

Nothing a report summarizes is believed: each run must be the entry's recipe and overrides (the
seed aside), on the entry's hardware class, GPU and node counts, scored on the track's eval
protocol over its full example set (the CORE re-derived from the per-task accuracies), under
the track's rules version, at or above the physical floor of its FLOPs (a fork's FLOPs no less
than a tenth of the reference plan of its recipe), timed by a clock not far below the trainer's
own time, with a seed that is new (not a claimed seed, not a seed already counted). A report failing any of these is ``rejected``
and none of its runs counts. The statistics are the pool's (``leaderboard.entries.pool``).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from contract.core_v1 import CORE_V1_LABELS, core_from_accuracies
from contract.hardware import floor_seconds
from contract.schema import CLOCK_TOLERANCE_S, FORK_REVIEW_NOTE, RunConfig, RunResult, VerificationReport
from contract.tracks import clock_disagrees, clock_gap_allowed
from leaderboard.tracks.models import Track
from leaderboard.tracks.service import track_rules
from submissions.rules import run_problems
from trainer.config import build_config
from trainer.plan import resolve

CORE_TOLERANCE = 1e-9  # re-derived CORE vs the run's, float summation order aside
PLAN_FLOPS_TOLERANCE = 1e-6  # relative: the run's FLOPs vs the site's own plan of the recipe
FORK_FLOPS_SLACK = 10.0  # a fork may train the recipe's model size in up to 10x fewer FLOPs, not more


@dataclass(frozen=True)
class SiteChecks:
    problems: list[str]  # any problem rejects the whole report
    sealed: bool
    clock_flagged: bool = False
    clock_notes: list[str] = field(default_factory=list)


def report_sealed(report: VerificationReport) -> bool:
    """Whether every step ran in the verifier's sandbox (an older report without the field: no)."""
    return report.sealed is True and all(r.sealed is not False for r in report.runs)


def _site_plan(config: RunConfig, seed: int) -> tuple[Any, str | None]:
    """The reference trainer's plan of the entry's recipe + overrides at ``seed``: (plan, None);
    (None, None) for a fork; (None, why) when the reference trainer cannot plan them, which is
    itself a problem: a run the site cannot re-derive is not ranked."""
    if config.trainer.kind != "reference":
        return None, None
    try:
        return resolve(build_config(config.recipe, {**config.overrides, "seed": seed}), config.world_size), None
    except (ValueError, TypeError, KeyError) as exc:
        return None, f"the reference trainer cannot plan the entry's recipe and overrides ({exc})"


def _core_problems(run: RunResult, core_examples: int | None) -> list[str]:
    core = run.core
    if core is None:
        return []  # run_problems names it
    out: list[str] = []
    tasks = set(core.tasks)
    if tasks != set(CORE_V1_LABELS):
        missing, extra = sorted(set(CORE_V1_LABELS) - tasks), sorted(tasks - set(CORE_V1_LABELS))
        out.append(f"CORE tasks are not the protocol's 22: missing {missing[:5]}, unknown {extra[:5]}")
        return out
    scored = sum(t.n for t in core.tasks.values())
    if core_examples is not None and scored != core_examples:
        out.append(f"CORE scored {scored} examples, the track's full set is {core_examples}")
    derived = core_from_accuracies({k: t.accuracy for k, t in core.tasks.items()})
    if not math.isclose(derived, core.core, rel_tol=0.0, abs_tol=CORE_TOLERANCE):
        out.append(f"CORE {core.core:.6f} is not the mean centered accuracy of its tasks ({derived:.6f})")
    return out


def _plan_problems(run: RunResult, plan: Any) -> list[str]:
    if plan is None:
        return []
    out: list[str] = []
    if run.steps != plan.num_iterations:
        out.append(f"{run.steps} steps, the recipe and overrides give {plan.num_iterations}")
    if run.tokens != plan.total_tokens:
        out.append(f"{run.tokens} tokens, the recipe and overrides give {plan.total_tokens}")
    if not math.isclose(run.flops, plan.total_flops, rel_tol=PLAN_FLOPS_TOLERANCE):
        out.append(f"{run.flops:.4g} FLOPs, the recipe and overrides give {plan.total_flops:.4g}")
    return out


def _reference_plan(config: RunConfig, seed: int) -> Any:
    """The reference trainer's plan of a fork's recipe (with its overrides when the reference
    trainer knows them, else the recipe alone): the model size the fork's FLOPs are held to."""
    for overrides in ({**config.overrides, "seed": seed}, {"seed": seed}):
        try:
            return resolve(build_config(config.recipe, overrides), config.world_size)
        except (ValueError, TypeError, KeyError):
            continue
    return None


def _fork_flops_problems(run: RunResult, config: RunConfig) -> tuple[list[str], float]:
    """A fork's own FLOP count is its trainer's word: far below the reference plan of the same
    recipe it is refused, and the physical floor holds the fork to at least that tenth of the
    plan whatever it reports. Returns (problems, the least FLOPs the floor counts)."""
    if config.trainer.kind == "reference":
        return [], 0.0
    reference = _reference_plan(config, run.seed)
    if reference is None:
        why = (
            f"the reference trainer cannot plan recipe {config.recipe!r}: the fork's FLOP count cannot be held "
            "to a model size, so its time cannot be checked against the physical floor"
        )
        return [why], 0.0
    least = reference.total_flops / FORK_FLOPS_SLACK
    if run.flops < least:
        why = (
            f"reports {run.flops:.4g} FLOPs; the reference plan of recipe {config.recipe!r} is "
            f"{reference.total_flops:.4g}, and a fork of it may claim no less than 1/{FORK_FLOPS_SLACK:.0f} of that "
            f"({least:.4g})"
        )
        return [why], least
    return [], least


def _floor_problems(run: RunResult, config: RunConfig, plan: Any, least: float = 0.0) -> list[str]:
    flops = max(run.flops, plan.total_flops if plan is not None else 0.0, least)
    if flops <= 0:
        return ["reports 0 FLOPs: its training time cannot be checked against the physical floor"]
    devices = max(1, config.gpus_per_node) * config.nodes
    floor = floor_seconds(flops, config.hardware_class, devices)
    if floor is None:
        return [f"no peak FLOP/s on record for {config.hardware_class}: the physical floor cannot be checked"]
    if run.training_seconds < floor:
        return [
            f"trained {flops:.3e} FLOPs in {run.training_seconds:.3f} s, below the physical floor of "
            f"{floor:.3f} s at 100% of {devices} x {config.hardware_class} peak"
        ]
    return []


def _clock(runs: Sequence[RunResult], tolerance: float) -> tuple[bool, list[str], list[str]]:
    """``speedrun-v2`` runs against their trainer's own time (v1): (flagged, notes, problems).

    A run that omits the trainer's time, or whose clock is far below it (the trainer's own
    timed region lies inside the clocked process, so an honest clock is never below it by more
    than the allowed gap), does not count: a problem. A smaller disagreement is flagged."""
    notes: list[str] = []
    problems: list[str] = []
    for i, run in enumerate(runs):
        own, clock = run.self_reported_training_seconds, run.training_seconds
        if run.rules_version != "speedrun-v2":
            continue
        where = f"runs[{i}] (seed {run.seed})"
        if own is None:
            problems.append(f"{where}: omits the trainer's own time, which speedrun-v2 checks the clock against")
            continue
        allowed = clock_gap_allowed(clock, tolerance)
        if own - clock > allowed:
            problems.append(
                f"{where}: the verifier's clock {clock:.1f} s is far below the trainer's own time {own:.1f} s "
                f"(more than the allowed gap of {allowed:.1f} s)"
            )
        elif clock_disagrees(own, clock, tolerance):
            notes.append(
                f"{where}: the trainer reports {own:.1f} s, the verifier's clock {clock:.1f} s "
                f"(allowed gap {allowed:.1f} s = {CLOCK_TOLERANCE_S:.0f} s + {tolerance:.0%} of the clock)"
            )
    return bool(notes), notes, problems


def _review_problems(track: Track, config: RunConfig, report: VerificationReport) -> list[str]:
    """A fork on a track with code review needs a diff to review: a report without one (no common
    history with the reference trainer, no reference checkout on the worker) refuses the fork."""
    if track.fork_review != "required" or config.trainer.kind != "git" or report.fork_diff is not None:
        return []
    if report.verdict.value == "error":  # nothing ran: the error says why
        return []
    why = next((r.removeprefix(FORK_REVIEW_NOTE) for r in report.reasons if r.startswith(FORK_REVIEW_NOTE)), None)
    return [
        f"code review: track {track.slug} ranks a fork only once an admin has approved its diff against the "
        f"reference trainer, and this report has no diff ({why or 'the verifier recorded none'}): the fork is refused"
    ]


def check_report(
    track: Track,
    entry_config: dict[str, Any],
    report: VerificationReport,
    *,
    claimed_seeds: Collection[int],
    counted_seeds: Collection[int],
    rules_versions: Collection[str],
) -> SiteChecks:
    """Every reason the site refuses ``report`` as a report of the entry's runs (empty: accepted).

    ``rules_versions``: the versions a run may be timed under (the track's, and the entry's own
    label when the entry was verified under an earlier one)."""
    sealed = report_sealed(report)
    problems: list[str] = []
    if report.track != track.slug:
        problems.append(f"report is for track {report.track}, the entry is on {track.slug}")
    try:
        config = RunConfig.model_validate(entry_config)
    except ValidationError:
        return SiteChecks(problems=["the entry's run config does not validate: nothing can be checked"], sealed=sealed)
    if report.run_config.model_dump(mode="json", exclude={"seed"}) != config.model_dump(mode="json", exclude={"seed"}):
        problems.append("report.run_config differs from the entry's run config")
    problems += _review_problems(track, config, report)
    if track.require_sealed and not sealed:
        problems.append(f"track {track.slug} requires sealed verification; this report ran unsealed")
    rules = track_rules(track)
    versions = {r.rules_version for r in report.runs}
    if len(versions) > 1:
        problems.append(f"runs timed under several rules versions: {sorted(versions)}")
    elif versions and (version := next(iter(versions))) in rules_versions:
        rules = rules.model_copy(update={"rules_version": version})
    seen: set[int] = set()
    for i, run in enumerate(report.runs):
        where = f"runs[{i}] (seed {run.seed})"
        found = run_problems(run, config, rules)
        found += _core_problems(run, track.core_examples if track.max_per_task is None else None)
        plan, unplanned = _site_plan(config, run.seed)
        found += [unplanned] if unplanned is not None else _plan_problems(run, plan)
        fork_problems, least = _fork_flops_problems(run, config)
        found += fork_problems
        found += _floor_problems(run, config, plan, least)
        if run.seed in claimed_seeds:
            found.append("the seed is a claimed seed: a verification must use seeds the submitter did not pick")
        elif run.seed in counted_seeds or run.seed in seen:
            found.append("the seed repeats a run already counted")
        seen.add(run.seed)
        problems.extend(f"{where}: {p}" for p in found)
    flagged, notes, clock_problems = _clock(report.runs, track.clock_tolerance)
    problems.extend(clock_problems)
    return SiteChecks(problems=problems, sealed=sealed, clock_flagged=flagged, clock_notes=notes)
