"""Opening the database and the migration story: the migrated schema is the models'
schema, and start-up refuses a database that is not at the code's revision."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, text

from callpop.settings import DatabaseSettings, Settings
from callpop.store import db as dbmod
from callpop.store.db import Database, SchemaError, head_revision, open_database, upgrade
from callpop.store.models import Base, Call, CallParticipant, Client, Contact, Employee


def _diff(connection: Connection) -> list[object]:
    ctx = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(ctx, Base.metadata))


async def test_migrated_schema_matches_models(db: Database) -> None:
    async with db.engine.connect() as conn:
        diff = await conn.run_sync(_diff)
    assert diff == []


async def test_opened_database_is_at_head(db: Database) -> None:
    async with db.engine.connect() as conn:
        revision = await conn.scalar(text("SELECT version_num FROM alembic_version"))
    assert revision == head_revision()


async def test_empty_database_is_refused_with_the_command_to_run(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/sub/dir/new.db"
    with pytest.raises(SchemaError, match=r"database is empty: run `callpop db upgrade`"):
        await open_database(DatabaseSettings(url=url))
    assert (tmp_path / "sub" / "dir").is_dir(), "the SQLite file's directory is created on first start"
    await upgrade(url)
    database = await open_database(DatabaseSettings(url=url))
    await database.close()


async def test_empty_database_gets_the_schema_when_asked(empty_db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="callpop.store.db"):
        database = await open_database(DatabaseSettings(url=empty_db_url), create_if_empty=True)
    try:
        assert "database is empty: creating the schema (callpop db upgrade)" in caplog.messages
        async with database.engine.connect() as conn:
            assert await conn.scalar(text("SELECT version_num FROM alembic_version")) == head_revision()
            diff = await conn.run_sync(_diff)
            if database.dialect == "sqlite":  # off while the schema was made, on again for the app
                assert await conn.scalar(text("PRAGMA foreign_keys")) == 1
        assert diff == []
    finally:
        await database.close()
    caplog.clear()
    again = await open_database(DatabaseSettings(url=empty_db_url), create_if_empty=True)  # now a normal start
    await again.close()
    assert "database is empty: creating the schema (callpop db upgrade)" not in caplog.messages


async def test_old_revision_is_refused_even_when_empty_ones_are_created(db_url: str) -> None:
    database = await open_database(DatabaseSettings(url=db_url))
    async with database.engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = '0000_older'"))
    await database.close()
    with pytest.raises(SchemaError, match=r"revision 0000_older.*run `callpop db upgrade`"):
        await open_database(DatabaseSettings(url=db_url), create_if_empty=True)


async def test_old_revision_is_refused_naming_both_revisions(db_url: str) -> None:
    database = await open_database(DatabaseSettings(url=db_url))
    async with database.engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = '0000_older'"))
    await database.close()
    with pytest.raises(SchemaError) as err:
        await open_database(DatabaseSettings(url=db_url))
    assert "0000_older" in str(err.value) and head_revision() in str(err.value)
    assert "callpop db upgrade" in str(err.value)
    unchecked = await open_database(DatabaseSettings(url=db_url), check_schema=False)
    await unchecked.close()


async def test_foreign_tables_without_revision_are_refused(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/other.db"
    database = await open_database(DatabaseSettings(url=url), check_schema=False)
    async with database.engine.begin() as conn:
        await conn.execute(text("CREATE TABLE something (id INTEGER)"))
    await database.close()
    with pytest.raises(SchemaError, match="no callpop schema revision"):
        await open_database(DatabaseSettings(url=url))


async def test_upgrade_twice_is_harmless(db_url: str) -> None:
    await upgrade(db_url)
    database = await open_database(DatabaseSettings(url=db_url))
    await database.close()


async def test_sqlite_runs_in_wal_mode_with_foreign_keys(db: Database) -> None:
    if db.dialect != "sqlite":
        pytest.skip("SQLite pragmas")
    async with db.engine.connect() as conn:
        assert (await conn.scalar(text("PRAGMA journal_mode"))) == "wal"
        assert (await conn.scalar(text("PRAGMA foreign_keys"))) == 1


async def test_times_come_back_aware_utc(db: Database) -> None:
    import datetime as dt

    moscow = dt.timezone(dt.timedelta(hours=3))
    async with db.sessions() as session:
        session.add(Employee(name="A", login="a", password_hash="x",
                             created_at=dt.datetime(2026, 1, 1, 12, 0, tzinfo=moscow)))
        await session.commit()
    async with db.sessions() as session:
        emp = (await session.execute(Employee.__table__.select())).one()
    assert emp.created_at == dt.datetime(2026, 1, 1, 9, 0, tzinfo=dt.UTC)
    assert emp.created_at.tzinfo is not None


def test_unsupported_url_names_the_setting() -> None:
    with pytest.raises(SchemaError, match=r"database.url: expected"):
        dbmod.create_engine("mysql+aiomysql://x@localhost/db")


def test_db_command_upgrades_then_reports_head(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert dbmod.main(argparse.Namespace(action="current"), settings) == 1
    assert "none (empty database)" in capsys.readouterr().out
    assert dbmod.main(argparse.Namespace(action="upgrade"), settings) == 0
    assert dbmod.main(argparse.Namespace(action="current"), settings) == 0
    out = capsys.readouterr().out
    assert f"database revision: {head_revision()} (head)" in out


def test_db_command_names_an_unreachable_database_without_a_traceback(
        settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    bad = settings.replace(database=DatabaseSettings(url="postgresql+asyncpg://nobody:secret@127.0.0.1:1/none"))
    assert dbmod.main(argparse.Namespace(action="current"), bad) == 2
    err = capsys.readouterr().err
    assert "callpop db: cannot use the database at postgresql+asyncpg://nobody:***@127.0.0.1:1/none" in err
    assert "secret" not in err


async def test_upgrade_gives_a_further_pbxs_calls_their_pbx_id(db_url: str) -> None:
    """Rows written before each PBX's calls carried its own id: the key names the PBX."""
    database = await open_database(DatabaseSettings(url=db_url))
    await dbmod.migrate(database.engine, "0007_audit_log_sessions", down=True)  # later migrations undone too
    async with database.engine.begin() as conn:
        for key in ("1733212345.17", "office2:1733212345.17", "demo-0000001"):
            await conn.execute(text("INSERT INTO calls (pbx_id, call_key, direction, started_at, talk_seconds, "
                                    "end_unseen) VALUES ('main', :key, 'inbound', :at, 0, false)"),
                               {"key": key, "at": dt.datetime(2026, 12, 1, tzinfo=dt.UTC)})
    await database.close()
    await upgrade(db_url)
    database = await open_database(DatabaseSettings(url=db_url))
    try:
        async with database.engine.connect() as conn:
            rows = sorted([tuple(r) for r in await conn.execute(text("SELECT pbx_id, call_key FROM calls"))])
    finally:
        await database.close()
    assert rows == [("main", "1733212345.17"), ("main", "demo-0000001"), ("office2", "office2:1733212345.17")]


