"""Server-side SVG charts: no JavaScript, no network, escaped text.

Three charts, each a pure function returning ``markupsafe.Markup`` to inline in a page:

- ``progression_chart``: the record (hours to GPT-2) over dates on a log-scale y axis, with the
  compute floor (the record run's FLOPs at 100% of the node's peak) as a dashed line.
- ``line_chart``: any x/y series, e.g. loss and val_bpb against training time.
- ``bar_chart``: horizontal bars, e.g. per-task CORE (centered accuracy), one or more groups.

Every label that came from a user goes through ``markupsafe.escape``; numbers are formatted
here, never interpolated raw. Colors are set as attributes (so an SVG saved on its own still
renders) and carry a CSS class the site's stylesheet can refine.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime

from markupsafe import Markup, escape

PALETTE = ("#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2")
FLOOR_COLOR = "#6b7280"


@dataclass(frozen=True)
class Series:
    """One line: (x, y) points in x order; ``labels`` (optional) name each point in its tooltip."""

    name: str
    points: Sequence[tuple[float, float]]
    dashed: bool = False
    markers: bool = True
    labels: Sequence[str] | None = None

    def __post_init__(self) -> None:
        if self.labels is not None and len(self.labels) != len(self.points):
            raise ValueError(f"labels: {len(self.labels)} labels for {len(self.points)} points")
        for x, y in self.points:
            if not (math.isfinite(x) and math.isfinite(y)):
                raise ValueError(f"points: every coordinate must be finite, got ({x}, {y})")


@dataclass(frozen=True)
class BarGroup:
    """One set of bars (e.g. 'verified mean'): a value per category."""

    name: str
    values: dict[str, float]


@dataclass(frozen=True)
class Frame:
    """Plot geometry in SVG user units; the plot area is inside the margins."""

    width: int = 720
    height: int = 360
    left: int = 64
    right: int = 28
    top: int = 36
    bottom: int = 48

    @property
    def plot_w(self) -> float:
        return float(self.width - self.left - self.right)

    @property
    def plot_h(self) -> float:
        return float(self.height - self.top - self.bottom)


@dataclass(frozen=True)
class Axis:
    """Maps data values to a 0..1 fraction: linear or log10; ``ticks`` are (value, label) pairs.

    ``segments`` (linear axes only) cut out long empty stretches: each (lo, hi) segment keeps its
    scale, and consecutive segments sit ``BREAK_GAP`` apart (a broken axis, drawn with a mark).
    """

    lo: float
    hi: float
    log: bool = False
    ticks: list[tuple[float, str]] = field(default_factory=list)
    segments: tuple[tuple[float, float], ...] = ()

    BREAK_GAP = 0.04

    def fraction(self, v: float) -> float:
        if self.segments:
            return self._segmented(v)
        if self.log:
            a, b, v = math.log10(self.lo), math.log10(self.hi), math.log10(v)
        else:
            a, b = self.lo, self.hi
        return 0.5 if b == a else (v - a) / (b - a)

    def _segmented(self, v: float) -> float:
        n = len(self.segments)
        spans = [b - a for a, b in self.segments]
        usable = 1.0 - self.BREAK_GAP * (n - 1)
        start = 0.0
        for i, ((a, b), span) in enumerate(zip(self.segments, spans, strict=True)):
            width = usable * span / sum(spans)
            if v <= b or i == n - 1:
                return start + width * (max(a, min(b, v)) - a) / span
            start += width + self.BREAK_GAP
        raise AssertionError("unreachable")

    def breaks(self) -> list[float]:
        """Fractions (0..1) at the middle of each break between segments."""
        return [self.fraction(b) + self.BREAK_GAP / 2 for _, b in self.segments[:-1]]


# ---------------------------------------------------------------------------- number formatting


def fmt_number(v: float) -> str:
    """A short human label: 168, 2.5, 0.25, 1.2k, 3.4M, 1e-05."""
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.3g}M"
    if a >= 1e4:
        return f"{v / 1e3:.3g}k"
    if a >= 1e-3:
        return f"{v:.4g}"
    return f"{v:.0e}"


def fmt_hours(h: float) -> str:
    """Hours with sensible precision: 168 h, 2.76 h, 0.5 h, 4.2 min, 30 s."""
    if h >= 10:
        return f"{h:.0f} h"
    if h >= 0.1:
        return f"{h:.3g} h"
    if h * 60 >= 1:
        return f"{h * 60:.3g} min"
    return f"{h * 3600:.3g} s"


def _f(v: float) -> str:
    """A pixel coordinate: one decimal, no trailing zeros."""
    return f"{v:.1f}".rstrip("0").rstrip(".")


# ---------------------------------------------------------------------------- ticks


def nice_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    """Round tick values (1, 2, 5 x 10^k steps) covering [lo, hi]."""
    if hi < lo:
        raise ValueError(f"ticks: hi ({hi}) is below lo ({lo})")
    if hi == lo:
        return [lo]
    raw = (hi - lo) / max(1, target)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    v = first
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 12))
        v += step
    return ticks


def log_ticks(lo: float, hi: float) -> list[float]:
    """1-2-5 ticks per decade inside [lo, hi] (only powers of ten when the range is wide)."""
    if lo <= 0 or hi <= 0:
        raise ValueError(f"log axis: bounds must be positive, got [{lo}, {hi}]")
    decades = math.log10(hi) - math.log10(lo)
    mults = (1,) if decades > 4 else (1, 2, 5)
    out = []
    for k in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        for m in mults:
            v = m * 10.0**k
            if lo * (1 - 1e-9) <= v <= hi * (1 + 1e-9):
                out.append(float(f"{v:.12g}"))
    return out


def duration_ticks(lo_s: float, hi_s: float) -> list[tuple[float, str]]:
    """Round ticks for a span of seconds, in the unit that suits it: 30 s, 20 min, 1.5 h."""
    unit, name = (3600.0, "h") if hi_s >= 2 * 3600 else (60.0, "min") if hi_s >= 120 else (1.0, "s")
    return [(v * unit, f"{fmt_number(v)} {name}") for v in nice_ticks(lo_s / unit, hi_s / unit)]


def date_to_x(d: date | datetime) -> float:
    """A date as a fractional year (2026.2 ~ mid-March 2026): the x of a date axis."""
    if isinstance(d, datetime):
        d = d.date()
    start = date(d.year, 1, 1)
    days = (date(d.year + 1, 1, 1) - start).days
    return d.year + (d - start).days / days


def _date_ticks(lo: float, hi: float, narrow: bool = False) -> list[tuple[float, str]]:
    """Year ticks on long spans, month ticks on short ones; a ``narrow`` segment of a broken axis
    (one lone point) gets its year at the middle."""
    span = hi - lo
    if narrow:
        mid = (lo + hi) / 2
        return [(mid, str(math.floor(mid)))]
    if span > 1.5:
        step = max(1, math.ceil(span / 8))
        years = range(math.ceil(lo), math.floor(hi) + 1)
        return [(float(y), str(y)) for y in years if (y - math.ceil(lo)) % step == 0]
    months: list[tuple[float, str]] = []
    names = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
    for y in range(math.floor(lo), math.floor(hi) + 1):
        for m in range(1, 13):
            x = date_to_x(date(y, m, 1))
            if lo <= x <= hi:
                months.append((x, f"{names[m - 1]} {y}" if m == 1 or not months else names[m - 1]))
    if not months:  # a narrow segment with no first-of-month inside: name its year at the middle
        mid = (lo + hi) / 2
        return [(mid, str(math.floor(mid)))]
    every = max(1, math.ceil(len(months) / 6))
    return months[::every]


def date_segments(xs: Sequence[float]) -> tuple[tuple[float, float], ...]:
    """Split fractional-year x values into padded segments at gaps longer than a year that also
    exceed a third of the whole span (2019's GPT-2, then the 2026 records), so clusters stay readable."""
    ordered = sorted(xs)
    span = ordered[-1] - ordered[0]
    clusters: list[list[float]] = [[ordered[0]]]
    for prev, x in itertools.pairwise(ordered):
        if x - prev > 1.0 and x - prev > span / 3:
            clusters.append([x])
        else:
            clusters[-1].append(x)
    if len(clusters) == 1:
        lo, hi = _padded(ordered[0], ordered[-1], log=False)
        pad = max(0.0, 1 / 24 - (hi - lo) / 2)  # at least a month wide
        return ((lo - pad, hi + pad),)
    out = []
    for c in clusters:
        pad = max(1 / 24, 0.08 * (c[-1] - c[0]))
        out.append((c[0] - pad, c[-1] + pad))
    return tuple(out)


def _padded(lo: float, hi: float, log: bool) -> tuple[float, float]:
    if log:
        if lo == hi:
            return lo / 2, hi * 2
        return lo / 1.25, hi * 1.25
    if lo == hi:
        pad = abs(lo) * 0.1 or 1.0
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.05
    return lo - pad, hi + pad


# ---------------------------------------------------------------------------- svg pieces


def _open_svg(frame: Frame, title: str, css_class: str) -> list[str]:
    t = escape(title)
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart {css_class}" width="{frame.width}" '
        f'height="{frame.height}" viewBox="0 0 {frame.width} {frame.height}" role="img" aria-label="{t}" '
        f'preserveAspectRatio="xMidYMid meet" '
        f'font-family="system-ui, sans-serif" font-size="12">',
        f"<title>{t}</title>",
        f'<text class="chart-title" x="{frame.left}" y="20" font-size="14" font-weight="600" fill="#111827">{t}</text>',
    ]


