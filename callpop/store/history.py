"""A client's history as the card shows it: open promises, agreements, last calls, notes.

Each section is one bounded query for a whole set of clients (``client_id IN (...)``),
asking one row more than it shows so the card knows whether to offer "more"; the number
of statements never depends on how much history there is. The items are frozen
snapshots with ``to_json()`` (times ISO-8601 UTC, money as strings: JSON numbers would
round kopecks).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import BindParameter, CompoundSelect, Select, and_, bindparam, case, func, select, union_all
from sqlalchemy.engine import Connection
from sqlalchemy.orm import aliased

from callpop.store.models import Agreement, Call, CallParticipant, Employee, Note, Promise
from callpop.store.prepared import Prepared

__all__ = [
    "AgreementItem",
    "CallItem",
    "NoteItem",
    "PersonRef",
    "PromiseItem",
    "Section",
    "SectionRows",
    "iso",
    "load_sections",
    "section_rows",
]

Section = Literal["promises", "agreements", "calls", "notes"]
SECTIONS: tuple[Section, ...] = ("promises", "agreements", "calls", "notes")


def iso(value: dt.datetime | None) -> str | None:
    """ISO-8601 in UTC with a Z, the one time format of the JSON we send."""
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _money(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.2f}"


@dataclass(frozen=True, slots=True)
class PersonRef:
    """An employee as a card names them."""

    id: int
    name: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name}


def _person(ident: int | None, name: str | None) -> PersonRef | None:
    return PersonRef(ident, name or "") if ident is not None else None


def _person_json(person: PersonRef | None) -> dict[str, Any] | None:
    return person.to_json() if person else None


@dataclass(frozen=True, slots=True)
class PromiseItem:
    id: int
    text: str
    due_at: dt.datetime | None
    status: str
    made_by: PersonRef | None
    call_id: int | None
    created_at: dt.datetime
    overdue: bool

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "due_at": iso(self.due_at), "status": self.status,
                "overdue": self.overdue, "made_by": _person_json(self.made_by), "call_id": self.call_id,
                "created_at": iso(self.created_at)}


@dataclass(frozen=True, slots=True)
class AgreementItem:
    id: int
    title: str
    terms: str | None
    amount: Decimal | None
    currency: str
    status: str
    made_by: PersonRef | None
    created_at: dt.datetime
    closed_at: dt.datetime | None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "terms": self.terms, "amount": _money(self.amount),
                "currency": self.currency, "status": self.status, "made_by": _person_json(self.made_by),
                "created_at": iso(self.created_at), "closed_at": iso(self.closed_at)}


@dataclass(frozen=True, slots=True)
class CallItem:
    """One past call: who talked (answered) and who else only rang."""

    id: int
    direction: str
    number: str | None
    started_at: dt.datetime
    ended_at: dt.datetime | None
    outcome: str | None
    talk_seconds: int
    talked: tuple[PersonRef, ...]
    rang: tuple[PersonRef, ...]
    # the answer was not seen (callpop was restarted during the call) or the end (the row
    # was closed by a sweep, the PBX link was lost): talk_seconds is the least it can have
    # been, shown as such, never as the talk
    answer_unseen: bool = False
    end_unseen: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "direction": self.direction, "number": self.number,
                "started_at": iso(self.started_at), "ended_at": iso(self.ended_at), "outcome": self.outcome,
                "talk_seconds": self.talk_seconds, "answer_unseen": self.answer_unseen,
                "end_unseen": self.end_unseen,
                "talked": [p.to_json() for p in self.talked], "rang": [p.to_json() for p in self.rang]}


@dataclass(frozen=True, slots=True)
class NoteItem:
    id: int
    text: str
    author: PersonRef | None
    call_id: int | None
    created_at: dt.datetime

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "author": _person_json(self.author), "call_id": self.call_id,
                "created_at": iso(self.created_at)}


Item = PromiseItem | AgreementItem | CallItem | NoteItem


@dataclass(frozen=True, slots=True)
class SectionRows:
    """One section for one client: the items shown and whether more exist."""

    items: tuple[Any, ...]
    has_more: bool


# --- the queries ------------------------------------------------------------------------------

_maker = aliased(Employee, name="maker")


def _order(section: Section) -> list[Any]:
    """The order a section is shown in (also the paging order)."""
    if section == "promises":
        # overdue first falls out of "earliest due first"; undated promises last
        return [case((Promise.due_at.is_(None), 1), else_=0), Promise.due_at, Promise.id]
    if section == "agreements":
        # active (open) ones first, then the most recent
        return [case((Agreement.status == "open", 0), else_=1), Agreement.created_at.desc(), Agreement.id.desc()]
    if section == "calls":
        return [Call.started_at.desc(), Call.id.desc()]
    return [Note.created_at.desc(), Note.id.desc()]


def _base(section: Section) -> Select[*tuple[Any, ...]]:
    if section == "promises":
        return (select(Promise.id, Promise.client_id, Promise.text, Promise.due_at, Promise.status,
                       Promise.made_by_id, _maker.name, Promise.call_id, Promise.created_at)
                .outerjoin(_maker, _maker.id == Promise.made_by_id)
                .where(Promise.status == "open"))
    if section == "agreements":
        return (select(Agreement.id, Agreement.client_id, Agreement.title, Agreement.terms, Agreement.amount,
                       Agreement.currency, Agreement.status, Agreement.made_by_id, _maker.name,
                       Agreement.created_at, Agreement.closed_at)
                .outerjoin(_maker, _maker.id == Agreement.made_by_id))
    if section == "calls":
        return select(Call.id, Call.client_id, Call.direction, Call.client_number, Call.started_at, Call.ended_at,
                      Call.outcome, Call.talk_seconds, Call.answer_unseen, Call.end_unseen)
    return (select(Note.id, Note.client_id, Note.text, Note.author_id, _maker.name, Note.call_id, Note.created_at)
            .outerjoin(_maker, _maker.id == Note.author_id))


def _client_col(section: Section) -> Any:
    return {"promises": Promise.client_id, "agreements": Agreement.client_id,
            "calls": Call.client_id, "notes": Note.client_id}[section]


def _single(section: Section) -> Select[*tuple[Any, ...]]:
    """One client's rows, :cid / :lim / :off: an ORDER BY ... LIMIT that walks an index."""
    return (_base(section).where(_client_col(section) == bindparam("cid")).order_by(*_order(section))
            .limit(bindparam("lim")).offset(bindparam("off")))


