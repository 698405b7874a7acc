"""Pure KPI maths: periods, working days, formulas and both bonus schemes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from pathlib import Path

import pytest

from callpop import kpi
from callpop.settings import BonusKpi, Settings
from callpop.settings_file import settings_from_mapping

RULE = BonusKpi(weight=0.4, threshold=50, target=100, accelerator=1.5, cap=150)


def test_periods_in_local_dates() -> None:
    today = dt.date(2026, 3, 18)  # a Wednesday
    assert kpi.parse_period("day", today) == kpi.Period("day", today, dt.date(2026, 3, 19))
    week = kpi.parse_period("week", today)
    assert (week.start, week.end) == (dt.date(2026, 3, 16), dt.date(2026, 3, 23))
    month = kpi.parse_period(None, today)
    assert (month.kind, month.start, month.end) == ("month", dt.date(2026, 3, 1), dt.date(2026, 4, 1))
    dec = kpi.parse_period("month", today, date="2026-12-05")
    assert (dec.start, dec.end) == (dt.date(2026, 12, 1), dt.date(2027, 1, 1))
    custom = kpi.parse_period("custom", today, start="2026-03-05", end="2026-03-07")
    assert len(custom.days) == 3 and custom.last == dt.date(2026, 3, 7)


@pytest.mark.parametrize(("kind", "kwargs", "field"), [
    ("year", {}, "period"),
    ("custom", {"start": "2026-03-05"}, "from"),
    ("custom", {"start": "2026-03-05", "end": "2026-03-01"}, "to"),
    ("custom", {"start": "2025-01-01", "end": "2026-12-31"}, "to"),
    ("day", {"date": "yesterday"}, "date"),
])
def test_bad_periods_name_the_field(kind: str, kwargs: dict[str, str], field: str) -> None:
    with pytest.raises(kpi.PeriodError, match=f"^{field}:"):
        kpi.parse_period(kind, dt.date(2026, 3, 1), **kwargs)


def test_period_bounds_are_local_midnights() -> None:
    start, end = kpi.parse_period("day", dt.date(2026, 3, 2)).bounds("Europe/Moscow")
    assert start == dt.datetime(2026, 3, 1, 21, tzinfo=dt.UTC)
    assert end == dt.datetime(2026, 3, 2, 21, tzinfo=dt.UTC)
    # across a DST change the day is 23 hours long
    s2, e2 = kpi.parse_period("day", dt.date(2026, 3, 29)).bounds("Europe/Berlin")
    assert e2 - s2 == dt.timedelta(hours=23)
    starts = kpi.local_day_starts(kpi.parse_period("week", dt.date(2026, 3, 29)), "Europe/Berlin")
    assert len(starts) == 8 and starts[-1] - starts[0] == dt.timedelta(days=7, hours=-1)


def test_working_days_and_month_progress() -> None:
    weekdays = (1, 2, 3, 4, 5)
    assert kpi.working_days_between(dt.date(2026, 3, 1), dt.date(2026, 4, 1), weekdays) == 22
    assert kpi.working_days_between(dt.date(2026, 3, 7), dt.date(2026, 3, 9), weekdays) == 0  # a weekend
    assert kpi.working_days_between(dt.date(2026, 3, 1), dt.date(2026, 4, 1), (1, 2, 3, 4, 5, 6)) == 26
    assert kpi.month_progress(dt.date(2026, 3, 16), weekdays) == (11, 22)
    assert kpi.month_progress(dt.date(2026, 3, 1), weekdays) == (0, 22)  # Sunday the 1st


def test_period_plan_prorates_cumulative_kpis_by_working_days() -> None:
    weekdays = (1, 2, 3, 4, 5)
    plans = {dt.date(2026, 3, 1): 220.0, dt.date(2026, 4, 1): 110.0}
    week = kpi.parse_period("week", dt.date(2026, 3, 18))  # 5 of March's 22 working days
    assert kpi.period_plan("contacts", week, plans, weekdays) == pytest.approx(50.0)
    # 30 March - 3 April: 2 March days (2/22 of 220) + 3 April days (3/22 of 110)
    span = kpi.parse_period("custom", dt.date(2026, 3, 1), start="2026-03-30", end="2026-04-03")
    assert kpi.period_plan("contacts", span, plans, weekdays) == pytest.approx(20 + 15)
    assert kpi.period_plan("win_rate", week, {dt.date(2026, 3, 1): 40.0}, weekdays) == 40.0
    assert kpi.period_plan("contacts", week, {}, weekdays) is None


def test_kpi_formulas_on_hand_computed_examples() -> None:
    assert kpi.collections_pct(450_000, 1_000_000) == pytest.approx(45.0)
    assert kpi.collections_pct(10, 0) is None  # nothing was owed: no figure, not infinity
    assert kpi.win_rate_pct(9, 6) == pytest.approx(60.0)
    assert kpi.win_rate_pct(0, 0) is None
    assert kpi.new_vs_regular_pct(3, 25) == pytest.approx(12.0)
    assert kpi.new_vs_regular_pct(3, 0) is None
    assert kpi.achievement(110, 200) == pytest.approx(55.0)
    assert kpi.achievement(5, 0) is None and kpi.achievement(None, 10) is None


def test_linear_scheme_at_threshold_target_accelerator_and_cap() -> None:
    assert kpi.linear_share(49.99, RULE) == 0.0
    assert kpi.linear_share(50, RULE) == pytest.approx(0.5)
    assert kpi.linear_share(80, RULE) == pytest.approx(0.8)
    assert kpi.linear_share(100, RULE) == pytest.approx(1.0)
    assert kpi.linear_share(110, RULE) == pytest.approx(1.15)  # 10 points above x 1.5
    assert kpi.linear_share(133.3, RULE) == pytest.approx(1.4995)
    assert kpi.linear_share(134, RULE) == pytest.approx(1.5)  # capped at 150 %
    assert kpi.linear_share(500, RULE) == pytest.approx(1.5)
    assert kpi.linear_share(None, RULE) == 0.0


def test_money_per_kpi_under_both_schemes(settings: Settings) -> None:
    bonus = settings.bonus  # base 50 000, contacts weight 0.4
    assert kpi.kpi_money("contacts", 110, bonus) == 23000.0
    levels = dataclasses.replace(bonus, scheme="levels")
    assert kpi.kpi_money("contacts", 69.9, levels) == 0.0       # unacceptable
    assert kpi.kpi_money("contacts", 70, levels) == 10000.0     # low: 50 % of 20 000
    assert kpi.kpi_money("contacts", 100, levels) == 20000.0    # plan
    assert kpi.kpi_money("contacts", 120, levels) == 26000.0    # excellent: 130 %
    assert kpi.level_for(None, levels.levels) is None


def test_levels_come_from_settings() -> None:
    s = settings_from_mapping({"bonus": {"scheme": "levels", "base": 1000,
                                         "levels": {"zero": {"from": 0, "pay": 0},
                                                    "half": {"from": 90, "pay": 50}}}}, environ={})
    assert kpi.kpi_money("win_rate", 95, s.bonus) == 1000 * 0.2 * 0.5
    assert kpi.kpi_money("win_rate", 89, s.bonus) == 0.0


def _doc_example() -> dict[str, float]:
    text = (Path(__file__).resolve().parents[1] / "docs" / "kpi.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- worked-example (.*?) -->", text)
    assert match, "docs/kpi.md lost its worked-example marker"
    return {k: float(v) for k, v in (pair.split("=") for pair in match.group(1).split())}


def test_the_worked_example_in_the_docs(settings: Settings) -> None:
    doc = _doc_example()
    facts = {"contacts": 110.0, "collections": kpi.collections_pct(450_000, 1_000_000),
             "win_rate": kpi.win_rate_pct(9, 6), "new_vs_regular": kpi.new_vs_regular_pct(3, 25)}
    plans = {"contacts": 200.0, "collections": 60.0, "win_rate": 40.0, "new_vs_regular": 20.0}
    elapsed, total = kpi.month_progress(dt.date(2026, 3, 16), settings.kpi.working_days)
    linear = kpi.earnings(facts, plans, settings.bonus, elapsed, total)
    money = {line.kpi: line.money for line in linear.lines}
    assert money == {"contacts": doc["contacts"], "collections": doc["collections"],
                     "win_rate": doc["win_rate"], "new_vs_regular": doc["new_vs_regular"]}
    assert (linear.earned, linear.projection) == (doc["earned"], doc["projection"])
    levels = kpi.earnings(facts, plans, dataclasses.replace(settings.bonus, scheme="levels"), elapsed, total)
    assert levels.earned == doc["levels_earned"]
    assert [line.level for line in levels.lines] == ["unacceptable", "low", "excellent", "unacceptable"]
