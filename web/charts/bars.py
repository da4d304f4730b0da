"""``bar_chart``: horizontal bars, e.g. per-task CORE (centered accuracy), one or more groups."""

from __future__ import annotations

import math
from collections.abc import Sequence

from markupsafe import Markup, escape

from web.charts.base import FLOOR_COLOR, PALETTE, Axis, BarGroup, Frame, coord, fmt_number, nice_ticks
from web.charts.svg import draw_legend, empty_chart, open_svg, with_legend


def _fit(label: str, width: int) -> str:
    """A category name cut to the label column (about 7 units a character)."""
    room = max(4, (width - 12) // 7)
    return label if len(label) <= room else label[: room - 1] + "…"


def bar_chart(
    groups: Sequence[BarGroup],
    *,
    title: str,
    value_label: str,
    reference: float | None = None,
    reference_label: str = "",
    width: int = 720,
    css_class: str = "bar-chart",
    empty_message: str = "no per-task scores",
) -> Markup:
    """Horizontal bars, one row per category (in first-seen order), one bar per group in each row.

    Values may be negative (CORE's centered accuracy is below 0 under chance); bars grow from 0.
    ``reference`` draws a dashed vertical line (e.g. a threshold).
    """
    cats: list[str] = []
    for g in groups:
        cats += [c for c in g.values if c not in cats]
    for g in groups:
        for c, v in g.values.items():
            if not math.isfinite(v):
                raise ValueError(f"values[{c!r}]: must be finite, got {v}")
    bar_h, gap = 12, 8
    row_h = bar_h * max(1, len(groups)) + gap
    label_w = min(220 if width > 400 else 150, 12 + 7 * max((len(c) for c in cats), default=4))
    colors = [g.color or PALETTE[i % len(PALETTE)] for i, g in enumerate(groups)]
    legend = [(g.name, colors[i], False) for i, g in enumerate(groups)]
    frame = Frame(width=width, height=40 + 40 + row_h * max(1, len(cats)), left=label_w, top=40, bottom=40)
    frame = with_legend(frame, legend)
    if not cats:
        return empty_chart(Frame(width=width, height=120), title, css_class, empty_message)
    vals = [v for g in groups for v in g.values.values()] + ([reference] if reference is not None else [])
    lo, hi = min(0.0, *vals), max(0.0, *vals)
    if lo == hi:
        hi = 1.0
    ticks = nice_ticks(lo, hi, target=5)
    lo, hi = min(lo, ticks[0]), max(hi, ticks[-1])
    xa = Axis(lo, hi, ticks=[(t, fmt_number(t)) for t in ticks])

    def px(v: float) -> float:
        return frame.left + xa.fraction(v) * frame.plot_w

    parts = open_svg(frame, title, css_class)
    py0 = frame.top + frame.plot_h
    parts.append('<g class="axes" stroke="#e5e7eb">')
    for t, _ in xa.ticks:
        parts.append(f'<line x1="{coord(px(t))}" x2="{coord(px(t))}" y1="{frame.top}" y2="{coord(py0)}"/>')
    parts.append("</g>")
    parts.append('<g class="ticks" fill="#374151">')
    for t, label in xa.ticks:
        parts.append(f'<text x="{coord(px(t))}" y="{coord(py0 + 16)}" text-anchor="middle">{escape(label)}</text>')
    parts.append(
        f'<text class="axis-label" x="{coord(frame.left + frame.plot_w / 2)}" y="{frame.height - 8}" '
        f'text-anchor="middle">{escape(value_label)}</text>'
    )
    parts.append("</g>")
    zero = px(0.0)
    for r, cat in enumerate(cats):
        y0 = frame.top + gap / 2 + r * row_h
        parts.append(
            f'<text class="bar-label" x="{frame.left - 6}" y="{coord(y0 + row_h / 2)}" text-anchor="end" '
            f'fill="#111827">{escape(_fit(cat, label_w))}<title>{escape(cat)}</title></text>'
        )
        for gi, g in enumerate(groups):
            if cat not in g.values:
                continue
            v = g.values[cat]
            x1, x2 = sorted((zero, px(v)))
            y = y0 + gi * bar_h
            parts.append(
                f'<rect class="bar bar-{gi}" x="{coord(x1)}" y="{coord(y)}" width="{coord(max(0.5, x2 - x1))}" '
                f'height="{bar_h - 2}" fill="{colors[gi]}">'
                f"<title>{escape(f'{cat} ({g.name}): {v:.4f}')}</title></rect>"
            )
    parts.append(f'<line x1="{coord(zero)}" x2="{coord(zero)}" y1="{frame.top}" y2="{coord(py0)}" stroke="#6b7280"/>')
    if reference is not None:
        rx = px(reference)
        parts.append(
            f'<line class="reference" x1="{coord(rx)}" x2="{coord(rx)}" y1="{frame.top - 4}" y2="{coord(py0)}" '
            f'stroke="{FLOOR_COLOR}" stroke-dasharray="5 4" stroke-width="1.5">'
            f"<title>{escape(reference_label or fmt_number(reference))}</title></line>"
        )
    if len(groups) > 1:
        parts += draw_legend(frame, legend)
    parts.append("</svg>")
    return Markup("".join(parts))
