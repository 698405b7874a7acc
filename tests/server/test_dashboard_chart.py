"""The server-rendered SVG chart: one line per manager, names escaped, a sensible scale."""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET

from callpop.server.kpi.charts import Series, color_for, line_chart
from callpop.server.l10n import formats_for

DAYS = [dt.date(2026, 3, 1) + dt.timedelta(days=i) for i in range(31)]
NS = "{http://www.w3.org/2000/svg}"


def test_one_series_per_manager_with_escaped_names() -> None:
    svg = str(line_chart(DAYS, [Series(7, "<script>alert(1)</script>", [1] * 31),
                                Series(9, "Борис & Co", [0] * 30 + [12])], title="Contacts"))
    root = ET.fromstring(svg)  # well-formed XML: nothing unescaped broke it
    groups = root.findall(f"{NS}g[@class='series']")
    assert [(g.get("data-employee"), g.get("data-total")) for g in groups] == [("7", "31"), ("9", "12")]
    assert groups[0].findtext(f"{NS}title") == "<script>alert(1)</script>: 31"
    assert "<script>" not in svg
    points = groups[1].find(f"{NS}polyline").get("points").split()  # type: ignore[union-attr]
    assert len(points) == 31


def test_scale_keeps_the_peak_inside_the_plot() -> None:
    svg = str(line_chart(DAYS[:3], [Series(1, "a", [0, 37, 5])], title="t", height=280))
    ys = [float(p.split(",")[1]) for p in re.search(r'points="([^"]+)"', svg).group(1).split()]  # type: ignore[union-attr]
    assert min(ys) >= 16 and max(ys) <= 280 - 28  # inside the top and bottom margins
    labels = [int(v) for v in re.findall(r'text-anchor="end" stroke="none">(\d+)</text>', svg)]
    assert max(labels) >= 37 and labels[0] == 0


def test_empty_chart_and_many_series_stay_distinct() -> None:
    assert "<svg" in str(line_chart(DAYS, [], title="nobody"))
    styles = {color_for(i) for i in range(40)}
    assert len(styles) == 40  # colour and dash pattern together tell 40 managers apart


def test_figures_are_formatted_like_the_page() -> None:
    ru, en = formats_for("ru"), formats_for("en")
    assert ru.number(None) == "—"
    assert ru.percent(1234.5) == "1\u00a0234,5\u00a0%" and en.percent(1234.5) == "1,234.5%"
    assert ru.number(100.0) == "100" and ru.number(0.0) == "0"
    assert ru.amount(1500.5) == "1\u00a0500,50" and ru.money(12000) == "12\u00a0000,00\u00a0₽"
