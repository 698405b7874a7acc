"""What the journal writes besides a call's first ringing and its end, so that a call row is
right even when callpop does not see the call end.

* ``record_answer``: the moment an agent answered and that they did (a participant row),
  written as it happens. A daemon killed mid-call loses its memory, not this: when the call's
  end is seen after a restart, the talk is counted from here, not from the restart; when
  it is not seen, the contact is still logged from here.
* ``record_ringing``: the agent's participant row at the first ringing (a row closed
  without its end still says who rang).
* ``close_unseen``: rows still open that no live call explains (the call ended while
  callpop was down, or its end was lost) are closed and never left open: ``end_unseen``,
  ``ended_at`` = the last moment callpop knew the call was on (its last heartbeat before a
  crash, or the row's last recorded time), outcome ``answered`` with the talk since the
  recorded answer as a lower bound when an answer was recorded, else ``unknown``: a
  ringing call whose end nobody saw may have been answered while callpop was down. The
  talk's upper bound goes with it (``AgentTalk.at_most``: from the earliest the answer
  can have been to the close, the latest the end can have been), so a contact is kept as
  ``uncertain_talk``, never judged "too short" on a talk that is only a lower bound; a row
  whose answer was learned from a listing keeps ``answer_unseen``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Collection, Mapping
from functools import cache
from typing import Any, cast

from sqlalchemy import CursorResult, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from callpop.store.db import dialect_of, insert_for
from callpop.store.models import Call, CallParticipant
from callpop.telephony.events import AgentTalk, Answered, Direction, Ended

__all__ = ["Unseen", "call_row", "close_unseen", "in_scope", "record_answer", "record_client", "record_ringing",
           "recorded_answer"]

log = logging.getLogger(__name__)


def _when(epoch: float | None) -> dt.datetime:
    return dt.datetime.now(dt.UTC) if epoch is None else dt.datetime.fromtimestamp(epoch, dt.UTC)


def _aware(moment: dt.datetime) -> dt.datetime:
    """SQLite gives naive datetimes back (stored as UTC)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


@cache
def _participant(dialect: str, answered: bool) -> Any:
    stmt = insert_for(dialect)(CallParticipant.__table__)
    if answered:
        return stmt.on_conflict_do_update(index_elements=["call_id", "extension"],
                                          set_={"answered": True, "employee_id": stmt.excluded.employee_id})
    return stmt.on_conflict_do_nothing(index_elements=["call_id", "extension"])


_CALL_ID = select(Call.id, Call.started_at).where(Call.pbx_id == bindparam("pbx_id"),
                                                   Call.call_key == bindparam("call_key"))


async def call_row(session: AsyncSession, pbx_id: str, call_key: str) -> int | None:
    """calls.id of a call, None when it has no row."""
    row = (await session.execute(_CALL_ID, {"pbx_id": pbx_id, "call_key": call_key})).first()
    return None if row is None else int(row[0])


async def record_client(session: AsyncSession, pbx_id: str, call_key: str, client_id: int) -> None:
    """The call's client, found by a lookup that finished after the row was opened."""
    await session.execute(update(Call).where(Call.pbx_id == pbx_id, Call.call_key == call_key,
                                             Call.client_id.is_(None)).values(client_id=client_id))


async def record_ringing(session: AsyncSession, call_id: int, agent: str, employee_id: int | None) -> None:
    """The agent rang in this call (nothing changes if they are already listed)."""
    await session.execute(_participant(dialect_of(session), False),
                          {"call_id": call_id, "extension": agent, "employee_id": employee_id,
                           "answered": False, "talk_seconds": 0})


async def record_answer(session: AsyncSession, pbx_id: str, event: Answered, employee_id: int | None) -> int | None:
    """The first answer's time on the call row and the agent's participant row marked
    answered. Returns calls.id, None when the row does not exist (its ringing was not
    journalled: the close writes everything)."""
    row = (await session.execute(_CALL_ID, {"pbx_id": pbx_id, "call_key": event.call})).first()
    if row is None:
        return None
    call_id, started_at = row
    at = max(_when(event.at), _aware(started_at))
    # an answer seen live always wins over one a listing shows after a restart (unseen)
    await session.execute(update(Call).where(Call.id == call_id, Call.answered_at.is_(None)).values(
        answered_at=at, answer_unseen=event.unseen))
    await session.execute(_participant(dialect_of(session), True),
                          {"call_id": call_id, "extension": event.agent, "employee_id": employee_id,
                           "answered": True, "talk_seconds": 0})
    return int(call_id)


