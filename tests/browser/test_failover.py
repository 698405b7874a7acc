"""Two callpop instances on one PostgreSQL, one PBX: when the desk's instance goes away,
the desk moves to the other one of ``[push] instance_urls`` with what the manager typed,
saves it there once, and pops the next call."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from sqlalchemy import select

from callpop.app import create_app
from callpop.server.keys import HUB
from callpop.settings import AmiSettings, DatabaseSettings, Settings
from callpop.simulator.pbx import SimulatedPbx
from callpop.store.db import Database, open_database
from callpop.store.models import Call, Contact, Note, Plan, Promise
from tests.browser.conftest import _login, _seed
from tests.support.browser import KNOWN_NUMBER, Live, wait_for_js
from tests.support.live import ami_logged_in
from tests.support.ports import bound_socket

CARD = "#calls article[data-call='{call}']"


@pytest.fixture
async def pg_db(pg_template: str) -> AsyncIterator[Database]:
    """A fresh migrated PostgreSQL database: two instances need one they can share."""
    from tests.conftest import PG_URL, _pg_url
    from tests.support.pg import pg_admin

    name = f"callpop_b_{uuid.uuid4().hex[:12]}"
    await pg_admin(PG_URL, f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    database = await open_database(DatabaseSettings(url=_pg_url(name)))
    try:
        yield database
    finally:
        await database.close()
        await pg_admin(PG_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def pbx() -> AsyncIterator[SimulatedPbx]:
    sim = SimulatedPbx("callpop", "test-secret", agents=("101", "102"), speed=4.0, rng_seed=5)
    sim.port = await sim.start("127.0.0.1", 0)  # type: ignore[attr-defined]
    yield sim
    await sim.stop()


def _instance(base: Settings, name: str, port: int, urls: tuple[str, ...], ami_port: int) -> Settings:
    return base.replace(
        web=dataclasses.replace(base.web, host="127.0.0.1", port=port, default_language="en",
                                secret_key="failover-test-secret-of-32-bytes-or-more"),
        push=dataclasses.replace(base.push, instance_id=name, instance_urls=urls, dismiss_after=1.5),
        journal=dataclasses.replace(base.journal,  # a spool file is one instance's own
                                    spool_path=str(Path(base.journal.spool_path).with_name(f"spool-{name}.db"))),
        ami=AmiSettings(host="127.0.0.1", port=ami_port, secret="test-secret", reconnect_min=0.05,
                        reconnect_max=0.2))


async def _serve(settings: Settings, db: Database, sock: socket.socket) -> web.AppRunner:
    """The app listening on *sock* (bound to ``settings.web.port``)."""
    app = create_app(settings, db=db)
    runner = web.AppRunner(app, shutdown_timeout=2)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    await ami_logged_in(app)
    return runner


async def test_a_promise_saved_after_the_desks_instance_died_is_stored_once_and_the_desk_goes_on_on_the_other(
        browser: Any, pg_db: Database, settings: Settings, pbx: SimulatedPbx) -> None:
    """A manager types a promise after a call; the desk's instance dies; they press Save. The
    save cannot reach it: the page moves to the other instance with what was typed, sends
    it there once, says where it is now, and pops the next call."""
    anna, boris, client = await _seed(pg_db)
    socks = (bound_socket(), bound_socket())  # each instance's own, bound until it listens on it
    ports = tuple(int(sock.getsockname()[1]) for sock in socks)
    urls = tuple(f"http://127.0.0.1:{p}" for p in ports)
    ami_port: int = pbx.port  # type: ignore[attr-defined]
    first = await _serve(_instance(settings, "cp1", ports[0], urls, ami_port), pg_db, socks[0])
    second = await _serve(_instance(settings, "cp2", ports[1], urls, ami_port), pg_db, socks[1])
    page = None
    promise = "Пришлю коммерческое предложение до пятницы"
    try:
        page = await _login(browser, Live(urls[0], first.app, pbx, anna, boris, client), "anna")
        before = await pbx.place_call("incoming_answered", client=KNOWN_NUMBER, agent="101")
        card = CARD.format(call=before)
        await page.wait_for_selector(f"{card}.state-after textarea[name=promise_text]", timeout=15000)
        await page.fill(f"{card} textarea[name=promise_text]", promise)
        await first.cleanup()  # cp1 goes away: its tabs are closed (1001), its port refuses
        # the socket went to cp2; the page, with a form being typed into, offers the move
        # instead of making it under the manager's hands
        offer = await page.wait_for_selector("#instance-notice button", timeout=10000)
        assert await offer.inner_text() == f"Continue on 127.0.0.1:{ports[1]}"
        assert await page.evaluate("window.location.origin") == urls[0]
        await page.click(f"{card} form.record-form button[type=submit]")  # fails on cp1: the page moves
        await page.wait_for_url(f"{urls[1]}/", timeout=10000)  # moved, the draft's fragment dropped
        notice = await page.wait_for_selector("#instance-notice", timeout=5000)
        assert f"127.0.0.1:{ports[0]} stopped answering" in await notice.inner_text()
        assert f"127.0.0.1:{ports[1]}" in await notice.inner_text()
        await page.wait_for_selector(f"{card} .promise-text:has-text('{promise}')", timeout=10000)
        assert await page.locator(f"{card} .saved").inner_text() == "Saved."
        async with pg_db.sessions() as s:
            stored = (await s.execute(select(Promise).where(Promise.text == promise))).scalars().all()
        assert [(p.client_id, p.made_by_id, p.call_id is not None) for p in stored] == [(client, anna, True)]
        assert await page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('callpop.draft.'))") == []

        await wait_for_js(page, f"window.callpopDesk.socket !== null && "
                                f"window.callpopDesk.socket.url === 'ws://127.0.0.1:{ports[1]}/ws' && "
                                f"document.getElementById('connection-state').dataset.state === 'Connected'",
                          within=10)
        after = await pbx.place_call("incoming_answered", client=KNOWN_NUMBER, agent="101")
        popped = await page.wait_for_selector(CARD.format(call=after), timeout=8000)
        assert "Иван Петров" in await popped.inner_text()
        assert await page.locator(CARD.format(call=after)).count() == 1
        assert page.csp_violations == []  # the look at cp2 was allowed by cp1's page policy
        assert page.dialogs == []
    finally:
        if page is not None:
            await page.context.close()
        await second.cleanup()
        await first.cleanup()


async def test_a_second_copy_of_a_message_does_not_bring_a_stopped_ringing_back(
        open_desk: Callable[..., Awaitable[Any]]) -> None:
    """With two instances a tab may get a message twice; the copy is ignored, so a card that
    stopped ringing does not ring again."""
    page = await open_desk("anna")
    card = {"call": "x1", "direction": "inbound", "caller_name": None, "match": "withheld", "client": None,
            "candidates": [], "offer": None, "number": {"raw": "", "e164": None, "display": "", "withheld": True}}
    ringing = {"type": "call.ringing", "id": "main/x1/101/ringing/1", "call": "x1", "agent": "101",
               "direction": "inbound", "at": None, "card": card}
    stopped = {"type": "call.ring_stopped", "id": "main/x1/101/ring_stopped/1", "call": "x1", "agent": "101",
               "reason": "answered_elsewhere", "at": None}
    states = []
    for message in (ringing, stopped, ringing):
        states.append(await page.evaluate(
            "m => { window.callpopDesk.handle(m); return window.callpopDesk.calls.get('x1').state; }", message))
    assert states == ["ringing", "gone", "gone"]


async def test_a_note_typed_on_the_client_page_survives_a_reload_until_it_is_saved_once(
        open_desk: Callable[..., Awaitable[Any]], live: Live) -> None:
    from callpop.server.keys import DB

    page = await open_desk("anna")
    await page.goto(f"{live.url}/clients/{live.client_id}")
    note = page.locator("form.record-form textarea[name=note_text]")
    await note.fill("Перезвонить в среду после обеда")
    await page.reload()  # a crash, a closed tab, a reload: the draft is still there
    assert await note.input_value() == "Перезвонить в среду после обеда"
    await page.click("form.record-form button[type=submit]")
    await page.wait_for_selector("li.note .note-text:has-text('Перезвонить в среду после обеда')")
    await page.reload()
    await page.wait_for_selector("li.note .note-text:has-text('Перезвонить в среду после обеда')")
    assert await note.input_value() == ""  # saved: the draft is gone
    async with live.app[DB].sessions() as s:
        texts = (await s.execute(select(Note.text).where(Note.client_id == live.client_id))).scalars().all()
    assert sorted(texts) == ["Перезвонить в среду после обеда", "Предпочитает звонки после обеда"]


async def test_an_earnings_page_whose_instance_died_moves_to_the_other_and_keeps_counting(
        browser: Any, pg_db: Database, settings: Settings, pbx: SimulatedPbx) -> None:
    """A manager watches their earnings between calls; the page's instance dies. The page
    moves to the other instance by itself (nothing typed to lose) and the next counted
    contact, announced there, moves the figure."""
    anna, boris, client = await _seed(pg_db)
    async with pg_db.sessions() as s:
        month = dt.datetime.now(ZoneInfo("Europe/Moscow")).date().replace(day=1)
        s.add(Plan(employee_id=anna, month=month, kpi="contacts", target=Decimal(10)))
        await s.commit()
    socks = (bound_socket(), bound_socket())
    ports = tuple(int(sock.getsockname()[1]) for sock in socks)
    urls = tuple(f"http://127.0.0.1:{p}" for p in ports)
    ami_port: int = pbx.port  # type: ignore[attr-defined]
    first = await _serve(_instance(settings, "cp1", ports[0], urls, ami_port), pg_db, socks[0])
    second = await _serve(_instance(settings, "cp2", ports[1], urls, ami_port), pg_db, socks[1])
    page = None
    fact = "#earnings-table tr[data-kpi=contacts] [data-field=fact]"
    try:
        page = await _login(browser, Live(urls[0], first.app, pbx, anna, boris, client), "anna")
        await page.goto(f"{urls[0]}/earnings")
        assert (await page.locator(fact).inner_text()).strip() == "0"
        await first.cleanup()  # cp1 goes away: the page's socket closes, its port refuses
        await page.wait_for_url(f"{urls[1]}/earnings", timeout=15000)
        notice = await page.wait_for_selector("#instance-notice", timeout=5000)
        assert f"127.0.0.1:{ports[0]} stopped answering" in await notice.inner_text()
        # the moved page listens on cp2: a contact counted there moves its figure
        await wait_for_js(page, f"document.querySelector('{fact}') !== null", within=10)
        await _counted_contact(pg_db, anna, client)
        # announced until the moved page's socket is up and hears it (a refetch is idempotent)
        for _ in range(100):
            second.app[HUB].publish({"type": "kpi_changed", "employee_id": anna}, employee_ids=(anna,))
            await asyncio.sleep(0.1)
            if (await page.locator(fact).inner_text()).strip() == "1":
                break
        assert (await page.locator(fact).inner_text()).strip() == "1"
        assert page.dialogs == []
    finally:
        if page is not None:
            await page.context.close()
        await second.cleanup()
        await first.cleanup()


async def _counted_contact(db: Database, employee_id: int, client_id: int) -> None:
    now = dt.datetime.now(dt.UTC)
    async with db.sessions() as s:
        call = Call(pbx_id="main", call_key="moved-1", direction="inbound", client_id=client_id, started_at=now,
                    answered_at=now, outcome="answered", talk_seconds=90)
        s.add(call)
        await s.flush()
        s.add(Contact(call_id=call.id, employee_id=employee_id, client_id=client_id, direction="inbound",
                      started_at=now, talk_seconds=90, counted=True))
        await s.commit()
