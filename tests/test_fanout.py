"""Two callpop instances on one PostgreSQL: what is pushed on one reaches the desks on the
other through LISTEN/NOTIFY, exactly once, whichever instance made it."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from callpop.fanout import FANOUT
from callpop.fanout_wire import MAX_PAYLOAD
from callpop.server.keys import HUB
from callpop.settings import AmiSettings, DialplanSettings, Settings
from callpop.simulator.pbx import SimulatedPbx
from callpop.store.db import Database
from callpop.telephony.events import Answered, Ended, Ringing, RingStopped
from tests.support.ami import wait_until
from tests.support.live import Live, Recorder, StartLive, Tab, add_client, add_employee, ami_logged_in
from tests.support.ports import PortHold

NUMBER = "+79161234567"
SECRET_KEY = "two-instances-share-this-secret-of-32-bytes"


def _instance(settings: Settings, name: str, *, ami_port: int | None = None) -> Settings:
    settings = settings.replace(push=dataclasses.replace(settings.push, instance_id=name),
                                web=dataclasses.replace(settings.web, secret_key=SECRET_KEY),
                                # each instance its own spool (one process per spool file)
                                journal=dataclasses.replace(settings.journal,
                                                            spool_path=f"{settings.journal.spool_path}.{name}"))
    if ami_port is not None:
        settings = settings.replace(ami=AmiSettings(host="127.0.0.1", port=ami_port, secret="test-secret",
                                                    reconnect_min=0.05, reconnect_max=0.2))
    return settings


async def _pair(start_live: StartLive, settings: Settings, db: Database, *, a_ami: int | None = None,
                b_ami: int | None = None, a_store: Recorder | None = None,
                b_store: Recorder | None = None) -> tuple[Live, Live]:
    """Instances "a" and "b" on the test's database, both listening."""
    if db.dialect != "postgresql":
        pytest.skip("fan-out runs on PostgreSQL (tests below check that SQLite leaves it off)")
    a = await start_live(_instance(settings, "a", ami_port=a_ami), store=(a_store or Recorder()).hooks(),
                         start_ami=a_ami is not None)
    b = await start_live(_instance(settings, "b", ami_port=b_ami), store=(b_store or Recorder()).hooks(),
                         start_ami=b_ami is not None)
    await wait_until(lambda: a.app[FANOUT].state == b.app[FANOUT].state == "listening", what="both listening")
    return a, b


async def _until_marker(tab: Tab, marker: str) -> list[dict[str, object]]:
    """Every message up to the one with ``marker`` set (excluded)."""
    seen = []
    while (msg := await tab.next(wait=5))["type"] != "marker" or msg.get("marker") != marker:
        seen.append(msg)
    return seen


@pytest.fixture
async def pbx() -> AsyncIterator[SimulatedPbx]:
    sim = SimulatedPbx("callpop", "test-secret", agents=("101", "102", "103"), speed=10.0, rng_seed=3)
    sim.port = await sim.start("127.0.0.1", 0)  # type: ignore[attr-defined]
    yield sim
    await sim.stop()


async def test_a_message_published_on_one_instance_reaches_a_desk_on_the_other_exactly_once(
        start_live: StartLive, settings: Settings, db: Database) -> None:
    a, b = await _pair(start_live, settings, db)
    anna = await add_employee(db, "anna", ["101"])
    on_a, on_b = await a.tab("anna"), await b.tab("anna")
    await on_a.start()
    await on_b.start()
    a.app[HUB].publish({"type": "kpi_changed", "employee_id": anna}, employee_ids=(anna,))
    a.app[HUB].publish({"type": "marker", "marker": "end"}, employee_ids=(anna,))
    for tab in (on_a, on_b):
        seen = await _until_marker(tab, "end")
        assert [m["type"] for m in seen] == ["kpi_changed"]
    assert b.app[HUB].counters["relayed_in"] == 2
    assert a.app[HUB].counters["relayed_in"] == 0  # its own notifications are not delivered twice
    # the sender counts a batch once its statement returns, which may be after the other
    # instance already has the notifications
    await wait_until(lambda: a.app[FANOUT].counters["sent"] >= 2, what="the sender's count")
    assert a.app[FANOUT].counters["sent"] == 2
    scrape = await (await (await b.client()).get("/metrics")).text()
    assert "callpop_fanout_up 1.0" in scrape
    assert "callpop_fanout_received_total 2.0" in scrape
    assert 'callpop_fanout_state{state="listening"} 1.0' in scrape


