"""The record banner of a board: who holds the record (verified and reported apart), by how much it
beats the previous record under the same rules, and how many times faster (or cheaper) it is than
GPT-2's own run of 2019 — every number from the rows on the board."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from leaderboard.entries.compare import Banner, Holder
from leaderboard.formatting import hms, usd


@dataclass(frozen=True)
class HolderView:
    holder: Holder
    label: str  # "Verified record" / "Reported record (imported, not verified here)"
    value: str  # the ranked quantity, formatted
    vs_gpt2: str | None  # "102× faster than GPT-2 (2019)"
    margin: str | None  # "8.3% faster than the previous record, X (1:48:00)"


def _value(banner: Banner, h: Holder) -> float | None:
    return h.hours if banner.ranking == "time" else h.cost_usd


def _fmt(banner: Banner, v: float) -> str:
    return hms(v) if banner.ranking == "time" else usd(v)


def holder_view(banner: Banner, h: Holder, label: str) -> HolderView:
    value = _value(banner, h)
    baseline = banner.baseline_hours if banner.ranking == "time" else banner.baseline_cost
    word = "faster" if banner.ranking == "time" else "cheaper"
    vs = None
    if value and baseline and value < baseline:
        vs = (
            f"{baseline / value:,.0f}× {word} than GPT-2 (2019)"
            if baseline / value >= 10
            else (f"{baseline / value:.1f}× {word} than GPT-2 (2019)")
        )
    margin = None
    if value is not None and h.previous_value and h.previous_value > value:
        pct = 100 * (h.previous_value - value) / h.previous_value
        margin = f"{pct:.1f}% {word} than the previous record, {h.previous_title} ({_fmt(banner, h.previous_value)})"
    elif h.previous_value is None:
        margin = f"the first record under rules {h.rules_version}"
    return HolderView(h, label, "—" if value is None else _fmt(banner, value), vs, margin)


def banner_view(banner: Banner) -> dict[str, Any]:
    return {
        "verified": None
        if banner.verified is None
        else holder_view(banner, banner.verified, "Verified record (rerun on this site)"),
        "reported": None
        if banner.reported is None
        else holder_view(banner, banner.reported, "Reported record (imported history, not verified here)"),
    }


def banner_text(banner: Banner, track: Any) -> str:
    """The board's one-line summary (meta description and link previews)."""
    view = banner_view(banner)
    best: HolderView | None = view["verified"] or view["reported"]
    if best is None:
        return f"{track.name}: no record yet. Time to GPT-2, every ranked number verified by a rerun."
    kind = "verified" if best.holder.section == "verified" else "reported, not verified"
    extra = f", {best.vs_gpt2}" if best.vs_gpt2 else ""
    return f"{track.name} record: {best.holder.title}, {best.value} ({kind}){extra}."
