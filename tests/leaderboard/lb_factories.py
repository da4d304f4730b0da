"""Valid contract objects for the leaderboard tests (real pydantic models, no mocks)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from submissions.schema import (
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
from submissions.tracks import TrackRules

TASKS = ("hellaswag", "arc_easy", "piqa")


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
    flops: float = 1e12,
) -> RunResult:
    now = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    tasks = {t: CoreTaskResult(accuracy=min(1.0, core + 0.1 * i), centered=core, n=100) for i, t in enumerate(TASKS)}
    return RunResult(
        run_id=f"run-{seed}",
        recipe=recipe,
        seed=seed,
        trainer_version="0.1.0",
        config={"recipe": recipe},
        plan={"depth": 4, "num_iterations": 300},
        training_seconds=hours * 3600,
        wall_seconds=hours * 3600 + 5,
        steps=300,
        tokens=300 * 4096,
        flops=flops,
        val_bpb=1.5,
        core=CoreResult(core=core, bundle_sha256="b" * 64, tasks=tasks),
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
    return Submission.model_validate(
        {
            "track": track,
            "title": title,
            "description": "<b>not bold</b>",
            "contributors": ["@tester"],
            "run_config": run_config(sku, gpus, recipe).model_dump(mode="json"),
            "claimed_results": [run_result(1, hours=hours, core=core, sku=sku, gpus=gpus, recipe=recipe)],
            "logs": logs or [{"name": "train.log", "content": "step 1 | loss 9.0\n"}],
            "idempotency_key": key or f"key-{uuid.uuid4().hex}",
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
) -> VerificationReport:
    seeds = seeds or tuple(11 + i for i in range(track.min_runs))
    hours = hours or tuple(0.01 for _ in seeds)
    cores = cores or tuple(0.2 + 0.01 * i for i, _ in enumerate(seeds))
    runs = [
        run_result(s, hours=h, core=c, sku=sku, gpus=gpus, recipe=config.recipe, metrics_sha256=metrics_sha256)
        for s, h, c in zip(seeds, hours, cores, strict=True)
    ]
    n = len(runs)
    mean = sum(cores) / n
    return VerificationReport(
        track=track.slug,
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
    )
