"""Server-rendered SVG line chart: counted contacts per day, one line per manager.

Plain SVG text, no chart library: it renders without JavaScript, prints, and scales with
the page. Every piece of user text (a manager's name) is escaped here; the template
inserts the result as ``Markup``. Each series is a ``<g class="series">`` with a
``<title>`` (a tooltip in every browser) and a ``data-employee`` attribute, so tests and
the page's legend can find a manager's line.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

__all__ = ["PALETTE", "Series", "color_for", "line_chart"]

# Okabe-Ito + Tableau: distinguishable for the colour-blind; beyond that dashes help.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000",
           "#4E79A7", "#F28E2B", "#59A14F", "#E15759", "#B07AA1", "#9C755F")
DASHES = ("", "6 3", "2 3", "8 3 2 3")


@dataclass(frozen=True, slots=True)
class Series:
    key: int
    name: str
    values: Sequence[int]


def color_for(index: int) -> tuple[str, str]:
    """(stroke colour, dash pattern) of the *index*-th series."""
    return PALETTE[index % len(PALETTE)], DASHES[(index // len(PALETTE)) % len(DASHES)]


def _nice_max(value: int) -> int:
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000):
        if value <= step * 4:
            return step * 4
    return value


def line_chart(days: Sequence[dt.date], series: Sequence[Series], *, title: str,
               width: int = 900, height: int = 280) -> Markup:
    left, right, top, bottom = 40, 12, 16, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max((max(s.values, default=0) for s in series), default=0)
    y_max = _nice_max(max(peak, 1))
    n = max(len(days), 1)

    def x(i: int) -> float:
        return left + (plot_w * (i + 0.5) / n)

    def y(v: int) -> float:
        return top + plot_h - plot_h * v / y_max

    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {width} {height}" '
        f'width="100%" preserveAspectRatio="xMidYMid meet" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        '<g class="grid" stroke="#ddd" stroke-width="1" font-size="11" fill="#555">',
    ]
    for k in range(5):
        value = y_max * k // 4
        yy = y(value)
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{yy:.1f}" y2="{yy:.1f}"/>')
        out.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end" stroke="none">{value}</text>')
    label_every = max(1, (n + 14) // 15)
    for i, day in enumerate(days):
        if i % label_every == 0:
            out.append(f'<text x="{x(i):.1f}" y="{height - 8}" text-anchor="middle" stroke="none">'
                       f"{day.strftime('%d.%m')}</text>")
    out.append("</g>")
    # 200 series x 30 days: each x and each distinct y formatted once, not per point
    xs = [f"{x(i):.1f}" for i in range(max(n, max((len(s.values) for s in series), default=0)))]
    ys = {v: f"{y(v):.1f}" for s in series for v in set(s.values)}
    for index, s in enumerate(series):
        color, dash = color_for(index)
        points = " ".join(f"{xs[i]},{ys[v]}" for i, v in enumerate(s.values))
        total = sum(s.values)
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<g class="series" data-employee="{int(s.key)}" data-total="{total}">'
                   f"<title>{escape(s.name)}: {total}</title>"
                   f'<polyline fill="none" stroke="{color}" stroke-width="2"{dash_attr} points="{points}"/>')
        if len(s.values) * len(series) <= 1200:  # dots only while the page stays light
            for i, v in enumerate(s.values):
                out.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5" fill="{color}">'
                           f"<title>{escape(s.name)} · {days[i].isoformat()}: {v}</title></circle>")
        out.append("</g>")
    out.append("</svg>")
    return Markup("".join(out))
