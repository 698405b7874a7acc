"""What every import kind shares: the per-file context (employees, time zone, caches of
client references) and the result of storing one chunk.

A chunk is stored in one transaction; its result is merged into the report only after
the commit, so a chunk that the database refuses is retried line by line without
counting anything twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from callpop.settings import Settings
from callpop.store.models import Client, Employee

__all__ = ["ChunkResult", "ImportContext", "LineProblem", "bulk_insert", "bulk_update", "content_key",
           "resolve_clients"]


@dataclass(frozen=True, slots=True)
class LineProblem:
    """A line that was skipped (error) or imported with a caveat (warning)."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(slots=True)
class ChunkResult:
    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[LineProblem] = field(default_factory=list)
    warnings: list[LineProblem] = field(default_factory=list)
    touched_clients: set[int] = field(default_factory=set)
    resolved_clients: dict[str, int] = field(default_factory=dict)


def content_key(kind: str, parts: tuple[object, ...], occurrence: int) -> str:
    """An external id for a line without one, made from its content: re-importing the same
    file finds the same rows; the n-th identical line in a file stays a separate row."""
    digest = hashlib.sha1(repr((kind, parts)).encode("utf-8")).hexdigest()[:24]
    return f"auto:{digest}" + (f"#{occurrence}" if occurrence > 1 else "")


@dataclass(slots=True)
class ImportContext:
    """Settings, the clock and the employee directory, loaded once per file."""

    settings: Settings
    now: dt.datetime
    zone: ZoneInfo
    by_login: dict[str, int] = field(default_factory=dict)
    by_name: dict[str, int] = field(default_factory=dict)
    by_surname: dict[str, list[int]] = field(default_factory=dict)
    clients: dict[str, int] = field(default_factory=dict)  # file reference -> client id
    occurrences: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    touched_clients: set[int] = field(default_factory=set)  # whose agreements/payments changed

    @classmethod
    async def load(cls, session: AsyncSession, settings: Settings, now: dt.datetime) -> ImportContext:
        ctx = cls(settings=settings, now=now, zone=ZoneInfo(settings.kpi.timezone))
        rows = (await session.execute(select(Employee.id, Employee.login, Employee.name))).all()
        surnames: dict[str, list[int]] = defaultdict(list)
        for emp_id, login, name in rows:
            ctx.by_login[login.casefold()] = emp_id
            ctx.by_name[_fold(name)] = emp_id
            if name.split():
                surnames[_fold(name.split()[0])].append(emp_id)
        ctx.by_surname = dict(surnames)
        return ctx

    def employee(self, text: str | None) -> int | None:
        """An employee by login, full name, or a surname that only one employee has
        (1C writes "Иванова М.А." where we store "Иванова Мария")."""
        if not text:
            return None
        folded = _fold(text)
        found = self.by_login.get(folded) or self.by_name.get(folded)
        if found is not None:
            return found
        surname = self.by_surname.get(folded.split()[0], []) if folded.split() else []
        return surname[0] if len(surname) == 1 else None

    def occurrence(self, key: str) -> int:
        self.occurrences[key] += 1
        return self.occurrences[key]


def _fold(text: str) -> str:
    return " ".join(text.casefold().replace("ё", "е").split())


async def resolve_clients(session: AsyncSession, ctx: ImportContext, refs: set[str],
                          result: ChunkResult) -> dict[str, int | str]:
    """Client references of a chunk → client id, or the reason it cannot be used. A
    reference is a client's external id, else its exact name when only one client has it.
    Two queries per chunk at most; found ids are cached for the rest of the file."""
    out: dict[str, int | str] = {r: ctx.clients[r] for r in refs if r in ctx.clients}
    missing = sorted(refs - out.keys())
    if missing:
        rows = (await session.execute(
            select(Client.external_id, Client.id).where(Client.external_id.in_(missing)))).all()
        for ext, cid in rows:
            if ext is not None:
                out[ext] = cid
                result.resolved_clients[ext] = cid
    missing = sorted(refs - out.keys())
    if missing:
        named: dict[str, list[int]] = defaultdict(list)
        rows = (await session.execute(select(Client.name, Client.id).where(Client.name.in_(missing)))).all()
        for name, cid in rows:
            named[name].append(cid)
        for ref in missing:
            ids = named.get(ref, [])
            if len(ids) == 1:
                out[ref] = ids[0]
                result.resolved_clients[ref] = ids[0]
            elif ids:
                out[ref] = f"client {ref!r} is ambiguous: {len(ids)} clients have that name; use the client code"
            else:
                out[ref] = f"unknown client {ref!r} (no client with that code or name; import clients first)"
    return out


async def bulk_insert(session: AsyncSession, model: Any, rows: list[dict[str, Any]]) -> None:
    """Core executemany, one per set of keys (a Core executemany compiles the first row's
    keys only; the ORM bulk path is far slower on large chunks)."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[tuple(sorted(row))].append(row)
    for group in groups.values():
        await session.execute(insert(model.__table__), group)


async def bulk_update(session: AsyncSession, model: Any, rows: list[dict[str, Any]]) -> None:
    """UPDATE ... WHERE id = :id as one executemany per set of changed columns."""
    table = model.__table__
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        columns = tuple(sorted(k for k in row if k != "id"))
        groups[columns].append({"b_id": row["id"], **{f"v_{k}": row[k] for k in columns}})
    for columns, params in groups.items():
        stmt = (update(table).where(table.c.id == bindparam("b_id"))
                .values({k: bindparam(f"v_{k}") for k in columns}))
        await session.execute(stmt, params)
