"""The SVG charts: well-formed, escaped, log scale where promised, honest about empty data."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from datetime import date

import pytest

from web.charts import (
    Axis,
    BarGroup,
    RecordPoint,
    Series,
    bar_chart,
    date_segments,
    date_to_x,
    duration_ticks,
    line_chart,
    log_ticks,
    nice_ticks,
    progression_chart,
)

SVG = "{http://www.w3.org/2000/svg}"
HISTORY = [
    RecordPoint(date(2019, 2, 14), 168.0, "GPT-2 (OpenAI)"),
    RecordPoint(date(2026, 1, 29), 3.04, "d24 baseline", floor_hours=0.41),
    RecordPoint(date(2026, 2, 2), 2.91, "d26 + fp8", floor_hours=0.40),
    RecordPoint(date(2026, 3, 14), 1.65, "autoresearch round 2", floor_hours=0.30),
]


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def circles(root: ET.Element, series_index: int) -> list[tuple[float, float]]:
    group = next(g for g in root.iter(f"{SVG}g") if g.get("class") == f"series series-{series_index}")
    return [(float(c.get("cx", "nan")), float(c.get("cy", "nan"))) for c in group.iter(f"{SVG}circle")]


def test_progression_chart_is_well_formed_svg_with_both_lines() -> None:
    root = parse(progression_chart(HISTORY))
    assert root.tag == f"{SVG}svg"
    assert len(circles(root, 0)) == 4  # the records
    assert len(circles(root, 1)) == 3  # the floor, where known
    floor_line = next(root.iter(f"{SVG}g"), None)
    assert floor_line is not None
    assert any(p.get("stroke-dasharray") for p in root.iter(f"{SVG}polyline"))


def test_progression_y_axis_is_logarithmic() -> None:
    """Equal ratios of hours are equal pixel distances: 168 -> 16.8 as far as 16.8 -> 1.68."""
    points = [
        RecordPoint(date(2026, 1, 1), 168.0, "a"),
        RecordPoint(date(2026, 2, 1), 16.8, "b"),
        RecordPoint(date(2026, 3, 1), 1.68, "c"),
    ]
    ys = [y for _, y in circles(parse(progression_chart(points)), 0)]
    assert ys[0] < ys[1] < ys[2]  # lower hours are lower on the page (larger SVG y)
    assert ys[1] - ys[0] == pytest.approx(ys[2] - ys[1], abs=0.2)


def test_progression_breaks_the_date_axis_between_2019_and_2026() -> None:
    svg = progression_chart(HISTORY)
    root = parse(svg)
    xs = [x for x, _ in circles(root, 0)]
    # Without a break the three 2026 points would sit within 1% of the width; with it they spread out.
    assert xs[-1] - xs[1] > 0.2 * (xs[-1] - xs[0])
    assert any(p.get("class") == "axis-break" for p in root.iter(f"{SVG}path"))
    labels = [t.text for t in root.iter(f"{SVG}text")]
    assert "2019" in labels


def test_record_labels_and_series_names_are_escaped() -> None:
    evil = '<script>alert("x")</script>'
    svg = progression_chart([RecordPoint(date(2026, 1, 1), 2.0, evil)])
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    parse(svg)  # still well-formed
    line = line_chart([Series(evil, [(0, 1), (1, 2)]), Series("b", [(0, 2)])], title=evil, x_label=evil, y_label="y")
    assert "<script>" not in line
    bars = bar_chart([BarGroup(evil, {evil: 0.2})], title="t", value_label="v")
    assert "<script>" not in bars
    parse(line)
    parse(bars)


def test_empty_charts_say_so() -> None:
    svg = line_chart([], title="loss", x_label="t", y_label="loss")
    assert "no data yet" in svg
    assert "no records yet" in progression_chart([])
    assert "no per-task scores" in bar_chart([], title="CORE", value_label="centered")


def test_line_chart_rejects_non_finite_points_and_non_positive_log_values() -> None:
    with pytest.raises(ValueError, match="points"):
        Series("loss", [(0.0, math.nan)])
    with pytest.raises(ValueError, match="log_y"):
        line_chart([Series("s", [(0, 0.0), (1, 1.0)])], title="t", x_label="x", y_label="y", log_y=True)
    with pytest.raises(ValueError, match="x_kind"):
        line_chart([Series("s", [(0, 1.0)])], title="t", x_label="x", y_label="y", x_kind="weeks")
    with pytest.raises(ValueError, match="hours"):
        progression_chart([RecordPoint(date(2026, 1, 1), 0.0, "zero")])


def test_line_chart_maps_points_inside_the_plot_in_order() -> None:
    s = Series("loss", [(float(i), 10.0 - i) for i in range(10)])
    root = parse(line_chart([s], title="loss", x_label="s", y_label="loss", x_kind="seconds"))
    pts = circles(root, 0)
    width, height = (float(v) for v in root.get("viewBox", "").split()[2:])
    assert all(0 < x < width and 0 < y < height for x, y in pts)
    assert [x for x, _ in pts] == sorted(x for x, _ in pts)
    assert [y for _, y in pts] == sorted(y for _, y in pts)  # falling loss goes down the page


def test_bar_chart_grows_bars_from_zero_both_ways() -> None:
    root = parse(bar_chart([BarGroup("verified", {"hellaswag": 0.3, "arc_easy": -0.1})], title="t", value_label="v"))
    rects = {r.find(f"{SVG}title").text.split(" ")[0]: r for r in root.iter(f"{SVG}rect")}  # type: ignore[union-attr]
    pos, neg = rects["hellaswag"], rects["arc_easy"]
    # the positive bar starts where the negative bar ends: at zero
    assert float(pos.get("x", "nan")) == pytest.approx(
        float(neg.get("x", "nan")) + float(neg.get("width", "nan")), abs=0.2
    )
    assert float(pos.get("width", "0")) == pytest.approx(3 * float(neg.get("width", "0")), rel=0.02)


def test_bar_chart_draws_one_bar_per_group_and_the_reference_line() -> None:
    groups = [BarGroup("claimed", {"a": 0.1, "b": 0.2}), BarGroup("verified", {"a": 0.12, "b": 0.18})]
    root = parse(bar_chart(groups, title="t", value_label="v", reference=0.15, reference_label="threshold"))
    assert len(list(root.iter(f"{SVG}rect"))) == 4
    assert any(line.get("class") == "reference" for line in root.iter(f"{SVG}line"))


def test_nice_and_log_ticks() -> None:
    assert nice_ticks(0, 1) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(3, 3) == [3]
    assert log_ticks(0.3, 200) == [0.5, 1, 2, 5, 10, 20, 50, 100, 200]
    assert log_ticks(1e-3, 1e5) == [1e-3, 1e-2, 0.1, 1, 10, 100, 1e3, 1e4, 1e5]
    with pytest.raises(ValueError):
        log_ticks(0, 10)


def test_date_segments_split_only_long_gaps() -> None:
    xs = [date_to_x(r.when) for r in HISTORY]
    segs = date_segments(xs)
    assert len(segs) == 2
    assert segs[0][0] < xs[0] < segs[0][1] < segs[1][0] < xs[1] < xs[-1] < segs[1][1]
    assert len(date_segments(xs[1:])) == 1
    axis = Axis(segs[0][0], segs[1][1], segments=segs)
    assert axis.fraction(segs[0][0]) == 0.0
    assert axis.fraction(segs[1][1]) == pytest.approx(1.0)
    assert 0 < axis.breaks()[0] < 1


def test_date_to_x_is_fractional_years() -> None:
    assert date_to_x(date(2026, 1, 1)) == 2026.0
    assert 2026.49 < date_to_x(date(2026, 7, 1)) < 2026.5


def test_duration_ticks_use_a_round_unit() -> None:
    assert [label for _, label in duration_ticks(0, 90)] == ["0 s", "20 s", "40 s", "60 s", "80 s"]
    assert [label for _, label in duration_ticks(0, 5400)] == ["0 min", "20 min", "40 min", "60 min", "80 min"]
    assert duration_ticks(0, 6 * 3600) == [(0.0, "0 h"), (7200.0, "2 h"), (14400.0, "4 h"), (21600.0, "6 h")]
