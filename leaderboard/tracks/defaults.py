"""The site's own settings of the built-in tracks, and the dated table of hardware peaks.

``SITE_DEFAULTS`` is what a new database seeds (and what migration 20261201_0001 writes into an
existing one); admins edit the stored copies. ``BF16_DENSE_PEAKS`` bounds the physical floor of a
run's training time: its FLOPs at 100% of the hardware's peak can never take less time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from submissions.schema import CLOCK_TOLERANCE_REL
from trainer.evaluation.protocol import CORE_V1_EXAMPLES

CORE_V1_FULL_EXAMPLES = sum(CORE_V1_EXAMPLES.values())  # 91,037: every example of the public bundle
CPU_SMOKE_EXAMPLES = 880  # the synthetic bundle: 40 examples of each of the 22 tasks

_GPT2 = {
    "require_sealed": True,
    "fork_review": "required",
    "clock_tolerance": CLOCK_TOLERANCE_REL,
    "max_verifications": 3,
    "weekly_gpu_runs": 12,  # four verifications of k = 3 runs per user per week
    "core_examples": CORE_V1_FULL_EXAMPLES,
}
SITE_DEFAULTS: dict[str, dict[str, Any]] = {
    "gpt2-8xh100": _GPT2,
    "gpt2-cost": _GPT2,
    "cpu-smoke": {
        "require_sealed": False,
        "fork_review": "none",
        "clock_tolerance": CLOCK_TOLERANCE_REL,
        "max_verifications": 3,
        "weekly_gpu_runs": None,
        "core_examples": CPU_SMOKE_EXAMPLES,
    },
}


@dataclass(frozen=True)
class Peak:
    sku: str
    flops: float  # dense bf16 FLOP/s of one device (no structured sparsity)
    source: str
    as_of: date


# Dense bf16 tensor-core peaks from the vendors' datasheets (the sparsity figures halved), and a
# CPU bound far above any shipping server CPU. A run faster than its FLOPs at these peaks did not
# do the work it reports.
BF16_DENSE_PEAKS: dict[str, Peak] = {
    p.sku: p
    for p in (
        Peak(
            "h100-sxm",
            989e12,
            "NVIDIA H100 Tensor Core GPU datasheet: BF16 1,979 TFLOPS with sparsity",
            date(2023, 7, 1),
        ),
        Peak("h100-pcie", 756e12, "NVIDIA H100 datasheet, PCIe: BF16 1,513 TFLOPS with sparsity", date(2023, 7, 1)),
        Peak("h100-nvl", 835e12, "NVIDIA H100 datasheet, NVL: BF16 1,671 TFLOPS with sparsity", date(2023, 7, 1)),
        Peak("h200", 989e12, "NVIDIA H200 datasheet, SXM: BF16 1,979 TFLOPS with sparsity", date(2024, 11, 1)),
        Peak("gh200", 989e12, "NVIDIA GH200 datasheet: BF16 1,979 TFLOPS with sparsity", date(2024, 5, 1)),
        Peak("a100-sxm", 312e12, "NVIDIA A100 datasheet: BF16 312 TFLOPS dense", date(2021, 6, 1)),
        Peak("a100-pcie", 312e12, "NVIDIA A100 datasheet: BF16 312 TFLOPS dense", date(2021, 6, 1)),
        Peak("b200", 2250e12, "NVIDIA HGX B200 datasheet: BF16 4.5 PFLOPS with sparsity per GPU", date(2025, 3, 1)),
        Peak(
            "cpu",
            50e12,
            "a bound: 192 cores x 3.7 GHz x 64 fp32 FLOP/cycle (AVX-512, 2 FMA) = 45 TFLOP/s",
            date(2026, 12, 1),
        ),
    )
}


def floor_seconds(flops: float, sku: str, devices: int) -> float | None:
    """Seconds ``flops`` take at 100% of ``devices`` x the SKU's peak; None for an unknown SKU."""
    peak = BF16_DENSE_PEAKS.get(sku)
    if peak is None:
        return None
    return flops / (peak.flops * max(1, devices))
