"""The fault suite: ``callpop run`` (a real process) against the simulated PBX over TCP and a
real database (SQLite and PostgreSQL), a 100-call burst, one fault each, the journal
compared with what the PBX played. Counts only; the timings (recovery) are bench/faults.py's.

What every fault must leave: every call that was not wholly inside a downtime recorded,
no row open, no contact doubled, no contact lost, answer and end never before the start.

Every fault runs on both databases (what the journal does on reconnects, listings and
sweeps is SQL, and the two dialects differ); the daemon killed mid-burst plays the full
100-call burst.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from callpop.settings import DatabaseSettings
from callpop.store.db import open_database
from tests.support.faults import (
    DbProxy,
    Plan,
    Run,
    daemon_killed,
    database_away,
    half_open,
    open_desks,
    pbx_crashed,
    pbx_resets,
    pg_proxy_cut,
    sqlite_lock,
)

pytestmark = pytest.mark.faults


@contextlib.asynccontextmanager
async def _running(db_url: str, tmp_path: Path, plan: Plan) -> AsyncIterator[Run]:
    r = Run(db_url, tmp_path, plan)
    db = await open_database(DatabaseSettings(url=db_url))
    try:
        await r.seed(db)
    finally:
        await db.close()
    if db_url.startswith("postgresql"):
        url = make_url(db_url)
        r.proxy = DbProxy(url.host or "127.0.0.1", url.port or 5432)
        await r.proxy.start()
        r.daemon_url = url.set(host="127.0.0.1", port=r.proxy.listen_port).render_as_string(hide_password=False)
    await r.start_pbx()
    await r.start_daemon()
    try:
        yield r
    finally:
        await r.close()


@pytest.fixture
async def run(db_url: str, tmp_path: Path) -> AsyncIterator[Run]:
    async with _running(db_url, tmp_path, Plan()) as r:
        yield r


@pytest.fixture
async def run_with_cdr(db_url: str, tmp_path: Path) -> AsyncIterator[Run]:
    """The PBX keeps CDR rows (as cdr_pgsql / cdr_sqlite3_custom would) and the daemon's
    ``[cdr]`` reads them."""
    async with _running(db_url, tmp_path, Plan(cdr=True)) as r:
        yield r


def _sound(result: dict[str, Any]) -> None:
    assert result["open_rows"] == 0, str(result)
    assert result["doubled"] == 0, str(result)
    assert result["foreign_rows"] == 0, str(result)
    assert result["times_out_of_order"] == 0, str(result)
    # contacts are lost only for calls wholly inside a downtime, or whose talk before the
    # daemon died was under min_talk and whose end nobody saw, or answered while it was down
    # and talking under min_talk after its restart (their talk is unknowable)
    assert result["lost_knowable"] == 0, str(result)


async def test_daemon_killed_mid_burst_closes_every_row_and_keeps_the_contacts(run: Run) -> None:
    result = await daemon_killed(run)
    _sound(result)
    assert result["missing_knowable"] == 0, str(result)
    # calls that ended while the daemon was down are closed as such
    assert result["end_unseen"] > 0, str(result)
    # no contact counted that did not happen: a call answered while the daemon was down is
    # counted on the talk callpop is sure of (since its listing), never on a guess
    assert result["extra"] == 0, str(result)
    assert result["from_cdr"] == 0, str(result)


async def test_daemon_killed_with_a_cdr_store_loses_only_the_calls_wholly_inside_its_downtime(
        run_with_cdr: Run) -> None:
    run = run_with_cdr
    result = await daemon_killed(run)
    _sound(result)
    assert result["missing_knowable"] == 0 and result["extra"] == 0, str(result)
    # the rows callpop could not see whole were put right from the PBX's CDR rows...
    assert result["from_cdr"] > 0, str(result)
    assert result["uncertain_left"] == 0, str(result)
    # a row the killed daemon had written before its client lookup answered gets its client
    assert result["answered_without_client"] == 0, str(result)
    # ...so every contact counts but those of calls that started and ended while it was down
    assert result["lost_outside_downtime"] == 0, str(result)
    # and every answered call's talk is the PBX's (whole seconds)
    assert result["talk_error_over_1s"] == 0, str(result)


async def test_pbx_connection_reset_ten_times_loses_nothing(run: Run) -> None:
    result = await pbx_resets(run)
    _sound(result)
    # every call but those played wholly while the link was down (none unless re-logins
    # are slow: AMI replays nothing)
    assert result["recorded"] >= result["calls"] - result["unfollowed"], str(result)
    assert result["missing_knowable"] == 0 and result["extra"] == 0, str(result)


async def test_pbx_crash_ends_its_calls_at_the_crash_not_at_the_reconnect(run: Run) -> None:
    result = await pbx_crashed(run)
    _sound(result)
    assert result["recorded"] == result["calls"], str(result)
    # the downtime is not counted as talk: every talk within a second of what was played
    assert result["talk_error_over_1s"] == 0, str(result)


async def test_half_open_connection_is_noticed_and_resynchronised(run: Run) -> None:
    result = await half_open(run)
    _sound(result)
    assert result["recorded"] >= result["calls"] - result["unfollowed"], str(result)
    assert result["missing_knowable"] == 0 and result["extra"] == 0, str(result)


async def test_database_away_spools_the_journal_and_writes_it_back(run: Run) -> None:
    if run.proxy is not None:
        outage = pg_proxy_cut(run)
    else:  # a locked SQLite is waited for up to its busy timeout (5 s) before it counts as down
        outage = sqlite_lock(run)
        run.plan.db_downtime = 8.0
    desks = await open_desks(run)
    try:
        result = await database_away(run, outage, desks)
    finally:
        await desks.close()
    _sound(result)
    # pops go on: every call placed while the database was away rang on its manager's desk
    # (a logged-in tab on the daemon's websocket) before the database was back
    assert result["placed_while_away"] > 0, str(result)
    assert result["popped_while_away"] == result["placed_while_away"], str(result)
    assert result["popped_in_all"] == result["calls"], str(result)
    assert result["spooled_at_restore"] > 0, str(result)
    assert result["recorded"] == result["calls"], str(result)
    assert result["lost"] == 0 and result["extra"] == 0, str(result)
