"""The application: login and logout, the desk page, health, errors, start-up checks."""

from __future__ import annotations

import logging
import sqlite3
from contextlib import closing
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from callpop.app import create_app
from callpop.server.pages import safe_next
from callpop.settings import DatabaseSettings, Settings
from callpop.store.db import Database, SchemaError, head_revision, upgrade
from callpop.store.errors import NotFound, ValidationError
from tests.support.live import PASSWORD, Recorder, StartLive, add_employee


async def test_real_login_and_desk_pages_render(db: Database, start_live: StartLive) -> None:
    live = await start_live(store=Recorder().hooks(), real_templates=True)
    await add_employee(db, "anna", ["101"], name="Анна <b>Смирнова</b>")
    c = await live.client()
    page = await c.get("/login")
    assert page.status == 200
    html = await page.text()
    assert page.headers["X-CSRF-Token"] in html  # the form carries the token
    assert "HttpOnly" in page.headers["Set-Cookie"] and "SameSite=Lax" in page.headers["Set-Cookie"]
    resp = await c.post("/login", data={"login": "anna", "password": PASSWORD,
                                        "csrf_token": page.headers["X-CSRF-Token"]}, allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/"
    desk = await c.get("/")
    assert desk.status == 200
    text = await desk.text()
    assert "Анна &lt;b&gt;Смирнова&lt;/b&gt;" in text  # names are text, never markup
    assert "<b>Смирнова" not in text


async def test_wrong_password_and_unknown_login_look_the_same(db: Database, start_live: StartLive) -> None:
    live = await start_live(store=Recorder().hooks())
    await add_employee(db, "anna", ["101"])
    c = await live.client()
    token = (await c.get("/login")).headers["X-CSRF-Token"]
    answers = []
    for login, password in (("anna", "wrong password"), ("nobody", "wrong password"), ("anna", "")):
        resp = await c.post("/login", data={"login": login, "password": password, "csrf_token": token},
                            allow_redirects=False)
        answers.append((resp.status, (await resp.text()).replace(login, "LOGIN")))
    assert answers[0] == answers[1]
    assert answers[0][0] == 401 and "Wrong login or password." in answers[0][1]
    assert answers[2][0] == 401
    assert (await c.get("/", allow_redirects=False)).status == 302  # still not logged in


@pytest.mark.parametrize(("raw", "expected"), [
    ("/promises", "/promises"), ("/clients/5?x=1", "/clients/5?x=1"), ("//evil.example/", "/"),
    ("/\\evil.example", "/"), ("https://evil.example/", "/"), ("", "/"), (None, "/"), ("/a\r\nSet-Cookie:x", "/"),
])
def test_next_is_followed_only_for_local_paths(raw: str | None, expected: str) -> None:
    assert safe_next(raw) == expected


async def test_login_redirects_to_next_and_logout_ends_the_session(db: Database, start_live: StartLive) -> None:
    live = await start_live(store=Recorder().hooks())
    await add_employee(db, "anna", ["101"])
    c = await live.client()
    first = await c.get("/promises", allow_redirects=False)
    assert first.status == 302 and first.headers["Location"].startswith("/login?next=/promises")
    token = (await c.get("/login")).headers["X-CSRF-Token"]
    resp = await c.post("/login", data={"login": "anna", "password": PASSWORD, "csrf_token": token,
                                        "next": "//evil.example/x"}, allow_redirects=False)
    assert resp.headers["Location"] == "/"
    desk = await c.get("/", allow_redirects=False)
    assert desk.status == 200
    token = desk.headers["X-CSRF-Token"]
    ws = await c.ws_connect("/ws")
    assert (await ws.receive_json())["type"] == "hello"
    out = await c.post("/logout", data={"csrf_token": token}, allow_redirects=False)
    assert out.status == 302 and out.headers["Location"] == "/login"
    while (await ws.receive(timeout=3)).type is aiohttp.WSMsgType.TEXT:
        pass  # the snapshot, then the close
    assert ws.close_code == 4001  # the open tab is logged out too
    assert (await c.get("/", allow_redirects=False)).status == 302
    assert (await c.get("/ws")).status == 401


async def test_health_reports_counts(db: Database, start_live: StartLive) -> None:
    live = await start_live(store=Recorder().hooks())
    await add_employee(db, "anna", ["101"])
    tab = await live.tab("anna")
    await tab.start()
    c = await live.client()
    body = await (await c.get("/health")).json()
    assert body["status"] == "ok" and body["database"] == "ok"
    assert body["ami"] == "off"
    assert body["push"]["connections"] == 1
    assert body["calls_in_flight"] == 0


async def test_domain_errors_become_clear_4xx_and_bugs_a_plain_500(settings: Settings, db: Database) -> None:
    app = create_app(settings, db=db, start_ami=False, store=Recorder().hooks())

    async def missing(request: web.Request) -> web.Response:
        raise NotFound("client", 42, field="client_id")

    async def invalid(request: web.Request) -> web.Response:
        raise ValidationError("due_at", "expected a date like 2026-12-01")

    async def bug(request: web.Request) -> web.Response:
        raise RuntimeError("secret internals")

    app.router.add_get("/api/test-missing", missing)
    app.router.add_get("/test-missing", missing)
    app.router.add_get("/api/test-invalid", invalid)
    app.router.add_get("/test-bug", bug)
    server = TestServer(app)
    await server.start_server()
    try:
        from aiohttp.test_utils import TestClient

        async with TestClient(server) as c:
            r = await c.get("/api/test-missing")
            assert r.status == 404 and await r.json() == {"error": "client 42 not found", "field": "client_id",
                                                          "message": "Не найдено: возможно, запись удалили."}
            page = await c.get("/test-missing")
            assert page.status == 404 and "text/html" in page.headers["Content-Type"]
            r = await c.get("/api/test-invalid")
            assert r.status == 400 and (await r.json())["field"] == "due_at"
            r = await c.get("/test-bug")
            assert r.status == 500
            text = await r.text()
            assert "secret internals" not in text and "Traceback" not in text
    finally:
        await server.close()


async def test_first_start_on_an_empty_database_creates_the_schema(settings: Settings, tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "new" / "callpop.db"
    fresh = settings.replace(database=DatabaseSettings(url=f"sqlite+aiosqlite:///{path}"))
    server = TestServer(create_app(fresh, start_ami=False, store=Recorder().hooks()))
    with caplog.at_level(logging.WARNING, logger="callpop.store.db"):
        await server.start_server()
    try:
        assert "database is empty: creating the schema (callpop db upgrade)" in caplog.messages
        async with aiohttp.ClientSession() as http:
            resp = await http.get(server.make_url("/login"))
            assert resp.status == 200
    finally:
        await server.close()
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (head_revision(),)


async def test_start_refuses_an_old_schema(settings: Settings, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    await upgrade(url)
    with closing(sqlite3.connect(tmp_path / "old.db")) as conn, conn:
        conn.execute("UPDATE alembic_version SET version_num = '0000_older'")
    old = settings.replace(database=DatabaseSettings(url=url))
    server = TestServer(create_app(old, start_ami=False, store=Recorder().hooks()))
    with pytest.raises(SchemaError, match=r"revision 0000_older.*run `callpop db upgrade`"):
        await server.start_server()
    await server.close()
