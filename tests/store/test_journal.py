"""The call journal: one row per call whatever is replayed, participants with their talk."""

from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from callpop.settings import Settings
from callpop.store.db import Database
from callpop.store.directory import lookup
from callpop.store.journal import close_call, open_call
from callpop.store.models import Call, CallParticipant
from callpop.telephony.events import AgentTalk, Answered, Ended, Ringing
from tests.support import history_rows as data

T0 = dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC).timestamp()


def ringing(agent: str, *, call: str = "1700000000.1", at: float = T0) -> Ringing:
    return Ringing(call=call, direction="inbound", client="+79161234567", agent=agent, caller_name="Иван", at=at)


def ended(call: str = "1700000000.1") -> Ended:
    return Ended(call=call, direction="inbound", client="+79161234567", outcome="answered",
                 answered_by=("101", "102"), talk_seconds=150, caller_name="Иван", started_at=T0,
                 ended_at=T0 + 180, agents_rang=("101", "103"),
                 talks=(AgentTalk("101", 100), AgentTalk("102", 50)))


async def _rows(db: Database) -> tuple[list[Call], list[tuple[str, int | None, bool, int]]]:
    async with db.sessions() as session:
        calls = list((await session.scalars(select(Call))).all())
        parts = [(p.extension, p.employee_id, p.answered, p.talk_seconds) for p in (await session.scalars(
            select(CallParticipant).order_by(CallParticipant.extension))).all()]
    return calls, parts


async def test_open_call_is_idempotent_across_agents_and_replays(db: Database) -> None:
    async with db.sessions() as session:
        first = await open_call(session, "main", ringing("101"), None)
        second = await open_call(session, "main", ringing("102", at=T0 + 2), None)
        again = await open_call(session, "main", ringing("101"), None)
        other_pbx = await open_call(session, "branch", ringing("101"), None)
        await session.commit()
    assert first == second == again != other_pbx
    calls, _ = await _rows(db)
    assert len(calls) == 2
    main = next(c for c in calls if c.pbx_id == "main")
    assert main.started_at == dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC)
    assert main.caller_name == "Иван" and main.outcome is None


async def test_client_found_later_is_filled_in(db: Database) -> None:
    async with db.sessions() as session:
        c = await data.client(session, "Иван", "+79161234567")
        call_id = await open_call(session, "main", ringing("101"), None)
        assert await open_call(session, "main", ringing("102"), c.id) == call_id
        await session.commit()
    calls, _ = await _rows(db)
    assert calls[0].client_id == c.id


async def _mark_answered(session: AsyncSession, pbx_id: str, event: Answered) -> None:
    """The call's first answer time, as a journal that recorded answers would have written it."""
    await session.execute(update(Call).where(Call.pbx_id == pbx_id, Call.call_key == event.call,
                                             Call.answered_at.is_(None))
                          .values(answered_at=dt.datetime.fromtimestamp(event.at, dt.UTC)))


async def test_close_call_twice_leaves_the_same_rows(db: Database) -> None:
    async with db.sessions() as session:
        anna = await data.employee(session, "anna", "Анна")
        boris = await data.employee(session, "boris", "Борис")
        opened = await open_call(session, "main", ringing("101"), None)
        await _mark_answered(session, "main", Answered(call="1700000000.1", agent="101", at=T0 + 30))
        mapping = {"101": anna.id, "102": boris.id}
        closed = await close_call(session, "main", ended(), None, mapping)
        await session.commit()
    first = await _rows(db)
    async with db.sessions() as session:
        assert closed == opened
        # the end is journalled already: the second close writes nothing and says so
        assert await close_call(session, "main", ended(), None, mapping) is None
        await session.commit()
    calls, parts = await _rows(db)
    assert (len(calls), parts) == (1, first[1])
    assert parts == [("101", anna.id, True, 100), ("102", boris.id, True, 50), ("103", None, False, 0)]
    call = calls[0]
    assert call.outcome == "answered" and call.talk_seconds == 150
    assert call.answered_at == dt.datetime(2026, 3, 10, 9, 0, 30, tzinfo=dt.UTC)  # the first answer's, kept
    assert call.ended_at == dt.datetime(2026, 3, 10, 9, 3, tzinfo=dt.UTC)


async def test_a_seen_end_replaces_an_unseen_one_never_the_reverse(db: Database) -> None:
    """Two callpop instances on one PBX: one may close a row without its end (its link to
    the PBX dropped) while the other saw the end. The seen end stands, whichever came first."""
    seen = ended()
    unseen = dataclasses.replace(seen, talk_seconds=20, talks=(AgentTalk("101", 20),), ended_at=T0 + 50,
                                 end_unseen=True)
    async with db.sessions() as session:
        await open_call(session, "main", ringing("101"), None)
        assert await close_call(session, "main", seen, None, {}) is not None
        assert await close_call(session, "main", unseen, None, {}) is None  # after the seen end: ignored
        await session.commit()
    calls, _ = await _rows(db)
    assert (calls[0].talk_seconds, calls[0].end_unseen) == (150, False)
    async with db.sessions() as session:  # the other order: the unseen end first, then the seen one
        await open_call(session, "main", ringing("101", call="c.2"), None)
        assert await close_call(session, "main", dataclasses.replace(unseen, call="c.2"), None, {}) is not None
        assert await close_call(session, "main", dataclasses.replace(seen, call="c.2"), None, {}) is not None
        await session.commit()
    calls, _ = await _rows(db)
    assert sorted((c.call_key, c.talk_seconds, c.end_unseen) for c in calls) == [("1700000000.1", 150, False),
                                                                          ("c.2", 150, False)]


async def test_close_without_open_creates_the_row(db: Database) -> None:
    missed = Ended(call="x.9", direction="inbound", client="+79161234567", outcome="missed", answered_by=(),
                   talk_seconds=0, started_at=T0, ended_at=T0 + 20, agents_rang=("101",))
    async with db.sessions() as session:
        await close_call(session, "main", missed, None, {})
        await close_call(session, "main", missed, None, {})
        await session.commit()
        count = await session.scalar(select(func.count()).select_from(Call))
    calls, parts = await _rows(db)
    assert count == 1 and calls[0].outcome == "missed" and calls[0].answered_at is None
    assert calls[0].started_at == dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC)
    assert parts == [("101", None, False, 0)]


async def test_journalled_call_shows_on_the_card(db: Database, settings: Settings) -> None:
    async with db.sessions() as session:
        anna = await data.employee(session, "anna", "Анна")
        c = await data.client(session, "Иван", "+79161234567")
        single = Ended(call="c.1", direction="inbound", client="+79161234567", outcome="answered",
                       answered_by=("101",), talk_seconds=42, started_at=T0, ended_at=T0 + 50)
        await open_call(session, "main", ringing("101", call="c.1"), c.id)
        await close_call(session, "main", single, c.id, {"101": anna.id})
        await session.commit()
        card = (await lookup(session, "+79161234567", settings)).matches[0]
    assert [(x.talk_seconds, [p.name for p in x.talked]) for x in card.calls] == [(42, ["Анна"])]
