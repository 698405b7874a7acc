"""Pure KPI and bonus maths: no I/O, so every figure can be checked from data alone.

Periods are calendar days in ``kpi.timezone``; a period is ``[start, end)`` of local dates.
The four KPIs (docs/kpi.md has the full definitions):

``contacts``        counted contacts with regular clients (a count);
``collections``     payments received in the period as % of receivables outstanding at its start;
``win_rate``        agreements won / (won + lost) closed in the period, %;
``new_vs_regular``  new clients / regular clients, %.

Plans are monthly. ``contacts`` and ``collections`` accumulate through the month, so their
plan for a shorter period (and the projection) is pro-rated by working days; the two ratios
are compared with the month's plan as they are.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from callpop.settings import BonusKpi, BonusLevel, BonusSettings
from callpop.store.errors import StoreError

__all__ = [
    "CUMULATIVE",
    "KPI_LABELS",
    "KPI_NAMES",
    "KPI_UNITS",
    "PERIOD_LABELS",
    "Earnings",
    "KpiLine",
    "Period",
    "PeriodError",
    "achievement",
    "collections_pct",
    "earnings",
    "kpi_money",
    "level_for",
    "linear_share",
    "local_day_starts",
    "month_progress",
    "month_start",
    "new_vs_regular_pct",
    "next_month",
    "parse_period",
    "period_plan",
    "ratio_pct",
    "win_rate_pct",
    "working_days_between",
]

KPI_NAMES = ("contacts", "collections", "win_rate", "new_vs_regular")
KPI_UNITS = {"contacts": "", "collections": "%", "win_rate": "%", "new_vs_regular": "%"}
# What the pages call them (English message ids; the UI translates them).
KPI_LABELS = {"contacts": "Contacts with regular clients", "collections": "Collections",
              "win_rate": "Win rate", "new_vs_regular": "New to regular clients",
              "missed": "Missed calls", "overdue": "Overdue promises"}
PERIOD_LABELS = {"day": "Day", "week": "Week", "month": "Month", "custom": "Custom range"}
CUMULATIVE = frozenset({"contacts", "collections"})
PERIOD_KINDS = ("day", "week", "month", "custom")
MAX_PERIOD_DAYS = 366


class PeriodError(StoreError, ValueError):
    """A period the dashboard cannot show; the message names the field."""


# --- periods ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Period:
    """Local dates ``[start, end)``; ``kind`` is how the user picked it."""

    kind: str
    start: dt.date
    end: dt.date

    @property
    def last(self) -> dt.date:
        """The last day inside the period (what a person calls "to")."""
        return self.end - dt.timedelta(days=1)

    @property
    def days(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=i) for i in range((self.end - self.start).days)]

    def bounds(self, timezone: str) -> tuple[dt.datetime, dt.datetime]:
        """UTC instants of local midnight at start and end."""
        tz = ZoneInfo(timezone)
        return (dt.datetime.combine(self.start, dt.time(), tz).astimezone(dt.UTC),
                dt.datetime.combine(self.end, dt.time(), tz).astimezone(dt.UTC))

    @property
    def label(self) -> str:
        if self.kind == "day" or self.end - self.start == dt.timedelta(days=1):
            return self.start.isoformat()
        return f"{self.start.isoformat()} – {self.last.isoformat()}"


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def next_month(day: dt.date) -> dt.date:
    return dt.date(day.year + (day.month == 12), day.month % 12 + 1, 1)


def _date(field: str, value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise PeriodError(f"{field}: expected a date like 2026-03-01, found {value!r}") from None


def parse_period(kind: str | None, today: dt.date, *, date: str | None = None,
                 start: str | None = None, end: str | None = None) -> Period:
    """The period a picker asked for: day/week/month around *date* (default *today*), or a
    custom inclusive range *start*..*end*. Weeks start on Monday."""
    kind = kind or "month"
    if kind not in PERIOD_KINDS:
        raise PeriodError(f"period: expected one of {', '.join(PERIOD_KINDS)}, found {kind!r}")
    if kind == "custom":
        if not start or not end:
            raise PeriodError("from: a custom period needs both from and to dates")
        first, last = _date("from", start), _date("to", end)
        if last < first:
            raise PeriodError("to: must not be before from")
        if (last - first).days >= MAX_PERIOD_DAYS:
            raise PeriodError(f"to: a custom period is at most {MAX_PERIOD_DAYS} days")
        return Period("custom", first, last + dt.timedelta(days=1))
    anchor = _date("date", date) if date else today
    if kind == "day":
        return Period("day", anchor, anchor + dt.timedelta(days=1))
    if kind == "week":
        monday = anchor - dt.timedelta(days=anchor.weekday())
        return Period("week", monday, monday + dt.timedelta(days=7))
    first = month_start(anchor)
    return Period("month", first, next_month(first))


def local_day_starts(period: Period, timezone: str) -> list[dt.datetime]:
    """UTC instants of each local midnight from start to end inclusive (len = days + 1)."""
    tz = ZoneInfo(timezone)
    return [dt.datetime.combine(period.start + dt.timedelta(days=i), dt.time(), tz).astimezone(dt.UTC)
            for i in range((period.end - period.start).days + 1)]


@functools.lru_cache(maxsize=1024)  # the dashboard asks the same few spans for every manager
def working_days_between(start: dt.date, end: dt.date, working_days: tuple[int, ...]) -> int:
    """Working days in ``[start, end)``; *working_days* are ISO weekdays (1 = Monday)."""
    days = (end - start).days
    if days <= 0:
        return 0
    weeks, rest = divmod(days, 7)
    count = weeks * len(set(working_days))
    for i in range(rest):
        if (start + dt.timedelta(days=weeks * 7 + i)).isoweekday() in working_days:
            count += 1
    return count


def month_progress(today: dt.date, working_days: tuple[int, ...]) -> tuple[int, int]:
    """(working days elapsed including today, working days in the month) for *today*'s month."""
    first = month_start(today)
    total = working_days_between(first, next_month(first), working_days)
    elapsed = working_days_between(first, today + dt.timedelta(days=1), working_days)
    return elapsed, total


