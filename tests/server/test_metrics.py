"""/metrics as Prometheus reads it and /health as a load balancer reads it: real app,
real simulated PBX over TCP, real database (and a database that is not there)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from callpop.app import create_app
from callpop.server.keys import AMI, DB
from callpop.settings import AmiSettings, MetricsSettings, Settings
from callpop.simulator.pbx import SimulatedPbx
from callpop.store.db import Database, create_engine
from tests.support.live import PASSWORD, Live, Recorder, StartLive, add_client, add_employee
from tests.support.ports import PortHold

NUMBER = "+79161234567"


async def scrape(live: Live) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    client = await live.client()
    resp = await client.get("/metrics")
    assert resp.status == 200 and resp.content_type == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(await resp.text()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


@pytest.fixture
async def pbx() -> AsyncIterator[SimulatedPbx]:
    sim = SimulatedPbx("callpop", "test-secret", agents=("101", "102"), speed=10.0, rng_seed=2)
    sim.port = await sim.start("127.0.0.1", 0)  # type: ignore[attr-defined]
    yield sim
    await sim.stop()


async def _logged_in(live: Live) -> None:
    for _ in range(300):
        ami = live.app[AMI]
        if ami is not None and ami.state == "logged_in":
            return
        await asyncio.sleep(0.01)
    raise AssertionError("AMI never logged in")


async def test_metrics_follow_the_pbx_the_pops_and_the_tabs(db_settings: Settings, db: Database,
                                                            pbx: SimulatedPbx, start_live: StartLive) -> None:
    port: int = pbx.port  # type: ignore[attr-defined]
    settings = db_settings.replace(ami=AmiSettings(host="127.0.0.1", port=port, secret="test-secret"))
    live = await start_live(settings, start_ami=True, store=Recorder().hooks())
    try:
        await _logged_in(live)
        await add_employee(db, "anna", ["101"])
        await add_client(db, "Иван", NUMBER)
        before = await scrape(live)
        assert before[("callpop_ami_up", (("pbx", "main"),))] == 1
        assert before[("callpop_ami_state", (("pbx", "main"), ("state", "logged_in")))] == 1
        assert before[("callpop_pops_total", ())] == 0
        assert before[("callpop_websocket_clients", ())] == 0
        tab = await live.tab("anna")
        await tab.start()
        await pbx.place_call("incoming_answered", client=NUMBER, agent="101", talk_seconds=1)
        await tab.until("call.ringing")
        after = await scrape(live)
        assert after[("callpop_pops_total", ())] == 1
        assert after[("callpop_ring_to_pop_seconds_count", ())] == 1
        assert after[("callpop_websocket_clients", ())] == 1
        assert after[("callpop_ami_events_total", (("pbx", "main"),))] > before[("callpop_ami_events_total",
                                                                                  (("pbx", "main"),))]
        assert after[("callpop_ami_reconnects_total", (("pbx", "main"),))] == 0
        assert after[("callpop_journal_backlog", ())] >= 0
        # the PBX drops us: a reconnect is counted and "up" says so meanwhile
        await pbx.drop_clients()
        for _ in range(300):
            scraped = await scrape(live)
            if scraped[("callpop_ami_reconnects_total", (("pbx", "main"),))] == 1:
                break
            await asyncio.sleep(0.02)
        assert scraped[("callpop_ami_reconnects_total", (("pbx", "main"),))] == 1
    finally:
        await live.close()


async def test_failed_logins_and_database_errors_are_counted(db_settings: Settings, db: Database,
                                                             start_live: StartLive) -> None:
    live = await start_live(db_settings, store=Recorder().hooks())
    try:
        await add_employee(db, "anna", ["101"])
        web = await live.client()
        token = (await web.get("/login")).headers["X-CSRF-Token"]
        for password in ("wrong", "also wrong", PASSWORD):
            await web.post("/login", data={"login": "anna", "password": password, "csrf_token": token},
                           allow_redirects=False)
        with pytest.raises(Exception, match=r"no such table|does not exist"):
            async with live.app[DB].sessions() as session:
                await session.execute(text("SELECT * FROM no_such_table"))
        samples = await scrape(live)
        assert samples[("callpop_login_failures_total", (("reason", "wrong"),))] == 2
        assert samples[("callpop_database_errors_total", ())] == 1
    finally:
        await live.close()


async def test_metrics_answer_only_allowed_addresses(db_settings: Settings, start_live: StartLive) -> None:
    live = await start_live(db_settings.replace(metrics=MetricsSettings(allow=("10.0.0.0/8",))))
    try:
        resp = await (await live.client()).get("/metrics")
        assert resp.status == 403 and "[metrics] allow" in await resp.text()
    finally:
        await live.close()


async def test_health_is_ready_or_says_why_not(db_settings: Settings, db: Database,
                                               pbx: SimulatedPbx, start_live: StartLive) -> None:
    port: int = pbx.port  # type: ignore[attr-defined]
    up = db_settings.replace(ami=AmiSettings(host="127.0.0.1", port=port, secret="test-secret"))
    live = await start_live(up, start_ami=True, store=Recorder().hooks())
    try:
        await _logged_in(live)
        resp = await (await live.client()).get("/health")
        body = await resp.json()
        assert (resp.status, body["ready"], body["reasons"], body["database"]) == (200, True, [], "ok")
    finally:
        await live.close()
    with PortHold() as closed:  # nothing listens there, and nothing can while it is held
        down = db_settings.replace(ami=AmiSettings(host="127.0.0.1", port=closed.port, secret="x",
                                                   reconnect_min=0.05, reconnect_max=0.1))
        live = await start_live(down, start_ami=True, store=Recorder().hooks())
        try:
            resp = await (await live.client()).get("/health")
            body = await resp.json()
            assert resp.status == 503 and body["ready"] is False
            assert [r.split(":")[0] for r in body["reasons"]] == ["ami main"]
        finally:
            await live.close()


async def test_health_says_the_database_is_down(settings: Settings, start_live: StartLive) -> None:
    closed = PortHold()  # no database there, and none can start there while it is held
    engine = create_engine(f"postgresql+asyncpg://callpop@127.0.0.1:{closed.port}/callpop")
    nowhere = Database(engine=engine, sessions=async_sessionmaker(engine, expire_on_commit=False), url="nowhere")
    app = create_app(settings, db=nowhere, start_ami=False, store=Recorder().hooks())
    server = TestServer(app)
    await server.start_server()
    live = Live(server=server, app=app)
    try:
        resp = await (await live.client()).get("/health")
        body = await resp.json()
        assert resp.status == 503 and body["database"] == "down"
        assert [r.split(":")[0] for r in body["reasons"]] == ["database"]
        samples = await scrape(live)
        assert samples[("callpop_database_errors_total", ())] >= 1
    finally:
        await live.close()
        await engine.dispose()
        closed.close()


async def test_rows_put_right_from_the_pbx_cdr_store_are_counted_in_metrics(
        db_settings: Settings, db: Database, start_live: StartLive, tmp_path: Path) -> None:
    """With ``[cdr] url`` the daemon reconciles on its own: a row whose answer it did not see
    is put right from its CDR row and /metrics says so."""
    from callpop.settings import CdrSettings
    from callpop.simulator.cdr import cdr_table
    from tests.store.test_cdr_reconcile import T0, cdr, listed_talking, write_cdr

    cdr_url = f"sqlite+aiosqlite:///{tmp_path / 'master.db'}"
    engine = create_async_engine(cdr_url)
    async with engine.begin() as conn:
        await conn.run_sync(cdr_table().metadata.create_all)
    await engine.dispose()
    await add_employee(db, "anna", ["101"])
    client = await add_client(db, "Иван", NUMBER)
    settings = db_settings.replace(cdr=CdrSettings(url=cdr_url, wait_after_end=0.0, interval=0.05))
    live = await start_live(settings)
    await listed_talking(live.pipeline.journal, "1700000050.1", client, seen_talk=4, at_most=28)
    await write_cdr(cdr_url, cdr("1700000050.1", "PJSIP/carrier-00000001", "PJSIP/101-00000002", T0, 30, 25))

    for _ in range(200):
        if (await scrape(live)).get(("callpop_cdr_reconciled_total", ()), 0.0) >= 1:
            break
        await asyncio.sleep(0.05)
    samples = await scrape(live)
    assert samples[("callpop_cdr_reconciled_total", ())] == 1
    assert samples[("callpop_cdr_waiting", ())] == 0
    assert samples[("callpop_cdr_unreachable_total", ())] == 0
    async with db.sessions() as session:
        row = (await session.execute(text(
            "SELECT talk_seconds, times_source, answer_unseen FROM calls WHERE call_key = '1700000050.1'"))).one()
    assert (row[0], row[1], bool(row[2])) == (25, "cdr", False)
