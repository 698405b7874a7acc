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
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from callpop.store.models import Call, CallParticipant
from callpop.telephony.events import Answered, Ended, Ringing

__all__ = ["close_call", "mark_answered", "open_call"]

log = logging.getLogger(__name__)


def _when(epoch: float | None) -> dt.datetime:
    """Event time (wall-clock epoch seconds) as aware UTC; now when the source had no clock."""
    if epoch is None:
        return dt.datetime.now(dt.UTC)
    return dt.datetime.fromtimestamp(epoch, dt.UTC)


def _insert(session: AsyncSession, table: Any) -> Any:
    """INSERT with the dialect's ON CONFLICT support (SQLite and PostgreSQL spell it alike)."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"unsupported database dialect {name!r}")  # pragma: no cover


async def open_call(session: AsyncSession, pbx_id: str, event: Ringing, client_id: int | None) -> int:
    """The calls.id for this call, creating the row at its first ringing. A later ringing
    (another agent, a replay) changes nothing, except filling in a client found since."""
    stmt = _insert(session, Call).values(
        pbx_id=pbx_id, call_key=event.call, direction=event.direction, client_number=event.client,
        caller_name=event.caller_name, client_id=client_id, started_at=_when(event.at), talk_seconds=0,
    ).on_conflict_do_nothing(index_elements=["pbx_id", "call_key"])
    await session.execute(stmt)
    row = (await session.execute(select(Call.id, Call.client_id)
                                 .where(Call.pbx_id == pbx_id, Call.call_key == event.call))).one()
    if row.client_id is None and client_id is not None:
        await session.execute(update(Call).where(Call.id == row.id).values(client_id=client_id))
    return int(row.id)


async def mark_answered(session: AsyncSession, pbx_id: str, event: Answered) -> None:
    """Record when the call was first answered (a later answer, e.g. after a transfer, keeps it)."""
    await session.execute(update(Call).where(Call.pbx_id == pbx_id, Call.call_key == event.call,
                                             Call.answered_at.is_(None)).values(answered_at=_when(event.at)))


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
                     extension_to_employee: Mapping[str, int]) -> int:
    """Write the finished call and who took part in it; returns calls.id. Works whether or
    not ``open_call`` ran (a daemon restarted mid-call never saw the ringing)."""
    ended_at = _when(event.ended_at) if event.ended_at is not None else dt.datetime.now(dt.UTC)
    started_at = _when(event.started_at) if event.started_at is not None else ended_at
    # Ended carries no answer time; the talk ends at hang-up, so it began talk_seconds before.
    answered_at = (ended_at - dt.timedelta(seconds=event.talk_seconds)
                   if event.outcome == "answered" else None)
    ins = _insert(session, Call).values(
        pbx_id=pbx_id, call_key=event.call, direction=event.direction, client_number=event.client,
        caller_name=event.caller_name, client_id=client_id, started_at=started_at, answered_at=answered_at,
        ended_at=ended_at, outcome=event.outcome, talk_seconds=event.talk_seconds,
    )
    ex = ins.excluded
    stmt = ins.on_conflict_do_update(
        index_elements=["pbx_id", "call_key"],
        set_={
            "ended_at": ex.ended_at, "outcome": ex.outcome, "talk_seconds": ex.talk_seconds,
            "client_id": func.coalesce(ex.client_id, Call.client_id),
            "client_number": func.coalesce(Call.client_number, ex.client_number),
            "caller_name": func.coalesce(Call.caller_name, ex.caller_name),
            "answered_at": func.coalesce(Call.answered_at, ex.answered_at),
        },
    ).returning(Call.id)
    call_id = int((await session.execute(stmt)).scalar_one())
    rows = _participants(event, extension_to_employee)
    if rows:
        pins = _insert(session, CallParticipant)
        await session.execute(
            pins.on_conflict_do_update(
                index_elements=["call_id", "extension"],
                set_={"employee_id": pins.excluded.employee_id, "answered": pins.excluded.answered,
                      "talk_seconds": pins.excluded.talk_seconds}),
            [{"call_id": call_id, **row} for row in rows])
    log.debug("call %s journalled as #%s: %s, %ss, %d participants", event.call, call_id, event.outcome,
              event.talk_seconds, len(rows))
    return call_id