def period_plan(kpi: str, period: Period, monthly: Mapping[dt.date, float],
                working_days: tuple[int, ...]) -> float | None:
    """The plan for *period* from monthly plans (keys: first day of month).

    Cumulative KPIs: each month's plan times the share of its working days inside the
    period, summed. Ratios: the plan of the month the period starts in."""
    if kpi not in CUMULATIVE:
        return monthly.get(month_start(period.start))
    total = 0.0
    found = False
    month = month_start(period.start)
    while month < period.end:
        following = next_month(month)
        plan = monthly.get(month)
        if plan is not None:
            found = True
            inside = working_days_between(max(month, period.start), min(following, period.end), working_days)
            in_month = working_days_between(month, following, working_days)
            if in_month:
                total += plan * inside / in_month
        month = following
    return total if found else None


# --- the four KPIs ----------------------------------------------------------------------

def ratio_pct(numerator: float, denominator: float) -> float | None:
    """numerator / denominator in %, or None when there is nothing to divide by."""
    if denominator <= 0:
        return None
    return numerator * 100.0 / denominator


def collections_pct(paid: float, outstanding_at_start: float) -> float | None:
    return ratio_pct(paid, outstanding_at_start)


def win_rate_pct(won: int, lost: int) -> float | None:
    return ratio_pct(won, won + lost)


def new_vs_regular_pct(new: int, regular: int) -> float | None:
    return ratio_pct(new, regular)


def achievement(fact: float | None, plan: float | None) -> float | None:
    """Fact as % of plan; None when there is no (positive) plan or no fact."""
    if fact is None or plan is None or plan <= 0:
        return None
    return fact * 100.0 / plan


# --- bonus schemes ----------------------------------------------------------------------

