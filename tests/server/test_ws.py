"""/ws at the HTTP level: who may open it, from where, and what bad input gets."""

from __future__ import annotations

import aiohttp

from callpop.settings import Settings
from callpop.store.db import Database
from tests.support.live import Recorder, StartLive, add_employee


async def test_ws_without_login_is_401(db: Database, start_live: StartLive) -> None:
    live = await start_live(store=Recorder().hooks())
    anon = await live.client()
    resp = await anon.get("/ws", headers={"Upgrade": "websocket", "Connection": "Upgrade",
                                          "Sec-WebSocket-Version": "13",
                                          "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert resp.status == 401
    assert (await resp.json())["error"] == "login required"
    try:
        await anon.ws_connect("/ws")
        raise AssertionError("anonymous websocket accepted")
    except aiohttp.WSServerHandshakeError as exc:
        assert exc.status == 401


async def test_cross_site_origin_is_refused(db: Database, start_live: StartLive) -> None:
    live = await start_live(store=Recorder().hooks())
    await add_employee(db, "anna", ["101"])
    c = await live.login("anna")
    for evil in ("https://evil.example", "http://127.0.0.1.evil.example", "null"):
        try:
            await c.ws_connect("/ws", headers={"Origin": evil})
            raise AssertionError(f"origin {evil} accepted")
        except aiohttp.WSServerHandshakeError as exc:
            assert exc.status == 403, evil
    same = f"http://{live.server.host}:{live.server.port}"
    ws = await c.ws_connect("/ws", headers={"Origin": same})
    assert (await ws.receive_json())["type"] == "hello"
    await ws.close()


async def test_a_page_of_another_instance_may_open_the_socket_and_its_policy_allows_it(
        settings: Settings, db: Database, start_live: StartLive) -> None:
    """[push] instance_urls: the desk moves to another instance when its own one goes away."""
    import dataclasses

    other = "https://cp2.example:8443"
    live = await start_live(settings.replace(push=dataclasses.replace(
        settings.push, instance_urls=("http://cp1.example:8080", other))), store=Recorder().hooks())
    await add_employee(db, "anna", ["101"])
    c = await live.login("anna")
    ws = await c.ws_connect("/ws", headers={"Origin": other})
    assert (await ws.receive_json())["type"] == "hello"
    await ws.close()
    for evil in ("https://cp3.example:8443", "http://cp2.example:8443", "https://cp2.example"):
        try:
            await c.ws_connect("/ws", headers={"Origin": evil})
            raise AssertionError(f"origin {evil} accepted")
        except aiohttp.WSServerHandshakeError as exc:
            assert exc.status == 403, evil
    policy = (await c.get("/login")).headers["Content-Security-Policy"]
    assert ("connect-src 'self' ws://cp1.example:8080 wss://cp2.example:8443 http://cp1.example:8080 "
            "https://cp2.example:8443;") in policy


async def test_bad_messages_get_errors_and_the_socket_stays(settings: Settings, db: Database,
                                                            start_live: StartLive) -> None:
    live = await start_live(store=Recorder().hooks())
    await add_employee(db, "anna", ["101"], name="Анна")
    tab = await live.tab("anna")
    hello = await tab.next()
    assert hello["user"] == {"id": hello["user"]["id"], "login": "anna", "name": "Анна",
                             "role": "manager", "extensions": ["101"]}
    assert hello["dismiss_after"] == settings.push.dismiss_after
    assert (await tab.next())["type"] == "snapshot"
    bad = ["not json", "[1, 2]", '{"no": "type"}', '{"type": 5}', '{"type": "launch_missiles"}',
           '{"type": "ping", "pad": "' + "x" * 5000 + '"}']
    for text in bad:
        await tab.ws.send_str(text)
        err = await tab.next()
        assert err["type"] == "error" and err["error"] == "bad_message", (text, err)
    await tab.ws.send_bytes(b"\x00\x01")
    assert (await tab.next())["error"] == "bad_message"
    await tab.ws.send_json({"type": "ping"})
    pong = await tab.next()
    assert pong["type"] == "pong"
    assert not tab.ws.closed


async def test_csrf_token_required_on_posts(db: Database, start_live: StartLive) -> None:
    live = await start_live(store=Recorder().hooks())
    await add_employee(db, "anna", ["101"])
    c = await live.client()
    await c.get("/login")
    resp = await c.post("/login", data={"login": "anna", "password": "correct horse battery"},
                        allow_redirects=False)
    assert resp.status == 403
    logged = await live.login("anna")
    resp = await logged.post("/logout", data={}, allow_redirects=False)
    assert resp.status == 403
    assert (await logged.get("/", allow_redirects=False)).status == 200  # still logged in


async def test_a_deactivated_account_loses_its_open_tab(settings: Settings, db: Database,
                                                        start_live: StartLive) -> None:
    """`callpop user anna --deactivate` runs in another process: the daemon re-checks the
    accounts of open tabs (push.account_recheck) and closes theirs; a colleague stays."""
    from callpop.push import CLOSE_SESSION_ENDED
    from callpop.settings import PushSettings
    from callpop.store.employees import save_employee

    quick = settings.replace(push=PushSettings(account_recheck=0.05))
    live = await start_live(quick, store=Recorder().hooks())
    await add_employee(db, "anna", ["101"])
    await add_employee(db, "boris", ["102"])
    anna = await (await live.login("anna")).ws_connect("/ws")
    boris = await (await live.login("boris")).ws_connect("/ws")
    for ws in (anna, boris):
        assert (await ws.receive_json())["type"] == "hello"
    async with db.sessions() as session:
        await save_employee(session, "anna", active=False)
        await session.commit()
    while (msg := await anna.receive(timeout=3)).type is aiohttp.WSMsgType.TEXT:
        pass  # the snapshot, then the close
    assert anna.close_code == CLOSE_SESSION_ENDED
    assert msg.extra == "account deactivated"
    await boris.send_json({"type": "ping"})
    while (await boris.receive_json(timeout=3))["type"] != "pong":
        pass
    assert not boris.closed
    await boris.close()
