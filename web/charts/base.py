"""Chart geometry, axes and ticks, number formats: the pieces every chart shares."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

PALETTE = ("#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#be185d", "#4d7c0f", "#9a3412", "#1e3a8a")
FLOOR_COLOR = "#6b7280"


@dataclass(frozen=True)
class Series:
    """One line: (x, y) points in x order; ``labels`` (optional) name each point in its tooltip."""

    name: str
    points: Sequence[tuple[float, float]]
    dashed: bool = False
    markers: bool = True
    labels: Sequence[str] | None = None
    hollow: bool = False  # open square markers (e.g. reported, not verified) instead of filled dots
    notes: Sequence[str] | None = None  # a short text drawn beside each point (e.g. who set a record)
    color: str | None = None  # fixed color instead of the palette's
    stepped: bool = True  # drawn as a step line when the chart asks for steps

    def __post_init__(self) -> None:
        if self.labels is not None and len(self.labels) != len(self.points):
            raise ValueError(f"labels: {len(self.labels)} labels for {len(self.points)} points")
        if self.notes is not None and len(self.notes) != len(self.points):
            raise ValueError(f"notes: {len(self.notes)} notes for {len(self.points)} points")
        for x, y in self.points:
            if not (math.isfinite(x) and math.isfinite(y)):
                raise ValueError(f"points: every coordinate must be finite, got ({x}, {y})")


@dataclass(frozen=True)
class BarGroup:
    """One set of bars (e.g. 'verified mean'): a value per category."""

    name: str
    values: dict[str, float]
    color: str | None = None  # a fixed colour for what the group means (verified is always green)


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


def coord(v: float) -> str:
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


def date_ticks(lo: float, hi: float, narrow: bool = False) -> list[tuple[float, str]]:
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
        # one point, or points on one day, still get a readable span: at least a month each side
        lo, hi = ordered[0], ordered[-1]
        pad = max(1 / 12, 0.05 * (hi - lo))
        return ((lo - pad, hi + pad),)
    out = []
    for c in clusters:
        pad = max(1 / 24, 0.08 * (c[-1] - c[0]))
        out.append((c[0] - pad, c[-1] + pad))
    return tuple(out)


def padded(lo: float, hi: float, log: bool) -> tuple[float, float]:
    if log:
        if lo == hi:
            return lo / 2, hi * 2
        return lo / 1.25, hi * 1.25
    if lo == hi:
        pad = abs(lo) * 0.1 or 1.0
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.05
    return lo - pad, hi + pad
