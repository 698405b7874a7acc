"""Missed calls to return: a manager's own clients who called and reached nobody.

One row per call, not per phone it rang (a queue call that rang five managers is one call
to return). A missed call leaves the list when anyone marks it done, or by itself once the
client has had an answered call after it (someone called back, or the client got through).
Only the last ``WINDOW`` counts: an older missed call is history, not a to-do.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from callpop.phones import format_display
from callpop.store.errors import NotFound
from callpop.store.models import Call, CallbackDone, Client, utcnow

__all__ = ["WINDOW", "MissedCall", "mark_done", "missed_calls_to_return"]

WINDOW = dt.timedelta(days=7)
LIMIT = 50


@dataclass(frozen=True, slots=True)
class MissedCall:
    call_id: int
    started_at: dt.datetime
    number: str | None
    display: str | None
    client_id: int
    client_name: str
    company: str | None

    def to_json(self) -> dict[str, Any]:
        return {"call_id": self.call_id, "started_at": self.started_at.isoformat(), "number": self.number,
                "display": self.display, "client_id": self.client_id, "client_name": self.client_name,
                "company": self.company}


async def missed_calls_to_return(session: AsyncSession, employee_id: int, *, region: str = "RU",
                                 now: dt.datetime | None = None) -> list[MissedCall]:
    now = now or utcnow()
    later = aliased(Call)
    answered_since = exists().where(later.client_id == Call.client_id, later.started_at > Call.started_at,
                                    later.outcome == "answered")
    done = exists().where(CallbackDone.call_id == Call.id)
    rows = await session.execute(
        select(Call.id, Call.started_at, Call.client_number, Client.id, Client.name, Client.company)
        .join(Client, Client.id == Call.client_id)
        .where(Client.responsible_id == employee_id, Call.outcome == "missed", Call.direction == "inbound",
               Call.started_at >= now - WINDOW, ~done, ~answered_since)
        .order_by(Call.started_at.desc(), Call.id.desc()).limit(LIMIT))
    return [MissedCall(cid, started, number, format_display(number, region) if number else None, client, name,
                       company)
            for cid, started, number, client, name, company in rows]


async def mark_done(session: AsyncSession, call_id: int, employee_id: int) -> None:
    """Idempotent: marking a call done twice keeps the first mark."""
    if await session.get(Call, call_id) is None:
        raise NotFound("call", call_id, field="call_id")
    if await session.get(CallbackDone, call_id) is None:
        session.add(CallbackDone(call_id=call_id, employee_id=employee_id))
        await session.flush()
