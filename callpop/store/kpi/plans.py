"""Monthly KPI plans: what a supervisor expects of each manager, per KPI and month.

Input comes from a form or the API, so everything is validated here and refused with a
``PlanError`` naming the field; the web layer turns that into a 400. A target left empty
(None) removes the plan, so "no plan" is never confused with "plan of 0".
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from callpop.kpi import KPI_NAMES
from callpop.store.errors import StoreError
from callpop.store.models import Employee, Plan

__all__ = ["MAX_TARGET", "PlanError", "PlanItem", "list_plans", "parse_items", "parse_month", "save_plans"]

MAX_TARGET = 1_000_000_000.0
MAX_ITEMS = 5000


class PlanError(StoreError, ValueError):
    """Bad plan input; the message starts with the field's name."""


@dataclass(frozen=True, slots=True)
class PlanItem:
    employee_id: int
    kpi: str
    target: float | None

    def to_json(self) -> dict[str, Any]:
        return {"employee_id": self.employee_id, "kpi": self.kpi, "target": self.target}


def parse_month(value: object) -> dt.date:
    """``2026-03`` or ``2026-03-01`` -> 2026-03-01."""
    text = str(value or "").strip()
    try:
        if len(text) == 7:
            return dt.date.fromisoformat(text + "-01")
        return dt.date.fromisoformat(text).replace(day=1)
    except ValueError:
        raise PlanError(f"month: expected a month like 2026-03, found {text[:40]!r}") from None


def _target(field: str, value: object) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise PlanError(f"{field}: expected a number, found {value!r}")
    try:
        number = float(str(value).strip().replace(",", ".")) if isinstance(value, str) else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise PlanError(f"{field}: expected a number, found {str(value)[:40]!r}") from None
    if not math.isfinite(number) or number < 0 or number > MAX_TARGET:
        raise PlanError(f"{field}: expected a number from 0 to {MAX_TARGET:.0f}, found {str(value)[:40]!r}")
    return round(number, 2)


def parse_items(raw: object) -> list[PlanItem]:
    """A list of ``{"employee_id", "kpi", "target"}`` objects, validated."""
    if not isinstance(raw, list):
        raise PlanError("plans: expected a list of {employee_id, kpi, target}")
    if len(raw) > MAX_ITEMS:
        raise PlanError(f"plans: at most {MAX_ITEMS} items per request")
    items: list[PlanItem] = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, Mapping):
            raise PlanError(f"plans[{i}]: expected an object")
        emp = entry.get("employee_id")
        if isinstance(emp, bool) or not isinstance(emp, int) or emp <= 0:
            raise PlanError(f"plans[{i}].employee_id: expected a positive whole number, found {emp!r}")
        name = entry.get("kpi")
        if name not in KPI_NAMES:
            raise PlanError(f"plans[{i}].kpi: expected one of {', '.join(KPI_NAMES)}, found {str(name)[:40]!r}")
        items.append(PlanItem(emp, str(name), _target(f"plans[{i}].target", entry.get("target"))))
    return items


async def list_plans(session: AsyncSession, month: dt.date) -> list[PlanItem]:
    rows = await session.execute(
        select(Plan.employee_id, Plan.kpi, Plan.target).where(Plan.month == month)
        .order_by(Plan.employee_id, Plan.kpi))
    return [PlanItem(int(emp), str(name), float(target)) for emp, name, target in rows]


async def save_plans(session: AsyncSession, month: dt.date, items: Iterable[PlanItem]) -> int:
    """Insert, update or (target None) delete plans of *month*; returns rows changed.

    Unknown employees are refused before anything is written. The caller commits."""
    items = list(items)
    wanted = {item.employee_id for item in items}
    if wanted:
        known = set((await session.execute(select(Employee.id).where(Employee.id.in_(wanted)))).scalars())
        missing = sorted(wanted - known)
        if missing:
            raise PlanError(f"employee_id: no employee {missing[0]}")
    existing = {(p.employee_id, p.kpi): p for p in (await session.execute(
        select(Plan).where(Plan.month == month, Plan.employee_id.in_(wanted)))).scalars()}
    changed = 0
    for item in items:
        row = existing.get((item.employee_id, item.kpi))
        if item.target is None:
            if row is not None:
                await session.delete(row)
                existing.pop((item.employee_id, item.kpi))
                changed += 1
            continue
        target = Decimal(str(item.target))
        if row is None:
            row = Plan(employee_id=item.employee_id, month=month, kpi=item.kpi, target=target)
            session.add(row)
            existing[(item.employee_id, item.kpi)] = row
            changed += 1
        elif row.target != target:
            row.target = target
            changed += 1
    await session.flush()
    return changed
