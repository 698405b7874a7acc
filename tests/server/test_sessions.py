"""Sessions that end: a copied cookie dies with "Log out" (and that browser's tabs close,
not the employee's tabs elsewhere), every session with "Log out everywhere", a new
password, a new role or a dismissal; open tabs close too."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from callpop.server.keys import HUB
from callpop.server.ws import recheck_accounts
from callpop.settings import Settings
from callpop.store.db import Database
from callpop.store.employees import save_employee
from tests.support.live import PASSWORD, Live, Recorder, StartLive, add_employee


async def _login(live: Live, login: str) -> str:
    """Log in through the form; returns the session cookie's value (what an attacker copies)."""
    c = await live.client()
    token = (await c.get("/login")).headers["X-CSRF-Token"]
    resp = await c.post("/login", data={"login": login, "password": PASSWORD, "csrf_token": token},
                        allow_redirects=False)
    assert resp.status == 302
    return str(resp.cookies["callpop_session"].value)


async def _as(live: Live, cookie: str) -> aiohttp.ClientSession:
    """A browser (or a thief) that sends only this cookie."""
    session = aiohttp.ClientSession(base_url=str(live.server.make_url("")), cookie_jar=aiohttp.DummyCookieJar(),
                                    headers={"Cookie": f"callpop_session={cookie}"})
    return session


async def _status(http: aiohttp.ClientSession, path: str) -> int:
    async with http.get(path, allow_redirects=False) as resp:
        return resp.status


async def _post(http: aiohttp.ClientSession, path: str) -> int:
    async with http.get("/api/me") as me:
        token = (await me.json())["csrf_token"]
    async with http.post(path, data={"csrf_token": token}, allow_redirects=False) as resp:
        return resp.status


