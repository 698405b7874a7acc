"""Writes made by another process reach the dialplan's answers without waiting for
``cache_seconds``: ``callpop import`` run as its own process against the database the app
uses, on both databases. Answers are remembered for an hour here, so only the database's
word (NOTIFY on PostgreSQL, the counter row on SQLite) can make the new answer appear."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from callpop.server.keys import EXTRA
from callpop.settings import DialplanSettings, Settings
from callpop.store.db import Database, create_engine
from callpop.store.directory_changes import DirectoryWatch
from callpop.telephony.events import Ringing
from tests.support.ami import wait_until
from tests.support.live import Live, StartLive, add_client, add_employee

NUMBER = "+79161234567"
HOUR = 3600.0


async def ask(live: Live, path: str, number: str = NUMBER) -> tuple[str, str]:
    client = await live.client()
    resp = await client.get(path, params={"number": number})
    assert resp.status == 200
    return await resp.text(), resp.headers.get("X-Callpop-Status", "")


async def callpop_import(tmp_path: Path, db_url: str, kind: str, csv: str) -> str:
    """``callpop import KIND FILE`` in a process of its own, on the app's database."""
    settings = tmp_path / "import-settings.toml"
    settings.write_text(f'[database]\nurl = "{db_url}"\n', encoding="utf-8")
    data = tmp_path / f"{kind}.csv"
    data.write_text(csv, encoding="utf-8")
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "callpop", "--settings", str(settings),
                                                "import", kind, str(data), stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()
    return out.decode()


async def answered(live: Live, path: str, expected: tuple[str, str], number: str = NUMBER) -> tuple[str, str]:
    """Ask until the answer is *expected* (the database's word takes a moment to arrive:
    a notification, or the next check of the counter); a remembered answer never changes
    by itself within the hour, so getting there proves it was forgotten."""
    got = await ask(live, path, number)
    for _ in range(500):
        if got == expected:
            break
        await asyncio.sleep(0.02)
        got = await ask(live, path, number)
    return got


def watch_of(live: Live) -> DirectoryWatch:
    watch: DirectoryWatch = live.app[EXTRA]["directory_watch"]
    return watch


@pytest.fixture
async def live(db_settings: Settings, start_live: StartLive) -> AsyncIterator[Live]:
    yield await start_live(db_settings.replace(dialplan=DialplanSettings(timeout=5.0, cache_seconds=HOUR)))


async def test_an_import_that_moves_a_client_to_another_manager_routes_the_next_call_to_them(
        live: Live, db: Database, tmp_path: Path) -> None:
    anna = await add_employee(db, "anna", ["101"])
    await add_employee(db, "boris", ["102"])
    await add_client(db, "Иван Петров", NUMBER, responsible_id=anna)
    for login in ("anna", "boris"):
        await (await live.tab(login)).start()
    assert await ask(live, "/pbx/route") == ("dial=PJSIP/101&regular=1", "ok")
    assert await ask(live, "/pbx/route") == ("dial=PJSIP/101&regular=1", "ok")  # remembered from here on

    out = await callpop_import(tmp_path, db.url, "clients", "name;phone;manager\nИван Петров;+7 916 123-45-67;boris\n")

    assert "updated 1" in out
    assert await answered(live, "/pbx/route", ("dial=PJSIP/102&regular=1", "ok")) == ("dial=PJSIP/102&regular=1", "ok")
    assert watch_of(live).heard >= 1


async def test_names_and_numbers_changed_by_an_import_are_the_next_answers(live: Live, tmp_path: Path,
                                                                          db: Database) -> None:
    await callpop_import(tmp_path, db.url, "clients", "code;name;phone\n"
                                                      "C-1;Иван Петров;+7 916 123-45-67\n"
                                                      "C-2;Мария Сидорова;+7 903 555-00-00\n")
    assert await answered(live, "/pbx/caller-name", ("Иван Петров", "ok")) == ("Иван Петров", "ok")
    assert await ask(live, "/pbx/caller-name", "+79035550000") == ("Мария Сидорова", "ok")
    assert await ask(live, "/pbx/caller-name", "+79990001122") == ("", "unknown")

    await callpop_import(tmp_path, db.url, "clients", "code;name;phone\n"
                                                      "C-1;Иван Иванов;\n"            # renamed
                                                      "C-2;Мария Сидорова;8 999 000-11-22\n")  # a number added
    assert await answered(live, "/pbx/caller-name", ("Иван Иванов", "ok")) == ("Иван Иванов", "ok")
    assert await answered(live, "/pbx/caller-name", ("Мария Сидорова", "ok"), "+79990001122") \
        == ("Мария Сидорова", "ok")