def _empty(frame: Frame, title: str, css_class: str, message: str) -> Markup:
    parts = _open_svg(frame, title, css_class)
    parts.append(
        f'<text class="chart-empty" x="{frame.width / 2:.0f}" y="{frame.height / 2:.0f}" text-anchor="middle" '
        f'fill="#6b7280">{escape(message)}</text>'
    )
    parts.append("</svg>")
    return Markup("".join(parts))


def _axes(frame: Frame, xa: Axis, ya: Axis, x_label: str, y_label: str) -> list[str]:
    px0, py0 = frame.left, frame.top + frame.plot_h
    out = ['<g class="axes" stroke="#d1d5db" stroke-width="1">']
    for v, _ in ya.ticks:
        y = py0 - ya.fraction(v) * frame.plot_h
        out.append(f'<line class="grid" x1="{px0}" x2="{_f(px0 + frame.plot_w)}" y1="{_f(y)}" y2="{_f(y)}"/>')
    out.append(f'<line x1="{px0}" x2="{_f(px0 + frame.plot_w)}" y1="{_f(py0)}" y2="{_f(py0)}" stroke="#6b7280"/>')
    out.append(f'<line x1="{px0}" x2="{px0}" y1="{frame.top}" y2="{_f(py0)}" stroke="#6b7280"/>')
    for b in xa.breaks():
        x = px0 + b * frame.plot_w
        out.append(
            f'<path class="axis-break" d="M{_f(x - 5)},{_f(py0 + 5)} L{_f(x - 1)},{_f(py0 - 5)} '
            f'M{_f(x + 1)},{_f(py0 + 5)} L{_f(x + 5)},{_f(py0 - 5)}" stroke="#6b7280" stroke-width="1.5"/>'
        )
    out.append("</g>")
    out.append('<g class="ticks" fill="#374151">')
    for v, label in ya.ticks:
        y = py0 - ya.fraction(v) * frame.plot_h
        out.append(f'<text x="{px0 - 6}" y="{_f(y + 4)}" text-anchor="end">{escape(label)}</text>')
    for v, label in xa.ticks:
        x = px0 + xa.fraction(v) * frame.plot_w
        out.append(f'<line x1="{_f(x)}" x2="{_f(x)}" y1="{_f(py0)}" y2="{_f(py0 + 4)}" stroke="#6b7280"/>')
        out.append(f'<text x="{_f(x)}" y="{_f(py0 + 18)}" text-anchor="middle">{escape(label)}</text>')
    out.append("</g>")
    out.append(
        f'<text class="axis-label" x="{_f(px0 + frame.plot_w / 2)}" y="{frame.height - 6}" text-anchor="middle" '
        f'fill="#374151">{escape(x_label)}</text>'
    )
    cy = frame.top + frame.plot_h / 2
    out.append(
        f'<text class="axis-label" x="14" y="{_f(cy)}" text-anchor="middle" fill="#374151" '
        f'transform="rotate(-90 14 {_f(cy)})">{escape(y_label)}</text>'
    )
    return out


