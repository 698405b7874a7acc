"""Small holes an attacker (or an unlucky typist) finds: weak keys, odd ``next`` values,
echoed query text, spreadsheet formulas, socket floods and dialling anywhere."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import aiohttp
import pytest

from callpop.phones import may_dial
from callpop.server.keys import HUB
from callpop.server.kpi.api import _text
from callpop.server.pages import safe_next
from callpop.settings import Settings
from callpop.settings_file import SettingsError, settings_from_mapping
from callpop.store.db import Database
from tests.support.api import FakeAmi, logged_in, serve
from tests.support.api import add_employee as add_api_employee
from tests.support.kpi_rows import employee
from tests.support.kpi_rows import serve as serve_site
from tests.support.live import Recorder, StartLive, add_employee


def test_a_short_secret_key_stops_start_up() -> None:
    with pytest.raises(SettingsError, match=r"web.secret_key: expected at least 32 bytes.*found 1 bytes"):
        settings_from_mapping({"web": {"secret_key": "a"}}, environ={})
    with pytest.raises(SettingsError, match="found 31 bytes"):
        settings_from_mapping({}, environ={"CALLPOP_SECRET_KEY": "k" * 31})
    assert settings_from_mapping({"web": {"secret_key": "k" * 32}}, environ={}).web.secret_key == "k" * 32
    assert settings_from_mapping({}, environ={}).web.secret_key == ""  # a random key per start


@pytest.mark.parametrize(("raw", "expected"), [
    ("/a\x00b", "/"), ("/a\x0bb", "/"), ("/a\x1b[31m", "/"), ("/a\x7f", "/"), ("/a\x85", "/"),
    ("/клиенты?q=Иван", "/%D0%BA%D0%BB%D0%B8%D0%B5%D0%BD%D1%82%D1%8B?q=%D0%98%D0%B2%D0%B0%D0%BD"),
    ("/clients/5?x=1&y=%20", "/clients/5?x=1&y=%20"),
])
def test_next_with_control_or_non_ascii_characters_is_safe_in_a_header(raw: str, expected: str) -> None:
    assert safe_next(raw) == expected


async def test_odd_next_values_redirect_instead_of_crashing(settings: Settings, db: Database, start_live: StartLive,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    live = await start_live(settings, store=Recorder().hooks())
    try:
        await add_employee(db, "anna", ["101"])
        went = []
        for nxt in ("/x\x00y", "/x\x0bSet-Cookie: a=b", "/клиенты"):
            c = await live.client()
            token = (await c.get("/login")).headers["X-CSRF-Token"]
            resp = await c.post("/login", data={"login": "anna", "password": "correct horse battery",
                                                "csrf_token": token, "next": nxt}, allow_redirects=False)
            assert resp.status == 302
            went.append(resp.headers["Location"])
        assert went == ["/", "/", "/%D0%BA%D0%BB%D0%B8%D0%B5%D0%BD%D1%82%D1%8B"]
        resp = await c.get("/login?next=/a%00b", allow_redirects=False)  # logged in: straight on
        assert resp.status == 302 and resp.headers["Location"] == "/"
    finally:
        await live.close()
    assert "unhandled error" not in caplog.text


async def test_a_failed_login_never_logs_what_was_typed_as_the_login(
        settings: Settings, db: Database, start_live: StartLive, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    live = await start_live(settings, store=Recorder().hooks())
    try:
        await add_employee(db, "anna", ["101"])
        c = await live.client()
        token = (await c.get("/login")).headers["X-CSRF-Token"]
        for login in ("Tr0ub4dor&3-my-password", "anna"):
            resp = await c.post("/login", data={"login": login, "password": "wrong", "csrf_token": token})
            assert resp.status == 401
    finally:
        await live.close()
    failed = [r.getMessage() for r in caplog.records if "login failed" in r.getMessage()]
    assert len(failed) == 2
    assert "Tr0ub4dor" not in caplog.text and "<unknown sha256:" in failed[0]
    assert "login=anna " in failed[1]  # an existing account is named: the operator sees who is targeted


@pytest.mark.parametrize("name", ["=1+2", " =1+2", "\n=1+2", "\t=1", "\r=1", "＝HYPERLINK(\"x\")", "＋1", "－1",
                                  "＠SUM(A1)", "\u3000=1", "+7 916", "-5", "@x"])
def test_every_formula_start_a_spreadsheet_reads_is_defused(name: str) -> None:
    assert _text(name) == "'" + name


@pytest.mark.parametrize("name", ["Анна Смирнова", "O'Brien", "Boris, \"the\" closer", ""])
def test_ordinary_names_are_left_alone(name: str) -> None:
    assert _text(name) == name


async def test_websocket_tabs_per_employee_are_capped(settings: Settings, db: Database, start_live: StartLive) -> None:
    capped = settings.replace(push=dataclasses.replace(settings.push, max_tabs_per_employee=2))
    live = await start_live(capped, store=Recorder().hooks())
    try:
        await add_employee(db, "anna", ["101"])
        await add_employee(db, "boris", ["102"])
        anna, boris = await live.login("anna"), await live.login("boris")
        first, second = await anna.ws_connect("/ws"), await anna.ws_connect("/ws")
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await anna.ws_connect("/ws")
        assert refused.value.status == 429
        other = await boris.ws_connect("/ws")  # a colleague is not affected
        assert (await other.receive_json())["type"] == "hello"
        await first.close()
        anna_id = (await (await anna.get("/api/me")).json())["id"]
        for _ in range(500):  # until the server has noticed the close
            if live.app[HUB].tabs_of(anna_id) < 2:
                break
            await asyncio.sleep(0.01)
        third = await anna.ws_connect("/ws")
        assert (await third.receive_json())["type"] == "hello"
        await second.close()
        await third.close()
        await other.close()
    finally:
        await live.close()


def test_click_to_call_dials_the_home_country_unless_told_otherwise() -> None:
    assert may_dial("+79161234567", (), "RU")
    assert not may_dial("+442079460958", (), "RU")
    assert not may_dial("+8823456789", (), "RU")  # a satellite "premium" range
    assert may_dial("+74951234567", ("^7495",), "RU") and not may_dial("+79161234567", ("^7495",), "RU")


async def test_click_to_call_refuses_numbers_outside_the_allowed_patterns(db: Database,
                                                                         db_settings: Settings) -> None:
    anna = await add_api_employee(db, "anna", extensions=("101",))
    ami = FakeAmi()
    async with serve(db_settings, db, ami) as server, logged_in(server, anna) as a:
        status, body = await a.call("POST", "/api/originate", {"client_phone": "+44 20 7946 0958"})
        assert status == 403 and body["field"] == "client_phone" and "not allowed" in body["error"]
        status, _ = await a.call("POST", "/api/originate", {"client_phone": "+7 916 123-45-67"})
        assert status == 202
    moscow_only = db_settings.replace(pbx=dataclasses.replace(db_settings.pbx, originate_allowed=("^7495",)))
    async with serve(moscow_only, db, ami) as server, logged_in(server, anna) as a:
        status, _ = await a.call("POST", "/api/originate", {"client_phone": "+7 916 123-45-67"})
        assert status == 403
        status, _ = await a.call("POST", "/api/originate", {"client_phone": "+7 495 123-45-67"})
        assert status == 202
    assert [c[1] for c in ami.calls] == ["79161234567", "74951234567"]


async def test_the_dashboard_shows_a_saved_count_never_text_from_the_address(db: Database,
                                                                          settings: Settings) -> None:
    async with db.sessions() as s:
        await employee(s, "Sue Visor", role="supervisor", login="sue")
        await s.commit()
    async with serve_site(db, settings) as site:
        sue = await site.login("sue")
        page = await (await sue.get("/dashboard?saved=3")).text()
        assert "Планы сохранены, изменений: 3." in page
        for bait in ("<script>alert(1)</script>", "Your bonus was cancelled, call +44 20 7946 0958", "-1", "9" * 20):
            page = await (await sue.get("/dashboard", params={"saved": bait})).text()
            assert 'class="saved"' not in page and "bonus was cancelled" not in page and "alert(1)" not in page
