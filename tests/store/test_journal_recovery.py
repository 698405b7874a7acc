"""Rows right when callpop does not see a call end: answers recorded as they happen, rows
nobody follows closed (never left open), times checked by the database."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from callpop.settings import Settings
from callpop.store.db import Database
from callpop.store.journal import close_call, open_call
from callpop.store.journal_recovery import close_unseen, record_answer, record_ringing
from callpop.store.models import Call, CallParticipant, Contact
from callpop.store_hooks import StoreHooks
from callpop.telephony.events import AgentTalk, Answered, Ended, Ringing
from tests.support.live import add_client, add_employee

T0 = dt.datetime.now(dt.UTC).replace(microsecond=0).timestamp() - 600
NUMBER = "+79161234567"


def _ring(call: str, agent: str = "101", at: float = T0) -> Ringing:
    return Ringing(call, "inbound", NUMBER, agent, at=at)


async def test_a_call_whose_end_was_not_seen_is_closed_from_its_recorded_answer(db: Database) -> None:
    """Killed mid-call: the answer was recorded live, the heartbeat says when callpop was
    last there. The row is closed as answered, the talk a lower bound, end_unseen; the
    agent's contact is logged from that talk."""
    emp = await add_employee(db, "anna", ["101"])
    client = await add_client(db, "Иван", NUMBER)
    async with db.sessions() as session:
        call_id = await open_call(session, "main", _ring("a1"), client)
        await record_ringing(session, call_id, "101", emp)
        await record_ringing(session, call_id, "102", None)
        await record_answer(session, "main", Answered("a1", "101", at=T0 + 3), emp)
        rang = await open_call(session, "main", _ring("r1", "103"), None)  # ringing at the crash
        await record_ringing(session, rang, "103", None)
        await open_call(session, "main", _ring("live"), None)  # still on after the restart
        await session.commit()
    last_beat = dt.datetime.fromtimestamp(T0 + 63, dt.UTC)
    restarted = dt.datetime.fromtimestamp(T0 + 70, dt.UTC)
    async with db.sessions() as session:
        closed = await close_unseen(session, "main", {"live"}, last_known=last_beat,
                                    before=dt.datetime.now(dt.UTC), extension_to_employee={"101": emp},
                                    now=restarted)
        await session.commit()
    assert sorted(c.ended.call for c in closed) == ["a1", "r1"]
    async with db.sessions() as session:
        rows = {c.call_key: c for c in (await session.scalars(select(Call))).all()}
        parts = sorted((p.extension, p.answered, p.talk_seconds) for p in (await session.scalars(
            select(CallParticipant).where(CallParticipant.call_id == call_id))).all())
    assert (rows["a1"].outcome, rows["a1"].talk_seconds, rows["a1"].end_unseen) == ("answered", 60, True)
    assert (rows["r1"].outcome, rows["r1"].talk_seconds, rows["r1"].end_unseen) == ("unknown", 0, True)
    assert rows["live"].ended_at is None and rows["live"].outcome is None
    assert parts == [("101", True, 60), ("102", False, 0)]
    a1 = next(c for c in closed if c.ended.call == "a1")
    # at least 60 s (answer to last heartbeat), at most 67 s (answer to the restart's close)
    assert a1.ended.talks == (AgentTalk("101", 60, 67),) and a1.ended.answered_by == ("101",)
    assert a1.ended.end_unseen and not a1.ended.answer_unseen


async def test_the_writer_logs_the_contact_of_a_row_it_closes_unseen(db: Database, settings: Settings) -> None:
    from callpop.journal_writer import JournalWriter

    emp = await add_employee(db, "anna", ["101"])
    client = await add_client(db, "Иван", NUMBER)
    async with db.sessions() as session:
        await open_call(session, "main", _ring("a1"), client)
        await record_answer(session, "main", Answered("a1", "101", at=T0 + 1), emp)
        await session.commit()
    writer = JournalWriter(settings, db, StoreHooks.default())
    writer.start()
    writer.last_beat = T0 + 200
    counted: list[tuple[int, ...]] = []
    writer.on_counted = counted.append
    try:
        assert await writer.sweep(set()) == 1
        assert await writer.sweep(set()) == 0  # nothing left open: idempotent
    finally:
        await writer.close()
    async with db.sessions() as session:
        contacts = [(c.employee_id, c.counted, c.talk_seconds) for c in (await session.scalars(select(Contact))).all()]
    assert contacts == [(emp, True, 199)] and counted == [(emp,)]


