"""Several PBXs: [ami.NAME] connections, each with its tracker; calls and agents of the
second PBX namespaced, so two Asterisks handing out the same call ids never mix. Two
simulated PBXs over real TCP, seeded alike so that their Linkedids collide."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from callpop.server.keys import connections
from callpop.settings import Settings
from callpop.settings_file import settings_from_mapping
from callpop.simulator.pbx import SimulatedPbx
from callpop.store.db import Database
from callpop.store.models import Call
from tests.support.live import Recorder, StartLive, add_client, add_employee

NUMBER = "+79161234567"


@pytest.fixture
async def two_pbxes() -> AsyncIterator[tuple[SimulatedPbx, SimulatedPbx]]:
    sims = []
    for _ in range(2):
        sim = SimulatedPbx("callpop", "test-secret", agents=("101",), speed=10.0, rng_seed=9)  # same ids
        sim.port = await sim.start("127.0.0.1", 0)  # type: ignore[attr-defined]
        sims.append(sim)
    yield sims[0], sims[1]
    for sim in sims:
        await sim.stop()


def test_ami_tables_name_more_pbxes_and_inherit_the_rest() -> None:
    s = settings_from_mapping({"ami": {"host": "10.0.0.1", "username": "crm", "secret": "a",
                                       "office2": {"host": "10.0.0.2", "port": 5039}}},
                              environ={"CALLPOP_AMI_SECRET_OFFICE2": "b"})
    assert [(n, a.host, a.port, a.username, a.secret) for n, a in s.pbxes()] == [
        ("main", "10.0.0.1", 5038, "crm", "a"), ("office2", "10.0.0.2", 5039, "crm", "b")]
    assert [n for n, _ in settings_from_mapping({}, environ={}).pbxes()] == ["main"]  # the single [ami]


async def test_two_pbxes_with_colliding_call_ids_pop_and_journal_apart(
        db_settings: Settings, db: Database, start_live: StartLive,
        two_pbxes: tuple[SimulatedPbx, SimulatedPbx]) -> None:
    first, second = two_pbxes
    settings = db_settings.replace(**{f: getattr(settings_from_mapping({"ami": {
        "host": "127.0.0.1", "port": first.port, "secret": "test-secret",  # type: ignore[attr-defined]
        "office2": {"host": "127.0.0.1", "port": second.port, "secret": "test-secret"}},  # type: ignore[attr-defined]
        "agents": {"office2:PJSIP/150010001": "office2:101"}}, environ={}), f)
        for f in ("ami", "more_ami", "agents")})
    live = await start_live(settings, store=Recorder(real_journal=True).hooks(), start_ami=True)
    for _ in range(300):
        if all(c.state == "logged_in" for c in connections(live.app).values()):
            break
        await asyncio.sleep(0.01)
    assert {p: c.state for p, c in connections(live.app).items()} == {"main": "logged_in", "office2": "logged_in"}
    await add_employee(db, "anna", ["101"])           # an agent of the first PBX
    boris_id = await add_employee(db, "boris", ["office2:101"])  # extension 101 of the second PBX
    await add_client(db, "Иван", NUMBER, responsible_id=boris_id)
    anna, boris = await live.tab("anna"), await live.tab("boris")
    await anna.start()
    await boris.start()
    call_a = await first.place_call("incoming_answered", client=NUMBER, agent="101", talk_seconds=1)
    call_b = await second.place_call("incoming_answered", client=NUMBER, agent="101", talk_seconds=1)
    assert call_a == call_b  # the two Asterisks hand out the same Linkedid
    pop_a, pop_b = await anna.until("call.ringing"), await boris.until("call.ringing")
    assert (pop_a["call"], pop_a["agent"]) == (call_a, "101")
    assert (pop_b["call"], pop_b["agent"]) == (f"office2:{call_b}", "office2:101")
    assert pop_b["card"]["client"]["name"] == "Иван"
    ended = [await anna.until("call.ended", wait=8), await boris.until("call.ended", wait=8)]
    assert [e["call"] for e in ended] == [call_a, f"office2:{call_b}"]
    await live.pipeline.drain()
    async with db.sessions() as session:
        rows = sorted(tuple(r) for r in await session.execute(select(Call.pbx_id, Call.call_key)))
    # each row names the PBX the call was on
    assert rows == [("main", call_a), ("office2", f"office2:{call_b}")]
    # click-to-call goes to the manager's own PBX, with that PBX's device
    web = await live.login("boris")
    token = (await (await web.get("/api/me")).json())["csrf_token"]
    resp = await web.post("/api/originate", json={"client_phone": NUMBER}, headers={"X-CSRF-Token": token})
    assert resp.status == 202, await resp.text()
    assert [(o["channel"], o["callerid"]) for o in second.originates] == [("PJSIP/150010001", "Boris <101>")]
    assert first.originates == []
    # the dialplan of each PBX is routed to its own managers only
    ask = await live.client()
    from_second = await ask.get("/pbx/route", params={"number": NUMBER, "pbx": "office2"})
    from_first = await ask.get("/pbx/route", params={"number": NUMBER})
    assert await from_second.text() == "dial=PJSIP/150010001&regular=1"
    assert await from_first.text() == "dial=&regular=1"  # boris's phone is not on the first PBX
    # one PBX gone: every tab is told which one, and which calls are its (their ids' prefix)
    await second.stop()
    for tab in (anna, boris):
        status = await tab.until("pbx.status", wait=8)
        assert {k: status[k] for k in ("pbx", "calls", "connected")} == {
            "pbx": "office2", "calls": "office2:", "connected": False}
    # health names the PBX that is gone
    for _ in range(300):
        body = await (await (await live.client()).get("/health")).json()
        if body["reasons"]:
            break
        await asyncio.sleep(0.02)
    assert [r.split(":")[0] for r in body["reasons"]] == ["ami office2"]
    assert body["pbxes"]["main"] == "logged_in"


async def test_a_refused_login_on_a_further_pbx_names_that_pbxs_table_and_variable(
        db_settings: Settings, start_live: StartLive, two_pbxes: tuple[SimulatedPbx, SimulatedPbx],
        caplog: pytest.LogCaptureFixture) -> None:
    """[ami.NAME] does not inherit [ami]'s secret: the hint must send the operator to
    CALLPOP_AMI_SECRET_OFFICE2, not to the first PBX's variable, which is already right."""
    first, second = two_pbxes
    settings = db_settings.replace(**{f: getattr(settings_from_mapping({"ami": {
        "host": "127.0.0.1", "port": first.port, "secret": "test-secret",  # type: ignore[attr-defined]
        "office2": {"host": "127.0.0.1", "port": second.port, "secret": "wrong"}}},  # type: ignore[attr-defined]
        environ={}), f) for f in ("ami", "more_ami")})
    live = await start_live(settings, start_ami=True)
    try:
        for _ in range(300):
            if "refused" in caplog.text and connections(live.app)["main"].state == "logged_in":
                break
            await asyncio.sleep(0.01)
    finally:
        await live.close()
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage() and r.levelname == "ERROR"]
    assert refused and all("[ami.office2]" in m and "CALLPOP_AMI_SECRET_OFFICE2" in m for m in refused), refused
