"""The database tells every callpop process of every write to the directory, whoever
makes it (the triggers of the ``directory_changes`` migration), and the watch forgets
exactly the answers it concerns. Real SQLite and PostgreSQL; the writes come from
engines and connections other than the listening one, as another process's would."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from callpop.settings import DatabaseSettings
from callpop.store.caller import CallerMatch
from callpop.store.caller_cache import AnswerCache, forget_where
from callpop.store.db import Database, create_engine, open_database
from callpop.store.directory_changes import CHANNEL, Change, DirectoryWatch, parse
from tests.support.ami import wait_until

pg_only = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def match(client_id: int, responsible_id: int | None = None) -> CallerMatch:
    return CallerMatch(client_id, "Иван", None, False, True, responsible_id, ("101",))


def test_a_notification_names_clients_managers_and_numbers() -> None:
    change = parse("c12 c12 n+79161234567 t9161234567 e3")
    assert change == Change(clients=frozenset({12}), employees=frozenset({3}), numbers=frozenset({"9161234567"}))
    assert parse("*") == Change(everything=True)
    for junk in ("", "hello", "c", "c-1", "x12", '{"o": "a"}', "c1 zz"):
        assert parse(junk) is None, junk


def test_a_change_concerns_its_clients_their_managers_and_its_numbers() -> None:
    change = Change(clients=frozenset({1}), employees=frozenset({7}), numbers=frozenset({"9161234567"}))
    assert change.stale("+79990000001", (match(1),))
    assert change.stale("+79990000002", (match(2, responsible_id=7),))
    assert change.stale("89161234567", ())  # unknown until now: the number may be someone's now
    assert change.stale("+79161234567", (match(5),))
    assert not change.stale("+79990000003", (match(2, responsible_id=8),))
    assert not change.stale("+79990000004", ())


async def test_an_answer_read_while_a_change_was_told_is_not_kept(tmp_path: Any) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/x.db")
    try:
        cache: AnswerCache[tuple[CallerMatch, ...]] = AnswerCache(engine, 100, 3600.0)
        cache.put("+79990000001", (match(1),), cache.generation())
        cache.put("+79990000002", (match(2),), cache.generation())
        reading = cache.generation()  # a read of +79990000003 starts
        assert forget_where(engine, Change(clients=frozenset({1})).stale) == 1
        cache.put("+79990000003", (match(3),), reading)  # ... and ends after the change was told
        assert cache.get("+79990000001") is None
        assert cache.get("+79990000002") == (match(2),)
        assert cache.get("+79990000003") is None
    finally:
        await engine.dispose()


@pytest.fixture
async def writer(db: Database) -> AsyncIterator[AsyncEngine]:
    """Another engine on the same database: what another process writes with."""
    engine = create_engine(db.url)
    yield engine
    await engine.dispose()


async def seed(writer: AsyncEngine) -> None:
    async with writer.begin() as conn:
        await conn.execute(text("INSERT INTO employees (id, name, login, password_hash, role, active, "
                                "created_at, session_generation) VALUES (7, 'Anna', 'anna', 'x', 'manager', "
                                "true, CURRENT_TIMESTAMP, 0)"))
        await conn.execute(text("INSERT INTO clients (id, name, status, status_source, created_at, updated_at) "
                                "VALUES (12, 'Иван', 'new', 'rule', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))


class Listener:
    """A LISTEN on the channel, as the watch does, keeping every payload."""

    def __init__(self, url: str) -> None:
        self.url = url.replace("postgresql+asyncpg", "postgresql")
        self.payloads: list[str] = []
        self.conn: Any = None

    async def __aenter__(self) -> Listener:
        import asyncpg  # type: ignore[import-untyped]

        self.conn = await asyncpg.connect(self.url)
        await self.conn.add_listener(CHANNEL, lambda _c, _p, _ch, payload: self.payloads.append(payload))
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.conn.close()

    async def after(self, sentinel: str) -> list[str]:
        """What arrived before *sentinel*, notified last (notifications come in commit order)."""
        await self.conn.execute(f"NOTIFY {CHANNEL}, '{sentinel}'")
        await wait_until(lambda: sentinel in self.payloads, within=10, what=f"notification {sentinel}")
        got = self.payloads[:self.payloads.index(sentinel)]
        del self.payloads[:self.payloads.index(sentinel) + 1]
        return got


@pg_only
async def test_postgresql_tells_each_row_written_once_committed(db: Database, writer: AsyncEngine) -> None:
    await seed(writer)
    async with Listener(db.url) as listener:
        async with writer.begin() as conn:
            await conn.execute(text("INSERT INTO client_phones (id, client_id, raw, e164, tail10) "
                                    "VALUES (1, 12, '8 916 123-45-67', '+79161234567', '9161234567')"))
            await conn.execute(text("UPDATE clients SET responsible_id = 7 WHERE id = 12"))
            await conn.execute(text("INSERT INTO extensions (extension, employee_id) VALUES ('101', 7)"))
            await conn.execute(text("UPDATE employees SET active = false WHERE id = 7"))
        assert await listener.after("c0") == ["c12 n+79161234567 t9161234567", "c12 c12", "e7", "e7 e7"]

        async with writer.connect() as conn:  # a transaction rolled back tells nothing
            await conn.execute(text("DELETE FROM client_phones"))
            await conn.rollback()
        async with writer.begin() as conn:  # nor does a table the answers do not read
            await conn.execute(text("INSERT INTO notes (client_id, text, created_at) VALUES (12, 'x', "
                                    "CURRENT_TIMESTAMP)"))
        assert await listener.after("c1") == []


@pg_only
async def test_postgresql_tells_a_bulk_write_as_everything(db: Database, writer: AsyncEngine) -> None:
    async with Listener(db.url) as listener:
        async with writer.begin() as conn:
            for i in range(150):
                await conn.execute(text("INSERT INTO clients (name, status, status_source, created_at, updated_at) "
                                        "VALUES (:n, 'new', 'rule', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"),
                                   {"n": f"client {i}"})
        told = await listener.after("c0")
        assert len(told) == 101 and told[-1] == "*"
        async with writer.begin() as conn:  # the count is per transaction
            await conn.execute(text("UPDATE clients SET name = 'x' WHERE id = (SELECT min(id) FROM clients)"))
            await conn.execute(text("TRUNCATE client_phones"))
        told = await listener.after("c1")
        assert len(told) == 2 and told[0].startswith("c") and told[1] == "*"


@sqlite_only
async def test_sqlite_counts_every_directory_write_of_any_connection(db: Database, writer: AsyncEngine) -> None:
    async def version() -> int:
        async with db.engine.connect() as conn:
            return int((await conn.execute(text("SELECT version FROM directory_version"))).scalar_one())

    start = await version()
    await seed(writer)
    assert await version() == start + 2
    async with writer.begin() as conn:
        await conn.execute(text("INSERT INTO client_phones (client_id, raw, e164, tail10) "
                                "VALUES (12, '8 916', '+79161234567', '9161234567')"))
        await conn.execute(text("UPDATE clients SET responsible_id = 7"))
        await conn.execute(text("INSERT INTO extensions (extension, employee_id) VALUES ('101', 7)"))
        await conn.execute(text("DELETE FROM extensions"))
        await conn.execute(text("INSERT INTO notes (client_id, text, created_at) VALUES (12, 'x', CURRENT_TIMESTAMP)"))
    assert await version() == start + 6
    async with writer.connect() as conn:
        await conn.execute(text("DELETE FROM client_phones"))
        await conn.rollback()
    assert await version() == start + 6


async def test_every_table_the_answers_read_has_its_triggers(db: Database) -> None:
    """A migration that rebuilds one of these tables (SQLite's batch mode) drops its
    triggers with it: it must create them again."""
    async with db.engine.connect() as conn:
        if db.dialect == "postgresql":
            rows = await conn.execute(text("SELECT event_object_table, event_manipulation FROM "
                                           "information_schema.triggers WHERE trigger_name = 'callpop_directory_rows'"))
        else:
            rows = await conn.execute(text("SELECT tbl_name, upper(substr(name, length('callpop_directory_') + "
                                           "length(tbl_name) + 2)) FROM sqlite_master WHERE type = 'trigger' "
                                           "AND name LIKE 'callpop_directory_%'"))
        found = {(table, what) for table, what in rows}
    assert found == {(table, what) for table in ("clients", "client_phones", "employees", "extensions")
                     for what in ("INSERT", "UPDATE", "DELETE")}


@sqlite_only
@pytest.mark.parametrize("in_thread", [True, False])
async def test_the_sqlite_watch_hears_another_connections_write(db: Database, writer: AsyncEngine,
                                                                 in_thread: bool) -> None:
    """On its thread or (``sqlite_reads_in_thread = false``) on the loop, each move of the
    counter is heard once and forgets every answer."""
    database = await open_database(DatabaseSettings(url=db.url, sqlite_reads_in_thread=in_thread))
    watch = DirectoryWatch(database, check_every=0.01)
    watch.start()
    try:
        await wait_until(lambda: watch.everything == 1, within=10, what="the first check")
        assert (watch.state, watch.heard) == ("polling", 0)
        await seed(writer)
        await wait_until(lambda: watch.heard == 1, within=10, what="the write heard of")
        assert watch.everything == 2
    finally:
        await watch.stop()
        await database.close()
