"""``progression_chart``: the record (hours to GPT-2) over dates on a log-scale y axis, with the
compute floor (the record run's FLOPs at 100% of the node's peak) as a dashed line."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from markupsafe import Markup

from web.charts.base import Frame, Series, date_to_x, fmt_hours
from web.charts.line import line_chart


@dataclass(frozen=True)
class RecordPoint:
    """One record on the progression chart."""

    when: date | datetime
    hours: float
    label: str
    floor_hours: float | None = None  # the record run's FLOPs at 100% of the node's bf16 peak


def progression_chart(records: Sequence[RecordPoint], *, title: str = "Time to GPT-2") -> Markup:
    """Record hours over dates, log scale, as a step line; the compute floor dashed beneath it."""
    for r in records:
        if r.hours <= 0:
            raise ValueError(f"hours: must be positive on a log scale, got {r.hours} for {r.label!r}")
    ordered = sorted(records, key=lambda r: date_to_x(r.when))
    record = Series(
        name="record (h)",
        points=[(date_to_x(r.when), r.hours) for r in ordered],
        labels=[f"{r.label}: {fmt_hours(r.hours)}" for r in ordered],
    )
    floors = [r for r in ordered if r.floor_hours is not None and r.floor_hours > 0]
    series = [record]
    if floors:
        series.append(
            Series(
                name="compute floor (100% peak)",
                points=[(date_to_x(r.when), float(r.floor_hours or 0)) for r in floors],
                labels=[f"floor for {r.label}: {fmt_hours(float(r.floor_hours or 0))}" for r in floors],
                dashed=True,
            )
        )
    return line_chart(
        series,
        title=title,
        x_label="date",
        y_label="training hours (log)",
        log_y=True,
        x_kind="date",
        step=True,
        frame=Frame(width=960, height=420),
        css_class="progression-chart",
        empty_message="no records yet",
    )