async def test_a_pop_after_an_import_shows_what_it_imported(live: Live, db: Database, tmp_path: Path) -> None:
    anna = await add_employee(db, "anna", ["101"])
    await add_employee(db, "boris", ["102"])
    await add_client(db, "Иван Петров", NUMBER, responsible_id=anna)
    tab = await live.tab("anna")
    await tab.start()

    async def pop(call: str) -> dict[str, Any]:
        await live.pipeline.handle([Ringing(call=call, direction="inbound", client=NUMBER, agent="101",
                                            caller_name=None, at=1.0)])
        card: dict[str, Any] = (await tab.until("call.ringing"))["card"]
        assert card["match"] == "single"
        return card["client"]  # type: ignore[no-any-return]

    before = await pop("1733.1")
    assert (before["name"], before["responsible"]["name"]) == ("Иван Петров", "Anna")
    assert await ask(live, "/pbx/caller-name") == ("Иван Петров", "ok")

    await callpop_import(tmp_path, db.url, "clients", "name;phone;manager\nИван Петров;;boris\n")
    after = await pop("1733.2")
    assert (after["name"], after["responsible"]["name"]) == ("Иван Петров", "Boris")


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_a_change_forgets_only_its_answers_and_a_lost_listener_all(live: Live, db: Database) -> None:
    """PostgreSQL names what changed: other numbers' answers stay remembered. A write the
    database does not tell (triggers off for the session, as a replication tool does) is
    seen once the listening connection has been lost and made again."""
    other = "+79035550000"
    await add_client(db, "Иван Петров", NUMBER)
    await add_client(db, "Мария Сидорова", other)
    assert await ask(live, "/pbx/caller-name") == ("Иван Петров", "ok")
    assert await ask(live, "/pbx/caller-name", other) == ("Мария Сидорова", "ok")
    writer = create_engine(db.url)
    try:
        async with writer.begin() as conn:
            await conn.execute(text("SET LOCAL session_replication_role = replica"))
            await conn.execute(text("UPDATE clients SET name = 'Мария Иванова' WHERE name = 'Мария Сидорова'"))
        async with writer.begin() as conn:
            await conn.execute(text("UPDATE clients SET name = 'Иван Иванов' WHERE name = 'Иван Петров'"))
        assert await answered(live, "/pbx/caller-name", ("Иван Иванов", "ok")) == ("Иван Иванов", "ok")
        assert await ask(live, "/pbx/caller-name", other) == ("Мария Сидорова", "ok")

        watch = watch_of(live)
        async with writer.begin() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                                    "application_name = 'callpop-directory' AND datname = current_database()"))
        await wait_until(lambda: watch.reconnects == 1 and watch.state == "listening", within=30,
                         what="the directory watch listening again")
        assert await ask(live, "/pbx/caller-name", other) == ("Мария Иванова", "ok")
    finally:
        await writer.dispose()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_with_checking_off_an_outside_write_waits_for_the_age_bound(
        db_settings: Settings, start_live: StartLive, db: Database, tmp_path: Path) -> None:
    """``[database] sqlite_change_check = 0``: nothing tells this process, so the answer
    it remembers stands (until ``cache_seconds``), as the settings file says."""
    settings = db_settings.replace(dialplan=DialplanSettings(timeout=5.0, cache_seconds=HOUR),
                                   database=replace(db_settings.database, sqlite_change_check=0.0))
    live = await start_live(settings)
    assert watch_of(live).state == "off"
    await callpop_import(tmp_path, db.url, "clients", "code;name;phone\nC-1;Иван Петров;+7 916 123-45-67\n")
    assert await ask(live, "/pbx/caller-name") == ("Иван Петров", "ok")
    await callpop_import(tmp_path, db.url, "clients", "code;name\nC-1;Иван Иванов\n")
    async with db.sessions() as session:  # the import did write
        assert (await session.execute(text("SELECT name FROM clients"))).scalar_one() == "Иван Иванов"
    assert await ask(live, "/pbx/caller-name") == ("Иван Петров", "ok")
