"""Contact logging: which conversations count for the contact KPI, and why the others don't.

When a call ends, every employee who talked in it with a *known* client (the call row has a
``client_id``) gets one ``contacts`` row keyed by (call, employee). The row says whether it
counts and, when not, the first rule that stopped it, checked in this order:

``internal``       an extension-to-extension call never counts;
``direction_off``  inbound or outbound counting is switched off (``kpi.count_inbound`` /
                   ``kpi.count_outbound``);
``short_talk``     the employee talked less than ``kpi.min_talk_seconds``;
``uncertain_talk`` callpop did not see the answer (it learned the call from a channel
                   listing after a restart) or the end (a row closed by a sweep, a call
                   gone after a lost PBX link): the talk it is sure of is under
                   ``kpi.min_talk_seconds``, the most it can have been is not. A contact
                   that did not happen must never count, so it does not; the row says why;
``not_regular``    the client is not a regular client (``clients.status``) at logging time;
``duplicate_day``  the employee already has a counted contact with this client on the same
                   calendar day in ``kpi.timezone`` (when ``kpi.one_per_client_per_day``).

A transferred call has several talkers (``Ended.talks``); each is judged on their own talk
time, so both halves of a transfer can count. Logging is idempotent: the unique key
(call_id, employee_id) plus ``INSERT ... ON CONFLICT DO NOTHING`` means a replayed AMI
stream, a reconnect or a restart finds the row already there and changes nothing. The
caller commits.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from callpop.settings import KpiSettings, Settings
from callpop.store.db import dialect_of, insert_for
from callpop.store.employees import employees_by_extension
from callpop.store.models import Call, CallParticipant, Client, Contact
from callpop.telephony.events import Ended

__all__ = ["REASONS", "Verdict", "judge", "local_day_bounds", "log_contacts"]

log = logging.getLogger(__name__)

CLIENT_LOCK_SPACE = 0x63_70_6B  # pg_advisory_xact_lock(space, client id): "cpk"
REASONS = ("internal", "direction_off", "short_talk", "uncertain_talk", "not_regular", "duplicate_day")


@dataclass(frozen=True, slots=True)
class Verdict:
    counted: bool
    reason: str | None


def judge(kpi: KpiSettings, *, direction: str, talk_seconds: int, regular: bool,
          already_counted_today: bool, talk_at_most: int | None = None) -> Verdict:
    """The contact rules on plain values, in the documented order (first failing rule wins).
    *talk_seconds* is the talk callpop is sure of; *talk_at_most* the most it can have been
    when the answer was not seen (None: the talk is known)."""
    if direction == "internal":
        return Verdict(False, "internal")
    if (direction == "inbound" and not kpi.count_inbound) or (direction == "outbound" and not kpi.count_outbound):
        return Verdict(False, "direction_off")
    if talk_seconds < kpi.min_talk_seconds:
        if talk_at_most is not None and talk_at_most >= kpi.min_talk_seconds:
            return Verdict(False, "uncertain_talk")
        return Verdict(False, "short_talk")
    if not regular:
        return Verdict(False, "not_regular")
    if kpi.one_per_client_per_day and already_counted_today:
        return Verdict(False, "duplicate_day")
    return Verdict(True, None)


def local_day_bounds(moment: dt.datetime, timezone: str) -> tuple[dt.datetime, dt.datetime]:
    """UTC start and end of the calendar day *moment* falls on in *timezone* (DST-safe)."""
    tz = ZoneInfo(timezone)
    day = moment.astimezone(tz).date()
    start = dt.datetime.combine(day, dt.time(), tz)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tz)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


# Built once, run with parameters: a statement built per call costs SQLAlchemy more than
# SQLite spends running it, and this runs on the event loop for every call that ends.
_CALL = (select(Call.client_id, Call.direction, Call.answered_at, Call.started_at, Client.status)
         .outerjoin(Client, Client.id == Call.client_id).where(Call.id == bindparam("call_id")))
_EXISTING = select(Contact.employee_id).where(Contact.call_id == bindparam("call_id"))
_ANSWERED = select(CallParticipant.extension, CallParticipant.employee_id, CallParticipant.talk_seconds).where(
    CallParticipant.call_id == bindparam("call_id"), CallParticipant.answered.is_(True))
_COUNTED_TODAY = select(Contact.employee_id).where(
    Contact.client_id == bindparam("client_id"), Contact.counted.is_(True),
    Contact.employee_id.in_(bindparam("employees", expanding=True)), Contact.call_id != bindparam("call_id"),
    Contact.started_at >= bindparam("day_start"), Contact.started_at < bindparam("day_end"))
_OF_CALL = (select(Contact).where(Contact.call_id == bindparam("call_id")).order_by(Contact.employee_id)
            .execution_options(populate_existing=True))
_CONTACTS = cast(Table, Contact.__table__)
_CLIENT_LOCK = select(func.pg_advisory_xact_lock(CLIENT_LOCK_SPACE, bindparam("client_id")))


@cache
def _insert(dialect: str) -> Any:
    return insert_for(dialect)(_CONTACTS).on_conflict_do_nothing(index_elements=["call_id", "employee_id"])


async def _talk_per_employee(session: AsyncSession, call_id: int, ended: Ended,
                             by_ext: Mapping[str, int] | None) -> tuple[dict[int, int], dict[int, int]]:
    """(employee id -> seconds talked, employee id -> the most they can have talked, for
    those whose answer was not seen). ``Ended.talks`` first; the journal's participants
    when the event carries none; the single answering agent as a last resort."""
    if by_ext is None:
        by_ext = await employees_by_extension(session)
    per_agent: dict[str, int] = {}
    upper: dict[str, int] = {}
    if ended.talks:
        for talk in ended.talks:
            per_agent[talk.agent] = per_agent.get(talk.agent, 0) + max(0, int(talk.talk_seconds))
            if talk.at_most is not None:
                upper[talk.agent] = upper.get(talk.agent, 0) + max(0, int(talk.at_most) - int(talk.talk_seconds))
    else:
        rows = (await session.execute(_ANSWERED, {"call_id": call_id})).all()
        result: dict[int, int] = {}
        for ext, emp, seconds in rows:
            emp_id = emp if emp is not None else by_ext.get(ext)
            if emp_id is not None:
                result[emp_id] = result.get(emp_id, 0) + int(seconds or 0)
        if result:
            return result, {}
        if len(ended.answered_by) == 1:
            per_agent[ended.answered_by[0]] = max(0, int(ended.talk_seconds))
    talked: dict[int, int] = {}
    unsure: dict[int, int] = {}  # employee -> seconds the talk may have been longer
    for agent, seconds in per_agent.items():
        emp_id = by_ext.get(agent)
        if emp_id is None:
            log.debug("call %s: agent %s has no employee; no contact", ended.call, agent)
            continue
        talked[emp_id] = talked.get(emp_id, 0) + seconds
        if agent in upper:
            unsure[emp_id] = unsure.get(emp_id, 0) + upper[agent]
    kept = {emp: s for emp, s in talked.items() if s > 0 or emp in unsure or any(
        by_ext.get(a) == emp for a in ended.answered_by)}
    return kept, {emp: kept[emp] + extra for emp, extra in unsure.items() if emp in kept}


async def log_contacts(session: AsyncSession, call_id: int, ended: Ended, settings: Settings, *,
                       by_extension: Mapping[str, int] | None = None) -> list[Contact]:
    """Write the contacts of one ended call (idempotent) and return all of them.
    *by_extension* (extension -> employee id) saves reading the extensions table when
    the caller has it already (the journal writer keeps it)."""
    call = (await session.execute(_CALL, {"call_id": call_id})).one_or_none()
    if call is None:
        log.warning("call id %s not in the journal; no contacts logged", call_id)
        return []
    client_id, call_direction, answered_at, started_at, client_status = call
    if client_id is None:
        return []
    existing = set((await session.execute(_EXISTING, {"call_id": call_id})).scalars())
    talked, at_most = await _talk_per_employee(session, call_id, ended, by_extension)
    fresh = {emp: s for emp, s in talked.items() if emp not in existing}
    if fresh:
        regular = client_status == "regular"
        direction = call_direction if call_direction in ("inbound", "outbound", "internal") else ended.direction
        started = answered_at or started_at
        day_start, day_end = local_day_bounds(started, settings.kpi.timezone)
        if settings.kpi.one_per_client_per_day and dialect_of(session) == "postgresql":
            # several callpop instances end different calls with the same client at once:
            # one at a time per client, or both would find no counted contact today
            # (SQLite: the journal's transaction holds the database's one write lock already)
            await session.execute(_CLIENT_LOCK, {"client_id": client_id})
        counted_today = set((await session.execute(_COUNTED_TODAY, {
            "client_id": client_id, "employees": list(fresh), "call_id": call_id,
            "day_start": day_start, "day_end": day_end})).scalars())
        rows = []
        for emp, seconds in sorted(fresh.items()):
            verdict = judge(settings.kpi, direction=direction, talk_seconds=seconds, regular=regular,
                            already_counted_today=emp in counted_today, talk_at_most=at_most.get(emp))
            rows.append({"call_id": call_id, "employee_id": emp, "client_id": client_id,
                         "direction": direction, "started_at": started, "talk_seconds": seconds,
                         "counted": verdict.counted, "reason": verdict.reason})
        await session.execute(_insert(dialect_of(session)), rows)
        log.info("call %s: %d contact(s) logged, %d counted", ended.call, len(rows),
                 sum(1 for r in rows if r["counted"]))
    result = await session.execute(_OF_CALL, {"call_id": call_id})
    return list(result.scalars())