async def test_a_call_both_instances_track_pops_once_on_each_desk(
        start_live: StartLive, settings: Settings, db: Database, pbx: SimulatedPbx) -> None:
    port: int = pbx.port  # type: ignore[attr-defined]
    await add_employee(db, "anna", ["101"])
    await add_client(db, "Иван Петров", NUMBER)
    a, b = await _pair(start_live, settings, db, a_ami=port, b_ami=port)
    await ami_logged_in(a.app)
    await ami_logged_in(b.app)
    on_a, on_b = await a.tab("anna"), await b.tab("anna")
    await on_a.start()
    await on_b.start()
    call = await pbx.place_call("incoming_answered", client=NUMBER, agent="101")
    pair = ((a, b), (b, a))

    def settled() -> bool:
        """Both pipelines made the call's three messages for 101, and every notification
        sent was received: what either desk will ever get of the call has arrived."""
        return all(x.app[HUB].counters["published"] + x.app[HUB].counters["duplicates_local"] == 3
                   and x.app[FANOUT].waiting == 0
                   and y.app[FANOUT].counters["received"] == x.app[FANOUT].counters["sent"] for x, y in pair)

    await wait_until(settled, what="both instances made and heard every message")
    for x, _y in pair:
        counters = x.app[HUB].counters
        assert counters["published"] + counters["relayed_in"] == 3  # delivered once each
    # a second copy of each message was dropped somewhere: the later local one, or a relayed one
    dupes = sum(x.app[HUB].counters[f"duplicates_{c}"] for x, _y in pair for c in ("local", "relay"))
    assert dupes >= 3
    for live in (a, b):
        live.app[HUB].publish({"type": "marker", "marker": "end"}, agents=("101",))
    for tab in (on_a, on_b):
        seen = [m for m in await _until_marker(tab, "end") if m.get("call") == call]
        assert [m["type"] for m in seen] == ["call.ringing", "call.answered", "call.ended"]
        assert seen[0]["card"]["client"]["name"] == "Иван Петров"  # type: ignore[index]
        assert seen[0]["id"] == f"main/{call}/101/ringing/1"
    scrape = await (await (await b.client()).get("/metrics")).text()
    dropped = [line for line in scrape.splitlines() if line.startswith("callpop_fanout_duplicates_total")]
    counters = b.app[HUB].counters
    assert sum(float(line.split()[-1]) for line in dropped) == counters["duplicates_local"] + counters[
        "duplicates_relay"]


async def test_a_desk_gets_its_pops_from_the_other_instance_while_its_own_pbx_link_is_down(
        start_live: StartLive, settings: Settings, db: Database, pbx: SimulatedPbx) -> None:
    port: int = pbx.port  # type: ignore[attr-defined]
    with PortHold() as dead:  # a port nothing listens on (nor can while held): b never reaches the PBX
        await add_employee(db, "anna", ["101"])
        await add_client(db, "Иван Петров", NUMBER)
        b_rec = Recorder()
        a, b = await _pair(start_live, settings, db, a_ami=port, b_ami=dead.port, b_store=b_rec)
        await ami_logged_in(a.app)
        tab = await b.tab("anna")
        await tab.start()
        call = await pbx.place_call("incoming_answered", client=NUMBER, agent="101")
        ringing = await tab.until("call.ringing", wait=5)
        assert ringing["call"] == call and ringing["card"]["client"]["name"] == "Иван Петров"
        assert (await tab.until("call.answered", wait=5))["call"] == call
        assert (await tab.until("call.ended", wait=5))["call"] == call
        assert b.pipeline.pops == 0 and b_rec.lookups == []  # b made none of it: the card came along
        assert b.app[HUB].counters["relayed_in"] == 3


