"""The dated reference price table the site seeds (RULES.md): USD per GPU-hour by SKU class.

Admins add dated rows on the site; a cost is always computed from the row in force on the run's
date, never from a price the submitter reports.
"""

from __future__ import annotations

from datetime import date

from pydantic import Field

from contract.schema import Contract, Slug


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
