"""``progression_chart``: the record over dates on a log-scale y axis (hours to GPT-2, or dollars),
one step line per section and rules version — a record is only ever compared with records timed
under the same rules — verified drawn solid with filled dots, reported history dashed with open
squares, every record point labelled; for hours, the compute floor (the record run's FLOPs at 100%
of the node's peak) as a grey dashed line."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from markupsafe import Markup

from leaderboard.formatting import usd
from web.charts.base import FLOOR_COLOR, Frame, Series, date_to_x, fmt_hours
from web.charts.line import line_chart

VERIFIED_COLOR = "#047857"
REPORTED_COLORS = ("#b45309", "#7c3aed", "#0891b2")


@dataclass(frozen=True)
class RecordPoint:
    """One record on the progression chart (``value``: hours, or dollars on a cost chart)."""

    when: date | datetime
    hours: float
    label: str
    floor_hours: float | None = None  # the record run's FLOPs at 100% of the node's bf16 peak
    section: str = "verified"  # or "reported"
    rules_version: str = ""


def _note(label: str, text: str) -> str:
    short = label if len(label) <= 22 else label[:21] + "…"
    return f"{short} {text}"


def progression_chart(
    records: Sequence[RecordPoint],
    *,
    title: str = "Time to GPT-2",
    unit: str = "hours",
    frame: Frame | None = None,
    narrow: bool = False,
    empty_message: str = "no records yet on this track",
) -> Markup:
    """Records over dates, log scale, as step lines (one per section and rules version).
    ``narrow``: for a phone: a 340-unit frame and no text beside the points (their tooltips stay)."""
    if unit not in ("hours", "usd"):
        raise ValueError(f"unit: expected 'hours' or 'usd', got {unit!r}")
    fmt = fmt_hours if unit == "hours" else usd
    for r in records:
        if r.hours <= 0:
            raise ValueError(f"{unit}: must be positive on a log scale, got {r.hours} for {r.label!r}")
    ordered = sorted(records, key=lambda r: date_to_x(r.when))
    groups: dict[tuple[str, str], list[RecordPoint]] = {}
    for r in ordered:
        groups.setdefault((r.section, r.rules_version), []).append(r)
    series: list[Series] = []
    reported_seen = 0
    for (section, rules), rs in sorted(groups.items(), key=lambda kv: kv[0][0] != "verified"):
        verified = section == "verified"
        color = VERIFIED_COLOR if verified else REPORTED_COLORS[reported_seen % len(REPORTED_COLORS)]
        reported_seen += 0 if verified else 1
        name = f"{'verified' if verified else 'reported'} record{f' ({rules})' if rules else ''}"
        series.append(
            Series(
                name=name,
                points=[(date_to_x(r.when), r.hours) for r in rs],
                labels=[f"{r.label}: {fmt(r.hours)} ({section}{', ' + rules if rules else ''})" for r in rs],
                notes=None if narrow else [_note(r.label, fmt(r.hours)) for r in rs],
                hollow=not verified,
                dashed=not verified,
                color=color,
            )
        )
    floors = [r for r in ordered if unit == "hours" and r.floor_hours is not None and r.floor_hours > 0]
    if floors:
        series.append(
            Series(
                name="compute floor (100% peak)",
                points=[(date_to_x(r.when), float(r.floor_hours or 0)) for r in floors],
                labels=[f"floor for {r.label}: {fmt_hours(float(r.floor_hours or 0))}" for r in floors],
                dashed=True,
                stepped=False,
                color=FLOOR_COLOR,
            )
        )
    return line_chart(
        series,
        title=title,
        x_label="date",
        y_label="training hours (log)" if unit == "hours" else "dollars (log)",
        log_y=True,
        x_kind="date",
        step=True,
        frame=frame or (Frame(width=340, height=300, left=52, right=10) if narrow else Frame(width=960, height=420)),
        css_class="progression-chart" if unit == "hours" else "cost-chart",
        empty_message=empty_message,
    )
