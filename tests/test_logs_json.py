"""[logging] format = "json": one object per line, and every line written while handling
a call carries that call's id — from the pipeline, the lookup and the journal."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from callpop.logs import setup_logging
from callpop.settings import LoggingSettings, Settings
from callpop.store.db import Database
from callpop.telephony.events import Answered, Ended, Ringing
from tests.support.live import Recorder, StartLive, add_employee

CALL = "1733300000.77"
OTHER = "1733300001.5"


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    setup_logging(LoggingSettings(level="DEBUG", format="json"), stream)
    yield stream
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved[0]:
        root.addHandler(handler)
    root.setLevel(saved[1])


async def test_every_line_about_a_call_names_it(json_log: io.StringIO, db_settings: Settings, db: Database,
                                                start_live: StartLive) -> None:
    rec = Recorder(real_journal=True, fail_lookup=True)
    live = await start_live(db_settings, store=rec.hooks())
    try:
        await add_employee(db, "anna", ["101"])
        for call in (CALL, OTHER):
            await live.pipeline.handle([
                Ringing(call, "inbound", "+79161234567", "101", at=1_795_000_000.0),
                Answered(call, "101", at=1_795_000_003.0),
                Ended(call, "inbound", "+79161234567", "answered", ("101",), 45, started_at=1_795_000_000.0,
                      ended_at=1_795_000_048.0, agents_rang=("101",)),
            ])
        await live.pipeline.drain()
    finally:
        await live.close()
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    assert all({"ts", "level", "logger", "msg"} <= set(line) for line in lines)
    ours = [line for line in lines if line["logger"].startswith("callpop.")]  # not the drivers' DEBUG chatter
    about = [line for line in ours if CALL in line["msg"]]
    # the failed lookup, with its traceback, and whatever else was said about the call
    assert "callpop.pipeline" in {line["logger"] for line in about}
    assert [line.get("call") for line in about] == [CALL] * len(about)
    assert any("exc" in line for line in about)
    others = [line for line in ours if OTHER in line["msg"]]
    assert others and all(line.get("call") == OTHER for line in others)
    # lines that are not about a call carry no call id
    assert all("call" not in line for line in lines if line["logger"] == "callpop.store.db")


async def test_a_row_closed_at_start_up_names_its_call(json_log: io.StringIO, db: Database) -> None:
    """A restart closes the rows of calls whose end nobody saw: the warning is about that
    call and carries its id like every other line about it."""
    import datetime as dt

    from callpop.store.journal import open_call
    from callpop.store.journal_recovery import close_unseen

    async with db.sessions() as session:
        await open_call(session, "main", Ringing(CALL, "inbound", "+79161234567", "101", at=1_795_000_000.0), None)
        await session.commit()
    async with db.sessions() as session:
        await close_unseen(session, "main", set(), last_known=None, before=dt.datetime.now(dt.UTC),
                           extension_to_employee={})
        await session.commit()
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    closed = [line for line in lines if line["logger"] == "callpop.store.journal_recovery"]
    assert closed and [line.get("call") for line in closed] == [CALL] * len(closed)


async def test_with_several_pbxs_each_links_lines_name_their_pbx(json_log: io.StringIO, db_settings: Settings,
                                                                 start_live: StartLive) -> None:
    """"ami: lost" at 3 a.m. is only useful if it says which of the PBXs went away."""
    import asyncio
    import socket

    from callpop.server.keys import connections
    from callpop.settings_file import settings_from_mapping
    from callpop.simulator.pbx import SimulatedPbx

    sim = SimulatedPbx("callpop", "test-secret", agents=("101",), speed=10.0, rng_seed=9)
    port = await sim.start("127.0.0.1", 0)
    with socket.socket() as sock:  # a port nothing listens on: the second PBX is down
        sock.bind(("127.0.0.1", 0))
        down = sock.getsockname()[1]
    two = settings_from_mapping({"ami": {"host": "127.0.0.1", "port": port, "secret": "test-secret", "office2": {
        "host": "127.0.0.1", "port": down, "secret": "test-secret", "reconnect_min": 0.05}}}, environ={})
    live = await start_live(db_settings.replace(ami=two.ami, more_ami=two.more_ami), start_ami=True)
    try:
        for _ in range(300):
            if connections(live.app)["main"].state == "logged_in" and "attempt 2" in json_log.getvalue():
                break
            await asyncio.sleep(0.01)
    finally:
        await live.close()
        await sim.stop()
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    links = [line for line in lines if line["logger"].startswith("callpop.telephony.")]
    assert {"main", "office2"} <= {line.get("pbx") for line in links}
    for line in links:
        if str(down) in line["msg"] or "retrying" in line["msg"]:
            assert line.get("pbx") == "office2", line
        if "logged in" in line["msg"] or str(port) in line["msg"]:
            assert line.get("pbx") == "main", line


def test_the_text_format_names_the_pbx_only_when_there_is_one_to_name() -> None:
    from callpop.logs import pbx_context

    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    setup_logging(LoggingSettings(level="INFO", format="text"), stream)
    try:
        log = logging.getLogger("callpop.telephony.connection")
        log.warning("ami: lost")
        with pbx_context("office2"):
            log.warning("ami: lost")
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
    first, second = stream.getvalue().splitlines()
    assert first.endswith("callpop.telephony.connection: ami: lost")
    assert second.endswith("callpop.telephony.connection: ami: lost pbx=office2")
