"""How the site writes durations and dollars: one format for the pages, the charts and the CSV."""

from __future__ import annotations


def usd(v: float | None) -> str:
    """Dollars, with cents under $1000: '$39.60', '$0.04', '<$0.01', '$43,008'."""
    if v is None:
        return "—"
    if v >= 1000:
        return f"${v:,.0f}"
    if 0 < v < 0.005:
        return "<$0.01"
    return f"${v:,.2f}"


def hms(v: float | None, *, seconds: bool = False) -> str:
    """A duration as h:mm:ss: hours (or ``seconds=True``) -> '1:39:00', '0:02:24', '168:00:00'."""
    if v is None:
        return "—"
    total = round(abs(v) * (1 if seconds else 3600))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{'-' if v < 0 else ''}{h}:{m:02d}:{s:02d}"
