"""The whole chain over real sockets: simulated PBX (AMI over TCP) → AmiConnection →
tracker → pipeline → hub → a logged-in websocket tab, on both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from callpop.settings import AmiSettings, Settings
from callpop.simulator.pbx import SimulatedPbx
from callpop.store.db import Database
from callpop.store.models import Call, Client
from tests.support.live import Live, Recorder, StartLive, add_client, add_employee, ami_logged_in

NUMBER = "+79161234567"


@pytest.fixture
async def pbx() -> AsyncIterator[SimulatedPbx]:
    sim = SimulatedPbx("callpop", "test-secret", agents=("101", "102", "103", "104"), speed=10.0, rng_seed=1)
    sim.port = await sim.start("127.0.0.1", 0)  # type: ignore[attr-defined]
    yield sim
    await sim.stop()


async def _live_with_ami(start_live: StartLive, settings: Settings, pbx: SimulatedPbx, rec: Recorder) -> Live:
    port: int = pbx.port  # type: ignore[attr-defined]
    settings = settings.replace(ami=AmiSettings(host="127.0.0.1", port=port, secret="test-secret",
                                                reconnect_min=0.05, reconnect_max=0.2))
    live = await start_live(settings, store=rec.hooks(), start_ami=True)
    await ami_logged_in(live.app)
    return live


async def test_call_from_the_pbx_pops_with_history(settings: Settings, db: Database, pbx: SimulatedPbx,
                                                   start_live: StartLive) -> None:
    rec = Recorder(real_journal=True)
    live = await _live_with_ami(start_live, settings, pbx, rec)
    await add_employee(db, "anna", ["101"])
    await add_employee(db, "boris", ["102"])
    await add_client(db, "Иван Петров", NUMBER, promise="перезвонить в пятницу", company="Ромашка")
    anna, boris = await live.tab("anna"), await live.tab("boris")
    await anna.start()
    await boris.start()
    call = await pbx.place_call("incoming_answered", client=NUMBER, agent="101", caller_name="Иван")
    pop = await anna.until("call.ringing")
    assert pop["call"] == call and pop["agent"] == "101"
    assert pop["card"]["client"]["name"] == "Иван Петров"
    assert [p["text"] for p in pop["card"]["client"]["promises"]] == ["перезвонить в пятницу"]
    assert pop["card"]["caller_name"] == "Иван"
    assert (await anna.until("call.answered"))["call"] == call
    ended = await anna.until("call.ended", wait=5)
    assert ended["outcome"] == "answered" and ended["talk_seconds"] >= 0
    await boris.nothing()
    assert rec.lookups == [NUMBER]
    # the journal row the after-call form links to: opened at the ringing, closed at the end
    await live.pipeline.drain()
    async with db.sessions() as session:
        row = await session.get(Call, ended["call_id"])
        assert row is not None and row.call_key == call and row.outcome == "answered"
        client_id = await session.scalar(select(Client.id).where(Client.name == "Иван Петров"))
        assert row.client_id == client_id
    # the next call of this client shows the last call in the history
    await pbx.place_call("caller_hangup", client=NUMBER, agent="101")
    again = await anna.until("call.ringing")
    assert [c["outcome"] for c in again["card"]["client"]["last_calls"]][:1] == ["answered"]


async def test_ring_group_over_ami_looks_up_once(settings: Settings, db: Database, pbx: SimulatedPbx,
                                                 start_live: StartLive) -> None:
    rec = Recorder()
    live = await _live_with_ami(start_live, settings, pbx, rec)
    for login, ext in (("anna", "101"), ("boris", "102"), ("vera", "103")):
        await add_employee(db, login, [ext])
    await add_client(db, "Группа", NUMBER)
    tabs = [await live.tab(x) for x in ("anna", "boris", "vera")]
    for t in tabs:
        await t.start()
    await pbx.place_call("ring_group", client=NUMBER, agent=["101", "102", "103"])
    pops = [await t.until("call.ringing") for t in tabs]
    assert sorted(p["agent"] for p in pops) == ["101", "102", "103"]
    assert {p["card"]["client"]["name"] for p in pops} == {"Группа"}
    outcomes = [await t.until("call.ended", wait=5) for t in tabs]
    assert {o["outcome"] for o in outcomes} == {"answered"}
    assert rec.lookups == [NUMBER]


async def test_transfer_over_ami_brings_the_card_to_the_new_agent(settings: Settings, db: Database,
                                                                   pbx: SimulatedPbx, start_live: StartLive) -> None:
    rec = Recorder()
    live = await _live_with_ami(start_live, settings, pbx, rec)
    await add_employee(db, "anna", ["101"])
    await add_employee(db, "boris", ["102"])
    await add_client(db, "Переведённый", NUMBER, note="звонит по счёту")
    anna, boris = await live.tab("anna"), await live.tab("boris")
    await anna.start()
    await boris.start()
    call = await pbx.place_call("blind_transfer", client=NUMBER, agent=["101", "102"])
    first = await anna.until("call.ringing")
    assert first["call"] == call
    moved = await boris.until("call.transferred", wait=8)
    assert moved["to_agent"] == "102" and moved["card"]["client"]["name"] == "Переведённый"
    assert [n["text"] for n in moved["card"]["client"]["notes"]] == ["звонит по счёту"]
    assert rec.lookups == [NUMBER]  # the same card, not a second lookup
