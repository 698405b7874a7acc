"""What the KPI pages show, built once and rendered as HTML, JSON or CSV.

The dashboard model (managers × KPIs with fact, plan and %, totals, the per-day series) is
assembled here from ``store.kpi.queries`` so the page, ``/api/kpi/dashboard`` and
``/dashboard.csv`` can never disagree about a number.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callpop import kpi
from callpop.server.errors import Refusal
from callpop.server.l10n import Formats, date_example, parse_input_date
from callpop.settings import Settings
from callpop.store.kpi.daycache import dashboard_series
from callpop.store.kpi.queries import ManagerFacts, manager_facts, missed_total

__all__ = ["Cell", "DashboardView", "Row", "load_dashboard", "local_today", "missed_grid",
           "period_from_query", "plan_inputs", "table_body", "table_rows", "utcnow"]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def local_today(settings: Settings, now: dt.datetime) -> dt.date:
    return now.astimezone(ZoneInfo(settings.kpi.timezone)).date()


def period_from_query(query: Mapping[str, str], today: dt.date, lang: str = "en") -> kpi.Period:
    """The period of ``?period=day|week|month|custom&date=..&from=..&to=..`` (PeriodError if
    bad); the dates as the user's date fields write them (``31.03.2026``) or ISO."""
    dates: dict[str, str | None] = {}
    for name in ("date", "from", "to"):
        text = query.get(name) or ""
        if not text.strip():
            dates[name] = None
            continue
        try:
            dates[name] = parse_input_date(text, lang).isoformat()
        except ValueError:
            raise kpi.PeriodError(f"{name}: expected a date like {date_example(lang)}, found {text[:20]!r}") from None
    return kpi.parse_period(query.get("period") or "month", today, date=dates["date"], start=dates["from"],
                            end=dates["to"])


@dataclass(frozen=True, slots=True)
class Cell:
    kpi: str
    fact: float | None
    plan: float | None
    pct: float | None

    def to_json(self) -> dict[str, Any]:
        return {"fact": _r(self.fact), "plan": _r(self.plan), "pct": _r(self.pct)}


@dataclass(frozen=True, slots=True)
class Row:
    employee_id: int | None  # None: the totals row
    name: str
    cells: tuple[Cell, ...]
    missed: int
    overdue: int
    raw: ManagerFacts | None

    def to_json(self) -> dict[str, Any]:
        return {"employee_id": self.employee_id, "name": self.name, "missed": self.missed,
                "overdue": self.overdue, "kpis": {c.kpi: c.to_json() for c in self.cells}}


@dataclass(frozen=True, slots=True)
class DashboardView:
    period: kpi.Period
    rows: tuple[Row, ...]
    totals: Row
    days: tuple[dt.date, ...]
    contacts_per_day: Mapping[int, list[int]]
    missed_per_day: Mapping[int, list[int]]

    def to_json(self) -> dict[str, Any]:
        return {"period": {"kind": self.period.kind, "from": self.period.start.isoformat(),
                           "to": self.period.last.isoformat()},
                "managers": [r.to_json() for r in self.rows], "totals": self.totals.to_json(),
                "days": [d.isoformat() for d in self.days],
                "contacts_per_day": {str(k): v for k, v in self.contacts_per_day.items()},
                "missed_per_day": {str(k): v for k, v in self.missed_per_day.items()}}


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _row(facts: ManagerFacts, period: kpi.Period, settings: Settings) -> Row:
    values = facts.facts()
    cells = []
    for name in kpi.KPI_NAMES:
        plan = kpi.period_plan(name, period, facts.plans.get(name, {}), settings.kpi.working_days)
        cells.append(Cell(name, values[name], plan, kpi.achievement(values[name], plan)))
    return Row(facts.employee_id, facts.name, tuple(cells), facts.missed, facts.overdue, facts)


def _totals(rows: list[Row], label: str, missed: int) -> Row:
    raw = [r.raw for r in rows if r.raw is not None]
    summed = ManagerFacts(0, label)
    for f in raw:
        summed.contacts += f.contacts
        summed.paid += f.paid
        summed.outstanding += f.outstanding
        summed.won += f.won
        summed.lost += f.lost
        summed.new += f.new
        summed.regular += f.regular
    facts = summed.facts()
    cells = []
    for i, name in enumerate(kpi.KPI_NAMES):
        plans = [r.cells[i].plan for r in rows if r.cells[i].plan is not None]
        plan: float | None = None
        if plans:
            plan = sum(p for p in plans if p is not None)
            if name != "contacts":  # percentages: the average plan, not their sum
                plan /= len(plans)
        cells.append(Cell(name, facts[name], plan, kpi.achievement(facts[name], plan)))
    return Row(None, label, tuple(cells), missed, sum(r.overdue for r in rows), None)


