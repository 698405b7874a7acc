"""What the earnings page tells a manager besides the figures: how far along each KPI is,
what the next step of the bonus scheme is and how much it takes to reach it, and why a KPI
pays nothing. Pure: an earnings line and the bonus settings in, words' ids and numbers out
(the page formats the numbers in the reader's language: ``100 %``, ``2,5``).

The steps of the linear scheme are its threshold (pay starts), its target (full weight) and
its cap (pay stops growing); of the levels scheme, each level's ``from_pct``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from callpop.kpi import KpiLine
from callpop.settings import BonusSettings

__all__ = ["MESSAGES", "Hint", "hint_for"]

# every message id a hint may carry (the catalogs must have them all)
MESSAGES = (
    "No plan is set for this month: it pays nothing until one is.",
    "No figures yet this month: it pays from %(step)s of the plan.",
    "The top of the scheme is reached: this KPI pays its most.",
    "One more contact to start earning (%(step)s of the plan)",
    "One more contact to reach the next step (%(step)s of the plan)",
    "%(n)s more contacts to start earning (%(step)s of the plan)",
    "%(n)s more contacts to reach the next step (%(step)s of the plan)",
    "%(n)s percentage points more to start earning (%(step)s of the plan)",
    "%(n)s percentage points more to reach the next step (%(step)s of the plan)",
)


@dataclass(frozen=True, slots=True)
class Hint:
    """``bar``: 0-100, how full the progress bar is (100 = the plan met); ``marks``: where
    the scheme's steps sit on it. ``message``/``params``: an English message id and its
    numbers (``step`` a percentage of the plan, ``n`` contacts or percentage points)."""

    bar: float
    marks: tuple[float, ...]
    message: str
    params: dict[str, float]
    tone: str  # "zero" | "growing" | "top"


def _steps(line: KpiLine, bonus: BonusSettings) -> list[float]:
    if bonus.scheme == "levels":
        return sorted(level.from_pct for level in bonus.levels if level.pay_pct > 0)
    rule = bonus.kpi[line.kpi]
    return sorted({rule.threshold, rule.target, rule.cap})


def hint_for(line: KpiLine, bonus: BonusSettings) -> Hint:
    ach = line.achievement
    steps = _steps(line, bonus)
    marks = tuple(min(step, 100.0) for step in steps if step <= 100.0)
    bar = 0.0 if ach is None else max(0.0, min(ach, 100.0))
    if line.plan is None or line.plan <= 0:
        return Hint(bar, marks, "No plan is set for this month: it pays nothing until one is.", {}, "zero")
    if line.fact is None or ach is None:
        return Hint(bar, marks, "No figures yet this month: it pays from %(step)s of the plan.",
                    {"step": steps[0] if steps else 0.0}, "zero")
    ahead = [step for step in steps if step > ach]
    if not ahead:
        return Hint(bar, marks, "The top of the scheme is reached: this KPI pays its most.", {}, "top")
    step = ahead[0]
    if line.kpi == "contacts":
        more = max(1, math.ceil(step * line.plan / 100.0 - line.fact - 1e-9))
        if more == 1:
            message = ("One more contact to start earning (%(step)s of the plan)" if line.money <= 0
                       else "One more contact to reach the next step (%(step)s of the plan)")
        else:
            message = ("%(n)s more contacts to start earning (%(step)s of the plan)" if line.money <= 0
                       else "%(n)s more contacts to reach the next step (%(step)s of the plan)")
        return Hint(bar, marks, message, {"n": more, "step": step}, "zero" if line.money <= 0 else "growing")
    points = math.ceil((step - ach) * 10) / 10
    message = ("%(n)s percentage points more to start earning (%(step)s of the plan)" if line.money <= 0
               else "%(n)s percentage points more to reach the next step (%(step)s of the plan)")
    return Hint(bar, marks, message, {"n": points, "step": step},
                "zero" if line.money <= 0 else "growing")
