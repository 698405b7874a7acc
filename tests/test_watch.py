"""callpop watch: logs in over HTTP, follows /ws with the websockets client, prints pops."""

from __future__ import annotations

import asyncio

import pytest

from callpop.server.keys import HUB
from callpop.store.db import Database
from callpop.telephony.events import Ringing
from callpop.watch import LoginFailed, WatchTarget, format_pop, watch
from tests.support.live import PASSWORD, Live, Recorder, StartLive, add_client, add_employee


async def _wait_for(lines: list[str], needle: str, start: int = 0, wait: float = 5.0) -> int:
    """Index of the first line from *start* containing *needle*."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while loop.time() < deadline:
        for i in range(start, len(lines)):
            if needle in lines[i]:
                return i
        await asyncio.sleep(0.02)
    raise AssertionError(f"{needle!r} not printed; got {lines}")


def _target(live: Live, login: str, agent: str, password: str = PASSWORD) -> WatchTarget:
    return WatchTarget(url=f"http://{live.server.host}:{live.server.port}", login=login, password=password,
                       agent=agent)


async def test_watch_prints_pops_and_resyncs_after_a_drop(db: Database, start_live: StartLive) -> None:
    live = await start_live(store=Recorder().hooks())
    stop = asyncio.Event()
    lines: list[str] = []
    task: asyncio.Task[None] | None = None
    try:
        await add_employee(db, "anna", ["101"])
        await add_client(db, "Иван Петров", "+79161234567", promise="счёт", company="Ромашка")
        task = asyncio.create_task(watch(_target(live, "anna", "101"), lines.append, stop=stop))
        await _wait_for(lines, "logged in")
        await asyncio.sleep(0.2)
        await live.pipeline.handle([Ringing("w1", "inbound", "+79161234567", "101", caller_name="Иван\x1b[31m")])
        i = await _wait_for(lines, "ringing")
        line = lines[i]
        assert "+7 916 123-45-67" in line and "client=Иван Петров (Ромашка)" in line and "promises=1" in line
        assert "\x1b" not in line and '"Иван?[31m"' in line
        await live.pipeline.handle([Ringing("w2", "inbound", "+79035550000", "102")])  # not anna's
        await live.app[HUB].close_all()  # the server drops every socket
        j = await _wait_for(lines, "connection closed by the server (code 1001", start=i)
        k = await _wait_for(lines, "ringing", start=j)  # the snapshot brings the ringing card back
        assert "call=w1" in lines[k]
        assert not any("w2" in x for x in lines)
    finally:
        stop.set()
        if task is not None:
            await asyncio.wait_for(task, 5)


async def test_supervisor_can_watch_any_agent(db: Database, start_live: StartLive) -> None:
    live = await start_live(store=Recorder().hooks())
    stop = asyncio.Event()
    lines: list[str] = []
    task: asyncio.Task[None] | None = None
    try:
        await add_employee(db, "sveta", ["150"], role="supervisor")
        task = asyncio.create_task(watch(_target(live, "sveta", "102"), lines.append, stop=stop))
        await _wait_for(lines, "logged in")
        await asyncio.sleep(0.3)
        await live.pipeline.handle([Ringing("s1", "inbound", "anonymous", "102")])
        line = lines[await _wait_for(lines, "ringing")]
        assert "call=s1" in line and "withheld" in line
    finally:
        stop.set()
        if task is not None:
            await asyncio.wait_for(task, 5)


async def test_wrong_password_stops_with_a_clear_error(db: Database, start_live: StartLive) -> None:
    live = await start_live(store=Recorder().hooks())
    await add_employee(db, "anna", ["101"])
    with pytest.raises(LoginFailed, match="anna"):
        await asyncio.wait_for(watch(_target(live, "anna", "101", password="nope"), print), 10)


def test_format_ignores_other_agents_and_non_call_messages() -> None:
    msg = {"type": "call.ended", "agent": "101", "call": "c", "outcome": "missed", "talk_seconds": 0, "at": 0}
    assert format_pop(msg, "102") is None
    assert format_pop({"type": "pong"}, "101") is None
    assert "outcome=missed" in (format_pop(msg, "101") or "")
    learned = {**msg, "outcome": "answered", "talk_seconds": 4, "answer_unseen": True}
    assert "talk>=4s" in (format_pop(learned, "101") or "")  # the least it can have been, said so
