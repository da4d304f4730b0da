"""SVG fragments shared by the charts: frame, axes, series, legend, the empty chart."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from markupsafe import Markup, escape

from web.charts.base import Axis, Frame, Series, coord, fmt_number

# ---------------------------------------------------------------------------- svg pieces


def open_svg(frame: Frame, title: str, css_class: str) -> list[str]:
    t = escape(title)
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart {css_class}" width="{frame.width}" '
        f'height="{frame.height}" viewBox="0 0 {frame.width} {frame.height}" role="img" aria-label="{t}" '
        f'preserveAspectRatio="xMidYMid meet" '
        f'font-family="system-ui, sans-serif" font-size="12">',
        f"<title>{t}</title>",
        f'<text class="chart-title" x="{frame.left}" y="20" font-size="14" font-weight="600" fill="#111827">{t}</text>',
    ]


def empty_chart(frame: Frame, title: str, css_class: str, message: str) -> Markup:
    parts = open_svg(frame, title, css_class)
    parts.append(
        f'<text class="chart-empty" x="{frame.width / 2:.0f}" y="{frame.height / 2:.0f}" text-anchor="middle" '
        f'fill="#6b7280">{escape(message)}</text>'
    )
    parts.append("</svg>")
    return Markup("".join(parts))


def draw_axes(frame: Frame, xa: Axis, ya: Axis, x_label: str, y_label: str) -> list[str]:
    px0, py0 = frame.left, frame.top + frame.plot_h
    out = ['<g class="axes" stroke="#d1d5db" stroke-width="1">']
    for v, _ in ya.ticks:
        y = py0 - ya.fraction(v) * frame.plot_h
        out.append(f'<line class="grid" x1="{px0}" x2="{coord(px0 + frame.plot_w)}" y1="{coord(y)}" y2="{coord(y)}"/>')
    out.append(
        f'<line x1="{px0}" x2="{coord(px0 + frame.plot_w)}" y1="{coord(py0)}" y2="{coord(py0)}" stroke="#6b7280"/>'
    )
    out.append(f'<line x1="{px0}" x2="{px0}" y1="{frame.top}" y2="{coord(py0)}" stroke="#6b7280"/>')
    for b in xa.breaks():
        x = px0 + b * frame.plot_w
        out.append(
            f'<path class="axis-break" d="M{coord(x - 5)},{coord(py0 + 5)} L{coord(x - 1)},{coord(py0 - 5)} '
            f'M{coord(x + 1)},{coord(py0 + 5)} L{coord(x + 5)},{coord(py0 - 5)}" stroke="#6b7280" stroke-width="1.5"/>'
        )
    out.append("</g>")
    out.append('<g class="ticks" fill="#374151">')
    for v, label in ya.ticks:
        y = py0 - ya.fraction(v) * frame.plot_h
        out.append(f'<text x="{px0 - 6}" y="{coord(y + 4)}" text-anchor="end">{escape(label)}</text>')
    for v, label in xa.ticks:
        x = px0 + xa.fraction(v) * frame.plot_w
        out.append(f'<line x1="{coord(x)}" x2="{coord(x)}" y1="{coord(py0)}" y2="{coord(py0 + 4)}" stroke="#6b7280"/>')
        out.append(f'<text x="{coord(x)}" y="{coord(py0 + 18)}" text-anchor="middle">{escape(label)}</text>')
    out.append("</g>")
    out.append(
        f'<text class="axis-label" x="{coord(px0 + frame.plot_w / 2)}" y="{frame.height - 6}" text-anchor="middle" '
        f'fill="#374151">{escape(x_label)}</text>'
    )
    cy = frame.top + frame.plot_h / 2
    out.append(
        f'<text class="axis-label" x="14" y="{coord(cy)}" text-anchor="middle" fill="#374151" '
        f'transform="rotate(-90 14 {coord(cy)})">{escape(y_label)}</text>'
    )
    return out


NOTE_OFFSETS = (-8, 15, -21, 28, -34, 41)  # tried in turn above and below a point
Box = tuple[float, float, float, float]


def draw_notes(
    frame: Frame, pts: Sequence[tuple[float, float]], notes: Sequence[str], color: str, taken: list[Box]
) -> list[str]:
    """A short text beside each point, at the first offset where it overlaps no text placed so far
    (``taken``, shared across the chart's series); a note with no free place is left to the point's
    tooltip rather than drawn over another."""
    out = []
    right = frame.left + frame.plot_w
    # newest first: where notes crowd, the latest records keep theirs
    for (x, y), note in reversed(list(zip(pts, notes, strict=True))):
        width = 6.2 * len(note)
        anchor = "end" if x + 7 + width > right else "start"
        x0 = x - 7 - width if anchor == "end" else x + 7
        for dy in NOTE_OFFSETS:
            box = (x0, y + dy - 10, x0 + width, y + dy + 2)
            inside = frame.top <= box[1] and box[3] <= frame.top + frame.plot_h
            if inside and not any(_overlap(box, other) for other in taken):
                taken.append(box)
                out.append(
                    f'<text class="point-note" x="{coord(x - 7 if anchor == "end" else x + 7)}" y="{coord(y + dy)}" '
                    f'text-anchor="{anchor}" font-size="11" fill="{color}">{escape(note)}</text>'
                )
                break
    return out


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def draw_series(
    frame: Frame, xa: Axis, ya: Axis, s: Series, color: str, index: int, step: bool, taken: list[Box] | None = None
) -> list[str]:
    px0, py0 = frame.left, frame.top + frame.plot_h

    def xy(x: float, y: float) -> tuple[float, float]:
        return px0 + xa.fraction(x) * frame.plot_w, py0 - ya.fraction(y) * frame.plot_h

    pts = [xy(x, y) for x, y in s.points]
    taken = [] if taken is None else taken
    out = [f'<g class="series series-{index}" data-name="{escape(s.name)}">']
    if len(pts) > 1:
        coords: list[str] = []
        for i, (x, y) in enumerate(pts):
            if step and i > 0:
                coords.append(f"{coord(x)},{coord(pts[i - 1][1])}")
            coords.append(f"{coord(x)},{coord(y)}")
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        out.append(
            f'<polyline fill="none" stroke="{color}" stroke-width="2"{dash} stroke-linejoin="round" '
            f'points="{" ".join(coords)}"/>'
        )
    if s.markers or len(pts) == 1:
        for i, (x, y) in enumerate(pts):
            tip = s.labels[i] if s.labels is not None else f"{s.name}: {fmt_number(s.points[i][1])}"
            if s.hollow:
                out.append(
                    f'<rect class="marker hollow" x="{coord(x - 4)}" y="{coord(y - 4)}" width="8" height="8" '
                    f'fill="#fff" stroke="{color}" stroke-width="2"><title>{escape(tip)}</title></rect>'
                )
            else:
                out.append(
                    f'<circle class="marker" cx="{coord(x)}" cy="{coord(y)}" r="4" fill="{color}" stroke="#fff" '
                    f'stroke-width="1"><title>{escape(tip)}</title></circle>'
                )
    if s.notes is not None:
        out += draw_notes(frame, pts, s.notes, color, taken)
    out.append("</g>")
    return out


LEGEND_ROW_H = 16


def legend_rows(frame: Frame, items: Sequence[tuple[str, str, bool]]) -> list[list[tuple[str, str, bool]]]:
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


def with_legend(frame: Frame, items: Sequence[tuple[str, str, bool]]) -> Frame:
    """``frame`` grown at the top by the legend's rows (the plot keeps its height)."""
    if len(items) < 2:
        return frame
    extra = LEGEND_ROW_H * len(legend_rows(frame, items))
    return replace(frame, top=frame.top + extra, height=frame.height + extra)


def draw_legend(frame: Frame, items: Sequence[tuple[str, str, bool]]) -> list[str]:
    """The legend below the title: a line sample and the name per item."""
    out = ['<g class="legend" fill="#374151">']
    for r, row in enumerate(legend_rows(frame, items)):
        y = 34 + r * LEGEND_ROW_H
        x = float(frame.left)
        for name, color, dashed in row:
            dash = ' stroke-dasharray="4 3"' if dashed else ""
            out.append(
                f'<line x1="{coord(x)}" x2="{coord(x + 16)}" y1="{y - 4}" y2="{y - 4}" stroke="{color}" stroke-width="2"{dash}/>'
            )
            out.append(f'<text x="{coord(x + 22)}" y="{y}">{escape(name)}</text>')
            x += 22 + 7 * len(name) + 14
    out.append("</g>")
    return out
