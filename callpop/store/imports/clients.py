"""Clients files: one client per line, keyed by the 1C code (external id).

A line without a code is matched by its exact name among clients that have no code
either. Phones are merged (a number already stored is never added twice, numbers not in
the file are kept); an empty cell leaves the stored value as it is; a number that cannot
be read is kept raw and reported, and the client still goes in.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from callpop.store.imports.base import ChunkResult, ImportContext, LineProblem, bulk_insert, bulk_update
from callpop.store.imports.csvfields import (
    CLIENT_STATUSES,
    PhoneEntry,
    parse_status,
    read_phone,
    split_phone_cell,
    text_field,
)
from callpop.store.imports.csvread import Row
from callpop.store.models import Client, ClientPhone

__all__ = ["ClientLine", "parse_client", "store_clients"]


@dataclass(slots=True)
class ClientLine:
    line: int
    key: str  # identity inside the file: "code:<external id>" or "name:<name>"
    external_id: str | None
    name: str
    company: str | None
    responsible_id: int | None
    status: str | None
    phones: list[str]  # raw pieces of the phone cell(s), parsed only when not already stored
    warnings: list[str] = field(default_factory=list)


def parse_client(row: Row, ctx: ImportContext) -> ClientLine:
    values = row.values
    name = text_field(values, "name", limit=300, required=True)
    assert name is not None
    external_id = text_field(values, "external_id", limit=100)
    company = text_field(values, "company", limit=300)
    status = parse_status(values.get("status"), CLIENT_STATUSES, "status", "") or None
    warnings: list[str] = []
    manager = values.get("manager", "").strip()
    responsible_id = ctx.employee(manager)
    if manager and responsible_id is None:
        warnings.append(f"manager {manager!r} is not an employee: responsible left unchanged")
    phones = split_phone_cell(values.get("phones", ""))
    key = f"code:{external_id}" if external_id else f"name:{name}"
    return ClientLine(row.line, key, external_id, name, company, responsible_id, status, phones, warnings)


def _status_fields(status: str | None) -> dict[str, str]:
    """A status in the file is a decision by hand for "regular"; "new" hands the client
    back to the rule (which may make it regular again from its payments)."""
    if status == "regular":
        return {"status": "regular", "status_source": "manual"}
    if status == "new":
        return {"status": "new", "status_source": "rule"}
    return {}


class _Phones:
    """Phones of one client: what is stored, and the new numbers of this line."""

    def __init__(self, ctx: ImportContext, stored: list[tuple[str, str | None]]) -> None:
        self.region = ctx.settings.phones.default_region
        self.min_digits = ctx.settings.phones.min_external_digits
        self.raws = {raw for raw, _e164 in stored}
        self.identities = {e164 or "".join(ch for ch in raw if ch.isdigit()) or raw for raw, e164 in stored}

    def new(self, line: ClientLine, result: ChunkResult) -> list[PhoneEntry]:
        """Numbers of *line* not stored yet (the raw text is compared first: parsing a
        number costs far more than a set lookup, and re-imports are mostly unchanged)."""
        added: list[PhoneEntry] = []
        for raw in line.phones:
            if raw in self.raws:
                continue
            entry = read_phone(raw, self.region, self.min_digits)
            self.raws.add(raw)
            if entry.identity in self.identities:
                continue
            self.identities.add(entry.identity)
            added.append(entry)
            if entry.key.e164 is None:
                result.warnings.append(LineProblem(line.line, f"phone {raw!r} is not a readable number: "
                                                              f"kept as written"))
        return added


async def store_clients(session: AsyncSession, lines: list[ClientLine], ctx: ImportContext) -> ChunkResult:
    """Upsert one chunk: three reads (clients by code, by name, their phones) and bulk writes."""
    result = ChunkResult()
    codes = [c.external_id for c in lines if c.external_id]
    names = [c.name for c in lines if not c.external_id]
    existing: dict[str, Any] = {}
    cols = (Client.id, Client.external_id, Client.name, Client.company, Client.responsible_id,
            Client.status, Client.status_source)
    if codes:
        for row in (await session.execute(select(*cols).where(Client.external_id.in_(codes)))).all():
            existing[f"code:{row.external_id}"] = row
    ambiguous: set[str] = set()
    if names:
        found = (await session.execute(
            select(*cols).where(Client.external_id.is_(None), Client.name.in_(names)))).all()
        by_name: dict[str, list[Any]] = defaultdict(list)
        for row in found:
            by_name[row.name].append(row)
        for name, rows in by_name.items():
            if len(rows) == 1:
                existing[f"name:{name}"] = rows[0]
            else:
                ambiguous.add(name)
    stored: dict[int, list[tuple[str, str | None]]] = defaultdict(list)
    ids = [row.id for row in existing.values()]
    if ids:
        for cid, raw, e164 in (await session.execute(
                select(ClientPhone.client_id, ClientPhone.raw, ClientPhone.e164)
                .where(ClientPhone.client_id.in_(ids)))).all():
            stored[cid].append((raw, e164))

    new_clients: list[ClientLine] = []
    updates: list[dict[str, Any]] = []
    new_phones: list[dict[str, Any]] = []
    for line in lines:
        if not line.external_id and line.name in ambiguous:
            result.errors.append(LineProblem(line.line, f"name {line.name!r} matches several clients "
                                                        f"without a code: add the client code column"))
            continue
        result.warnings += [LineProblem(line.line, w) for w in line.warnings]
        current = existing.get(line.key)
        if current is None:
            new_clients.append(line)
            continue
        wanted: dict[str, Any] = {"name": line.name}
        if line.company is not None:
            wanted["company"] = line.company
        if line.responsible_id is not None:
            wanted["responsible_id"] = line.responsible_id
        wanted.update(_status_fields(line.status))
        changes = {k: v for k, v in wanted.items() if getattr(current, k) != v}
        added = _Phones(ctx, stored[current.id]).new(line, result)
        new_phones += [_phone_row(current.id, p) for p in added]
        if changes:
            updates.append({"id": current.id, **changes, "updated_at": ctx.now})
        if changes or added:
            result.updated += 1
        else:
            result.unchanged += 1

    if new_clients:
        rows = [{"name": c.name, "company": c.company, "responsible_id": c.responsible_id,
                 "external_id": c.external_id, "status": "new", "status_source": "rule",
                 "created_at": ctx.now, "updated_at": ctx.now, **_status_fields(c.status)}
                for c in new_clients]
        table = cast(Table, Client.__table__)
        returned = (await session.execute(
            insert(table).returning(table.c.id, table.c.external_id, table.c.name), rows)).all()
        # matched on the file's key, not the row order (keeping the order costs a round trip per row)
        new_ids = {(ext, "" if ext else name): cid for cid, ext, name in returned}
        for line in new_clients:
            client_id = new_ids[(line.external_id, "" if line.external_id else line.name)]
            new_phones += [_phone_row(client_id, p) for p in _Phones(ctx, []).new(line, result)]
        result.imported += len(new_clients)
    await bulk_update(session, Client, updates)
    await bulk_insert(session, ClientPhone, new_phones)
    return result


def _phone_row(client_id: int, entry: PhoneEntry) -> dict[str, Any]:
    return {"client_id": client_id, "raw": entry.raw, "e164": entry.key.e164, "tail10": entry.key.tail10,
            "label": entry.label}
