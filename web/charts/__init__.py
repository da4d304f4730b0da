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

from dataclasses import dataclass

from markupsafe import Markup

from web.charts.bars import bar_chart
from web.charts.base import (
    FLOOR_COLOR,
    PALETTE,
    Axis,
    BarGroup,
    Frame,
    Series,
    date_segments,
    date_to_x,
    duration_ticks,
    fmt_hours,
    fmt_number,
    log_ticks,
    nice_ticks,
)
from web.charts.line import line_chart
from web.charts.progression import RecordPoint, progression_chart

NARROW_WIDTH = 340  # a phone's chart: drawn at about its own size at 390 px, so 11-12 px text stays 11-12 px


@dataclass(frozen=True)
class Responsive:
    """A chart drawn twice: for wide screens, and re-laid out for a phone (narrower frame, fewer
    labels); the stylesheet shows one of the two (``.chart-wide`` / ``.chart-narrow``)."""

    wide: Markup
    narrow: Markup

    def __html__(self) -> str:
        return f'<div class="chart-wide">{self.wide}</div><div class="chart-narrow">{self.narrow}</div>'


__all__ = [
    "FLOOR_COLOR",
    "NARROW_WIDTH",
    "PALETTE",
    "Axis",
    "BarGroup",
    "Frame",
    "RecordPoint",
    "Responsive",
    "Series",
    "bar_chart",
    "date_segments",
    "date_to_x",
    "duration_ticks",
    "fmt_hours",
    "fmt_number",
    "line_chart",
    "log_ticks",
    "nice_ticks",
    "progression_chart",
]
