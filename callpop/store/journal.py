"""The call journal: one ``calls`` row per call, written idempotently.

A call is keyed by (PBX id, the tracker's call id). The row is created at the first
ringing (so notes and promises typed during the call can point at it) and completed when
the call ends. Both writes are upserts: a reconnect that replays events, a second agent's
ringing, or the same ``Ended`` delivered twice leave exactly the same rows — a KPI built
on this table must never count a call twice.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from functools import cache
from typing import Any

from sqlalchemy import Boolean, and_, bindparam, case, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from callpop.store.db import dialect_of, insert_for
from callpop.store.models import Call, CallParticipant, Contact
from callpop.telephony.events import Ended, Ringing

__all__ = ["close_call", "open_call"]

log = logging.getLogger(__name__)


def _when(epoch: float | None) -> dt.datetime:
    """Event time (wall-clock epoch seconds) as aware UTC; now when the source had no clock."""
    if epoch is None:
        return dt.datetime.now(dt.UTC)
    return dt.datetime.fromtimestamp(epoch, dt.UTC)


@cache
def _statements(dialect: str) -> dict[str, Any]:
    """The journal's writes, built once per dialect and run with parameters: building an
    upsert per call (its ``excluded`` alias, value coercion, cache key) cost SQLAlchemy
    several times what SQLite spends executing it, on the loop, at every call."""
    insert = insert_for(dialect)
    # on the tables, not the mapped classes: a Session would take an insert on a class for
    # an ORM bulk insert, with its own (here useless) bookkeeping
    calls, parts = Call.__table__, CallParticipant.__table__
    opened = insert(calls)
    closed = insert(calls)
    ex = closed.excluded
    people = insert(parts)
    # a close that saw the answer (or read it from the PBX's CDR) replaces an answer a
    # listing only bounded (answer_unseen); otherwise the first answer recorded stands
    answered = case((and_(calls.c.answer_unseen, ex.answer_unseen.is_(False), ex.answered_at.is_not(None)),
                     ex.answered_at), else_=func.coalesce(calls.c.answered_at, ex.answered_at))
    return {
        # a later ringing (another agent, a replay) only fills in a client found since
        "open": opened.on_conflict_do_update(
            index_elements=["pbx_id", "call_key"],
            set_={"client_id": func.coalesce(calls.c.client_id, opened.excluded.client_id)},
        ).returning(calls.c.id),
        # a call's end seen by the tracker is written once: by whichever instance (or
        # replay) comes first. It replaces an open row, one closed without its end
        # (end_unseen: a sweep, a lost PBX link) and one whose answer was not seen
        # (answer_unseen) by a close that saw both (or read them from the PBX's CDR),
        # never an end already seen with its answer
        "close": closed.on_conflict_do_update(
            index_elements=["pbx_id", "call_key"],
            where=or_(calls.c.ended_at.is_(None), and_(calls.c.end_unseen, ex.end_unseen.is_(False)),
                      and_(calls.c.answer_unseen, ex.end_unseen.is_(False), ex.answer_unseen.is_(False))),
            set_={
                # never before the start (the row's, set at the first ringing): the database
                # checks it (migration 0006) and a refused close would lose the call
                "ended_at": case((ex.ended_at < calls.c.started_at, calls.c.started_at), else_=ex.ended_at),
                "outcome": ex.outcome, "talk_seconds": ex.talk_seconds, "end_unseen": ex.end_unseen,
                "answer_unseen": ex.answer_unseen, "times_source": ex.times_source,
                "client_id": func.coalesce(ex.client_id, calls.c.client_id),
                "client_number": func.coalesce(calls.c.client_number, ex.client_number),
                "caller_name": func.coalesce(calls.c.caller_name, ex.caller_name),
                "answered_at": case((answered < calls.c.started_at, calls.c.started_at), else_=answered),
            },
        ).returning(calls.c.id),
        # the contacts judged on an end (or an answer) that was not seen go when it is seen
        # after all: the same rows "close" replaces, for a close that saw the end
        "recontact": delete(Contact).where(Contact.call_id.in_(
            select(calls.c.id).where(calls.c.pbx_id == bindparam("pbx_id"), calls.c.call_key == bindparam("call_key"),
                                     calls.c.ended_at.is_not(None),
                                     or_(calls.c.end_unseen,
                                         and_(calls.c.answer_unseen, bindparam("answer_seen", type_=Boolean)))))),
        "participants": people.on_conflict_do_update(
            index_elements=["call_id", "extension"],
            set_={"employee_id": people.excluded.employee_id, "answered": people.excluded.answered,
                  "talk_seconds": people.excluded.talk_seconds}),
    }


async def open_call(session: AsyncSession, pbx_id: str, event: Ringing, client_id: int | None) -> int:
    """The calls.id for this call, creating the row at its first ringing. A later ringing
    (another agent, a replay) changes nothing, except filling in a client found since."""
    row = {"pbx_id": pbx_id, "call_key": event.call, "direction": event.direction, "client_number": event.client,
           "caller_name": event.caller_name, "client_id": client_id, "started_at": _when(event.at),
           "talk_seconds": 0}
    return int((await session.execute(_statements(dialect_of(session))["open"], row)).scalar_one())


def _participants(event: Ended, extension_to_employee: Mapping[str, int]) -> list[dict[str, Any]]:
    """One row per agent who rang or talked: answered or not, and their own talk time."""
    talk: dict[str, int] = {}
    for part in event.talks:
        talk[part.agent] = talk.get(part.agent, 0) + max(0, int(part.talk_seconds))
    if not event.talks and len(event.answered_by) == 1:
        talk[event.answered_by[0]] = event.talk_seconds
    agents = list(dict.fromkeys([*event.agents_rang, *event.answered_by, *talk]))
    return [{"extension": ext, "employee_id": extension_to_employee.get(ext),
             "answered": ext in event.answered_by, "talk_seconds": talk.get(ext, 0)} for ext in agents]


async def close_call(session: AsyncSession, pbx_id: str, event: Ended, client_id: int | None,
                     extension_to_employee: Mapping[str, int]) -> int | None:
    """Write the finished call and who took part in it; returns calls.id. Works whether or
    not ``open_call`` ran (a daemon restarted mid-call never saw the ringing).

    None: the row already has this call's seen end (another callpop instance following the
    same PBX wrote it first, or this one's own write replayed from the spool) and nothing
    was written: its contacts are the first writer's. Race-safe on both databases: the
    decision is the upsert's, on the row the database has locked."""
    ended_at = _when(event.ended_at) if event.ended_at is not None else dt.datetime.now(dt.UTC)
    started_at = min(_when(event.started_at), ended_at) if event.started_at is not None else ended_at
    answered_at = None
    if event.outcome == "answered":
        # the tracker's first answer; an event without one: the talk ended at hang-up. Never
        # before the start: the database checks it (migration 0006)
        answered_at = max(started_at, _when(event.answered_at) if event.answered_at is not None
                          else ended_at - dt.timedelta(seconds=event.talk_seconds))
    statements = _statements(dialect_of(session))
    call = {"pbx_id": pbx_id, "call_key": event.call, "direction": event.direction, "client_number": event.client,
            "caller_name": event.caller_name, "client_id": client_id, "started_at": started_at,
            "answered_at": answered_at, "ended_at": ended_at, "outcome": event.outcome,
            "talk_seconds": event.talk_seconds, "end_unseen": event.end_unseen,
            "answer_unseen": event.outcome == "answered" and event.answer_unseen,
            "times_source": event.times_source}
    if not event.end_unseen:
        await session.execute(statements["recontact"], {"pbx_id": pbx_id, "call_key": event.call,
                                                        "answer_seen": not call["answer_unseen"]})
    written = (await session.execute(statements["close"], call)).scalar_one_or_none()
    if written is None:
        log.debug("call %s: its end is journalled already; nothing written", event.call)
        return None
    call_id = int(written)
    rows = _participants(event, extension_to_employee)
    if rows:
        await session.execute(statements["participants"], [{"call_id": call_id, **row} for row in rows])
    log.debug("call %s journalled as #%s: %s, %ss, %d participants", event.call, call_id, event.outcome,
              event.talk_seconds, len(rows))
    return call_id