async def test_a_card_too_big_for_a_notification_is_built_by_the_receiving_instance(
        start_live: StartLive, settings: Settings, db: Database) -> None:
    """The card travels as a reference and b looks it up; meanwhile that call's next
    message waits behind it, another call's does not."""
    await add_employee(db, "anna", ["101", "102"])
    await add_client(db, "Иван Петров", NUMBER, note="Ж" * 5000)  # 10,000 bytes of UTF-8
    b_rec = Recorder(gate=asyncio.Event())  # b's lookups wait until the test lets them finish
    a, b = await _pair(start_live, settings, db, b_store=b_rec)
    tab = await b.tab("anna")
    await tab.start()
    await a.pipeline.handle([Ringing("k1", "inbound", NUMBER, "101", caller_name="Иван")])
    await b_rec.started(1)
    await a.pipeline.handle([RingStopped("k1", "101", "caller_hangup")])
    await a.pipeline.handle([Ringing("k2", "inbound", "+74951112233", "102")])
    first = await tab.next()
    assert (first["type"], first["call"]) == ("call.ringing", "k2")  # not held up by k1's lookup
    assert b_rec.gate is not None
    b_rec.gate.set()
    ringing, stopped = await tab.next(), await tab.next()
    assert [(m["type"], m["call"]) for m in (ringing, stopped)] == [("call.ringing", "k1"),
                                                                    ("call.ring_stopped", "k1")]
    assert ringing["card"]["client"]["name"] == "Иван Петров"
    assert ringing["card"]["client"]["notes"][0]["text"] == "Ж" * 5000
    assert ringing["card"]["caller_name"] == "Иван"
    assert "ref" not in ringing
    assert len(json.dumps(ringing["card"], ensure_ascii=False).encode()) > MAX_PAYLOAD
    assert a.app[FANOUT].counters["sent_as_reference"] == 1
    assert b_rec.lookups == [NUMBER]