def _series(frame: Frame, xa: Axis, ya: Axis, s: Series, color: str, index: int, step: bool) -> list[str]:
    px0, py0 = frame.left, frame.top + frame.plot_h

    def xy(x: float, y: float) -> tuple[float, float]:
        return px0 + xa.fraction(x) * frame.plot_w, py0 - ya.fraction(y) * frame.plot_h

    pts = [xy(x, y) for x, y in s.points]
    out = [f'<g class="series series-{index}" data-name="{escape(s.name)}">']
    if len(pts) > 1:
        coords: list[str] = []
        for i, (x, y) in enumerate(pts):
            if step and i > 0:
                coords.append(f"{_f(x)},{_f(pts[i - 1][1])}")
            coords.append(f"{_f(x)},{_f(y)}")
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        out.append(
            f'<polyline fill="none" stroke="{color}" stroke-width="2"{dash} stroke-linejoin="round" '
            f'points="{" ".join(coords)}"/>'
        )
    if s.markers or len(pts) == 1:
        for i, (x, y) in enumerate(pts):
            tip = s.labels[i] if s.labels is not None else f"{s.name}: {fmt_number(s.points[i][1])}"
            out.append(
                f'<circle cx="{_f(x)}" cy="{_f(y)}" r="4" fill="{color}" stroke="#fff" stroke-width="1">'
                f"<title>{escape(tip)}</title></circle>"
            )
    out.append("</g>")
    return out


