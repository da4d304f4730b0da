"""A verified run as the report carries it: the trainer's own result.json with what the verifier
measured and knows put over it (its clock under speedrun-v2, the scorer's CORE and val_bpb, the
hardware, the sandbox limits, the plan from the verifier's copy of the recipe)."""

from __future__ import annotations

from contract.schema import RunConfig, RunResult
from contract.tracks import clock_disagrees
from submissions.runner import RunContext
from submissions.score import Score
from trainer.plan import config_of, resolve

VAL_BPB_BY_FORK = (
    "computed by the fork's own model process from the per-token losses it reported (not checked by "
    "the verifier; shown, never ranked)"
)


def verified_result(ctx: RunContext, own: RunResult, clock: float, score: Score, limits: str = "") -> RunResult:
    """The run as the report carries it: the verifier's time (v2), score, hardware and plan; in
    ``software``, the sandbox limits that applied to training and who computed val_bpb."""
    self_reported = own.training_seconds
    disagrees = clock_disagrees(self_reported, clock)
    software = {k: v for k, v in own.software.items() if k not in ("sandbox", "val_bpb_by")}
    if limits:
        software["sandbox"] = limits[:2000]
    if score.val_bpb_by_fork:
        software["val_bpb_by"] = VAL_BPB_BY_FORK
    update: dict[str, object] = {
        "software": software,
        "core": score.core,
        "val_bpb": score.val_bpb,
        "hardware": ctx.fingerprint.model_copy(
            update={"device_count": max(1, ctx.run_config.gpus_per_node) if ctx.gpu else 1}
        ),
        "sealed": ctx.trainer.sealed,
        "self_reported_training_seconds": self_reported,
        "clock_disagrees": disagrees,
        "overrides": dict(ctx.run_config.overrides),
        "recipe": ctx.run_config.recipe,
    }
    if ctx.v2:
        update |= {"rules_version": "speedrun-v2", "training_seconds": clock, "final_loss": None, "mfu": None}
    trusted = _trusted_plan(ctx.run_config, own.seed)
    if trusted is not None:
        update |= trusted
    return RunResult.model_validate({**own.model_dump(), **update})


def _trusted_plan(config: RunConfig, seed: int) -> dict[str, object] | None:
    """config, plan, steps, tokens and FLOPs from the verifier's copy of the recipe (reference recipes)."""
    try:
        train_config = config_of(config.recipe, config.overrides, seed)
        plan = resolve(train_config, config.world_size)
    except (ValueError, TypeError, KeyError):
        return None
    return {
        "config": train_config.to_dict(),
        "plan": plan.to_dict(),
        "steps": int(plan.num_iterations),
        "tokens": int(plan.total_tokens),
        "flops": float(plan.flops_per_token * plan.total_tokens),
    }
