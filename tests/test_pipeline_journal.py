"""The journal writer: many calls in few transactions, and one bad call costs no one else."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import func, select, update

from callpop.journal_writer import JournalWriter
from callpop.settings import Settings
from callpop.store.db import Database, create_engine
from callpop.store.directory_changes import DirectoryWatch
from callpop.store.models import Call, CallParticipant, Contact, Extension
from callpop.store_hooks import StoreHooks
from callpop.telephony.events import AgentTalk, Ended, Ringing
from tests.support.ami import wait_until
from tests.support.live import add_client, add_employee


def _ring(i: int) -> Ringing:
    return Ringing(f"j{i}", "inbound", "+79161234567", "101", at=1_795_000_000.0 + i)


def _end(i: int) -> Ended:
    return Ended(f"j{i}", "inbound", "+79161234567", "answered", ("101",), 60, started_at=1_795_000_000.0 + i,
                 ended_at=1_795_000_090.0 + i, agents_rang=("101",), talks=(AgentTalk("101", 60),))


async def test_concurrent_calls_share_transactions(settings: Settings, db: Database) -> None:
    emp = await add_employee(db, "anna", ["101"])
    client = await add_client(db, "Постоянный", "+79161234567")
    writer = JournalWriter(settings, db, StoreHooks.default())
    writer.start()
    try:
        ids = await asyncio.gather(*(writer.open_call(_ring(i), client) for i in range(60)))
        assert len(set(ids)) == 60
        closed = await asyncio.gather(*(writer.close_call(_end(i), client) for i in range(60)))
        assert [c.call_id for c in closed] == ids
        assert writer.batches < 60  # batched, not one transaction per write
        async with db.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(Call)) == 60
            assert await session.scalar(select(func.count()).select_from(CallParticipant)) == 60
            assert await session.scalar(select(func.count()).select_from(Contact).where(
                Contact.employee_id == emp)) == 60
    finally:
        await writer.close()


async def test_a_failing_call_does_not_lose_the_others(settings: Settings, db: Database) -> None:
    await add_employee(db, "anna", ["101"])
    real = StoreHooks.default()

    async def open_call(session: Any, pbx_id: str, event: Ringing, client_id: int | None) -> int:
        if event.call == "j3":
            raise ValueError("bad row (test)")
        return await real.open_call(session, pbx_id, event, client_id)

    writer = JournalWriter(settings, db, replace(real, open_call=open_call))
    writer.start()
    try:
        results = await asyncio.gather(*(writer.open_call(_ring(i), None) for i in range(8)),
                                       return_exceptions=True)
        assert isinstance(results[3], ValueError)
        assert all(isinstance(r, int) for i, r in enumerate(results) if i != 3)
        assert writer.failed == 1
        async with db.sessions() as session:
            keys = set((await session.scalars(select(Call.call_key))).all())
        assert keys == {f"j{i}" for i in range(8)} - {"j3"}
    finally:
        await writer.close()


@pytest.mark.parametrize("writer_of_the_move", ["this process", "another process"])
async def test_an_extension_given_to_another_manager_credits_them_the_next_call(
        settings: Settings, db: Database, writer_of_the_move: str) -> None:
    """A desk moved to a new manager (their account given extension 101) must not pay the
    old owner for the calls answered there afterwards: neither when this process made the
    move nor when another one did (``callpop user``, a second instance), which only the
    database's announcement tells."""
    anna = await add_employee(db, "anna", ["101"])
    boris = await add_employee(db, "boris")
    client = await add_client(db, "Постоянный", "+79161234567")
    watch = DirectoryWatch(db, check_every=0.01)
    watch.start()
    writer = JournalWriter(settings, db, StoreHooks.default())
    writer.start()
    other = create_engine(db.url) if writer_of_the_move == "another process" else db.engine
    try:
        await wait_until(lambda: watch.state in ("listening", "polling"), what="the directory watch")
        await writer.close_call(_end(0), client)
        heard = watch.heard
        async with other.begin() as conn:
            await conn.execute(update(Extension).where(Extension.extension == "101").values(employee_id=boris))
        if writer_of_the_move == "another process":
            await wait_until(lambda: watch.heard > heard, what="the move announced")
        await writer.close_call(_end(1), client)
        async with db.sessions() as session:
            credited = dict((await session.execute(
                select(Call.call_key, Contact.employee_id).join(Contact, Contact.call_id == Call.id))).all())
        assert credited == {"j0": anna, "j1": boris}
    finally:
        await writer.close()
        await watch.stop()
        if other is not db.engine:
            await other.dispose()
