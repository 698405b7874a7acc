"""Which client a ringing number belongs to (phone matching), on both databases."""

from __future__ import annotations

import pytest

from callpop.settings import Settings
from callpop.store.db import Database
from callpop.store.directory import lookup
from tests.support import history_rows as data
from tests.support.history_rows import NOW


@pytest.mark.parametrize("incoming", ["+7 916 1234567", "79161234567", "89161234567", "+79161234567",
                                      "8 (916) 123-45-67", "0079161234567"])
async def test_every_way_of_writing_the_number_finds_the_client(db: Database, settings: Settings,
                                                                incoming: str) -> None:
    async with db.sessions() as session:
        ivan = await data.client(session, "Иван Петров", "8 (916) 123-45-67")
        await data.client(session, "Кто-то другой", "+7 916 765-43-21")
        await session.commit()
        found = await lookup(session, incoming, settings, now=NOW)
    assert found.looked_up
    assert [m.client.id for m in found.matches] == [ivan.id]
    assert found.matches[0].matched_by == "e164"
    assert found.matches[0].client.name == "Иван Петров"


async def test_fallback_on_last_ten_digits_when_the_country_code_differs(db: Database, settings: Settings) -> None:
    async with db.sessions() as session:
        ivan = await data.client(session, "Иван", "+7 916 234-56-78")
        await session.commit()
        # the carrier sent a wrong country code: no exact match, the 10-digit tail still finds him
        found = await lookup(session, "+1 916 234 5678", settings, now=NOW)
        assert [m.client.id for m in found.matches] == [ivan.id]
        assert found.matches[0].matched_by == "tail10"
        # ... but an exact match wins over the tail: a US client with that very number
        us = await data.client(session, "John", "+1 916 234 5678")
        await session.commit()
        found = await lookup(session, "+19162345678", settings, now=NOW)
    assert [m.client.id for m in found.matches] == [us.id]
    assert found.matches[0].matched_by == "e164"


async def test_moscow_495_and_985_sharing_eight_digits_do_not_match(db: Database, settings: Settings) -> None:
    async with db.sessions() as session:
        office = await data.client(session, "Офис", "+7 495 123-45-67")
        await session.commit()
        other = await lookup(session, "+7 985 123-45-67", settings, now=NOW)
        same = await lookup(session, "8 495 123 45 67", settings, now=NOW)
    assert other.looked_up and other.matches == ()
    assert [m.client.id for m in same.matches] == [office.id]


async def test_two_clients_with_one_number_are_both_returned(db: Database, settings: Settings) -> None:
    async with db.sessions() as session:
        husband = await data.client(session, "Пётр Сидоров", "+7 916 000-11-22")
        wife = await data.client(session, "Анна Сидорова", "8 916 000 11 22", "+7 903 555-66-77")
        await data.promise(session, wife, "Перезвонить", data.ago(days=1))
        await data.promise(session, husband, "Отправить счёт", data.ahead(days=2))
        await session.commit()
        found = await lookup(session, "89160001122", settings, now=NOW)
    assert found.ambiguous
    assert [m.client.id for m in found.matches] == sorted([husband.id, wife.id])
    by_id = {m.client.id: m for m in found.matches}
    assert [p.text for p in by_id[wife.id].promises] == ["Перезвонить"]
    assert [p.text for p in by_id[husband.id].promises] == ["Отправить счёт"]
    assert len(by_id[wife.id].phones) == 2


@pytest.mark.parametrize("incoming", [None, "", "anonymous", "Anonymous", "<unknown>", "restricted", "101",
                                      "2002", "s"])
async def test_withheld_and_internal_numbers_are_not_looked_up(db: Database, settings: Settings,
                                                               incoming: str | None) -> None:
    async with db.sessions() as session:
        await data.client(session, "Внутренний", "101")
        await session.commit()
        found = await lookup(session, incoming, settings, now=NOW)
    assert not found.looked_up and found.matches == ()


async def test_unknown_number_is_looked_up_and_matches_nobody(db: Database, settings: Settings) -> None:
    async with db.sessions() as session:
        await data.client(session, "Иван", "+7 916 123-45-67")
        await session.commit()
        found = await lookup(session, "+7 926 999-88-77", settings, now=NOW)
    assert found.looked_up and found.matches == () and found.e164 == "+79269998877"


async def test_a_junk_caller_id_matches_nobody_by_its_last_ten_digits(db: Database, settings: Settings) -> None:
    async with db.sessions() as session:
        await data.client(session, "John", "+1 678 901 2345")
        await data.client(session, "Мусор", "+70000000000")
        await session.commit()
        for junk in ("+7916123456789012345", "+70000000000"):
            found = await lookup(session, junk, settings, now=NOW)
            assert (found.looked_up, found.matches) == (False, ()), junk
        assert [m.client.name for m in (await lookup(session, "+16789012345", settings, now=NOW)).matches] == ["John"]


@pytest.mark.parametrize("in_thread", [False, True], ids=["on-the-loop", "worker-thread"])
async def test_sqlite_reads_run_where_the_setting_says_and_find_the_same_client(
        db_url: str, settings: Settings, in_thread: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """database.sqlite_reads_in_thread: on a worker thread by default (the loop never
    waits for the disk), on the event loop when off; the card is the same either way."""
    import threading

    from callpop.settings import DatabaseSettings
    from callpop.store import directory
    from callpop.store.db import open_database

    if not db_url.startswith("sqlite"):
        pytest.skip("PostgreSQL reads go through asyncpg, on the loop")
    database = await open_database(DatabaseSettings(url=db_url, sqlite_reads_in_thread=in_thread))
    threads: list[int] = []
    real = directory.lookup_sync

    def spy(*args: object, **kwargs: object) -> directory.Lookup:
        threads.append(threading.get_ident())
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(directory, "lookup_sync", spy)
    try:
        async with database.sessions() as session:
            ivan = await data.client(session, "Иван Петров", "8 (916) 123-45-67")
            await session.commit()
            found = await lookup(session, "+79161234567", settings, now=NOW)
    finally:
        await database.close()
    assert [m.client.id for m in found.matches] == [ivan.id]
    assert len(threads) == 1
    assert (threads[0] != threading.get_ident()) is in_thread


async def test_search_finds_a_name_typed_in_any_case_and_word_order(db: Database, settings: Settings) -> None:
    from callpop.store.records.clients import list_clients

    async with db.sessions() as session:
        boris = await data.client(session, "Яковлев Борис", "+7 916 555-00-01", company="ООО Север")
        await data.client(session, "Борисов Яков", "+7 916 555-00-02")
        await session.commit()
        for query in ("яковлев борис", "Борис Яковлев", "БОРИС ЯКОВЛЕВ", "борис север"):
            page = await list_clients(session, {"q": query}, settings)
            assert [c["id"] for c in page.items] == [boris.id], query
        nobody = await list_clients(session, {"q": "яковлев юг"}, settings)
        assert nobody.items == []  # every word must match
