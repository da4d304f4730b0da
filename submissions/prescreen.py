"""Checks before any GPU time is spent, and the bounds every verification run gets.

``prescreen`` finds what makes a verification pointless (track/hardware mismatch, bad overrides,
a plan beyond the FLOPs bound). ``default_run_timeout_s`` is the wall-time cap of a training run
when the operator gives none: never "none", derived from the track's record and a FLOPs bound.
"""

from __future__ import annotations

from contract.hardware import peak_flops
from contract.schema import RunConfig, Submission
from contract.tracks import TrackRules
from submissions.rules import claim_test, same_overrides
from trainer.plan import config_of, plan_of

# A reference config whose plan needs more than this many hours at 100% MFU is refused by the
# pre-screen (the public record takes 1.65 h on 8xH100; this bounds a verification's GPU bill).
MAX_HOURS_AT_PEAK = 24.0
# The wall-time cap of one training run: RECORD_FACTOR x the track's record (or reference) time,
# or the plan's time at MIN_MFU of the hardware's bf16 peak when that is longer, plus start-up,
# at least MIN_RUN_TIMEOUT_S and at most MAX_RUN_TIMEOUT_S.
RECORD_SECONDS: dict[str, float] = {
    "gpt2-8xh100": 99 * 60.0,  # RULES.md history row 6 (1.65 h on 8xH100)
    "gpt2-cost": 99 * 60.0 * 8,  # the same work on a single GPU of the same class
    "cpu-smoke": 120.0,  # the cpu_smoke recipe: about 15 s of steps on 2 idle cores (trainer/config.py), 40 s beside others
}
FALLBACK_RECORD_SECONDS = 4 * 3600.0  # a track without a known record
RECORD_FACTOR = 3.0
MIN_MFU = 0.10
STARTUP_SLACK_S = 300.0
MIN_RUN_TIMEOUT_S = 1800.0  # a floor: a slow or shared CPU must not turn an honest run into a timeout
MAX_RUN_TIMEOUT_S = MAX_HOURS_AT_PEAK * 3600.0
EVAL_TIMEOUT_S = 3600.0
SMOKE_CORE_MAX_PER_TASK = 11  # the smallest subsample that keeps the 10-shot tasks valid


def _plan_flops(config: RunConfig) -> float | None:
    try:
        plan = plan_of(config.recipe, config.overrides, config.seed, config.world_size)
    except (ValueError, TypeError, KeyError):
        return None
    return float(plan.total_flops)


def default_run_timeout_s(track: TrackRules, config: RunConfig) -> float:
    """The time cap of one training run of ``config`` on ``track`` when none is given."""
    record = RECORD_SECONDS.get(track.slug, FALLBACK_RECORD_SECONDS)
    cap = RECORD_FACTOR * record
    peak = peak_flops(config.hardware_class)
    flops = _plan_flops(config) if peak is not None else None
    if flops is not None and peak is not None:
        cap = max(cap, flops / (config.world_size * peak * MIN_MFU))
    return min(max(cap + STARTUP_SLACK_S, MIN_RUN_TIMEOUT_S), MAX_RUN_TIMEOUT_S)


def prescreen(
    submission_or_config: Submission | RunConfig, track: TrackRules, *, test_the_claim: bool = True
) -> list[str]:
    """Problems that make a verification pointless, found before any GPU time is spent.

    ``test_the_claim``: also apply the track's test to the claimed runs. A client checking against
    the built-in rules leaves it to the site when it has one: the site's track settings decide."""
    problems: list[str] = []
    if isinstance(submission_or_config, Submission):
        sub = submission_or_config
        config = sub.run_config
        if sub.track != track.slug:
            problems.append(f"track: the submission names {sub.track!r}, checked against {track.slug!r}")
        for i, claim in enumerate(sub.claimed_results):
            if claim.rules_version not in track.claim_rules_versions:
                problems.append(
                    f"claimed_results[{i}].rules_version: {claim.rules_version}, the track needs {track.rules_version}"
                )
            if not same_overrides(config.recipe, claim.overrides, config.overrides):
                problems.append(f"claimed_results[{i}].overrides: differ from run_config.overrides")
            if claim.core is None:
                problems.append(f"claimed_results[{i}].core: a claim needs a CORE result")
            hw = claim.hardware
            why = track.allows_hardware(hw.sku, 0 if hw.device_type == "cpu" else hw.device_count, hw.nodes)
            if why is not None:
                problems.append(f"claimed_results[{i}].hardware: {why}")
        verdict = claim_test(sub.claimed_results, threshold=track.threshold, alpha=track.alpha)
        if test_the_claim and verdict.problem is not None:
            problems.append(f"claimed_results: {verdict.problem}")
    else:
        config = submission_or_config
    reason = track.allows_hardware(config.hardware_class, config.gpus_per_node, config.nodes)
    if reason is not None:
        problems.append(f"run_config.hardware_class: {reason}")
    if config.trainer.kind == "reference":
        try:
            config_of(config.recipe, config.overrides, config.seed)
        except (ValueError, TypeError, KeyError) as exc:
            problems.append(f"run_config.overrides: {exc}")
        else:
            problems.extend(_compute_problems(config))
    else:  # a fork's checkpoint is scored with the reference config of its recipe and overrides
        try:
            config_of(config.recipe, config.overrides, config.seed)
        except (ValueError, TypeError, KeyError) as exc:
            problems.append(
                f"run_config: a fork keeps the reference recipes and overrides (the verifier scores its "
                f"checkpoint with them): {exc}"
            )
    return problems


def _compute_problems(config: RunConfig) -> list[str]:
    """A reference config whose plan needs more than MAX_HOURS_AT_PEAK even at 100% MFU."""
    peak = peak_flops(config.hardware_class)
    if peak is None:  # CPU or an SKU without a known peak: the time cap of each run bounds it
        return []
    try:
        plan = plan_of(config.recipe, config.overrides, config.seed, config.world_size)
    except ValueError as exc:
        return [f"run_config: the plan cannot be resolved ({exc})"]
    hours = plan.total_flops / (config.world_size * peak) / 3600.0
    if hours > MAX_HOURS_AT_PEAK:
        return [
            f"run_config.overrides: the plan needs {plan.total_flops:.3e} FLOPs, {hours:.1f} h at the bf16 peak of "
            f"{config.world_size} x {config.hardware_class}; a verification run may need at most {MAX_HOURS_AT_PEAK:.0f} h"
        ]
    return []


def smoke_overrides(steps: int) -> dict[str, int | None]:
    """Overrides of a smoke run: a few steps, no intermediate eval, CORE on a small subsample."""
    return {"num_iterations": steps, "eval_every_steps": None, "core_max_per_task": SMOKE_CORE_MAX_PER_TASK}
