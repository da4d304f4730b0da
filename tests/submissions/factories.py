"""Small real contract objects for the tests (RunResults as a trainer would write them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from contract.schema import CoreResult, CoreTaskResult, Digests, HardwareFingerprint, RunConfig, RunResult

BUNDLE = "b" * 64
CPU = HardwareFingerprint(sku="cpu", device_type="cpu", device_name="Test CPU", device_count=1, torch_version="2.13.0")
H100 = HardwareFingerprint(
    sku="h100-sxm",
    device_type="cuda",
    device_name="NVIDIA H100 80GB HBM3",
    device_count=8,
    device_memory_bytes=80 * 2**30,
    driver_version="570.1",
    cuda_version="12.8",
    nccl_version="2.26.2",
    torch_version="2.13.0",
)
H200 = H100.model_copy(update={"sku": "h200", "device_name": "NVIDIA H200"})


def core(score: float, *, bundle: str = BUNDLE, max_per_task: int | None = None) -> CoreResult:
    return CoreResult(
        core=score,
        bundle_sha256=bundle,
        max_per_task=max_per_task,
        tasks={"copa": CoreTaskResult(accuracy=0.5 + score / 2, centered=score, n=100)},
    )


def run_result(
    *,
    seed: int = 1,
    core_score: float | None = 0.3,
    training_seconds: float = 3600.0,
    val_bpb: float | None = 0.75,
    hardware: HardwareFingerprint = H100,
    recipe: str = "gpt2_speedrun",
    overrides: dict[str, Any] | None = None,
    **changes: Any,
) -> RunResult:
    start = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    fields: dict[str, Any] = {
        "run_id": f"run-{seed}",
        "recipe": recipe,
        "overrides": overrides or {},
        "seed": seed,
        "trainer_version": "0.1.0",
        "config": {"recipe": recipe, "seed": seed},
        "plan": {"num_iterations": 100},
        "training_seconds": training_seconds,
        "wall_seconds": training_seconds + 60,
        "steps": 100,
        "tokens": 100 * 2**19,
        "flops": 1e18,
        "final_loss": 2.5,
        "val_bpb": val_bpb,
        "core": None if core_score is None else core(core_score),
        "attention_backend": "sdpa",
        "hardware": hardware,
        "digests": Digests(tokenizer_sha256="c" * 64, eval_bundle_sha256=BUNDLE),
        "started_at": start,
        "finished_at": start + timedelta(seconds=training_seconds + 60),
    }
    fields.update(changes)
    return RunResult.model_validate(fields)


# The smallest real cpu_smoke run the sealed tests train: 3 steps of a depth-2 model, CORE on 11
# examples per task (the smallest cut that keeps the 10-shot tasks valid).
TINY = {
    "num_iterations": 3,
    "depth": 2,
    "device_batch_size": 4,
    "total_batch_size": 1024,
    "eval_tokens": 1024,
    "core_max_per_task": 11,
}


def tiny_cpu_config() -> RunConfig:
    """The reference trainer's cpu_smoke recipe with the ``TINY`` overrides."""
    return RunConfig.model_validate(
        {
            "trainer": "reference@0.1.0",
            "recipe": "cpu_smoke",
            "overrides": TINY,
            "hardware_class": "cpu",
            "gpus_per_node": 0,
        }
    )


def gpu_config(**changes: Any) -> RunConfig:
    fields: dict[str, Any] = {
        "trainer": "reference@0.1.0",
        "recipe": "gpt2_speedrun",
        "hardware_class": "h100-sxm",
        "gpus_per_node": 8,
    }
    fields.update(changes)
    return RunConfig.model_validate(fields)


def cpu_submission(run_config: RunConfig, *, key: str = "test-key-0001", **changes: Any) -> Any:
    """A cpu-smoke Submission for ``run_config`` with one claimed CPU result."""
    from contract.schema import Submission

    claim = run_result(
        seed=run_config.seed,
        core_score=0.5,
        training_seconds=30.0,
        hardware=CPU,
        recipe=run_config.recipe,
        overrides=dict(run_config.overrides),
    )
    fields: dict[str, Any] = {
        "track": "cpu-smoke",
        "title": "a cpu smoke entry",
        "contributors": ["@alice"],
        "run_config": run_config,
        "claimed_results": [claim],
        "logs": [{"name": "train.log", "content": "step 0 loss 7.6\n"}],
        "idempotency_key": key,
    }
    fields.update(changes)
    return Submission.model_validate(fields)
