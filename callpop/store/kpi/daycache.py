"""Per-day series of the dashboard, with the days that can no longer change remembered.

Counting a month of contacts per manager and day is the dashboard's one big scan. A local
day is **closed** once ``CLOSED_AFTER`` has passed since it ended: every call that started
on it has ended and been logged by then (contacts and missed calls are dated by the call's
start, and written when the call ends). Closed days are kept in memory per database and
time zone for ``TTL`` seconds, so a dashboard request scans only the days still open —
usually today — plus, once, the closed days it has not seen. Open days are always read
fresh, so a counted contact shows on the next refresh.

What can make a remembered day wrong: deleting a client (its contacts go with it) or
writing contacts for old calls by hand; both are corrected within ``TTL``.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from callpop import kpi
from callpop.settings import Settings
from callpop.store.kpi.queries import per_day_series

__all__ = ["CLOSED_AFTER", "TTL", "clear", "dashboard_series"]

CLOSED_AFTER = dt.timedelta(hours=6)
TTL = 600.0
MAX_ENTRIES = 20_000  # days x (database, zone) pairs; far above a year for a few databases

Series = dict[int, list[int]]


@dataclass(frozen=True, slots=True)
class _Day:
    contacts: dict[int, int]
    missed: dict[int, int]
    stored: float


_cache: dict[tuple[str, str, dt.date], _Day] = {}


def clear() -> None:
    """Forget every remembered day (tests; after a bulk correction of old data)."""
    _cache.clear()


def _fresh(key: tuple[str, str, dt.date], clock: float) -> _Day | None:
    day = _cache.get(key)
    if day is None or clock - day.stored > TTL:
        return None
    return day


async def dashboard_series(session: AsyncSession, period: kpi.Period, settings: Settings, now: dt.datetime,
                           *, employee_ids: Collection[int] | None = None) -> tuple[Series, Series]:
    """(counted contacts, missed calls) per employee per local day, like ``per_day_series``
    for everyone, reading from the database only the days not remembered."""
    tz = settings.kpi.timezone
    url = session.get_bind().engine.url.render_as_string(hide_password=True)
    clock = time.monotonic()
    days = period.days
    starts = kpi.local_day_starts(period, tz)
    closed = [starts[i + 1] + CLOSED_AFTER <= now for i in range(len(days))]
    known = [_fresh((url, tz, d), clock) if closed[i] else None for i, d in enumerate(days)]
    missing = [i for i, k in enumerate(known) if k is None]
    contacts: Series = {}
    missed: Series = {}
    if missing:
        first, last = missing[0], missing[-1]
        span = kpi.Period("custom", days[first], days[last] + dt.timedelta(days=1))
        got_c, got_m = await per_day_series(session, span, settings, None)
        for i in range(first, last + 1):
            day_c = {emp: s[i - first] for emp, s in got_c.items() if s[i - first]}
            day_m = {emp: s[i - first] for emp, s in got_m.items() if s[i - first]}
            if known[i] is None:
                fresh = _Day(day_c, day_m, clock)
                known[i] = fresh
                if closed[i] and len(_cache) < MAX_ENTRIES:
                    _cache[(url, tz, days[i])] = fresh
    wanted = None if employee_ids is None else set(employee_ids)
    width = len(days)
    # 200 managers x 31 days x 2 counts per request: one list per employee, made once
    for i, day in enumerate(known):
        if day is None:  # pragma: no cover - every day is either remembered or was just read
            continue
        for source, target in ((day.contacts, contacts), (day.missed, missed)):
            for emp, n in source.items():
                series = target.get(emp)
                if series is None:
                    if wanted is not None and emp not in wanted:
                        continue
                    series = target[emp] = [0] * width
                series[i] = n
    return contacts, missed
