"""The audit trail on the dashboard as a person reads it: the moment in the company's time
and the user's format, the kind of record and the field in words, amounts and dates as the
user's language writes them. ``/api/audit`` keeps the stored rows as they are."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from callpop.kpi import KPI_LABELS
from callpop.server.error_text import FIELD_LABELS
from callpop.server.l10n import Formats

__all__ = ["ENTITY_LABELS", "VALUE_WORDS", "AuditLine", "present_audit"]

ENTITY_LABELS: dict[str, str] = {
    "payment": "Payment", "receivable": "Receivable", "agreement": "Agreement", "client": "Client",
    "plan": "Plan", "promise": "Promise",
}
# stored codes said in words (statuses of agreements and clients, who set a client's status)
VALUE_WORDS = ("open", "won", "lost", "regular", "new", "manual", "rule")
_MOMENTS = frozenset({"paid_at", "issued_at", "due_at", "settled_at"})
_AMOUNTS = frozenset({"amount"})


@dataclass(frozen=True, slots=True)
class AuditLine:
    at: str
    who: str | None
    what: str
    client_id: int | None
    field: str
    old: str
    new: str


def _value(field: str, value: str | None, f: Formats, say: Callable[[str], str], zone: ZoneInfo) -> str:
    if value is None or value == "":
        return "—"
    if field in _MOMENTS:
        try:
            when = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
        return f.moment(when.astimezone(zone) if when.tzinfo else when)
    if field in _AMOUNTS or _plan_field(field):
        try:
            number = Decimal(value)
        except InvalidOperation:
            return value
        return f.amount(number) if field in _AMOUNTS else f.number(float(number))
    return say(value) if value in VALUE_WORDS else value


def _plan_field(field: str) -> tuple[str, dt.date] | None:
    """A plan's trail row names its KPI and month: ``contacts 2026-03``."""
    kpi, _, month = field.partition(" ")
    if kpi not in KPI_LABELS:
        return None
    try:
        return kpi, dt.date.fromisoformat(f"{month}-01")
    except ValueError:
        return None


def _field(field: str, f: Formats, say: Callable[..., str]) -> str:
    plan = _plan_field(field)
    if plan is not None:
        return f"{say(KPI_LABELS[plan[0]])} · {f.month(plan[1])}"
    label = FIELD_LABELS.get(field)
    return say(label) if label else field


def present_audit(items: list[Mapping[str, Any]], f: Formats, say: Callable[..., str],
                  timezone: str) -> list[AuditLine]:
    zone = ZoneInfo(timezone)
    lines = []
    for item in items:
        at = dt.datetime.fromisoformat(item["at"])
        field = str(item["field"] or "")
        kind = ENTITY_LABELS.get(item["entity"])
        lines.append(AuditLine(
            at=f.moment(at.astimezone(zone) if at.tzinfo else at),
            who=item["employee_name"],
            what=f"{say(kind) if kind else item['entity']} {item['entity_id']}",
            client_id=item["client_id"],
            field=_field(field, f, say),
            old=_value(field, item["old"], f, say, zone),
            new=_value(field, item["new"], f, say, zone)))
    return lines
