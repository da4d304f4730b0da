"""``line_chart``: any x/y series (loss and val_bpb against training time, records over dates)."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup

from web.charts.base import (
    FLOOR_COLOR,
    PALETTE,
    Axis,
    Frame,
    Series,
    date_segments,
    date_ticks,
    duration_ticks,
    fmt_number,
    log_ticks,
    nice_ticks,
    padded,
)
from web.charts.svg import draw_axes, draw_legend, draw_series, empty_chart, open_svg, with_legend

# ---------------------------------------------------------------------------- charts


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    log_y: bool = False,
    x_kind: str = "number",
    step: bool = False,
    frame: Frame | None = None,
    css_class: str = "line-chart",
    empty_message: str = "no data yet",
) -> Markup:
    """An x/y line chart. ``x_kind``: 'number', 'seconds' (duration labels) or 'date' (fractional years)."""
    if x_kind not in {"number", "seconds", "date"}:
        raise ValueError(f"x_kind: expected 'number', 'seconds' or 'date', got {x_kind!r}")
    colors = [s.color or (FLOOR_COLOR if s.dashed else PALETTE[i % len(PALETTE)]) for i, s in enumerate(series)]
    legend = [(s.name, colors[i], s.dashed) for i, s in enumerate(series)]
    frame = with_legend(frame or Frame(), legend)
    points = [p for s in series for p in s.points]
    if not points:
        return empty_chart(frame, title, css_class, empty_message)
    ys = [y for _, y in points]
    if log_y and min(ys) <= 0:
        raise ValueError("log_y: every y must be positive on a log scale")
    xs = [x for x, _ in points]
    x_lo, x_hi = padded(min(xs), max(xs), log=False)
    y_lo, y_hi = padded(min(ys), max(ys), log=log_y)
    if x_kind == "seconds" or (x_kind == "number" and min(xs) >= 0):
        x_lo = max(0.0, x_lo)
    if x_kind == "date":
        segments = date_segments(xs)
        xt = [t for a, b in segments for t in date_ticks(a, b, narrow=len(segments) > 1 and b - a < 0.1)]
        xa = Axis(segments[0][0], segments[-1][1], ticks=xt, segments=segments if len(segments) > 1 else ())
    elif x_kind == "seconds":
        xa = Axis(x_lo, x_hi, ticks=duration_ticks(x_lo, x_hi))
    else:
        xa = Axis(x_lo, x_hi, ticks=[(v, fmt_number(v)) for v in nice_ticks(x_lo, x_hi)])
    y_vals = log_ticks(y_lo, y_hi) if log_y else nice_ticks(y_lo, y_hi)
    ya = Axis(y_lo, y_hi, log=log_y, ticks=[(v, fmt_number(v)) for v in y_vals])
    taken: list[tuple[float, float, float, float]] = []  # note boxes placed so far
    parts = open_svg(frame, title, css_class)
    parts += draw_axes(frame, xa, ya, x_label, y_label)
    for i, s in enumerate(series):
        if s.points:
            parts += draw_series(frame, xa, ya, s, colors[i], i, step and s.stepped, taken)
    if len(series) > 1:
        parts += draw_legend(frame, legend)
    parts.append("</svg>")
    return Markup("".join(parts))