def linear_share(ach: float | None, rule: BonusKpi) -> float:
    """Share of the KPI's weight money the linear scheme pays at achievement *ach* (%).

    Below the threshold: 0. From the threshold to the target: ach / target (so 80 % of
    plan pays 80 % of the weight). Above the target each extra point pays *accelerator*
    times as much: 1 + accelerator * (ach - target) / target. Never above cap / 100."""
    if ach is None or ach < rule.threshold or rule.target <= 0:
        return 0.0
    if ach <= rule.target:
        share = ach / rule.target
    else:
        share = 1.0 + rule.accelerator * (ach - rule.target) / rule.target
    return min(share, rule.cap / 100.0)


def level_for(ach: float | None, levels: tuple[BonusLevel, ...]) -> BonusLevel | None:
    """The highest level whose ``from_pct`` the achievement reaches."""
    if ach is None:
        return None
    reached = [lv for lv in sorted(levels, key=lambda lv: lv.from_pct) if ach >= lv.from_pct]
    return reached[-1] if reached else None


def kpi_money(kpi: str, ach: float | None, bonus: BonusSettings) -> float:
    """Money one KPI brings: base * weight * share (linear) or * level pay % (levels)."""
    rule = bonus.kpi[kpi]
    if bonus.scheme == "levels":
        level = level_for(ach, bonus.levels)
        share = level.pay_pct / 100.0 if level else 0.0
    else:
        share = linear_share(ach, rule)
    return round(bonus.base * rule.weight * share, 2)


@dataclass(frozen=True, slots=True)
class KpiLine:
    """One row of "how much have I earned"."""

    kpi: str
    fact: float | None
    plan: float | None
    achievement: float | None
    weight: float
    money: float
    projected_achievement: float | None
    projected_money: float
    level: str | None = None


@dataclass(frozen=True, slots=True)
class Earnings:
    lines: tuple[KpiLine, ...]
    earned: float
    projection: float
    base: float
    currency: str
    scheme: str
    elapsed_days: int
    total_days: int

    def to_json(self) -> dict[str, object]:
        return {
            "scheme": self.scheme, "base": self.base, "currency": self.currency,
            "earned": self.earned, "projection": self.projection,
            "working_days": {"elapsed": self.elapsed_days, "total": self.total_days},
            "kpis": [{"kpi": ln.kpi, "fact": _r(ln.fact), "plan": _r(ln.plan),
                      "achievement": _r(ln.achievement), "weight": ln.weight, "money": ln.money,
                      "projected_achievement": _r(ln.projected_achievement),
                      "projected_money": ln.projected_money, "level": ln.level} for ln in self.lines],
        }


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def earnings(facts: Mapping[str, float | None], plans: Mapping[str, float | None], bonus: BonusSettings,
             elapsed_days: int, total_days: int) -> Earnings:
    """Earned so far (month-to-date fact against the whole month's plan) and the projection
    (the same fact against the plan pro-rated by working days elapsed; ratios unchanged)."""
    lines = []
    for kpi in KPI_NAMES:
        fact, plan = facts.get(kpi), plans.get(kpi)
        ach = achievement(fact, plan)
        if kpi in CUMULATIVE and plan is not None and total_days > 0:
            prorated: float | None = plan * max(elapsed_days, 1) / total_days
        else:
            prorated = plan
        proj = achievement(fact, prorated)
        level = level_for(ach, bonus.levels) if bonus.scheme == "levels" else None
        lines.append(KpiLine(kpi=kpi, fact=fact, plan=plan, achievement=ach, weight=bonus.kpi[kpi].weight,
                             money=kpi_money(kpi, ach, bonus), projected_achievement=proj,
                             projected_money=kpi_money(kpi, proj, bonus),
                             level=level.name if level else None))
    return Earnings(lines=tuple(lines), earned=round(sum(ln.money for ln in lines), 2),
                    projection=round(sum(ln.projected_money for ln in lines), 2), base=bonus.base,
                    currency=bonus.currency, scheme=bonus.scheme, elapsed_days=elapsed_days,
                    total_days=total_days)
