"""What the card shows (its history): order, bounds, paging, JSON form, and
a constant number of statements however much history a client has."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Engine, event

from callpop.settings import HistorySettings, Settings
from callpop.store.db import Database, reader_engine
from callpop.store.directory import client_card, client_history, lookup
from tests.support import history_rows as data
from tests.support.history_rows import NOW


@contextmanager
def count_statements(db: Database) -> Iterator[list[str]]:
    """Every statement the database runs: on SQLite as SQLite itself traces them (the
    lookup runs prepared statements on the driver connection), elsewhere as SQLAlchemy
    sends them."""
    statements: list[str] = []
    reader = reader_engine(db.engine)
    if reader is None:
        def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            statements.append(statement)

        event.listen(Engine, "before_cursor_execute", before)
        try:
            yield statements
        finally:
            event.remove(Engine, "before_cursor_execute", before)
        return

    def traced(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.set_trace_callback(
            lambda sql: statements.append(sql) if sql.lstrip().upper().startswith(("SELECT", "WITH")) else None)

    reader.dispose()  # new connections, each traced
    event.listen(reader, "connect", traced)
    try:
        yield statements
    finally:
        event.remove(reader, "connect", traced)
        reader.dispose()


async def test_open_promises_overdue_first_then_by_due_date(db: Database, settings: Settings) -> None:
    async with db.sessions() as session:
        anna = await data.employee(session, "anna", "Анна")
        boris = await data.employee(session, "boris", "Борис")
        c = await data.client(session, "Иван", "+79161234567", responsible=anna)
        await data.promise(session, c, "next week", data.ahead(days=7), by=anna)
        await data.promise(session, c, "no date", None, by=boris)
        await data.promise(session, c, "long overdue", data.ago(days=10), by=boris)
        await data.promise(session, c, "kept", data.ago(days=20), status="kept", by=anna)
        await data.promise(session, c, "cancelled", data.ago(days=5), status="cancelled", by=anna)
        await data.promise(session, c, "tomorrow", data.ahead(days=1), by=anna)
        await data.promise(session, c, "overdue an hour", data.ago(hours=1), by=anna)
        await session.commit()
        card = (await lookup(session, "89161234567", settings, now=NOW)).matches[0]
    assert [p.text for p in card.promises] == ["long overdue", "overdue an hour", "tomorrow", "next week", "no date"]
    assert [p.overdue for p in card.promises] == [True, True, False, False, False]
    assert card.overdue_count == 2
    assert [p.made_by.name if p.made_by else None for p in card.promises] == ["Борис", "Анна", "Анна", "Анна",
                                                                             "Борис"]
    assert card.responsible is not None and card.responsible.name == "Анна"
    assert not card.promises_more


async def test_sections_are_bounded_and_page_for_more(db: Database, settings: Settings) -> None:
    settings = settings.replace(history=HistorySettings(promises=3, agreements=2, calls=2, notes=2))
    async with db.sessions() as session:
        c = await data.client(session, "Иван", "+79161234567")
        for day in range(7):
            await data.promise(session, c, f"p{day}", data.ago(days=7 - day))
            await data.note(session, c, f"n{day}", data.ago(days=7 - day))
        for day in range(3):
            await data.call(session, c, f"call-{day}", data.ago(days=3 - day), talk=60)
        await data.promise(session, c, "u0", None)
        await data.promise(session, c, "u1", None)
        for day, status in enumerate(["won", "open", "lost", "open", "won"]):
            await data.agreement(session, c, f"{status}{day}", status=status, created=data.ago(days=10 - day))
        await session.commit()
        card = (await lookup(session, "+79161234567", settings, now=NOW)).matches[0]
        page2 = await client_history(session, c.id, "promises", offset=3, limit=3, now=NOW)
        page3 = await client_history(session, c.id, "promises", offset=6, limit=3, now=NOW)
        page4 = await client_history(session, c.id, "promises", offset=9, limit=3, now=NOW)
        agreements2 = await client_history(session, c.id, "agreements", offset=2, limit=2, now=NOW)
        notes2 = await client_history(session, c.id, "notes", offset=2, limit=10, now=NOW)
        with pytest.raises(ValueError, match="section: expected one of"):
            await client_history(session, c.id, "passwords")
        with pytest.raises(ValueError, match="limit: expected 1 to 100"):
            await client_history(session, c.id, "notes", limit=1000)
    assert [p.text for p in card.promises] == ["p0", "p1", "p2"] and card.promises_more
    assert [p.text for p in page2.items] == ["p3", "p4", "p5"] and page2.has_more
    assert [p.text for p in page3.items] == ["p6", "u0", "u1"] and not page3.has_more
    assert page4.items == () and not page4.has_more
    assert [a.title for a in card.agreements] == ["open3", "open1"] and card.agreements_more
    assert [a.title for a in agreements2.items] == ["won4", "lost2"] and agreements2.has_more
    assert [n.text for n in card.notes] == ["n6", "n5"] and card.notes_more
    assert [n.text for n in notes2.items] == ["n4", "n3", "n2", "n1", "n0"] and not notes2.has_more
    assert [x.talk_seconds for x in card.calls] == [60, 60] and card.calls_more


async def test_calls_say_who_talked_and_who_only_rang(db: Database, settings: Settings) -> None:
    async with db.sessions() as session:
        anna = await data.employee(session, "anna", "Анна")
        boris = await data.employee(session, "boris", "Борис")
        c = await data.client(session, "Иван", "+79161234567")
        await data.call(session, c, "old", data.ago(days=2), talk=0, rang=(anna, boris))
        await data.call(session, c, "new", data.ago(hours=3), talk=95, talked=(boris,), rang=(anna,))
        await session.commit()
        card = (await lookup(session, "+79161234567", settings, now=NOW)).matches[0]
    newest, oldest = card.calls
    assert [p.name for p in newest.talked] == ["Борис"] and [p.name for p in newest.rang] == ["Анна"]
    assert newest.outcome == "answered" and newest.talk_seconds == 95
    assert oldest.outcome == "missed" and oldest.talked == () and len(oldest.rang) == 2


async def test_open_agreements_first_then_recent(db: Database, settings: Settings) -> None:
    async with db.sessions() as session:
        c = await data.client(session, "Иван", "+79161234567")
        await data.agreement(session, c, "won last week", status="won", created=data.ago(days=7))
        await data.agreement(session, c, "open old", status="open", created=data.ago(days=90))
        await data.agreement(session, c, "lost yesterday", status="lost", created=data.ago(days=1))
        await data.agreement(session, c, "open new", status="open", created=data.ago(days=3), amount="250000.00")
        await session.commit()
        card = (await lookup(session, "+79161234567", settings, now=NOW)).matches[0]
    assert [a.title for a in card.agreements] == ["open new", "open old", "lost yesterday", "won last week"]


async def test_card_json_is_plain_json_with_utc_times_and_string_money(db: Database, settings: Settings) -> None:
    async with db.sessions() as session:
        anna = await data.employee(session, "anna", "Анна")
        c = await data.client(session, "<b>Иван</b>", "+79161234567", responsible=anna)
        await data.promise(session, c, "call back", data.ago(days=1), by=anna)
        await data.agreement(session, c, "Поставка", created=data.ago(days=2), amount="1234567.80", by=anna)
        await data.call(session, c, "k1", data.ago(hours=1), talk=30, talked=(anna,))
        await data.note(session, c, "likes tea", data.ago(hours=2), by=anna)
        await session.commit()
        found = await lookup(session, "+79161234567", settings, now=NOW)
    doc = json.loads(json.dumps(found.to_json()))
    card = doc["matches"][0]
    assert card["name"] == "<b>Иван</b>"  # data, escaped by whoever renders it
    assert card["promises"][0]["due_at"] == "2026-03-09T12:00:00Z" and card["promises"][0]["overdue"] is True
    assert card["agreements"][0]["amount"] == "1234567.80" and card["agreements"][0]["made_by"]["name"] == "Анна"
    assert card["last_calls"][0]["talked"] == [{"id": anna.id, "name": "Анна"}]
    assert card["notes"][0]["author"]["name"] == "Анна"
    assert card["phones"][0]["display"] == "+7 916 123-45-67"
    assert card["responsible"] == {"id": anna.id, "name": "Анна"}


async def test_client_card_by_id_is_the_same_card(db: Database, settings: Settings) -> None:
    async with db.sessions() as session:
        c = await data.client(session, "Иван", "+79161234567")
        await data.promise(session, c, "x", data.ago(days=1))
        await session.commit()
        phoneless = await data.client(session, "Без телефона")
        await session.commit()
        card = await client_card(session, c.id, settings, now=NOW)
        no_phone_card = await client_card(session, phoneless.id, settings, now=NOW)
        missing = await client_card(session, c.id + 999, settings, now=NOW)
    assert card is not None and card.matched_by == "id" and [p.text for p in card.promises] == ["x"]
    assert [p.e164 for p in card.phones] == ["+79161234567"]
    assert no_phone_card is not None and no_phone_card.phones == () and no_phone_card.client.name == "Без телефона"
    assert missing is None


async def _history(session: Any, c: Any, emp: Any, n: int) -> None:
    for i in range(n):
        await data.promise(session, c, f"p{i}", data.ago(days=i), by=emp)
        await data.agreement(session, c, f"a{i}", created=data.ago(days=i), by=emp)
        await data.call(session, c, f"{c.id}-{i}", data.ago(days=i), talk=10, talked=(emp,))
        await data.note(session, c, f"n{i}", data.ago(days=i), by=emp)


async def test_statement_count_does_not_depend_on_history_size(db: Database, settings: Settings) -> None:
    async with db.sessions() as session:
        emp = await data.employee(session, "anna", "Анна")
        small = await data.client(session, "Small", "+79160000001")
        big = await data.client(session, "Big", "+79160000002")
        twin_a = await data.client(session, "Twin A", "+79160000003")
        twin_b = await data.client(session, "Twin B", "+79160000003")
        await _history(session, small, emp, 1)
        await _history(session, big, emp, 40)
        await _history(session, twin_a, emp, 15)
        await _history(session, twin_b, emp, 2)
        await session.commit()
    counts = {}
    for number in ("+79160000001", "+79160000002", "+79160000003"):
        async with db.sessions() as session:
            await session.connection()  # the BEGIN is not the lookup's
            with count_statements(db) as statements:
                found = await lookup(session, number, settings, now=NOW)
            counts[number] = len(statements)
            assert found.matches
    assert counts["+79160000001"] == counts["+79160000002"] == counts["+79160000003"]
    assert counts["+79160000002"] == 5  # match+clients+phones, promises, agreements, calls+people, notes


async def test_lookup_is_not_held_up_by_an_open_write_transaction(db: Database, settings: Settings) -> None:
    """The journal or a manager's form may be mid-write when a call rings: the pop must
    still be answered at once, with what was committed."""
    import asyncio

    async with db.sessions() as session:
        c = await data.client(session, "Иван", "+79161234567")
        await data.note(session, c, "committed", data.ago(days=1))
        await session.commit()
    async with db.sessions() as writer:
        await data.note(writer, c, "not yet committed", data.ago(hours=1))  # flushed: write lock held
        async with db.sessions() as reader:
            found = await asyncio.wait_for(lookup(reader, "+79161234567", settings, now=NOW), timeout=2)
        await writer.commit()
    assert [n.text for n in found.matches[0].notes] == ["committed"]
