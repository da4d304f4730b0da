"""Valid contract objects for the leaderboard tests (real pydantic models, no mocks)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from contract.core_v1 import CORE_V1_EXAMPLES, CORE_V1_LABELS, CORE_V1_TASKS
from contract.schema import (
    SELF_TIMED_RULES_VERSION,
    CoreResult,
    CoreTaskResult,
    Digests,
    HardwareFingerprint,
    RunConfig,
    RunResult,
    StatSummary,
    Submission,
    VerificationReport,
    VerifierIdentity,
)
from contract.tracks import TrackRules
from trainer.config import build_config
from trainer.plan import resolve

TASKS = CORE_V1_LABELS  # a full CORE pass: the 22 tasks, every example (40 each in the CPU bundle)
CPU_EXAMPLES_PER_TASK = 40


def core_tasks(core: float, sku: str) -> dict[str, CoreTaskResult]:
    """Per-task results whose centered mean is ``core`` (what the site re-derives)."""
    out = {}
    for spec in CORE_V1_TASKS:
        b = 0.01 * spec.baseline_v1_percent
        n = CPU_EXAMPLES_PER_TASK if sku == "cpu" else CORE_V1_EXAMPLES[spec.label]
        out[spec.label] = CoreTaskResult(accuracy=b + core * (1 - b), centered=core, n=n)
    return out


def plan_of(recipe: str, world_size: int, seed: int) -> Any:
    """The reference trainer's plan: honest steps, tokens and FLOPs of a run of ``recipe``."""
    return resolve(build_config(recipe, {"seed": seed}), world_size)


def fingerprint(sku: str = "cpu", gpus: int = 0) -> HardwareFingerprint:
    if sku == "cpu":
        return HardwareFingerprint(
            sku="cpu", device_type="cpu", device_name="cpu", device_count=1, torch_version="2.13.0"
        )
    return HardwareFingerprint(
        sku=sku, device_type="cuda", device_name="NVIDIA H100 80GB HBM3", device_count=gpus, torch_version="2.13.0"
    )


def run_result(
    seed: int = 1,
    *,
    hours: float = 0.01,
    core: float = 0.2,
    sku: str = "cpu",
    gpus: int = 0,
    recipe: str = "cpu_smoke",
    metrics_sha256: str | None = None,
    rules_version: str = SELF_TIMED_RULES_VERSION,
    sealed: bool | None = None,
) -> RunResult:
    now = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    plan = plan_of(recipe, max(1, gpus), seed)
    return RunResult(
        rules_version=rules_version,  # type: ignore[arg-type]
        sealed=sealed,
        run_id=f"run-{seed}",
        recipe=recipe,
        seed=seed,
        trainer_version="0.1.0",
        config={"recipe": recipe},
        plan={"num_iterations": plan.num_iterations, "total_flops": plan.total_flops},
        training_seconds=hours * 3600,
        # speedrun-v2 times the sealed process; the trainer's own timed region lies inside it
        self_reported_training_seconds=hours * 3600 * 0.95 if rules_version == "speedrun-v2" else None,
        wall_seconds=hours * 3600 + 5,
        steps=plan.num_iterations,
        tokens=plan.total_tokens,
        flops=plan.total_flops,
        val_bpb=1.5,
        core=CoreResult(core=core, bundle_sha256="b" * 64, tasks=core_tasks(core, sku)),
        attention_backend="sdpa",
        hardware=fingerprint(sku, gpus),
        digests=Digests(metrics_log_sha256=metrics_sha256),
        started_at=now,
        finished_at=now,
    )


def run_config(sku: str = "cpu", gpus: int = 0, recipe: str = "cpu_smoke") -> RunConfig:
    return RunConfig(trainer="reference@0.1.0", recipe=recipe, hardware_class=sku, gpus_per_node=gpus)  # type: ignore[arg-type]


def submission(
    *,
    track: str = "cpu-smoke",
    key: str | None = None,
    title: str = "a cpu run",
    sku: str = "cpu",
    gpus: int = 0,
    hours: float = 0.01,
    core: float = 0.2,
    logs: list[dict[str, str]] | None = None,
) -> Submission:
    recipe = "cpu_smoke" if sku == "cpu" else "gpt2_speedrun"
    key = key or f"key-{uuid.uuid4().hex}"
    claim = run_result(1, hours=hours, core=core, sku=sku, gpus=gpus, recipe=recipe)
    claim = claim.model_copy(update={"run_id": f"run-{key}"})  # its own run: byte copies of another's are refused
    return Submission.model_validate(
        {
            "track": track,
            "title": title,
            "description": "<b>not bold</b>",
            "contributors": ["@tester"],
            "run_config": run_config(sku, gpus, recipe).model_dump(mode="json"),
            "claimed_results": [claim],
            "logs": logs or [{"name": "train.log", "content": "step 1 | loss 9.0\n"}],
            "idempotency_key": key,
        }
    )


def submission_json(**kwargs: Any) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(submission(**kwargs).model_dump_json())
    return result


def report(
    track: TrackRules,
    config: RunConfig,
    *,
    seeds: tuple[int, ...] | None = None,
    hours: tuple[float, ...] | None = None,
    cores: tuple[float, ...] | None = None,
    verdict: str = "verified",
    sku: str = "cpu",
    gpus: int = 0,
    metrics_sha256: str | None = None,
    sealed: bool = True,
) -> VerificationReport:
    seeds = seeds or tuple(11 + i for i in range(track.min_runs))
    hours = hours or tuple(0.01 for _ in seeds)
    cores = cores or tuple(0.2 + 0.01 * i for i, _ in enumerate(seeds))
    runs = [
        run_result(
            s,
            hours=h,
            core=c,
            sku=sku,
            gpus=gpus,
            recipe=config.recipe,
            metrics_sha256=metrics_sha256,
            rules_version=track.rules_version,
            sealed=sealed,
        )
        for s, h, c in zip(seeds, hours, cores, strict=True)
    ]
    n = len(runs)
    mean = sum(cores) / n
    return VerificationReport(
        track=track.slug,
        rules_version=track.rules_version,
        verifier=VerifierIdentity(id="test-worker", version="0.1.0"),
        run_config=config,
        runs=runs,
        core=StatSummary(mean=mean, std=0.01 if n > 1 else 0.0, n=n),
        core_threshold=track.threshold,
        alpha=track.alpha,
        p_value=0.01,
        training_hours=StatSummary(mean=sum(hours) / n, std=0.0, n=n),
        verdict=verdict,  # type: ignore[arg-type]
        created_at=datetime.now(UTC),
        sealed=sealed,
    )
