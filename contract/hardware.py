"""Hardware classes and their peak FLOP/s: the one table behind MFU and the physical floor.

A device name (``torch.cuda.get_device_name``) normalizes to a SKU class. ``PEAKS`` holds each
class's dense bf16 peak from the vendor's datasheet (sparsity figures halved), with its source,
and for the CPU a bound far above any shipping server CPU. ``peak_flops`` (MFU) answers only for
datasheet peaks; ``floor_seconds`` uses bounds too: a run faster than its FLOPs at these peaks did
not do the work it reports.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Literal


@dataclass(frozen=True)
class Peak:
    sku: str
    flops: float  # dense bf16 FLOP/s of one device (no structured sparsity)
    source: str
    as_of: date
    kind: Literal["datasheet", "bound"] = "datasheet"


PEAKS: dict[str, Peak] = {
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
            kind="bound",
        ),
    )
}

_SKU_PATTERNS: tuple[tuple[str, str], ...] = (
    (r"H100.*NVL", "h100-nvl"),
    (r"H100.*PCIe", "h100-pcie"),
    (r"H100", "h100-sxm"),  # 'NVIDIA H100 80GB HBM3' is the SXM part
    (r"GH200", "gh200"),
    (r"H200", "h200"),
    (r"B200", "b200"),
    (r"A100.*PCIE", "a100-pcie"),
    (r"A100", "a100-sxm"),
)


def sku_from_device_name(device_name: str) -> str:
    """Normalize a CUDA device name (``torch.cuda.get_device_name``) to a SKU class."""
    if device_name.lower() in {"cpu", ""}:
        return "cpu"
    for pattern, sku in _SKU_PATTERNS:
        if re.search(pattern, device_name, flags=re.IGNORECASE):
            return sku
    slug = re.sub(r"[^a-z0-9]+", "-", device_name.lower()).strip("-")
    return slug[:64] or "unknown"


def peak_flops(sku: str) -> float | None:
    """The datasheet bf16 dense peak of one device of ``sku`` (for MFU); None when unknown or a bound."""
    peak = PEAKS.get(sku)
    return peak.flops if peak is not None and peak.kind == "datasheet" else None


def floor_seconds(flops: float, sku: str, devices: int) -> float | None:
    """Seconds ``flops`` take at 100% of ``devices`` x the SKU's peak (or bound); None for an unknown SKU."""
    peak = PEAKS.get(sku)
    if peak is None:
        return None
    return flops / (peak.flops * max(1, devices))