async def _journal_counts(db_url: str) -> tuple[int, int, int]:
    database = await open_database(DatabaseSettings(url=db_url), check_schema=False)
    try:
        async with database.engine.connect() as conn:
            counts = [(await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()
                      for table in ("calls", "call_participants", "contacts")]
    finally:
        await database.close()
    return counts[0], counts[1], counts[2]


async def test_migrations_that_rebuild_the_calls_table_keep_its_participants_and_contacts(db_url: str) -> None:
    """On SQLite a migration rebuilds ``calls`` (copy, drop, rename): with foreign keys on,
    the drop would cascade to every participant and contact of the journal, and check every
    child row on the way (hours on a large journal). Down and up again, nothing is lost."""
    database = await open_database(DatabaseSettings(url=db_url))
    at = dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.UTC)
    async with database.sessions() as session, session.begin():
        boss = Employee(name="Анна", login="anna", password_hash="x")
        client = Client(name="ООО Ромашка")
        session.add_all([boss, client])
        await session.flush()
        for n in range(3):
            call = Call(pbx_id="main", call_key=f"1733212345.{n}", direction="inbound", client_id=client.id,
                        started_at=at, answered_at=at, ended_at=at + dt.timedelta(seconds=60),
                        outcome="answered", talk_seconds=60)
            session.add(call)
            await session.flush()
            session.add_all([
                CallParticipant(call_id=call.id, extension="101", employee_id=boss.id, answered=True, talk_seconds=60),
                Contact(call_id=call.id, employee_id=boss.id, client_id=client.id, direction="inbound",
                        started_at=at, talk_seconds=60, counted=True),
            ])
    await dbmod.migrate(database.engine, "0005_callbacks_done", down=True)  # undoes every rebuild of calls since
    await database.close()
    assert await _journal_counts(db_url) == (3, 3, 3)
    await upgrade(db_url)
    assert await _journal_counts(db_url) == (3, 3, 3)
    database = await open_database(DatabaseSettings(url=db_url))  # at head again, its foreign keys on
    try:
        async with database.sessions() as session, session.begin():
            await session.execute(text("DELETE FROM calls WHERE call_key = '1733212345.0'"))
    finally:
        await database.close()
    assert await _journal_counts(db_url) == (2, 2, 2)
