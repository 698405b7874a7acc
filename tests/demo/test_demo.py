"""callpop demo: a fresh database becomes a running desk with pops, and running it twice
adds nothing."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from callpop.demo.launch import demo_callers, run_demo
from callpop.settings import DatabaseSettings, DemoSettings, Settings
from callpop.simulator.pbx import SimulatedPbx
from callpop.store.db import open_database
from callpop.store.models import Call, Client
from callpop.watch import WatchTarget, watch


def _demo_settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.replace(
        database=DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}"),
        web=dataclasses.replace(settings.web, port=0),
        demo=DemoSettings(clients=60, managers=1, call_interval=0.4, seed=7),
    )


async def test_demo_pops_for_a_demo_manager_and_is_idempotent(settings: Settings, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    s = _demo_settings(settings, tmp_path)
    stop = asyncio.Event()
    started: asyncio.Future[tuple[str, Any]] = asyncio.get_running_loop().create_future()
    demo = asyncio.create_task(run_demo(s, ready=lambda url, acc: started.set_result((url, acc)), stop=stop))
    lines: list[str] = []
    watcher: asyncio.Task[None] | None = None
    wstop = asyncio.Event()
    try:
        url, accounts = await asyncio.wait_for(started, 60)
        manager = next(a for a in accounts if "101" in a.extensions)
        target = WatchTarget(url=url.rstrip("/"), login=manager.login, password=manager.password, agent="101")
        watcher = asyncio.create_task(watch(target, lines.append, stop=wstop))
        # the first call may already be answered when the watcher connects (the one manager
        # then talks for 35-90 s and no second call rings them): either is a pop
        popped = ("ringing", "answered")
        for _ in range(200):
            if any(word in x for x in lines for word in popped):
                break
            await asyncio.sleep(0.05)
        assert any(word in x for x in lines for word in popped), lines
    finally:
        wstop.set()
        if watcher is not None:
            await asyncio.wait_for(watcher, 5)
        stop.set()
        await asyncio.wait_for(demo, 20)
    db = await open_database(s.database)
    try:
        async with db.sessions() as session:
            clients = await session.scalar(select(func.count()).select_from(Client))
            calls = await session.scalar(select(func.count()).select_from(Call))
    finally:
        await db.close()
    # a second run seeds nothing more
    stop2 = asyncio.Event()
    again: asyncio.Future[tuple[str, Any]] = asyncio.get_running_loop().create_future()
    demo2 = asyncio.create_task(run_demo(s, calls=False, ready=lambda u, a: again.set_result((u, a)), stop=stop2))
    _, accounts2 = await asyncio.wait_for(again, 60)
    stop2.set()
    await asyncio.wait_for(demo2, 20)
    assert accounts2.seeded is False
    printed = capsys.readouterr().out
    assert "./run watch --agent 101" in printed and "callpop watch" not in printed  # on PATH or not, it works
    assert printed.count("callpop demo: stopped") == 2
    db = await open_database(s.database)
    try:
        async with db.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(Client)) == clients
            assert (await session.scalar(select(func.count()).select_from(Call)) or 0) >= (calls or 0)
    finally:
        await db.close()


def test_demo_callers_mix_known_unknown_withheld_and_hostile() -> None:
    known = [(f"+7916000{i:04d}", f"Клиент {i}") for i in range(100)]
    callers = demo_callers(known, seed=1)
    numbers = [n for n, _ in callers]
    known_set = {n for n, _ in known}
    assert sum(n in known_set for n in numbers) >= len(callers) * 0.6
    assert any(n not in known_set and n.startswith("+7") for n in numbers)
    assert "anonymous" in numbers
    assert any(name and "<" in name for _, name in callers)
    assert demo_callers(known, seed=1) == callers  # the same demo every time


async def test_demo_calls_never_ring_a_manager_who_is_talking() -> None:
    pbx = SimulatedPbx("callpop", "secret", ["101", "102", "103"], rng_seed=3)
    rang_busy: list[str] = []
    place = pbx._place

    def checked_place(scenario: str, **kwargs: Any) -> str:
        rang_busy.extend(a for a in kwargs["agents"] if pbx._busy[a] > 0)
        return place(scenario, **kwargs)

    pbx._place = checked_place  # type: ignore[method-assign]
    dialer = asyncio.create_task(pbx.run_demo_calls(0.01, [("+79161234567", "Иван Петров")], short_share=0.0))
    try:
        for _ in range(100):  # calls talk 35-90 s: the three agents are soon all on the phone
            await asyncio.sleep(0.01)
    finally:
        dialer.cancel()
        await asyncio.gather(dialer, return_exceptions=True)
    assert pbx.calls_placed >= 2
    assert rang_busy == []


@pytest.mark.parametrize("scenario", ["queue_answered", "ring_group"])
async def test_group_members_who_did_not_answer_are_free_again_for_the_next_demo_call(scenario: str) -> None:
    """A queue or ring group rings several phones; once one answers, the others hang up and
    the demo may ring them while the first still talks."""
    pbx = SimulatedPbx("callpop", "secret", ["101", "102", "103", "104"], speed=20.0, rng_seed=5)
    members = len(pbx.template(scenario).spec.roles)
    pbx._place(scenario, client="+79161234567", agents=("101",), caller_name=None, action_id=None,
               talk_seconds=600.0)
    assert sum(pbx._busy[a] > 0 for a in pbx.agents) == members  # all of them ring
    for _ in range(2000):  # the capture's few seconds at speed 20; talk goes on for 30 s
        if sum(pbx._busy[a] > 0 for a in pbx.agents) < members:
            break
        await asyncio.sleep(0.005)
    assert [a for a in pbx.agents if pbx._busy[a] > 0] == ["101"]  # only the one who answered is busy
    assert pbx._free_agents("incoming_answered") is not None
    await pbx.stop()
