"""Changes nobody typed still reach the audit trail a supervisor reads: every import run
leaves one row with its counts, every status the regular-client rule flips leaves one
row (old -> new, source "rule"). SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import getpass
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import select

from callpop.settings import Settings
from callpop.store import audit
from callpop.store.db import Database
from callpop.store.imports.importer import import_file
from callpop.store.models import Client, Employee
from callpop.store.records.regular import recompute_all, recompute_status
from tests.support import paths
from tests.support.kpi_rows import agreement, client, payment, utc

FIXTURES = paths.FIXTURES / "import"
IMPORT_NOW = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)
RULE_NOW = utc(2026, 3, 15, 10)


async def _trail(db: Database, **query: Any) -> list[dict[str, Any]]:
    async with db.sessions() as session:
        items: list[dict[str, Any]] = (await audit.list_changes(session, query))["items"]
    return items


async def _staff_and_clients(db: Database, settings: Settings) -> None:
    async with db.sessions() as session, session.begin():
        session.add_all([Employee(name="Иванова Мария", login="ivanova", password_hash="x", role="manager"),
                         Employee(name="Петров Сергей", login="petrov", password_hash="x", role="manager")])
    await import_file(db, "clients", FIXTURES / "clients-1c-cp1251.csv", settings, now=IMPORT_NOW)
    await import_file(db, "agreements", FIXTURES / "agreements-1c-cp1251.csv", settings, now=IMPORT_NOW)


async def test_a_payments_import_leaves_one_row_with_its_counts(db: Database, settings: Settings) -> None:
    await _staff_and_clients(db, settings)
    before = len(await _trail(db))
    await import_file(db, "payments", FIXTURES / "payments-utf8.csv", settings, now=IMPORT_NOW, actor="ops")
    rows = await _trail(db)
    assert len(rows) == before + 1  # one row for the run, not one per payment
    row = rows[0]
    assert (row["source"], row["entity"], row["entity_id"], row["field"], row["old"]) == (
        "import", "payment", None, "import", None)
    assert row["employee_id"] is None
    assert row["new"] == ("payments-utf8.csv by ops: 5 record(s) changed: inserted 5, updated 0, unchanged 0, "
                          "skipped 3")

    await import_file(db, "payments", FIXTURES / "payments-utf8.csv", settings, now=IMPORT_NOW, actor="ops")
    again = await _trail(db, entity="payment")
    assert len(again) == 2
    assert again[0]["new"] == ("payments-utf8.csv by ops: nothing changed: inserted 0, updated 0, unchanged 5, "
                               "skipped 3")


async def test_every_import_kind_is_on_the_trail(db: Database, settings: Settings) -> None:
    await _staff_and_clients(db, settings)
    rows = await _trail(db, entity="client")
    assert [r["new"].split(":")[0] for r in rows if r["source"] == "import"] == ["clients-1c-cp1251.csv"]
    agreements = await _trail(db, entity="agreement")
    assert [r["source"] for r in agreements] == ["import"]
    assert "inserted 4" in agreements[0]["new"]
    assert await _trail(db, entity="promise") == []
    await import_file(db, "promises", FIXTURES / "promises-excel-utf16.txt", settings, now=IMPORT_NOW)
    promises = await _trail(db, entity="promise")
    assert [(r["source"], r["new"].split(":")[0]) for r in promises] == [("import", "promises-excel-utf16.txt")]


async def test_the_command_line_names_the_os_user(db: Database, db_settings: Settings, tmp_path: Path) -> None:
    settings_file = tmp_path / "settings.toml"
    settings_file.write_text(f'[database]\nurl = "{db_settings.database.url}"\n', encoding="utf-8")
    command = [sys.executable, "-m", "callpop", "--settings", str(settings_file), "import", "clients",
               str(FIXTURES / "clients-1c-cp1251.csv")]
    run = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    rows = await _trail(db, entity="client")
    assert [r["new"] for r in rows] == [f"clients-1c-cp1251.csv by {getpass.getuser()}: 6 record(s) changed: "
                                        "inserted 6, updated 0, unchanged 0, skipped 2"]


async def test_a_recomputation_that_flips_a_client_writes_one_row_and_a_second_none(
        db: Database, settings: Settings) -> None:
    async with db.sessions() as s:
        rising = await client(s, "rising", status="new")
        steady = await client(s, "steady", status="new")
        await client(s, "manual", status="new", source="manual")
        for day in (1, 2):
            await payment(s, rising, utc(2026, 2, day), agreement_row=await agreement(s, rising))
        await payment(s, steady, utc(2026, 2, 1), agreement_row=await agreement(s, steady))
        await s.commit()
        assert await recompute_all(s, settings, RULE_NOW) == 1
        await s.commit()
    rows = await _trail(db)
    assert [(r["source"], r["entity"], r["entity_id"], r["client_id"], r["field"], r["old"], r["new"])
            for r in rows] == [("rule", "client", rising.id, rising.id, "status", "new", "regular")]

    async with db.sessions() as s:
        assert await recompute_all(s, settings, RULE_NOW) == 0
        assert await recompute_status(s, rising.id, settings, RULE_NOW) == "regular"
        await s.commit()
    assert len(await _trail(db)) == 1


async def test_the_rule_dropping_a_client_is_on_the_trail_once(db: Database, settings: Settings) -> None:
    async with db.sessions() as s:
        lapsed = await client(s, "lapsed", status="regular")
        await s.commit()
        assert await recompute_status(s, lapsed.id, settings, RULE_NOW) == "new"
        await s.commit()
        assert await recompute_status(s, lapsed.id, settings, RULE_NOW) == "new"
        assert await recompute_all(s, settings, RULE_NOW) == 0
        await s.commit()
        status = await s.scalar(select(Client.status).where(Client.id == lapsed.id))
    assert status == "new"
    rows = await _trail(db, client_id=lapsed.id)
    assert [(r["source"], r["old"], r["new"]) for r in rows] == [("rule", "regular", "new")]
