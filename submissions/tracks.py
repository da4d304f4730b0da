"""Moved to ``contract.tracks``: this name stays until leaderboard/ and web/ import from there."""

from contract.core_v1 import GPT2_XL_CORE as GPT2_CORE  # noqa: F401
from contract.hardware import (
    PEAKS,
    sku_from_device_name,  # noqa: F401
)
from contract.tracks import *  # noqa: F403
from leaderboard.prices import PRICE_TABLE_VERSION, REFERENCE_PRICES, PriceRow  # noqa: F401

BF16_PEAK_FLOPS = {p.sku: p.flops for p in PEAKS.values() if p.kind == "datasheet"}
