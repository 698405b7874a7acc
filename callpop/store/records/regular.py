"""The regular-client rule: who counts as a company's regular client.

A client is **regular** when either

* a person set it by hand (``clients.status_source = "manual"``; the rule never touches
  such a client, whatever its payments), or
* the rule finds at least ``kpi.regular_min_paid_agreements`` *paid agreements* in the last
  ``kpi.regular_window_months`` months.

A **paid agreement** is an agreement of the client, not ``cancelled`` and not ``lost``,
with at least one payment linked to it (``payments.agreement_id``) whose ``paid_at`` lies
in the window ``(now - M calendar months, now]``. Payments with no agreement, and several
payments on one agreement, add nothing beyond that one agreement. Every other rule-sourced
client is **new**. Call ``recompute_status`` after a payment or agreement of the client
changes; ``recompute_all`` re-applies the rule to everyone (a nightly job, or after an
import), because clients also drop out of the window with time. Every status the rule changes
leaves an audit row (source ``rule``, old -> new) in the same transaction.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging

from sqlalchemy import ColumnElement, Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from callpop.settings import Settings
from callpop.store import audit
from callpop.store.models import Agreement, Client, Payment

__all__ = ["main", "months_before", "recompute_all", "recompute_status", "window_start"]

log = logging.getLogger(__name__)

_NOT_PAID_STATUSES = ("cancelled", "lost")
RULE = "rule"  # the audit trail's source for changes the rule made


def months_before(moment: dt.datetime, months: int) -> dt.datetime:
    """The same instant *months* calendar months earlier (31 March - 1 month = 28/29 Feb)."""
    total = moment.year * 12 + (moment.month - 1) - months
    year, month0 = divmod(total, 12)
    month = month0 + 1
    next_first = dt.date(year + (month == 12), month % 12 + 1, 1)
    last_day = (next_first - dt.timedelta(days=1)).day
    return moment.replace(year=year, month=month, day=min(moment.day, last_day))


def window_start(settings: Settings, now: dt.datetime) -> dt.datetime:
    return months_before(now, settings.kpi.regular_window_months)


def _paid_agreements(settings: Settings, now: dt.datetime) -> Select[int, int]:
    """client_id, number of paid agreements in the window (clients with at least one)."""
    start = window_start(settings, now)
    return (
        select(Agreement.client_id, func.count(func.distinct(Agreement.id)))
        .join(Payment, Payment.agreement_id == Agreement.id)
        .where(Payment.paid_at > start, Payment.paid_at <= now,
               Agreement.status.not_in(_NOT_PAID_STATUSES))
        .group_by(Agreement.client_id)
    )


async def recompute_status(session: AsyncSession, client_id: int, settings: Settings, now: dt.datetime) -> str:
    """Apply the rule to one client and return its status (a manual one is returned as is)."""
    client = await session.get(Client, client_id)
    if client is None:
        raise LookupError(f"client {client_id} not found")
    if client.status_source == "manual":
        return client.status
    row = (await session.execute(_paid_agreements(settings, now).where(Agreement.client_id == client_id))).first()
    paid = int(row[1]) if row else 0
    status = "regular" if paid >= settings.kpi.regular_min_paid_agreements else "new"
    if client.status != status:
        log.info("client %s: status %s -> %s (%d paid agreements)", client_id, client.status, status, paid)
        audit.record(session, "client", client_id, {"status": (client.status, status)}, employee_id=None,
                     client_id=client_id, source=RULE)
        client.status = status
        await session.flush()
    return status


async def recompute_all(session: AsyncSession, settings: Settings, now: dt.datetime) -> int:
    """Apply the rule to every rule-sourced client; returns how many changed status.

    Two SELECT and two UPDATE statements whatever the number of clients, so it runs in
    seconds on a large directory; each changed client gets its audit row."""
    paid = _paid_agreements(settings, now).having(
        func.count(func.distinct(Agreement.id)) >= settings.kpi.regular_min_paid_agreements).subquery()
    regular_ids = select(paid.c.client_id)
    changed = 0
    for status, which in (("regular", Client.id.in_(regular_ids)), ("new", Client.id.not_in(regular_ids))):
        changed += await _set_status(session, status, which)
    log.info("regular-client rule re-applied: %d client(s) changed status", changed)
    return changed


async def _set_status(session: AsyncSession, status: str, which: ColumnElement[bool]) -> int:
    """Set *status* on the rule-sourced clients *which* selects, one audit row per client
    changed. The old statuses are read first in the same transaction (RETURNING gives
    only the new ones)."""
    where = (Client.status_source != "manual", Client.status != status, which)
    before = {cid: old for cid, old in (await session.execute(select(Client.id, Client.status).where(*where))).all()}
    if not before:
        return 0
    done = (await session.execute(update(Client).where(*where).values(status=status).returning(Client.id)
                                  .execution_options(synchronize_session=False))).scalars().all()
    for client_id in done:
        audit.record(session, "client", client_id, {"status": (before.get(client_id), status)}, employee_id=None,
                     client_id=client_id, source=RULE)
    return len(done)


def main(args: argparse.Namespace, settings: Settings) -> int:
    """``callpop regular``: re-apply the rule to every client (run it nightly from cron)."""
    from callpop.store.db import open_database

    async def run() -> int:
        db = await open_database(settings.database)
        try:
            async with db.sessions() as session:
                changed = await recompute_all(session, settings, dt.datetime.now(dt.UTC))
                await session.commit()
        finally:
            await db.close()
        print(f"regular-client rule applied: {changed} client(s) changed status")
        return 0

    return asyncio.run(run())