def _two_walks(section: Section) -> CompoundSelect[*tuple[Any, ...]]:
    """Promises and agreements are shown in an order no index has (undated promises last;
    open agreements first). Sorting all of a client's rows is what made a client with
    1,000 of them slow, so each half is read in index order, at most :top rows (offset
    plus page), and the halves are merged in Python (``_sort_rows``)."""
    cid: BindParameter[int] = bindparam("cid")
    if section == "promises":
        first = (_base(section).where(Promise.client_id == cid, Promise.due_at.is_not(None))
                 .order_by(Promise.due_at, Promise.id))
        second = _base(section).where(Promise.client_id == cid, Promise.due_at.is_(None)).order_by(Promise.id)
    else:
        first = (_base(section).where(Agreement.client_id == cid, Agreement.status == "open")
                 .order_by(Agreement.created_at.desc(), Agreement.id.desc()))
        second = (_base(section).where(Agreement.client_id == cid, Agreement.status != "open")
                  .order_by(Agreement.created_at.desc(), Agreement.id.desc()))
    a = first.limit(bindparam("top")).subquery("a")
    b = second.limit(bindparam("top")).subquery("b")
    return union_all(select(*a.c), select(*b.c))


def _several(section: Section) -> Select[*tuple[Any, ...]]:
    """Rows for :ids, at most (:hi - :off) per client: ROW_NUMBER() per client, one statement."""
    client_col = _client_col(section)
    ranked = _base(section).add_columns(
        func.row_number().over(partition_by=client_col, order_by=_order(section)).label("rn")
    ).where(client_col.in_(bindparam("ids", expanding=True))).subquery()
    return (select(*[c for c in ranked.c if c.name != "rn"])
            .where(and_(ranked.c.rn > bindparam("off"), ranked.c.rn <= bindparam("hi"))))


People = dict[int, tuple[list[PersonRef], list[PersonRef]]]


def _with_people(calls: Select[*tuple[Any, ...]]) -> Select[*tuple[Any, ...]]:
    """The page of calls joined to who was on them: one statement instead of two."""
    k = calls.subquery("k")
    return (select(*k.c, CallParticipant.extension, CallParticipant.employee_id, Employee.name,
                   CallParticipant.answered)
            .select_from(k)
            .outerjoin(CallParticipant, CallParticipant.call_id == k.c.id)
            .outerjoin(Employee, Employee.id == CallParticipant.employee_id)
            .order_by(k.c.id, CallParticipant.answered.desc(), CallParticipant.talk_seconds.desc(),
                      CallParticipant.id))


# Built once: a statement object reused as is skips SQLAlchemy's construction and result
# re-mapping, which cost several times more than the indexed queries themselves.
_SINGLE: dict[Section, Select[*tuple[Any, ...]] | CompoundSelect[*tuple[Any, ...]]] = {
    "promises": _two_walks("promises"), "agreements": _two_walks("agreements"),
    "calls": _with_people(_single("calls")), "notes": _single("notes")}
