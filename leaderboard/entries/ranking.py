"""Ranking and cost math, pure functions (no database): what the board's numbers mean.

- Ranked numbers are verified numbers: mean verified training hours over the verifier's runs.
- Cost = hours x GPUs x the reference price of the SKU (dated at verification), never a claim.
- Ties (equal hours or dollars) are broken by the higher CORE mean, then the earlier entry.
- Verified rows and reported rows are ranked separately; reported rows per rules version.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Rankable:
    entry_id: int
    section: str  # 'verified' or 'reported:<rules_version>'
    hours: float | None
    cost_usd: float | None
    core_mean: float | None


def cost_usd(hours: float, gpus: int, usd_per_gpu_hour: float) -> float:
    """Dollars of a run: training hours x GPUs x the reference price per GPU-hour."""
    if hours < 0 or gpus < 0 or usd_per_gpu_hour < 0:
        raise ValueError("cost_usd: hours, gpus and price must be >= 0")
    return hours * gpus * usd_per_gpu_hour


def _order_key(value: float | None, core: float | None, entry_id: int) -> tuple[float, float, int]:
    return (
        value if value is not None else math.inf,
        -(core if core is not None else -math.inf),
        entry_id,
    )


def rank(rows: Iterable[Rankable], by: str) -> dict[int, int | None]:
    """Rank within each section by ``by`` ('time' or 'cost'); rows without that figure get None.

    Equal figures with equal CORE share a rank (competition ranking: 1, 1, 3).
    """
    if by not in {"time", "cost"}:
        raise ValueError(f"rank: by must be 'time' or 'cost', got {by!r}")
    sections: dict[str, list[Rankable]] = {}
    for row in rows:
        sections.setdefault(row.section, []).append(row)
    out: dict[int, int | None] = {}

    def figure(r: Rankable) -> float | None:
        return r.hours if by == "time" else r.cost_usd

    for members in sections.values():
        ranked = sorted(
            (r for r in members if figure(r) is not None), key=lambda r: _order_key(figure(r), r.core_mean, r.entry_id)
        )
        previous: tuple[float | None, float | None] | None = None
        current = 0
        for i, r in enumerate(ranked, start=1):
            key = (figure(r), r.core_mean)
            if key != previous:
                current = i
                previous = key
            out[r.entry_id] = current
        for r in members:
            out.setdefault(r.entry_id, None)
    return out


def gpt_flops_estimate(depth: int, ratio: float, vocab: int = 32768, sequence_len: int = 2048) -> float:
    """FLOPs of a reference-recipe run at ``depth`` and tokens:params ``ratio`` (full attention windows).

    Per token: 6 x matmul params + 12 x n_head x head_dim x T per layer (REFERENCE_TRAINER.md);
    tokens = ratio x scaling params. Used to estimate imported history, which published no FLOPs.
    """
    model_dim = math.ceil(depth * 64 / 128) * 128
    n_head = model_dim // 128
    matmul_params = depth * 12 * model_dim**2 + model_dim * vocab
    per_token = 6 * matmul_params + depth * 12 * n_head * 128 * sequence_len
    return float(per_token * ratio * matmul_params)
