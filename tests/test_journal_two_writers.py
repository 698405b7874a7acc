"""Two callpop instances on one database, both following the same PBX: the journal writers
race on every call, and the journal must come out as one writer would have written it
(one row per call and per contact, the same times, outcomes, participants and talk).

Each "instance" here is a JournalWriter with its own engine (its own connections) and its
own spool, fed the same call events at the same time, the way two pipelines are fed by
the same PBX: a call's first ringing, the client found by the lookup, the other agents
ringing, the answer, the end.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from callpop.journal_writer import JournalWriter
from callpop.settings import DatabaseSettings, Settings
from callpop.store.db import Database, open_database
from callpop.store_hooks import StoreHooks
from callpop.telephony.events import AgentTalk, Answered, Ended, Ringing
from tests.support.live import add_client, add_employee

T0 = dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC).timestamp()
AGENTS = ("101", "102", "103", "104")
CALLS = 40


def _number(i: int) -> str:
    return f"+7916{i:07d}"


def _events(i: int) -> list[Ringing | Answered | Ended]:
    """One call of the stream: answered (long or too short to count), a ring group where the
    second agent answers, or missed; every fourth an outbound call."""
    key, number, start = f"17950{i:05d}.1", _number(i), T0 + 10 * i
    first, second = AGENTS[i % 4], AGENTS[(i + 1) % 4]
    direction = "outbound" if i % 4 == 3 else "inbound"
    kind = i % 5
    rings = [Ringing(key, direction, number, first, at=start + 1)]
    if kind == 2:  # ring group: both phones ring, the second answers
        rings.append(Ringing(key, direction, number, second, at=start + 1))
    if kind == 4:  # missed
        return [*rings, Ended(key, direction, number, "missed", (), 0, started_at=start, ended_at=start + 20,
                              agents_rang=(first,))]
    talker = second if kind == 2 else first
    talk = 3 if kind == 3 else 40 + i
    answered = Answered(key, talker, at=start + 5)
    end = Ended(key, direction, number, "answered", (talker,), talk, started_at=start, ended_at=start + 5 + talk,
                answered_at=start + 5, agents_rang=tuple(r.agent for r in rings), talks=(AgentTalk(talker, talk),))
    return [*rings, answered, end]


async def _follow(writer: JournalWriter, events: list[Ringing | Answered | Ended], client_id: int,
                  counted: list[int]) -> None:
    """What one pipeline asks of its journal writer for one call; *counted* gets the
    employees it would send ``kpi_changed``."""
    opened = False
    for event in events:
        if isinstance(event, Ringing):
            if not opened:
                await writer.open_call(event, None)  # queued before the lookup answers
                await writer.client(event.call, client_id)
                opened = True
            else:
                await writer.rang(event)
        elif isinstance(event, Answered):
            await writer.answer(event)
        else:
            closed = await writer.close_call(event, client_id)
            if closed is not None:  # None: spooled; on_counted tells when it is written
                counted.extend(closed.counted_employees)


@pytest.fixture
async def clients(db: Database) -> list[int]:
    for n, ext in enumerate(AGENTS):
        await add_employee(db, f"agent{n}", [ext])
    return [await add_client(db, f"Client {i}", _number(i)) for i in range(CALLS)]


def _settings(settings: Settings, db: Database, tmp: Path, name: str, pbx: str, once_a_day: bool) -> Settings:
    # the single and the double run share a database: without *once_a_day* a regular client
    # talked to twice a day counts twice
    kpi = dataclasses.replace(settings.kpi, min_talk_seconds=10, one_per_client_per_day=once_a_day)
    return settings.replace(database=DatabaseSettings(url=db.url), pbx=dataclasses.replace(settings.pbx, id=pbx),
                            kpi=kpi,
                            journal=dataclasses.replace(settings.journal, spool_path=str(tmp / f"{name}.db")))


@pytest.fixture
async def instances(settings: Settings, db: Database, tmp_path: Path) -> AsyncIterator[Any]:
    """Start writers as separate instances would run them: each its own engine and spool."""
    started: list[tuple[JournalWriter, Database]] = []

    async def start(name: str, pbx: str, *, once_a_day: bool = False) -> tuple[JournalWriter, list[int]]:
        own = await open_database(DatabaseSettings(url=db.url))
        writer = JournalWriter(_settings(settings, db, tmp_path, name, pbx, once_a_day), own, StoreHooks.default())
        counted: list[int] = []
        writer.on_counted = counted.extend
        writer.start()
        started.append((writer, own))
        return writer, counted

    yield start
    for writer, own in started:
        await writer.close()
        await own.close()


async def _settled(*writers: JournalWriter) -> None:
    """Until what a writer spooled (SQLite's write lock taken by the other) is written."""
    for _ in range(600):
        if not any(w.spooling or w.backlog for w in writers):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the writers' spools were not written back")


async def _journal(db: Database, pbx: str) -> tuple[dict[str, tuple[Any, ...]], dict[str, list[tuple[Any, ...]]],
                                                     dict[str, list[tuple[Any, ...]]]]:
    """Calls, participants and contacts of *pbx*'s rows, keyed by call key, ids left out."""
    calls: dict[str, tuple[Any, ...]] = {}
    parts: dict[str, list[tuple[Any, ...]]] = {}
    contacts: dict[str, list[tuple[Any, ...]]] = {}
    async with db.sessions() as session:
        for row in await session.execute(text(
                "SELECT call_key, direction, client_number, client_id, started_at, answered_at, ended_at, outcome, "
                "talk_seconds, end_unseen FROM calls WHERE pbx_id = :pbx"), {"pbx": pbx}):
            assert row[0] not in calls, f"call {row[0]} has two rows"
            calls[row[0]] = tuple(row[1:])
        for row in await session.execute(text(
                "SELECT c.call_key, p.extension, p.employee_id, p.answered, p.talk_seconds FROM call_participants p "
                "JOIN calls c ON c.id = p.call_id WHERE c.pbx_id = :pbx ORDER BY p.extension"), {"pbx": pbx}):
            parts.setdefault(row[0], []).append(tuple(row[1:]))
        for row in await session.execute(text(
                "SELECT c.call_key, k.employee_id, k.client_id, k.direction, k.started_at, k.talk_seconds, k.counted, "
                "k.reason FROM contacts k JOIN calls c ON c.id = k.call_id WHERE c.pbx_id = :pbx "
                "ORDER BY k.employee_id"), {"pbx": pbx}):
            contacts.setdefault(row[0], []).append(tuple(row[1:]))
    return calls, parts, contacts


async def test_two_instances_racing_on_every_call_write_what_one_would(
        db: Database, clients: list[int], instances: Any) -> None:
    streams = [_events(i) for i in range(CALLS)]
    alone, alone_counted = await instances("alone", "single")
    await asyncio.gather(*(_follow(alone, s, c, alone_counted) for s, c in zip(streams, clients, strict=True)))
    await _settled(alone)
    a, a_counted = await instances("a", "main")
    b, b_counted = await instances("b", "main")
    # both instances follow every call at the same moment: every write of every call races
    await asyncio.gather(*(_follow(w, s, c, n) for s, c in zip(streams, clients, strict=True)
                           for w, n in ((a, a_counted), (b, b_counted))))
    await _settled(a, b)
    single = await _journal(db, "single")
    double = await _journal(db, "main")
    assert len(single[0]) == CALLS and len(single[2]) > 0
    assert double[0] == single[0]  # one row per call, the same times, outcome and talk
    assert double[1] == single[1]  # the same participants
    assert double[2] == single[2]  # one contact per call and employee, judged alike
    # the managers' KPI widgets are told once per counted call, by whichever instance wrote it
    assert alone_counted and sorted(a_counted + b_counted) == sorted(alone_counted)
    assert not any(c[-1] for c in double[0].values())  # no end taken for unseen


async def test_a_listing_does_not_close_a_row_another_instance_opened_after_it(
        db: Database, clients: list[int], instances: Any) -> None:
    """Instance A logs in again and reads the PBX's channels; its sweep closes the rows that
    listing does not explain, but not a call B opened after the listing was asked for (its
    events may still be on their way to A). A row closed without its end is put right by
    the end seen by B."""
    a, _ = await instances("a", "main")
    b, _ = await instances("b", "main")
    before, after = _events(0), _events(1)  # started at T0 and T0 + 10
    await b.open_call(before[0], clients[0])  # type: ignore[arg-type]
    await b.open_call(after[0], clients[1])  # type: ignore[arg-type]
    await b.answer(before[1])  # type: ignore[arg-type]
    # A's listing was asked for at T0 + 8 and showed neither call
    assert await a.sweep(set(), before=T0 + 8) == 1
    calls, _, _ = await _journal(db, "main")
    assert calls[after[0].call][5] is None  # B's later call is still open
    first = calls[before[0].call]
    assert (first[6], first[8]) == ("answered", True)  # closed, end unseen, the answer kept
    # B saw the first call's end after all: the seen end replaces the unseen one
    await b.close_call(before[-1], clients[0])  # type: ignore[arg-type]
    await b.close_call(after[-1], clients[1])  # type: ignore[arg-type]
    calls, _, contacts = await _journal(db, "main")
    assert [calls[e[0].call][6:] for e in (before, after)] == [("answered", 40, False), ("answered", 41, False)]
    # the contact is judged on the real talk, not on the lower bound the sweep had
    assert [c[4] for c in contacts[before[0].call]] == [40]


async def test_two_calls_of_one_client_ended_at_once_on_two_instances_count_once_that_day(
        db: Database, clients: list[int], instances: Any) -> None:
    """"One counted contact per client and day": instance A ends one call and instance B
    another, the same manager and client, at the same moment. One of them counts."""
    a, _ = await instances("a", "main", once_a_day=True)
    b, _ = await instances("b", "main", once_a_day=True)
    pairs = 10
    ends = []
    for i in range(pairs):
        mine = _events(5 * i)[-1]  # answered, 40 s and more: counts
        assert isinstance(mine, Ended) and mine.talk_seconds >= 10
        ends.append((mine, dataclasses.replace(mine, call=mine.call + "b", started_at=mine.started_at + 1)))
    await asyncio.gather(*(w.close_call(e, clients[i]) for i, pair in enumerate(ends)
                           for w, e in zip((a, b), pair, strict=True)))
    await _settled(a, b)
    async with db.sessions() as session:
        counted = [tuple(r) for r in await session.execute(text(
            "SELECT client_id, count(*) FROM contacts WHERE counted GROUP BY client_id ORDER BY client_id"))]
        reasons = [r[0] for r in await session.execute(text("SELECT reason FROM contacts WHERE NOT counted"))]
    assert counted == [(clients[i], 1) for i in range(pairs)]
    assert reasons == ["duplicate_day"] * pairs
