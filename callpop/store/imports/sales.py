"""Agreements, promises, payments and receivables files: one record per line, each keyed by
its own external id (a line without one gets a key made from its content, so the same file
imported twice still changes nothing), attached to a client by the client's code or name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from callpop.store.imports.base import (
    ChunkResult,
    ImportContext,
    LineProblem,
    bulk_insert,
    bulk_update,
    content_key,
    resolve_clients,
)
from callpop.store.imports.csvfields import (
    AGREEMENT_STATUSES,
    PROMISE_STATUSES,
    LineError,
    parse_amount,
    parse_currency,
    parse_moment,
    parse_status,
    text_field,
)
from callpop.store.imports.csvread import Row
from callpop.store.models import Agreement, Payment, Promise, Receivable

__all__ = ["RECORD_KINDS", "RecordKind", "RecordLine", "store_records"]

Model = type[Agreement] | type[Promise] | type[Payment] | type[Receivable]


@dataclass(slots=True)
class RecordLine:
    line: int
    key: str
    external_id: str
    client_ref: str
    agreement_ref: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)  # written on insert and update
    defaults: dict[str, Any] = field(default_factory=dict)  # written on insert only
    soft: dict[str, Any] = field(default_factory=dict)  # fill a stored None, never overwrite
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RecordKind:
    model: Model
    parse: Callable[[Row, ImportContext], RecordLine]
    # whether the client's regular status may change (paid agreements decide it)
    recompute_status: bool


def _start(row: Row, ctx: ImportContext, kind: str, content: tuple[object, ...]) -> RecordLine:
    client = text_field(row.values, "client", limit=300, required=True)
    assert client is not None
    external_id = text_field(row.values, "external_id", limit=100)
    if not external_id:
        base = content_key(kind, (client, *content), 1)
        external_id = content_key(kind, (client, *content), ctx.occurrence(base))
    return RecordLine(row.line, f"code:{external_id}", external_id, client)


def _made_by(line: RecordLine, row: Row, ctx: ImportContext, column: str = "made_by_id") -> None:
    who = row.values.get("made_by", "").strip()
    if not who:
        return
    emp = ctx.employee(who)
    if emp is None:
        line.warnings.append(f"made by {who!r} is not an employee: left empty")
    else:
        line.fields[column] = emp


def _moment(row: Row, ctx: ImportContext, name: str, *, end_of_day: bool = False) -> Any:
    text = row.values.get(name)
    return parse_moment(text, name, ctx.zone, end_of_day=end_of_day) if text else None


def _amount(row: Row, *, required: bool, positive: bool = False) -> Decimal | None:
    text = row.values.get("amount")
    if not text:
        if required:
            raise LineError("empty amount")
        return None
    amount = parse_amount(text)
    if positive and amount == 0:
        raise LineError(f"amount {text!r} must be more than 0")
    return amount


def parse_agreement(row: Row, ctx: ImportContext) -> RecordLine:
    v = row.values
    title = text_field(v, "title", limit=300, required=True)
    terms = text_field(v, "terms", limit=20000)
    amount = _amount(row, required=False)
    status = parse_status(v.get("status"), AGREEMENT_STATUSES, "status", "") or None
    created, closed = _moment(row, ctx, "created"), _moment(row, ctx, "closed")
    currency = parse_currency(v.get("currency"))
    line = _start(row, ctx, "agreements", (title, amount, v.get("created")))
    line.fields.update({"title": title, "currency": currency})
    line.defaults.update({"status": "open", "created_at": ctx.now})
    for name, value in (("terms", terms), ("amount", amount), ("status", status), ("created_at", created),
                        ("closed_at", closed)):
        if value is not None:
            line.fields[name] = value
    if status in ("won", "lost", "cancelled") and closed is None:
        line.soft["closed_at"] = created or ctx.now
    _made_by(line, row, ctx)
    return line


def parse_promise(row: Row, ctx: ImportContext) -> RecordLine:
    v = row.values
    text = text_field(v, "text", limit=5000, required=True)
    due = _moment(row, ctx, "due", end_of_day=True)
    status = parse_status(v.get("status"), PROMISE_STATUSES, "status", "") or None
    created, closed = _moment(row, ctx, "created"), _moment(row, ctx, "closed")
    line = _start(row, ctx, "promises", (text, v.get("due"), v.get("created")))
    line.fields["text"] = text
    line.defaults.update({"status": "open", "created_at": ctx.now})
    for name, value in (("due_at", due), ("status", status), ("created_at", created), ("closed_at", closed)):
        if value is not None:
            line.fields[name] = value
    if status in ("kept", "broken", "cancelled") and closed is None:
        line.soft["closed_at"] = min(due, ctx.now) if due else ctx.now
    _made_by(line, row, ctx)
    return line


def parse_payment(row: Row, ctx: ImportContext) -> RecordLine:
    v = row.values
    amount = _amount(row, required=True, positive=True)
    paid = _moment(row, ctx, "paid")
    if paid is None:
        raise LineError("empty paid (payment date)")
    currency = parse_currency(v.get("currency"))
    agreement = text_field(v, "agreement", limit=100)
    line = _start(row, ctx, "payments", (agreement, amount, v.get("paid")))
    line.agreement_ref = agreement
    line.fields.update({"amount": amount, "currency": currency, "paid_at": paid})
    line.defaults["created_at"] = ctx.now
    return line


def parse_receivable(row: Row, ctx: ImportContext) -> RecordLine:
    v = row.values
    amount = _amount(row, required=True, positive=True)
    issued = _moment(row, ctx, "issued")
    if issued is None:
        raise LineError("empty issued (date the money became due)")
    due, settled = _moment(row, ctx, "due", end_of_day=True), _moment(row, ctx, "settled")
    if settled is not None and settled < issued:
        raise LineError(f"settled {v.get('settled')!r} is before issued {v.get('issued')!r}")
    currency = parse_currency(v.get("currency"))
    agreement = text_field(v, "agreement", limit=100)
    line = _start(row, ctx, "receivables", (agreement, amount, v.get("issued")))
    line.agreement_ref = agreement
    line.fields.update({"amount": amount, "currency": currency, "issued_at": issued})
    for name, value in (("due_at", due), ("settled_at", settled)):
        if value is not None:
            line.fields[name] = value
    return line


RECORD_KINDS: dict[str, RecordKind] = {
    "agreements": RecordKind(Agreement, parse_agreement, recompute_status=True),
    "promises": RecordKind(Promise, parse_promise, recompute_status=False),
    "payments": RecordKind(Payment, parse_payment, recompute_status=True),
    "receivables": RecordKind(Receivable, parse_receivable, recompute_status=False),
}


async def _agreements(session: AsyncSession, refs: set[str]) -> dict[str, tuple[int, int]]:
    """Agreement code → (agreement id, client id)."""
    if not refs:
        return {}
    rows = (await session.execute(select(Agreement.external_id, Agreement.id, Agreement.client_id)
                                  .where(Agreement.external_id.in_(sorted(refs))))).all()
    return {ext: (aid, cid) for ext, aid, cid in rows if ext is not None}


async def store_records(session: AsyncSession, kind: RecordKind, lines: list[RecordLine],
                        ctx: ImportContext) -> ChunkResult:
    """Upsert one chunk with a fixed number of reads (clients, agreements, existing rows)."""
    result = ChunkResult()
    model = kind.model
    clients = await resolve_clients(session, ctx, {ln.client_ref for ln in lines}, result)
    agreements = await _agreements(session, {ln.agreement_ref for ln in lines if ln.agreement_ref})
    columns = sorted({"client_id", *(name for ln in lines for name in (*ln.fields, *ln.soft))}
                     | ({"agreement_id"} if hasattr(model, "agreement_id") else set()))
    existing = {row.external_id: row for row in (await session.execute(
        select(model.id, model.external_id, *(getattr(model, c) for c in columns))
        .where(model.external_id.in_([ln.external_id for ln in lines])))).all()}
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for ln in lines:
        client_id = clients.get(ln.client_ref)
        if not isinstance(client_id, int):
            result.errors.append(LineProblem(ln.line, str(client_id)))
            continue
        warnings = list(ln.warnings)
        values = {**ln.fields, "client_id": client_id}
        if ln.agreement_ref:
            found = agreements.get(ln.agreement_ref)
            if found is None:
                warnings.append(f"unknown agreement {ln.agreement_ref!r}: stored without it")
            elif found[1] != client_id:
                warnings.append(f"agreement {ln.agreement_ref!r} belongs to another client: stored without it")
            else:
                values["agreement_id"] = found[0]
        result.warnings += [LineProblem(ln.line, w) for w in warnings]
        current = existing.get(ln.external_id)
        if current is None:
            inserts.append({**ln.defaults, **ln.soft, **values, "external_id": ln.external_id})
            result.imported += 1
            result.touched_clients.add(client_id)
            continue
        current_values = current._mapping
        changes = {k: v for k, v in values.items() if current_values[k] != v}
        changes.update({k: v for k, v in ln.soft.items() if current_values.get(k) is None})
        if changes:
            updates.append({"id": current.id, **changes})
            result.updated += 1
            result.touched_clients.update({client_id, current_values["client_id"]})
        else:
            result.unchanged += 1
    await bulk_insert(session, model, inserts)
    await bulk_update(session, model, updates)
    return result