async def _closed(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    while (await ws.receive(timeout=5)).type is aiohttp.WSMsgType.TEXT:
        pass
    return ws.close_code


async def test_a_copied_cookie_stops_working_at_logout(settings: Settings, db: Database, start_live: StartLive) -> None:
    live = await start_live(settings, store=Recorder().hooks())
    try:
        await add_employee(db, "anna", ["101"])
        cookie = await _login(live, "anna")
        browser, thief = await _as(live, cookie), await _as(live, cookie)
        other = await _as(live, await _login(live, "anna"))  # anna on her phone
        try:
            assert await _status(thief, "/api/me") == 200
            tabs = [await browser.ws_connect("/ws"), await browser.ws_connect("/ws"), await other.ws_connect("/ws")]
            for tab in tabs:
                assert (await tab.receive_json())["type"] == "hello"
            assert await _post(browser, "/logout") == 302
            assert [await _closed(tab) for tab in tabs[:2]] == [4001, 4001]  # this browser's desk tabs
            phone_tab = tabs[2]  # the phone's tab stays open and answered
            await phone_tab.send_json({"type": "ping"})
            while (await phone_tab.receive_json(timeout=5))["type"] != "pong":
                pass
            assert not phone_tab.closed
            await phone_tab.close()
            assert await _status(thief, "/api/me") == 401
            assert await _status(thief, "/") == 302
            assert await _status(thief, "/ws") == 401
            assert await _status(other, "/api/me") == 200  # only that session ended
        finally:
            for s in (browser, thief, other):
                await s.close()
    finally:
        await live.close()


async def test_log_out_everywhere_ends_every_session_and_closes_the_tabs(settings: Settings, db: Database,
                                                                        start_live: StartLive) -> None:
    live = await start_live(settings, store=Recorder().hooks())
    try:
        await add_employee(db, "anna", ["101"])
        await add_employee(db, "boris", ["102"])
        laptop, phone = await _as(live, await _login(live, "anna")), await _as(live, await _login(live, "anna"))
        boris = await _as(live, await _login(live, "boris"))
        again = forged = boris
        try:
            tab = await phone.ws_connect("/ws")
            assert (await tab.receive_json())["type"] == "hello"
            assert await _post(laptop, "/logout/everywhere") == 302
            assert await _closed(tab) == 4001
            assert await _status(phone, "/api/me") == 401 and await _status(laptop, "/api/me") == 401
            assert await _status(boris, "/api/me") == 200  # a colleague stays logged in
            again, forged = await _as(live, await _login(live, "anna")), await _as(live, "forged.cookie")
            assert await _status(again, "/api/me") == 200  # logging in again works
            assert await _status(forged, "/api/me") == 401  # a forged cookie is no session
        finally:
            for s in (laptop, phone, boris, again, forged):
                await s.close()
    finally:
        await live.close()


async def test_a_new_password_role_or_dismissal_ends_sessions_and_open_tabs(settings: Settings, db: Database,
                                                                           start_live: StartLive) -> None:
    live = await start_live(settings, store=Recorder().hooks())
    rechecks: asyncio.Task[None] | None = None
    try:
        for login in ("anna", "boris", "vera"):
            await add_employee(db, login, [])
        sessions = {login: await _as(live, await _login(live, login)) for login in ("anna", "boris", "vera")}
        try:
            tabs = {login: await s.ws_connect("/ws") for login, s in sessions.items()}
            for tab in tabs.values():
                assert (await tab.receive_json())["type"] == "hello"
            async with db.sessions() as s:  # what `callpop user` does, in another process
                await save_employee(s, "anna", password="a brand new password")
                await save_employee(s, "boris", role="supervisor")
                await save_employee(s, "vera", active=False)
                await s.commit()
            for login in ("anna", "boris", "vera"):
                assert await _status(sessions[login], "/api/me") == 401, login
            hub = live.app[HUB]
            rechecks = asyncio.create_task(recheck_accounts(hub, db, 0.05))
            for login, tab in tabs.items():
                assert await _closed(tab) == 4001, login
        finally:
            for s in sessions.values():
                await s.close()
    finally:
        if rechecks is not None:
            rechecks.cancel()
        await live.close()


async def test_a_name_or_extension_change_keeps_the_session(settings: Settings, db: Database,
                                                            start_live: StartLive) -> None:
    live = await start_live(settings, store=Recorder().hooks())
    try:
        await add_employee(db, "anna", ["101"])
        anna = await _as(live, await _login(live, "anna"))
        try:
            async with db.sessions() as s:
                update = await save_employee(s, "anna", name="Анна Петрова", extensions=["105"])
                await s.commit()
            assert "every session ended" not in update.changes
            assert await _status(anna, "/api/me") == 200
        finally:
            await anna.close()
    finally:
        await live.close()


def test_the_user_command_deactivates_and_ends_sessions(db_settings: Settings,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from callpop.cli import build_parser
    from callpop.store import employees

    def run(*argv: str) -> str:
        assert employees.main(build_parser().parse_args(["user", *argv]), db_settings) == 0
        return capsys.readouterr().out

    assert "created olga" in run("olga", "--password", "very-secret")
    assert run("olga", "--end-sessions") == "olga: every session ended\n"
    assert run("olga", "--deactivate") == "olga: deactivated\nolga: every session ended\n"
    assert run("olga", "--activate") == "olga: activated\n"


async def test_the_session_cookie_is_shared_by_the_instances_of_one_domain(settings: Settings, db: Database,
                                                                          start_live: StartLive) -> None:
    """[web] cookie_domain: cp1.example.com and cp2.example.com both get the login."""
    import dataclasses

    live = await start_live(settings.replace(web=dataclasses.replace(settings.web, cookie_domain="example.com")),
                            store=Recorder().hooks())
    await add_employee(db, "anna", ["101"])
    c = await live.client()
    form = await c.get("/login")
    assert "Domain=example.com" in form.headers["Set-Cookie"]
    cookie = form.cookies["callpop_session"].value  # the test client is not on example.com: sent by hand
    resp = await c.post("/login", data={"login": "anna", "password": PASSWORD,
                                        "csrf_token": form.headers["X-CSRF-Token"]},
                        headers={"Cookie": f"callpop_session={cookie}"}, allow_redirects=False)
    assert resp.status == 302
    assert "Domain=example.com" in resp.headers["Set-Cookie"]
