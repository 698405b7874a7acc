"""The audit trail of everything a bonus is computed from.

Payments and receivables (collections), agreements (win rate, and the regular-client
rule), a client's status and responsible manager (whose KPI a client counts for) and the
plans: each changed field becomes one ``audit_log`` row with who, when, where from, and
the old and new value as text. The change and its row are flushed in the same
transaction, so there is never a change without its trail. Supervisors read it through
``/api/audit`` and the dashboard. An import run writes one summary row (its counts, not
a row per line) and the regular-client rule one row per status it changes.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from callpop.store.errors import ValidationError
from callpop.store.models import AuditEntry, Employee, utcnow

__all__ = ["AUDITED", "changes_of", "list_changes", "record", "snapshot", "text_of"]

# What is audited per kind of record (the fields a KPI or the money depends on).
AUDITED: dict[str, tuple[str, ...]] = {
    "payment": ("client_id", "agreement_id", "amount", "currency", "paid_at"),
    "receivable": ("client_id", "agreement_id", "amount", "currency", "issued_at", "due_at", "settled_at"),
    "agreement": ("client_id", "status", "amount", "currency"),
    "client": ("status", "status_source", "responsible_id"),
}
# entities with trail rows but no per-field audit: plans, and promise imports
OTHER_ENTITIES = ("plan", "promise")
MAX_LIMIT = 500


def text_of(value: Any) -> str | None:
    """A value as the trail shows it: exact decimals, ISO times, None stays None."""
    if value is None:
        return None
    if isinstance(value, decimal.Decimal):
        return format(value.normalize() if value == value.to_integral() else value, "f")
    if isinstance(value, float):
        return format(decimal.Decimal(str(value)).normalize(), "f")
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


def changes_of(kind: str, before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The audited fields that differ (all of them, from None, for a new record)."""
    out: dict[str, tuple[Any, Any]] = {}
    for name in AUDITED[kind]:
        if name not in after:
            continue
        old = None if before is None else before.get(name)
        if text_of(old) != text_of(after[name]):
            out[name] = (old, after[name])
    return out


def record(session: AsyncSession, kind: str, entity_id: int | None, changes: Mapping[str, tuple[Any, Any]], *,
           employee_id: int | None, client_id: int | None, source: str = "api", at: dt.datetime | None = None) -> int:
    """Add one row per changed field (the caller flushes and commits with the change)."""
    when = at or utcnow()
    for name, (old, new) in changes.items():
        session.add(AuditEntry(at=when, employee_id=employee_id, source=source, entity=kind, entity_id=entity_id,
                               client_id=client_id, field=name, old=text_of(old), new=text_of(new)))
    return len(changes)


def snapshot(row: Any, kind: str) -> dict[str, Any]:
    return {name: getattr(row, name, None) for name in AUDITED[kind]}


async def list_changes(session: AsyncSession, query: Mapping[str, Any]) -> dict[str, Any]:
    """Newest first; filters: entity, entity_id, client_id, employee_id; limit (50), offset."""
    conditions: list[ColumnElement[bool]] = []
    for name in ("entity_id", "client_id", "employee_id"):
        raw = query.get(name)
        if raw not in (None, ""):
            if not str(raw).isdigit() or len(str(raw)) > 10:
                raise ValidationError(name, f"expected a whole number, got {str(raw)[:20]!r}")
            conditions.append(getattr(AuditEntry, name) == int(str(raw)))
    entity = query.get("entity")
    if entity not in (None, ""):
        if entity not in (*AUDITED, *OTHER_ENTITIES):
            raise ValidationError("entity", f"expected one of {', '.join((*AUDITED, *OTHER_ENTITIES))}")
        conditions.append(AuditEntry.entity == entity)
    limit, offset = _int(query, "limit", 50, MAX_LIMIT), _int(query, "offset", 0, 10**9)
    rows = (await session.execute(select(AuditEntry, Employee.name).outerjoin(Employee, Employee.id ==
                                                                               AuditEntry.employee_id)
                                  .where(*conditions).order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
                                  .limit(limit).offset(offset))).all()
    total = (await session.execute(select(func.count()).select_from(AuditEntry).where(*conditions))).scalar_one()
    return {"items": [_json(entry, name) for entry, name in rows], "total": total, "limit": limit, "offset": offset}


def _int(query: Mapping[str, Any], name: str, default: int, top: int) -> int:
    raw = query.get(name)
    if raw in (None, ""):
        return default
    if not str(raw).isdigit() or int(str(raw)) > top:
        raise ValidationError(name, f"expected a whole number from 0 to {top}, got {str(raw)[:20]!r}")
    return int(str(raw))


def _json(entry: AuditEntry, employee_name: str | None) -> dict[str, Any]:
    return {"id": entry.id, "at": entry.at.isoformat(), "employee_id": entry.employee_id,
            "employee_name": employee_name, "source": entry.source, "entity": entry.entity,
            "entity_id": entry.entity_id, "client_id": entry.client_id, "field": entry.field,
            "old": entry.old, "new": entry.new}

