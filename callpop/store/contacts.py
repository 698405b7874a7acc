"""Contact logging: which conversations count for the contact KPI, and why the others don't.

When a call ends, every employee who talked in it with a *known* client (the call row has a
``client_id``) gets one ``contacts`` row keyed by (call, employee). The row says whether it
counts and, when not, the first rule that stopped it, checked in this order:

``internal``       an extension-to-extension call never counts;
``direction_off``  inbound or outbound counting is switched off (``kpi.count_inbound`` /
                   ``kpi.count_outbound``);
``short_talk``     the employee talked less than ``kpi.min_talk_seconds``;
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
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from callpop.settings import KpiSettings, Settings
from callpop.store.models import Call, CallParticipant, Client, Contact, Extension
from callpop.telephony.events import Ended

__all__ = ["REASONS", "Verdict", "judge", "local_day_bounds", "log_contacts"]

log = logging.getLogger(__name__)

REASONS = ("internal", "direction_off", "short_talk", "not_regular", "duplicate_day")


@dataclass(frozen=True, slots=True)
class Verdict:
    counted: bool
    reason: str | None


def judge(kpi: KpiSettings, *, direction: str, talk_seconds: int, regular: bool,
          already_counted_today: bool) -> Verdict:
    """The contact rules on plain values, in the documented order (first failing rule wins)."""
    if direction == "internal":
        return Verdict(False, "internal")
    if (direction == "inbound" and not kpi.count_inbound) or (direction == "outbound" and not kpi.count_outbound):
        return Verdict(False, "direction_off")
    if talk_seconds < kpi.min_talk_seconds:
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


async def _talk_per_employee(session: AsyncSession, call_id: int, ended: Ended) -> dict[int, int]:
    """Employee id -> seconds talked. ``Ended.talks`` first; the journal's participants
    when the event carries none; the single answering agent as a last resort."""
    ext_rows = await session.execute(select(Extension.extension, Extension.employee_id))
    by_ext: Mapping[str, int] = {ext: emp for ext, emp in ext_rows}
    per_agent: dict[str, int] = {}
    if ended.talks:
        for talk in ended.talks:
            per_agent[talk.agent] = per_agent.get(talk.agent, 0) + max(0, int(talk.talk_seconds))
    else:
        rows = (await session.execute(
            select(CallParticipant.extension, CallParticipant.employee_id, CallParticipant.talk_seconds)
            .where(CallParticipant.call_id == call_id, CallParticipant.answered.is_(True)))).all()
        result: dict[int, int] = {}
        for ext, emp, seconds in rows:
            emp_id = emp if emp is not None else by_ext.get(ext)
            if emp_id is not None:
                result[emp_id] = result.get(emp_id, 0) + int(seconds or 0)
        if result:
            return result
        if len(ended.answered_by) == 1:
            per_agent[ended.answered_by[0]] = max(0, int(ended.talk_seconds))
    talked: dict[int, int] = {}
    for agent, seconds in per_agent.items():
        emp_id = by_ext.get(agent)
        if emp_id is None:
            log.debug("call %s: agent %s has no employee; no contact", ended.call, agent)
            continue
        talked[emp_id] = talked.get(emp_id, 0) + seconds
    return {emp: s for emp, s in talked.items() if s > 0 or any(
        by_ext.get(a) == emp for a in ended.answered_by)}


def _insert(session: AsyncSession) -> Any:
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


async def log_contacts(session: AsyncSession, call_id: int, ended: Ended, settings: Settings) -> list[Contact]:
    """Write the contacts of one ended call (idempotent) and return all of them."""
    call = await session.get(Call, call_id)
    if call is None:
        log.warning("call id %s not in the journal; no contacts logged", call_id)
        return []
    if call.client_id is None:
        return []
    existing = {emp for (emp,) in (await session.execute(
        select(Contact.employee_id).where(Contact.call_id == call_id))).all()}
    talked = await _talk_per_employee(session, call_id, ended)
    fresh = {emp: s for emp, s in talked.items() if emp not in existing}
    if fresh:
        client_status = (await session.execute(
            select(Client.status).where(Client.id == call.client_id))).scalar_one_or_none()
        regular = client_status == "regular"
        direction = call.direction if call.direction in ("inbound", "outbound", "internal") else ended.direction
        started = call.answered_at or call.started_at
        day_start, day_end = local_day_bounds(started, settings.kpi.timezone)
        counted_today = set((await session.execute(
            select(Contact.employee_id).where(and_(
                Contact.client_id == call.client_id, Contact.counted.is_(True),
                Contact.employee_id.in_(list(fresh)), Contact.call_id != call_id,
                Contact.started_at >= day_start, Contact.started_at < day_end)))).scalars())
        rows = []
        for emp, seconds in sorted(fresh.items()):
            verdict = judge(settings.kpi, direction=direction, talk_seconds=seconds, regular=regular,
                            already_counted_today=emp in counted_today)
            rows.append({"call_id": call_id, "employee_id": emp, "client_id": call.client_id,
                         "direction": direction, "started_at": started, "talk_seconds": seconds,
                         "counted": verdict.counted, "reason": verdict.reason})
        stmt = _insert(session)(Contact).values(rows).on_conflict_do_nothing(
            index_elements=["call_id", "employee_id"])
        await session.execute(stmt)
        log.info("call %s: %d contact(s) logged, %d counted", ended.call, len(rows),
                 sum(1 for r in rows if r["counted"]))
    result = await session.execute(
        select(Contact).where(Contact.call_id == call_id).order_by(Contact.employee_id)
        .execution_options(populate_existing=True))
    return list(result.scalars())
