"""The earnings page's hints: how many contacts to the next step, and why a KPI pays 0."""

from __future__ import annotations

from callpop.kpi import KpiLine
from callpop.kpi_motivation import hint_for
from callpop.settings import BonusSettings


def _line(kpi: str, fact: float | None, plan: float | None, money: float = 0.0) -> KpiLine:
    ach = None if fact is None or not plan else fact * 100 / plan
    return KpiLine(kpi, fact, plan, ach, 0.4, money, ach, money)


def test_contacts_below_the_threshold_say_how_many_more_start_paying() -> None:
    hint = hint_for(_line("contacts", 3, 10), BonusSettings())  # 30 %, pay starts at 50 %
    assert (hint.message, hint.params, hint.tone) == (
        "%(n)s more contacts to start earning (%(step)s of the plan)", {"n": 2, "step": 50.0}, "zero")
    assert hint.bar == 30


def test_contacts_paying_say_how_many_to_the_next_step() -> None:
    hint = hint_for(_line("contacts", 7, 10, money=5600), BonusSettings())
    assert hint.params == {"n": 3, "step": 100.0} and hint.tone == "growing"
    top = hint_for(_line("contacts", 20, 10, money=30000), BonusSettings())  # 200 %: above the cap
    assert top.tone == "top" and top.bar == 100


def test_a_kpi_without_a_plan_or_figures_says_why_it_pays_nothing() -> None:
    assert hint_for(_line("contacts", 5, None), BonusSettings()).message.startswith("No plan is set")
    assert hint_for(_line("win_rate", None, 40), BonusSettings()).message.startswith("No figures yet")
    points = hint_for(_line("win_rate", 10, 40), BonusSettings())  # 25 % of the plan, threshold 50 %
    assert points.params == {"n": 25.0, "step": 50.0}


def test_one_contact_to_go_is_said_in_the_singular() -> None:
    hint = hint_for(_line("contacts", 9, 10, money=5600), BonusSettings())  # 90 %: one more makes 100 %
    assert hint.message == "One more contact to reach the next step (%(step)s of the plan)"