async def load_dashboard(sessions: async_sessionmaker[AsyncSession], period: kpi.Period, settings: Settings,
                         now: dt.datetime, *, totals_label: str = "Total") -> DashboardView:
    """The whole dashboard in two concurrent reads: the per-day series (whose sums are the
    contact and missed-call counts; closed days remembered, see store.kpi.daycache) and the other
    aggregates, each on its own connection."""

    async def series() -> tuple[dict[int, list[int]], dict[int, list[int]]]:
        async with sessions() as session:
            return await dashboard_series(session, period, settings, now)

    async def facts() -> tuple[list[ManagerFacts], int]:
        async with sessions() as session:
            people = await manager_facts(session, period, settings, now, daily=({}, {}))
            return people, await missed_total(session, period, settings)

    (contacts, missed), (people, missed_calls) = await asyncio.gather(series(), facts())
    for f in people:
        f.contacts = sum(contacts.get(f.employee_id, ()))
        f.missed = sum(missed.get(f.employee_id, ()))
    rows = [_row(f, period, settings) for f in people]
    zeros = [0] * len(period.days)
    contacts = {r.employee_id: contacts.get(r.employee_id, zeros) for r in rows if r.employee_id is not None}
    missed = {r.employee_id: missed.get(r.employee_id, zeros) for r in rows if r.employee_id is not None}
    return DashboardView(period, tuple(rows), _totals(rows, totals_label, missed_calls), tuple(period.days),
                         contacts, missed)


def cell_texts(cell: Cell, f: Formats) -> tuple[str, str, str]:
    """(fact, plan, %) of one cell as the page shows them: a count's plan pro-rated to the
    period is rounded (3 contacts, not 3.33)."""
    if kpi.KPI_UNITS[cell.kpi] == "%":
        return f.percent(cell.fact), f.percent(cell.plan), f.percent(cell.pct)
    return f.number(cell.fact), f.whole(cell.plan), f.percent(None if cell.pct is None else round(cell.pct))


def table_rows(view: DashboardView, query_string: str, f: Formats) -> list[dict[str, Any]]:
    """The dashboard table as display strings and drill links, computed once in Python."""
    out = []
    for row in view.rows:
        base = f"/dashboard/drill?employee={row.employee_id}&{query_string}&kpi="
        cells = []
        for cell in row.cells:
            tone = "" if cell.pct is None else ("below" if cell.pct < 100 else "above")
            cells.append((cell.kpi, *cell_texts(cell, f), tone, base + cell.kpi))
        out.append({"id": row.employee_id, "name": row.name, "cells": cells, "missed": row.missed,
                    "overdue": row.overdue, "missed_url": base + "missed", "overdue_url": base + "overdue"})
    return out


def table_body(rows: list[dict[str, Any]]) -> Markup:
    """The managers × KPIs rows as HTML, every value escaped here. Built in Python because
    200 managers are 3,000 cells: a Jinja loop per cell was most of the page's time."""
    parts: list[str] = []
    # figures, plans and KPI names repeat across rows: each distinct string escaped once
    seen: dict[str, Markup] = {}

    def esc(text: str) -> Markup:
        done = seen.get(text)
        if done is None:
            done = seen[text] = escape(text)
        return done

    for row in rows:
        parts.append(f'<tr data-employee="{int(row["id"])}"><th scope="row"><a href="/earnings?employee='
                     f'{int(row["id"])}">{escape(row["name"])}</a></th>')
        for k, fact, plan, pct, tone, url in row["cells"]:
            # the fact opens the rows behind it; a plan or a ratio has no rows of its own
            href = escape(url)
            shown = esc(fact) if fact == "—" else Markup(f'<a href="{href}">{esc(fact)}</a>')  # nothing to open
            parts.append(f'<td class="fact" data-kpi="{esc(k)}">{shown}</td>'
                         f'<td class="plan">{esc(plan)}</td>'
                         f'<td class="pct {esc(tone)}">{esc(pct)}</td>')
        parts.append(f'<td data-kpi="missed"><a href="{escape(row["missed_url"])}">{int(row["missed"])}</a></td>'
                     f'<td data-kpi="overdue"><a href="{escape(row["overdue_url"])}">{int(row["overdue"])}</a></td>'
                     "</tr>\n")
    return Markup("".join(parts))


def plan_inputs(rows: list[dict[str, Any]], plan_values: Mapping[tuple[int, str], str]) -> Markup:
    """The plan form's rows: one number input per manager and KPI, current plan filled in."""
    parts: list[str] = []
    for row in rows:
        name = escape(row["name"])
        parts.append(f'<tr><th scope="row">{name}</th>')
        for k in kpi.KPI_NAMES:
            value = escape(plan_values.get((row["id"], k), ""))
            parts.append(f'<td><input type="number" min="0" step="any" name="plan-{int(row["id"])}-{k}" '
                         f'value="{value}" aria-label="{name} {k}"></td>')
        parts.append("</tr>\n")
    return Markup("".join(parts))


def missed_grid(view: DashboardView, query_string: str) -> Markup:
    """Missed calls per manager (rows) and day (columns) as table rows; names escaped here."""
    parts: list[str] = []
    for row in view.rows:
        url = f"/dashboard/drill?employee={row.employee_id}&amp;{escape(query_string)}&amp;kpi=missed"
        parts.append(f'<tr><th scope="row"><a href="{url}">{escape(row.name)}</a></th>')
        parts.extend(f'<td class="hot">{int(n)}</td>' if n else "<td></td>"
                     for n in view.missed_per_day.get(row.employee_id or 0, ()))
        parts.append("</tr>")
    return Markup("".join(parts))


def bad_request(exc: ValueError) -> Refusal:
    """A 400 naming the field (the messages of a bad query start with ``field:``)."""
    message = str(exc)
    field = message.split(":", 1)[0] if ":" in message else None
    return Refusal(400, message, field=field)
