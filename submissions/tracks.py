"""Tracks (what a record means), GPU SKU classes and the dated reference price table.

A track fixes the target (metric, threshold, eval protocol), the hardware allowed, the rules
version (what is timed), the statistics (min verified runs, alpha) and the ranking. The site
seeds its database from ``BUILTIN_TRACKS`` and ``REFERENCE_PRICES``; admins edit the stored
copies, and the verifier decides with the copy the job carries.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Literal

from pydantic import Field

from submissions.schema import (
    EVAL_PROTOCOL,
    RULES_VERSION,
    VERIFIER_RULES_VERSION,
    Contract,
    EvalProtocol,
    Fraction,
    RulesVersion,
    Sha256,
    Slug,
)

GPT2_CORE = 0.256525  # GPT-2 XL (1558M) under the nanochat harness, v1 baselines


class TrackRules(Contract):
    slug: Slug
    name: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=5000)
    metric: Literal["core"] = "core"
    threshold: float = Field(description="a record needs mean CORE > threshold with p < alpha")
    protocol: EvalProtocol = EVAL_PROTOCOL
    rules_version: RulesVersion = VERIFIER_RULES_VERSION  # speedrun-v2: the verifier's clock and score
    hardware_classes: list[Slug] = Field(min_length=1, description="allowed SKUs; ['any-nvidia'] for any GPU")
    gpus_per_node: int | None = Field(default=None, ge=0, description="required GPUs per node; None = any")
    nodes: int | None = Field(default=None, ge=1, description="required node count; None = any")
    min_runs: int = Field(ge=1, le=50)
    alpha: Fraction
    ranking: Literal["time", "cost"]
    bundle_sha256: Sha256 | None = Field(default=None, description="pinned eval bundle; None = any")
    max_per_task: int | None = Field(default=None, ge=1, description="CORE subsample; None = all examples")

    @property
    def claim_rules_versions(self) -> frozenset[str]:
        """The rules a claimed result may be timed under: the track's; on a track whose time is the
        verifier's clock (speedrun-v2) also the trainer's own timed region (speedrun-v1), the only
        one a trainer can measure of itself."""
        if self.rules_version == VERIFIER_RULES_VERSION:
            return frozenset({self.rules_version, RULES_VERSION})
        return frozenset({self.rules_version})

    def allows_hardware(self, sku: str, gpus_per_node: int, nodes: int) -> str | None:
        """None when the hardware fits this track, else the reason it does not.

        A CPU has no GPUs: for ``sku == "cpu"`` the count is taken as 0 whatever is passed, so a
        CPU fingerprint (``device_count`` 1, the CPU itself) fits a track of 0 GPUs per node.
        """
        if sku == "cpu":
            gpus_per_node = 0
        if "any-nvidia" in self.hardware_classes:
            if sku == "cpu":
                return f"track {self.slug} needs NVIDIA GPUs, got a CPU run"
        elif sku not in self.hardware_classes:
            return f"track {self.slug} allows {', '.join(self.hardware_classes)}, got {sku}"
        if self.gpus_per_node is not None and gpus_per_node != self.gpus_per_node:
            return f"track {self.slug} needs {self.gpus_per_node} GPUs per node, got {gpus_per_node}"
        if self.nodes is not None and nodes != self.nodes:
            return f"track {self.slug} needs {self.nodes} node(s), got {nodes}"
        return None


# The CPU track's bar, measured (bench/cpu_smoke_threshold.py, 2026-11-21, synthetic bundle, all
# 880 examples): untrained cpu_smoke models (init, seeds 0/1/2) score 0.0088, 0.0089, -0.0093;
# the trained recipe (100 steps, seeds 1/2/3) scores 0.4454, 0.3356, 0.4503 (mean 0.410, std
# 0.065). 0.05 sits 5.6x above the best untrained model and 6.7x below the worst trained run.
CPU_SMOKE_CORE_THRESHOLD = 0.05
# Seeds spread CORE widely at this scale, and a one-sided t-test on 2 runs (1 dof) needs mean -
# threshold > 3.16 x |run1 - run2|: the trained pairs above give p = 0.051, 0.002, 0.053 at 0.05
# (and still 0.045-0.046 at threshold 0), so 2 runs fail the genuine recipe 2 times in 3. With 3
# runs (2 dof) the same seeds give p = 0.005 (10x below alpha) and untrained models fail.
CPU_SMOKE_MIN_RUNS = 3

BUILTIN_TRACKS: dict[str, TrackRules] = {
    t.slug: t
    for t in (
        TrackRules(
            slug="gpt2-8xh100",
            name="GPT-2 on one 8xH100 node",
            description="Beat GPT-2 XL's CORE (0.256525, core-v1, all 91,037 examples) on one "
            "8xH100-SXM node; ranked by mean verified training hours.",
            threshold=GPT2_CORE,
            hardware_classes=["h100-sxm"],
            gpus_per_node=8,
            nodes=1,
            min_runs=3,
            alpha=0.05,
            ranking="time",
        ),
        TrackRules(
            slug="gpt2-cost",
            name="GPT-2 at the lowest cost",
            description="Beat GPT-2 XL's CORE on any NVIDIA hardware; ranked by dollars at the "
            "reference price of the SKU, never a self-reported price.",
            threshold=GPT2_CORE,
            hardware_classes=["any-nvidia"],
            min_runs=3,
            alpha=0.05,
            ranking="cost",
        ),
        TrackRules(
            slug="cpu-smoke",
            name="CPU smoke",
            description="The whole pipeline at toy scale: synthetic corpus, synthetic CORE-format "
            "bundle, CPU only. Anyone can run, submit and verify a record in minutes.",
            threshold=CPU_SMOKE_CORE_THRESHOLD,
            hardware_classes=["cpu"],
            gpus_per_node=0,
            nodes=1,
            min_runs=CPU_SMOKE_MIN_RUNS,
            alpha=0.05,
            ranking="time",
        ),
    )
}


class PriceRow(Contract):
    sku: Slug
    usd_per_gpu_hour: float = Field(gt=0)
    effective_date: date
    note: str = ""


# Version 1 of the reference price table (RULES.md); admins add dated rows on the site.
PRICE_TABLE_VERSION = 1
REFERENCE_PRICES: tuple[PriceRow, ...] = (
    PriceRow(
        sku="h100-sxm",
        usd_per_gpu_hour=3.00,
        effective_date=date(2026, 1, 1),
        note="the price the public record quotes ($24/h per 8-GPU node)",
    ),
    PriceRow(
        sku="h100-pcie",
        usd_per_gpu_hour=2.86,
        effective_date=date(2026, 5, 1),
        note="on-demand list price at a GPU cloud",
    ),
    PriceRow(
        sku="a100-sxm",
        usd_per_gpu_hour=1.80,
        effective_date=date(2026, 6, 1),
        note="mid of 2026 on-demand ranges ($1.49-2.49)",
    ),
    PriceRow(
        sku="h200",
        usd_per_gpu_hour=3.50,
        effective_date=date(2026, 6, 1),
        note="2026 specialist-cloud range $2.25-5.41",
    ),
    PriceRow(
        sku="b200",
        usd_per_gpu_hour=5.00,
        effective_date=date(2026, 6, 1),
        note="2026 specialist-cloud range $4.50-6.00",
    ),
)

# bf16 dense peak FLOP/s per GPU, for MFU.
BF16_PEAK_FLOPS: dict[str, float] = {
    "h100-sxm": 989e12,
    "h100-pcie": 756e12,
    "h100-nvl": 835e12,
    "h200": 989e12,
    "a100-sxm": 312e12,
    "a100-pcie": 312e12,
    "b200": 2250e12,
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
