"""The directory in memory answers exactly what the database answers, and never answers
once the database may have changed: on both databases, against the real statement."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from callpop.phones import PhoneKey, phone_key
from callpop.settings import DatabaseSettings
from callpop.store.caller import caller_matches
from callpop.store.caller_index import IndexKeeper
from callpop.store.db import Database, open_database
from callpop.store.directory_changes import DirectoryWatch
from callpop.store.models import Client, ClientPhone, Employee
from tests.support.ami import wait_until
from tests.support.caller_index import fresh
from tests.support.live import add_client, add_employee


async def _phone(db: Database, client: int, raw: str, e164: str | None, tail10: str | None) -> None:
    async with db.sessions() as session:
        session.add(ClientPhone(client_id=client, raw=raw, e164=e164, tail10=tail10))
        await session.commit()


async def _client(db: Database, name: str, *, responsible: int | None = None, company: str | None = None,
                  status: str = "new") -> int:
    async with db.sessions() as session:
        client = Client(name=name, company=company, responsible_id=responsible, status=status)
        session.add(client)
        await session.commit()
        return client.id


async def _directory(db: Database) -> None:
    """Numbers shared, numbers of other countries, numbers stored without E.164 or with
    text no phone has, managers with several extensions, none, or switched off."""
    anna = await add_employee(db, "anna", ["102", "101"])
    boris = await add_employee(db, "boris")
    carl = await add_employee(db, "carl", ["103"])
    async with db.sessions() as session:
        (await session.get(Employee, carl)).active = False  # type: ignore[union-attr]
        await session.commit()
    await add_client(db, 'Иван "Петров"\n', "+79161234567", responsible_id=anna, company="ООО Ромашка")
    await add_client(db, "Пётр Иванов", "+79161234567", responsible_id=anna)  # one number, two clients
    us = await _client(db, "John Smith", responsible=boris)
    await _phone(db, us, "+1 916 123-45-67", "+19161234567", "9161234567")  # same last 10 digits
    old = await _client(db, "Старая запись", responsible=carl, status="regular")
    await _phone(db, old, "9035550000", None, "9035550000")  # read before numbers had E.164
    await _phone(db, old, "9035550000", None, "9035550000")  # and twice
    dutch = await _client(db, "Jan de Vries", responsible=anna)
    await _phone(db, dutch, "+31 20 123 4567", "+31201234567", None)  # fewer than 10 national digits
    zero = await _client(db, "Zero", company="")
    await _phone(db, zero, "0123456789", None, "0123456789")
    await _phone(db, zero, "123456789", None, "123456789")
    odd = await _client(db, "Odd", responsible=anna)
    await _phone(db, odd, "junk", "+7abc", "12345abcde")  # text an older import stored
    await _phone(db, odd, "٣٣٣", None, "٣٣٣")  # digits, but not ASCII ones
    await add_client(db, "Мария", "+74951234567")  # no responsible manager


def _keys() -> list[PhoneKey]:
    numbers = ["+79161234567", "89161234567", "9161234567", "+19161234567", "+79035550000", "9035550000",
               "+31201234567", "0031201234567", "+74951234567", "+79990000000", "0123456789", "123456789"]
    keys = [phone_key(n) for n in numbers]
    keys += [PhoneKey(raw=raw, e164=e164, tail10=tail, external=True) for raw, e164, tail in [
        ("a", None, "0123456789"), ("b", None, "123456789"), ("c", "+7abc", "12345abcde"),
        ("d", None, "12345abcde"), ("e", "+7abc", None), ("f", None, "٣٣٣"), ("g", None, "333"),
        ("h", "+19161234567", None), ("i", "+79161234567", "0000000000")]]
    return keys


@pytest.fixture
async def watch(db: Database) -> AsyncIterator[DirectoryWatch]:
    started = DirectoryWatch(db, check_every=0.05)
    started.start()
    await wait_until(started.current)
    yield started
    await started.stop()


async def test_an_answer_from_memory_is_the_databases_answer(db: Database, watch: DirectoryWatch) -> None:
    await _directory(db)
    keeper = IndexKeeper(db, watch, refresh=30.0)
    await fresh(keeper)
    answers = 0
    for key in _keys():
        from_db = await caller_matches(db, key)
        assert keeper.lookup(key) == from_db, key
        answers += bool(from_db)
    assert answers == 17  # most keys find someone: the comparison is not of empty answers
    assert keeper.answered == len(_keys())
    ivan = keeper.lookup(phone_key("+79161234567"))
    assert ivan is not None and [m.name for m in ivan] == ['Иван "Петров"\n', "Пётр Иванов"]
    assert ivan[0].extensions == ("101", "102") and ivan[0].company == "ООО Ромашка"


async def test_memory_stops_answering_at_a_write_until_read_again(db: Database, watch: DirectoryWatch) -> None:
    anna = await add_employee(db, "anna", ["101"])
    boris = await add_employee(db, "boris", ["102"])
    client = await add_client(db, "Иван", "+79161234567", responsible_id=anna)
    keeper = IndexKeeper(db, watch, refresh=30.0)
    await fresh(keeper)
    key = phone_key("+79161234567")
    assert [m.responsible_id for m in keeper.lookup(key) or ()] == [anna]
    async with db.sessions() as session:
        (await session.get(Client, client)).responsible_id = boris  # type: ignore[union-attr]
        await session.commit()
    assert keeper.lookup(key) is None  # the caller's question goes to the database
    assert [m.responsible_id for m in await caller_matches(db, key)] == [boris]
    await fresh(keeper)
    assert [m.extensions for m in keeper.lookup(key) or ()] == [("102",)]


async def test_a_write_by_another_process_stops_memory_answering(db: Database, db_url: str,
                                                                  watch: DirectoryWatch) -> None:
    anna = await add_employee(db, "anna", ["101"])
    await add_client(db, "Иван", "+79161234567", responsible_id=anna)
    keeper = IndexKeeper(db, watch, refresh=30.0)
    await fresh(keeper)
    key = phone_key("+79161234567")
    assert keeper.lookup(key) is not None
    other = await open_database(DatabaseSettings(url=db_url))  # its own engine: no shared counter
    try:
        async with other.engine.begin() as conn:
            await conn.execute(text("UPDATE clients SET name = 'Иван Сидоров'"))
    finally:
        await other.close()
    await wait_until(lambda: keeper.lookup(key) is None)  # the database's word arrived
    await fresh(keeper)
    assert [m.name for m in keeper.lookup(key) or ()] == ["Иван Сидоров"]


async def test_memory_does_not_answer_while_other_writers_cannot_be_heard(db: Database,
                                                                           watch: DirectoryWatch) -> None:
    await add_client(db, "Иван", "+79161234567")
    keeper = IndexKeeper(db, watch, refresh=30.0)
    await fresh(keeper)
    key = phone_key("+79161234567")
    assert keeper.lookup(key) is not None
    await watch.stop()
    assert keeper.lookup(key) is None


async def test_the_keeper_reads_a_new_copy_after_a_change(db: Database, watch: DirectoryWatch) -> None:
    keeper = IndexKeeper(db, watch, refresh=1.0)
    keeper.start()
    try:
        await wait_until(lambda: not keeper.stale())
        key = phone_key("+79161234567")
        assert keeper.lookup(key) == ()
        await add_client(db, "Иван", "+79161234567")
        assert keeper.lookup(key) is None
        await wait_until(lambda: not keeper.stale())
        assert [m.name for m in keeper.lookup(key) or ()] == ["Иван"]
        assert keeper.builds >= 2
    finally:
        await keeper.stop()
    await asyncio.sleep(0)
