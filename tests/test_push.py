"""The push hub: a slow or dead tab is dropped and never delays anybody else."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import time
from typing import Any

from callpop.accounts import CurrentUser
from callpop.push import CLOSE_TOO_SLOW, Hub
from callpop.server.keys import HUB
from callpop.settings import PushSettings, Settings
from callpop.store.db import Database
from tests.support.live import Recorder, StartLive, add_employee


def user(login: str, *exts: str, role: str = "manager", uid: int = 1) -> CurrentUser:
    return CurrentUser(id=uid, login=login, name=login, role=role, extensions=exts, language="en")


class FakeWs:
    """A websocket whose sends can be made to hang, like a browser on a dead network."""

    def __init__(self, hang: bool = False) -> None:
        self.hang = hang
        self.sent: list[str] = []
        self.closed_with: int | None = None

    async def send_str(self, data: str) -> None:
        if self.hang:
            await asyncio.Event().wait()
        self.sent.append(data)

    async def close(self, *, code: int = 1000, message: bytes = b"") -> bool:
        self.closed_with = code
        return True


async def test_hung_send_is_dropped_after_send_timeout_others_go_on() -> None:
    hub = Hub(PushSettings(queue_size=50, send_timeout=0.2))
    stuck, fine = FakeWs(hang=True), FakeWs()
    hub.attach(stuck, user("a", "101"))  # type: ignore[arg-type]
    hub.attach(fine, user("b", "101", uid=2))  # type: ignore[arg-type]
    for i in range(5):
        assert hub.publish({"type": "call.ringing", "n": i}, agents=("101",)) >= 1
    await asyncio.sleep(0.05)
    assert len(fine.sent) == 2 + 5  # hello, snapshot, 5 pops: not held up by the stuck one
    await asyncio.sleep(0.4)
    assert stuck.closed_with == CLOSE_TOO_SLOW
    assert hub.counters["dropped_send_timeout"] == 1
    assert hub.connections == 1
    assert hub.publish({"type": "x"}, agents=("101",)) == 1


async def test_full_queue_drops_at_once_without_awaiting() -> None:
    hub = Hub(PushSettings(queue_size=4, send_timeout=30))
    stuck = FakeWs(hang=True)
    hub.attach(stuck, user("a", "101"))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    # publish is a plain function: it cannot await a stuck socket, it can only drop
    delivered = [hub.publish({"type": "call.ringing", "n": i}, agents=("101",)) for i in range(10)]
    assert not asyncio.iscoroutinefunction(hub.publish)
    assert 0 in delivered and delivered[-1] == 0
    assert hub.counters["dropped_queue_full"] == 1
    await asyncio.sleep(0.05)
    assert stuck.closed_with == CLOSE_TOO_SLOW


async def test_routing_by_extension_employee_and_watchers() -> None:
    hub = Hub(PushSettings())
    anna, boris, sveta = FakeWs(), FakeWs(), FakeWs()
    hub.attach(anna, user("anna", "101", uid=1))  # type: ignore[arg-type]
    hub.attach(boris, user("boris", "102", uid=2))  # type: ignore[arg-type]
    conn = hub.attach(sveta, user("sveta", "150", role="supervisor", uid=3))  # type: ignore[arg-type]
    hub.set_scope(conn, "all")
    assert hub.publish({"type": "call.ringing"}, agents=("101",)) == 2  # anna + watching sveta
    assert hub.publish({"type": "kpi_changed"}, employee_ids=(2,), supervisors=False) == 1
    await asyncio.sleep(0.01)
    kinds = [[m.split('"type":"')[1].split('"')[0] for m in ws.sent] for ws in (anna, boris, sveta)]
    assert kinds[0] == ["hello", "snapshot", "call.ringing"]
    assert kinds[1] == ["hello", "snapshot", "kpi_changed"]
    assert kinds[2] == ["hello", "snapshot", "subscribed", "snapshot", "call.ringing"]


async def _raw_ws_that_never_reads(host: str, port: int, cookie: str) -> socket.socket:
    """A websocket client that completes the handshake and then never reads a byte."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (host, port))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nCookie: {cookie}\r\n\r\n")
    await loop.sock_sendall(sock, request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += await loop.sock_recv(sock, 1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


async def test_slow_browser_is_dropped_fast_one_gets_everything_in_time(settings: Settings, db: Database,
                                                                        start_live: StartLive) -> None:
    settings = settings.replace(push=PushSettings(queue_size=8, send_timeout=5.0))
    live = await start_live(settings, store=Recorder().hooks())
    slow: socket.socket | None = None
    try:
        await add_employee(db, "anna", ["101"])
        fast = await live.tab("anna")
        await fast.start()
        client = live.sessions["anna"]
        cookie = "; ".join(f"{m.key}={m.value}" for m in client.session.cookie_jar)
        slow = await _raw_ws_that_never_reads(live.server.host, live.server.port, cookie)
        hub = live.app[HUB]
        await asyncio.sleep(0.05)
        assert hub.connections == 2
        pad = "я" * 30_000
        latencies: list[float] = []

        async def reader() -> None:
            for _ in range(150):
                msg: dict[str, Any] = await fast.until("call.ringing", wait=5)
                latencies.append(time.time() - msg["sent"])

        task = asyncio.create_task(reader())
        for i in range(150):
            hub.publish({"type": "call.ringing", "n": i, "sent": time.time(), "pad": pad}, agents=("101",))
            await asyncio.sleep(0.003)
        await asyncio.wait_for(task, 10)
        assert len(latencies) == 150
        assert max(latencies) < 0.5, max(latencies)
        assert hub.counters["dropped_queue_full"] + hub.counters["dropped_send_timeout"] == 1
        assert hub.connections == 1
    finally:
        if slow is not None:
            slow.close()