async def recorded_answer(session: AsyncSession, pbx_id: str, call_key: str) -> dt.datetime | None:
    """The answer time recorded live while the call was on, if any (not one a listing
    showed after a restart: that one is only the latest the answer can have been)."""
    row = (await session.execute(select(Call.answered_at, Call.answer_unseen).where(
        Call.pbx_id == pbx_id, Call.call_key == call_key))).first()
    return None if row is None or row[0] is None or row[1] else _aware(row[0])


_OPEN = (select(Call.id, Call.call_key, Call.direction, Call.client_number, Call.caller_name, Call.started_at,
                Call.answered_at, Call.answer_unseen, Call.client_id)
         .where(Call.pbx_id == bindparam("pbx_id"), Call.ended_at.is_(None), Call.started_at < bindparam("before"))
         .order_by(Call.id))
_PARTS = select(CallParticipant.extension, CallParticipant.answered).where(
    CallParticipant.call_id == bindparam("call_id")).order_by(CallParticipant.id)


class Unseen:
    """A row closed without its end: the Ended the contact rules are run on, and the
    row's client (None: the lookup's answer was never written, see JournalWriter)."""

    def __init__(self, call_id: int, ended: Ended, client_id: int | None = None) -> None:
        self.call_id = call_id
        self.ended = ended
        self.client_id = client_id


def in_scope(key: str, scope: str | None) -> bool:
    """Whether a call key belongs to the PBX *scope* names: None any, "" the first PBX
    (plain Linkedids), "NAME" another one (keys ``NAME:...``, callpop/telephony/pbxes.py)."""
    if scope is None:
        return True
    return ":" not in key if scope == "" else key.startswith(scope + ":")


async def close_unseen(session: AsyncSession, pbx_id: str, live: Collection[str], *,
                       last_known: dt.datetime | None, before: dt.datetime,
                       extension_to_employee: Mapping[str, int], scope: str | None = None,
                       now: dt.datetime | None = None) -> list[Unseen]:
    """Close the open rows of *pbx_id* started before *before* whose call key is not in
    *live*; see the module docstring. *last_known*: when callpop was last known to be
    following calls (its heartbeat before a crash), None: only each row's own times.
    *scope*: only the calls of that PBX (:func:`in_scope`): a PBX's listing says nothing of
    another's calls. *now*: when the close runs (default the clock), the latest the calls
    can have ended. Returns the closed calls with the Ended built for them (answered ones
    get contacts)."""
    rows = (await session.execute(_OPEN, {"pbx_id": pbx_id, "before": before})).all()
    closed: list[Unseen] = []
    now = now or dt.datetime.now(dt.UTC)
    for call_id, key, direction, number, name, started_at, answered_at, answer_unseen, client_id in rows:
        if key in live or not in_scope(key, scope):
            continue
        started_at = _aware(started_at)
        answered = _aware(answered_at) if answered_at is not None else None
        floor = answered or started_at
        ended_at = max(floor, last_known) if last_known is not None else floor
        parts = (await session.execute(_PARTS, {"call_id": call_id})).all()
        talkers = [ext for ext, was_answered in parts if was_answered]
        talk = int((ended_at - answered).total_seconds()) if answered is not None else 0
        # an answer learned from a listing came at the earliest when the call started
        earliest = started_at if answer_unseen else answered
        at_most = int((max(now, ended_at) - earliest).total_seconds()) if earliest is not None else None
        outcome = "answered" if answered is not None else "unknown"
        done = await session.execute(update(Call).where(Call.id == call_id, Call.ended_at.is_(None)).values(
            ended_at=ended_at, outcome=outcome, talk_seconds=talk, end_unseen=True))
        if cast(CursorResult[Any], done).rowcount == 0:
            continue  # closed meanwhile (another callpop instance saw its end): theirs stands
        # the first talker's share is the talk callpop is sure of; another's (a transfer) is not known
        talks = tuple(AgentTalk(ext, talk if i == 0 else 0, at_most) for i, ext in enumerate(talkers))
        for part in talks:
            await session.execute(update(CallParticipant).where(
                CallParticipant.call_id == call_id, CallParticipant.extension == part.agent).values(
                talk_seconds=part.talk_seconds, employee_id=extension_to_employee.get(part.agent)))
        ended = Ended(key, cast(Direction, direction), number, "answered" if answered is not None else "unknown",
                      tuple(talkers), talk, caller_name=name, started_at=started_at.timestamp(),
                      ended_at=ended_at.timestamp(), agents_rang=tuple(ext for ext, _ in parts), talks=talks,
                      answered_at=None if answered is None else answered.timestamp(), end_unseen=True,
                      answer_unseen=bool(answer_unseen) and answered is not None)
        closed.append(Unseen(int(call_id), ended, client_id))
        log.warning("call %s (#%s): its end was not seen; closed as %s at %s, talk >= %d s", key, call_id,
                    outcome, ended_at.isoformat(timespec="seconds"), talk, extra={"call": key})
    return closed