_SEVERAL = {s: _with_people(_several(s)) if s == "calls" else _several(s) for s in SECTIONS}
_PREPARED = {s: Prepared.of(stmt) for s, stmt in _SINGLE.items()}
_CALL_COLUMNS = 10


def _split_people(rows: Sequence[Any]) -> tuple[list[Any], People]:
    """Calls joined to participants -> one row per call, and who talked / only rang."""
    calls: dict[int, Any] = {}
    people: People = defaultdict(lambda: ([], []))
    for row in rows:
        call_id = row[0]
        calls.setdefault(call_id, tuple(row[:_CALL_COLUMNS]))
        extension, employee_id, name, answered = row[_CALL_COLUMNS:]
        if extension is None:
            continue
        # an extension nobody owns is still named, by its number
        ref = PersonRef(employee_id, name) if employee_id is not None else PersonRef(0, extension)
        people[call_id][0 if answered else 1].append(ref)
    return _sort_rows("calls", list(calls.values())), people


def section_rows(conn: Connection, section: Section, client_ids: Sequence[int], *, limit: int,
                 offset: int = 0) -> tuple[Sequence[Any], People]:
    """Rows of *section* for *client_ids*: at most *limit* per client after *offset*, in
    the section's order (and, for calls, who was on them)."""
    rows: Sequence[Any]
    if len(client_ids) == 1:
        if section in ("promises", "agreements"):
            rows = _PREPARED[section].rows(conn, {"cid": client_ids[0], "top": offset + limit})
            return _sort_rows(section, list(rows))[offset:offset + limit], {}
        rows = _PREPARED[section].rows(conn, {"cid": client_ids[0], "lim": limit, "off": offset})
    else:
        rows = conn.execute(_SEVERAL[section], {"ids": list(client_ids), "off": offset,
                                                "hi": offset + limit}).all()
        if section != "calls":
            rows = _sort_rows(section, list(rows))
    if section == "calls":
        return _split_people(rows)
    return rows, {}


def _item(section: Section, row: Any, now: dt.datetime, people: People) -> Item:
    if section == "promises":
        return PromiseItem(id=row[0], text=row[2], due_at=row[3], status=row[4], made_by=_person(row[5], row[6]),
                           call_id=row[7], created_at=row[8], overdue=row[3] is not None and row[3] < now)
    if section == "agreements":
        return AgreementItem(id=row[0], title=row[2], terms=row[3], amount=row[4], currency=row[5], status=row[6],
                             made_by=_person(row[7], row[8]), created_at=row[9], closed_at=row[10])
    if section == "calls":
        talked, rang = people.get(row[0], ([], []))
        return CallItem(id=row[0], direction=row[2], number=row[3], started_at=row[4], ended_at=row[5],
                        outcome=row[6], talk_seconds=row[7], talked=tuple(talked), rang=tuple(rang),
                        answer_unseen=bool(row[8]), end_unseen=bool(row[9]))
    return NoteItem(id=row[0], text=row[2], author=_person(row[3], row[4]), call_id=row[5], created_at=row[6])


def load_sections(conn: Connection, client_ids: Sequence[int], bounds: Mapping[Section, int],
                  now: dt.datetime, *, offset: int = 0) -> dict[int, dict[Section, SectionRows]]:
    """Every requested section for every client, one statement per section. Missing
    clients get empty sections."""
    result: dict[int, dict[Section, SectionRows]] = {
        cid: {s: SectionRows((), False) for s in bounds} for cid in client_ids}
    if not client_ids:
        return result
    for section, limit in bounds.items():
        rows, people = section_rows(conn, section, client_ids, limit=limit + 1, offset=offset)
        per_client: dict[int, list[Any]] = defaultdict(list)
        for row in rows:
            per_client[row[1]].append(row)
        for cid, mine in per_client.items():
            result[cid][section] = SectionRows(tuple(_item(section, r, now, people) for r in mine[:limit]),
                                               len(mine) > limit)
    return result


def _sort_rows(section: Section, rows: list[Any]) -> list[Any]:
    """Python order equal to ``_order`` for the ROW_NUMBER path (SQL gives no row order)."""
    far = dt.datetime.max.replace(tzinfo=dt.UTC)
    if section == "promises":
        return sorted(rows, key=lambda r: (r[3] is None, r[3] or far, r[0]))
    if section == "agreements":
        open_first = sorted(rows, key=lambda r: (r[9], r[0]), reverse=True)
        return sorted(open_first, key=lambda r: r[6] != "open")
    if section == "calls":
        return sorted(rows, key=lambda r: (r[4], r[0]), reverse=True)
    return sorted(rows, key=lambda r: (r[6], r[0]), reverse=True)