async def test_a_row_closed_unseen_without_its_client_gets_it_and_its_contact(db: Database,
                                                                              settings: Settings) -> None:
    """The row is written at the first ringing, before the client lookup ends: a daemon
    killed then leaves it without a client. The sweep after the restart looks the client
    up from the row's number, so the talk it is sure of still counts."""
    from callpop.journal_writer import JournalWriter

    emp = await add_employee(db, "anna", ["101"])
    client = await add_client(db, "Иван", NUMBER)
    async with db.sessions() as session:
        await open_call(session, "main", _ring("a1"), None)
        await record_answer(session, "main", Answered("a1", "101", at=T0 + 1), emp)
        await session.commit()
    writer = JournalWriter(settings, db, StoreHooks.default())
    writer.start()
    writer.last_beat = T0 + 200
    counted: list[tuple[int, ...]] = []
    writer.on_counted = counted.append
    try:
        assert await writer.sweep(set()) == 1
    finally:
        await writer.close()
    async with db.sessions() as session:
        row = (await session.scalars(select(Call))).one()
        contacts = [(c.employee_id, c.counted, c.talk_seconds) for c in (await session.scalars(select(Contact))).all()]
    assert row.client_id == client
    assert contacts == [(emp, True, 199)] and counted == [(emp,)]


async def test_a_real_end_after_an_unseen_close_puts_the_row_right(db: Database) -> None:
    """A sweep that closed a row too early (its call was on after all) is overwritten by the
    call's real end: outcome, talk, end_unseen back to false."""
    async with db.sessions() as session:
        await open_call(session, "main", _ring("x1"), None)
        await close_unseen(session, "main", set(), last_known=None, before=dt.datetime.now(dt.UTC),
                           extension_to_employee={})
        ended = Ended("x1", "inbound", NUMBER, "answered", ("101",), 40, started_at=T0, ended_at=T0 + 50,
                      agents_rang=("101",), talks=(AgentTalk("101", 40),))
        await close_call(session, "main", ended, None, {})
        await session.commit()
        row = (await session.scalars(select(Call))).one()
    assert (row.outcome, row.talk_seconds, row.end_unseen) == ("answered", 40, False)


async def test_the_database_refuses_an_answer_before_the_start(db: Database) -> None:
    async with db.sessions() as session:
        await open_call(session, "main", _ring("c1"), None)
        await session.commit()
    async with db.sessions() as session:
        with pytest.raises(IntegrityError):
            await session.execute(text("UPDATE calls SET answered_at = :t WHERE call_key = 'c1'"),
                                  {"t": dt.datetime.fromtimestamp(T0 - 5, dt.UTC)})
            await session.commit()


async def test_a_close_never_writes_an_answer_before_the_start(db: Database) -> None:
    """An Ended whose talk exceeds its span (a transfer's summed shares) is clamped to the
    row's start instead of being refused (and the call lost)."""
    async with db.sessions() as session:
        await open_call(session, "main", _ring("t1", at=T0 + 5), None)
        ended = Ended("t1", "inbound", NUMBER, "answered", ("101", "102"), 18, started_at=T0, ended_at=T0 + 19,
                      agents_rang=("101",), talks=(AgentTalk("101", 9), AgentTalk("102", 9)))
        await close_call(session, "main", ended, None, {})
        await session.commit()
        row = (await session.scalars(select(Call))).one()
    assert row.answered_at is not None and row.answered_at >= row.started_at


async def test_a_pbx_listing_closes_only_that_pbx_rows(db: Database) -> None:
    """With several PBXs, the listing of one says nothing of the others' calls: a restart's
    first listing (the first PBX's) must not close a second PBX's calls still on."""
    async with db.sessions() as session:
        await open_call(session, "main", _ring("1700000000.1"), None)
        await open_call(session, "main", _ring("branch:1700000000.1"), None)
        closed = await close_unseen(session, "main", set(), last_known=None, before=dt.datetime.now(dt.UTC),
                                    extension_to_employee={}, scope="")
        assert [c.ended.call for c in closed] == ["1700000000.1"]
        closed = await close_unseen(session, "main", set(), last_known=None, before=dt.datetime.now(dt.UTC),
                                    extension_to_employee={}, scope="branch")
        assert [c.ended.call for c in closed] == ["branch:1700000000.1"]
        await session.commit()