LEGEND_ROW_H = 16


def _legend_rows(frame: Frame, items: Sequence[tuple[str, str, bool]]) -> list[list[tuple[str, str, bool]]]:
    """Legend items flowed left to right under the title, wrapping at the frame's width."""
    rows: list[list[tuple[str, str, bool]]] = [[]]
    x = float(frame.left)
    for item in items:
        w = 22 + 7 * len(item[0]) + 14
        if rows[-1] and x + w > frame.width - frame.right:
            rows.append([])
            x = float(frame.left)
        rows[-1].append(item)
        x += w
    return rows


def _with_legend(frame: Frame, items: Sequence[tuple[str, str, bool]]) -> Frame:
    """``frame`` grown at the top by the legend's rows (the plot keeps its height)."""
    if len(items) < 2:
        return frame
    extra = LEGEND_ROW_H * len(_legend_rows(frame, items))
    return replace(frame, top=frame.top + extra, height=frame.height + extra)


def _legend(frame: Frame, items: Sequence[tuple[str, str, bool]]) -> list[str]:
    """The legend below the title: a line sample and the name per item."""
    out = ['<g class="legend" fill="#374151">']
    for r, row in enumerate(_legend_rows(frame, items)):
        y = 34 + r * LEGEND_ROW_H
        x = float(frame.left)
        for name, color, dashed in row:
            dash = ' stroke-dasharray="4 3"' if dashed else ""
            out.append(
                f'<line x1="{_f(x)}" x2="{_f(x + 16)}" y1="{y - 4}" y2="{y - 4}" stroke="{color}" stroke-width="2"{dash}/>'
            )
            out.append(f'<text x="{_f(x + 22)}" y="{y}">{escape(name)}</text>')
            x += 22 + 7 * len(name) + 14
    out.append("</g>")
    return out


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
    colors = [FLOOR_COLOR if s.dashed else PALETTE[i % len(PALETTE)] for i, s in enumerate(series)]
    legend = [(s.name, colors[i], s.dashed) for i, s in enumerate(series)]
    frame = _with_legend(frame or Frame(), legend)
    points = [p for s in series for p in s.points]
    if not points:
        return _empty(frame, title, css_class, empty_message)
    ys = [y for _, y in points]
    if log_y and min(ys) <= 0:
        raise ValueError("log_y: every y must be positive on a log scale")
    xs = [x for x, _ in points]
    x_lo, x_hi = _padded(min(xs), max(xs), log=False)
    y_lo, y_hi = _padded(min(ys), max(ys), log=log_y)
    if x_kind == "seconds" or (x_kind == "number" and min(xs) >= 0):
        x_lo = max(0.0, x_lo)
    if x_kind == "date":
        segments = date_segments(xs)
        xt = [t for a, b in segments for t in _date_ticks(a, b, narrow=len(segments) > 1 and b - a < 0.1)]
        xa = Axis(segments[0][0], segments[-1][1], ticks=xt, segments=segments if len(segments) > 1 else ())
    elif x_kind == "seconds":
        xa = Axis(x_lo, x_hi, ticks=duration_ticks(x_lo, x_hi))
    else:
        xa = Axis(x_lo, x_hi, ticks=[(v, fmt_number(v)) for v in nice_ticks(x_lo, x_hi)])
    y_vals = log_ticks(y_lo, y_hi) if log_y else nice_ticks(y_lo, y_hi)
    ya = Axis(y_lo, y_hi, log=log_y, ticks=[(v, fmt_number(v)) for v in y_vals])
    parts = _open_svg(frame, title, css_class)
    parts += _axes(frame, xa, ya, x_label, y_label)
    for i, s in enumerate(series):
        if s.points:
            parts += _series(frame, xa, ya, s, colors[i], i, step and not s.dashed)
    if len(series) > 1:
        parts += _legend(frame, legend)
    parts.append("</svg>")
    return Markup("".join(parts))


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
    label_w = min(220, 12 + 7 * max((len(c) for c in cats), default=4))
    legend = [(g.name, PALETTE[i % len(PALETTE)], False) for i, g in enumerate(groups)]
    frame = Frame(width=width, height=40 + 40 + row_h * max(1, len(cats)), left=label_w, top=40, bottom=40)
    frame = _with_legend(frame, legend)
    if not cats:
        return _empty(Frame(width=width, height=120), title, css_class, empty_message)
    vals = [v for g in groups for v in g.values.values()] + ([reference] if reference is not None else [])
    lo, hi = min(0.0, *vals), max(0.0, *vals)
    if lo == hi:
        hi = 1.0
    ticks = nice_ticks(lo, hi, target=5)
    lo, hi = min(lo, ticks[0]), max(hi, ticks[-1])
    xa = Axis(lo, hi, ticks=[(t, fmt_number(t)) for t in ticks])

    def px(v: float) -> float:
        return frame.left + xa.fraction(v) * frame.plot_w

    parts = _open_svg(frame, title, css_class)
    py0 = frame.top + frame.plot_h
    parts.append('<g class="axes" stroke="#e5e7eb">')
    for t, _ in xa.ticks:
        parts.append(f'<line x1="{_f(px(t))}" x2="{_f(px(t))}" y1="{frame.top}" y2="{_f(py0)}"/>')
    parts.append("</g>")
    parts.append('<g class="ticks" fill="#374151">')
    for t, label in xa.ticks:
        parts.append(f'<text x="{_f(px(t))}" y="{_f(py0 + 16)}" text-anchor="middle">{escape(label)}</text>')
    parts.append(
        f'<text class="axis-label" x="{_f(frame.left + frame.plot_w / 2)}" y="{frame.height - 8}" '
        f'text-anchor="middle">{escape(value_label)}</text>'
    )
    parts.append("</g>")
    zero = px(0.0)
    for r, cat in enumerate(cats):
        y0 = frame.top + gap / 2 + r * row_h
        parts.append(
            f'<text class="bar-label" x="{frame.left - 6}" y="{_f(y0 + row_h / 2)}" text-anchor="end" '
            f'fill="#111827">{escape(cat)}</text>'
        )
        for gi, g in enumerate(groups):
            if cat not in g.values:
                continue
            v = g.values[cat]
            x1, x2 = sorted((zero, px(v)))
            y = y0 + gi * bar_h
            parts.append(
                f'<rect class="bar bar-{gi}" x="{_f(x1)}" y="{_f(y)}" width="{_f(max(0.5, x2 - x1))}" '
                f'height="{bar_h - 2}" fill="{PALETTE[gi % len(PALETTE)]}">'
                f"<title>{escape(f'{cat} ({g.name}): {v:.4f}')}</title></rect>"
            )
    parts.append(f'<line x1="{_f(zero)}" x2="{_f(zero)}" y1="{frame.top}" y2="{_f(py0)}" stroke="#6b7280"/>')
    if reference is not None:
        rx = px(reference)
        parts.append(
            f'<line class="reference" x1="{_f(rx)}" x2="{_f(rx)}" y1="{frame.top - 4}" y2="{_f(py0)}" '
            f'stroke="{FLOOR_COLOR}" stroke-dasharray="5 4" stroke-width="1.5">'
            f"<title>{escape(reference_label or fmt_number(reference))}</title></line>"
        )
    if len(groups) > 1:
        parts += _legend(frame, legend)
    parts.append("</svg>")
    return Markup("".join(parts))