async def test_the_listen_connection_killed_is_subscribed_again_and_says_so(
        start_live: StartLive, settings: Settings, db: Database, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="callpop.fanout")
    a, b = await _pair(start_live, settings, db)
    anna = await add_employee(db, "anna", ["101"])
    tab = await b.tab("anna")
    await tab.start()
    fanout = b.app[FANOUT]
    killed = fanout.backend_pid
    async with db.sessions() as session:
        assert (await session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": killed})).scalar()
    await wait_until(lambda: fanout.reconnects == 1 and fanout.state == "listening", what="resubscribed")
    assert fanout.backend_pid != killed
    assert [m["type"] for m in [await tab.next()]] == ["snapshot"]  # what was missed is put right
    a.app[HUB].publish({"type": "kpi_changed", "employee_id": anna}, employee_ids=(anna,))
    assert (await tab.next())["type"] == "kpi_changed"
    lines = [r.getMessage() for r in caplog.records if r.name == "callpop.fanout"]
    lost = next(i for i, line in enumerate(lines) if "LISTEN connection lost (terminated) instance=b" in line)
    back = next(i for i, line in enumerate(lines) if line.startswith("fanout: resubscribed to callpop_push"))
    assert lost < back


async def test_logging_out_on_one_instance_closes_the_tabs_on_the_other(
        start_live: StartLive, settings: Settings, db: Database) -> None:
    """One browser's tabs behind a load balancer: the logout on one instance closes that
    session's tabs on the other; the same employee's other session there stays."""
    a, b = await _pair(start_live, settings, db)
    await add_employee(db, "anna", ["101"])
    phone = await b.tab("anna")  # anna on her phone, a session of its own
    await phone.start()
    browser = await a.login("anna")
    cookie = browser.session.cookie_jar.filter_cookies(a.server.make_url("/"))["callpop_session"].value
    other = await b.client()
    tab = Tab(await other.ws_connect("/ws", headers={"Cookie": f"callpop_session={cookie}"}))
    await tab.start()
    token = (await (await browser.get("/api/me")).json())["csrf_token"]
    assert (await browser.post("/logout", data={"csrf_token": token}, allow_redirects=False)).status == 302
    msg = await tab.ws.receive(timeout=5)
    assert tab.ws.close_code == 4001, msg
    await phone.ws.send_json({"type": "ping"})
    assert (await phone.until("pong"))["type"] == "pong" and not phone.ws.closed
    await tab.ws.close()


async def test_a_session_made_on_one_instance_is_valid_on_the_other(
        start_live: StartLive, settings: Settings, db: Database) -> None:
    """Both share the database (sessions, generations) and [web] secret_key."""
    a, b = await _pair(start_live, settings, db)
    await add_employee(db, "anna", ["101"])
    browser = await a.login("anna")
    cookie = browser.session.cookie_jar.filter_cookies(a.server.make_url("/"))["callpop_session"].value
    other = await b.client()
    me = await other.get("/api/me", headers={"Cookie": f"callpop_session={cookie}"})
    assert me.status == 200 and (await me.json())["login"] == "anna"
    ws = await other.ws_connect("/ws", headers={"Cookie": f"callpop_session={cookie}"})
    assert (await ws.receive_json(timeout=5))["type"] == "hello"
    await ws.close()


async def test_on_sqlite_fanout_is_off_and_the_desk_works_as_before(
        start_live: StartLive, settings: Settings, db: Database) -> None:
    if db.dialect != "sqlite":
        pytest.skip("the SQLite case")
    live = await start_live(_instance(settings, "a"), store=Recorder().hooks())
    assert FANOUT not in live.app and live.app[HUB].relay is None
    await add_employee(db, "anna", ["101"])
    tab = await live.tab("anna")
    await tab.start()
    await live.pipeline.handle([Ringing("k1", "inbound", NUMBER, "101")])
    pop = await tab.until("call.ringing")
    assert pop["id"] == "main/k1/101/ringing/1"


async def test_the_dialplan_asking_one_instance_finds_a_manager_at_a_desk_on_the_other(
        start_live: StartLive, settings: Settings, db: Database) -> None:
    """/pbx/route gives the call to the responsible manager when at the desk, wherever
    that desk is connected; an instance that stops takes its desks' presence with it."""
    settings = settings.replace(dialplan=DialplanSettings(timeout=5.0), agents={"SIP/150010001": "101"})
    a, b = await _pair(start_live, settings, db)
    anna = await add_employee(db, "anna", ["101"])
    await add_client(db, "Иван", NUMBER, responsible_id=anna)
    asking = await a.client()

    async def route() -> str:
        return await (await asking.get("/pbx/route", params={"number": NUMBER})).text()

    assert await route() == "dial=&regular=1"
    tab = await b.tab("anna")
    await tab.start()
    await wait_until(lambda: a.app[FANOUT].presence.watches("101"), what="b's announcement")
    assert await route() == "dial=SIP/150010001&regular=1"
    assert a.app[FANOUT].presence.peers() == {"b": 1}
    await tab.ws.close()
    await wait_until(lambda: not a.app[FANOUT].presence.watches("101"), what="b's next announcement")
    assert await route() == "dial=&regular=1"
    again = await b.tab("anna")
    await again.start()
    await wait_until(lambda: a.app[FANOUT].presence.watches("101"), what="b's announcement")
    await b.close()  # b stops: it says so, and a forgets its desks at once
    await wait_until(lambda: a.app[FANOUT].presence.peers() == {}, what="b's goodbye")
    assert await route() == "dial=&regular=1"


async def test_a_tab_connecting_to_an_instance_that_only_hears_of_a_call_sees_it_in_its_snapshot(
        start_live: StartLive, settings: Settings, db: Database) -> None:
    """b follows no PBX: the call in progress is in the snapshot of a tab opened on b
    all the same, and gone from it once the call ended."""
    await add_employee(db, "anna", ["101"])
    await add_client(db, "Иван Петров", NUMBER)
    a, b = await _pair(start_live, settings, db)
    first = await b.tab("anna")
    await first.start()
    await a.pipeline.handle([Ringing("k1", "inbound", NUMBER, "101"), Answered("k1", "101")])
    await first.until("call.answered")
    late = await b.tab("anna")
    snapshot = await late.start()
    assert [(c["type"], c["call"], c["agent"]) for c in snapshot] == [("call.answered", "k1", "101")]
    assert snapshot[0]["card"]["client"]["name"] == "Иван Петров"
    await a.pipeline.handle([Ended("k1", "inbound", NUMBER, outcome="answered", answered_by=("101",), talk_seconds=5)])
    await first.until("call.ended")
    assert await (await b.tab("anna")).start() == []


async def test_a_lost_pbx_link_is_not_news_to_the_desks_while_another_instance_follows_that_pbx(
        start_live: StartLive, settings: Settings, db: Database, pbx: SimulatedPbx) -> None:
    """b loses its link to the PBX while a follows it: b's tabs keep popping from a, so
    they are not told the PBX is unreachable; when a stops, they are."""
    port: int = pbx.port  # type: ignore[attr-defined]
    anna = await add_employee(db, "anna", ["101"])
    a, b = await _pair(start_live, settings, db, a_ami=port)
    await ami_logged_in(a.app)
    await wait_until(lambda: b.app[FANOUT].presence.follows("main") == ["a"], what="a's announcement")
    tab = await b.tab("anna")
    await tab.start()
    b.pipeline.pbx_lost()
    b.app[HUB].publish({"type": "marker", "marker": "lost"}, employee_ids=(anna,))
    assert [m["type"] for m in await _until_marker(tab, "lost")] == []  # no pbx.status
    await a.close()  # a stops: nobody follows the PBX now
    status = await tab.until("pbx.status", wait=5)
    assert (status["pbx"], status["connected"]) == ("main", False)
