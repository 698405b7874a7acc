"""The dialplan's own port (``[dialplan] listen``) as Asterisk's CURL() uses it: raw HTTP/1.1
over real TCP, kept alive and pipelined, against a real app on both databases. Its
answers are the web port's; anything but the two questions is refused and the
connection closed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from callpop.server import pbx as pbx_answers
from callpop.server.keys import EXTRA
from callpop.settings import DialplanSettings, Settings
from callpop.store.db import Database
from tests.support.live import Live, Recorder, StartLive, add_client, add_employee

NUMBER = "+79161234567"
Reply = tuple[int, dict[str, str], str]


def get(path: str, *, method: str = "GET", extra: str = "") -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: asterisk-libcurl-agent/1.0\r\n"
            f"Accept: */*\r\n{extra}\r\n").encode()


class Pbx:
    """One connection as func_curl keeps it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def reply(self, *, head: bool = False) -> Reply:
        lines = (await self.reader.readuntil(b"\r\n\r\n")).decode().split("\r\n")
        code = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        length = 0 if head else int(headers["content-length"])
        return code, headers, (await self.reader.readexactly(length)).decode()

    async def ask(self, path: str) -> Reply:
        await self.send(get(path))
        return await self.reply()

    async def closed(self) -> bool:
        return await self.reader.read() == b""

    def close(self) -> None:
        self.writer.close()


async def connect(live: Live) -> Pbx:
    return Pbx(*await asyncio.open_connection("127.0.0.1", live.app[EXTRA]["dialplan_listener"].port))


def listening(settings: Settings, **dialplan: object) -> Settings:
    return settings.replace(dialplan=DialplanSettings(**{"timeout": 5.0, "listen": "127.0.0.1:0",  # type: ignore[arg-type]
                                                         **dialplan}))


@pytest.fixture
async def live(db_settings: Settings, start_live: StartLive) -> AsyncIterator[Live]:
    started = await start_live(listening(db_settings))
    yield started
    await started.close()


async def web(live: Live, path: str) -> tuple[int, str, str]:
    resp = await (await live.client()).get(path)
    return resp.status, await resp.text(), resp.headers.get("X-Callpop-Status", "")


async def test_the_answers_are_the_web_ports_on_one_kept_alive_connection(live: Live, db: Database) -> None:
    anna = await add_employee(db, "anna", ["101"])
    await add_client(db, 'Иван "Петров"', NUMBER, responsible_id=anna)
    await (await live.tab("anna")).start()
    pbx = await connect(live)
    try:
        for path in ("/pbx/caller-name?number=%2B79161234567", "/pbx/route?number=89161234567",
                     "/pbx/caller-name?number=%2B79990000000", "/pbx/route?number=", "/pbx/caller-name?number=101"):
            code, headers, body = await pbx.ask(path)
            assert (code, body, headers["x-callpop-status"]) == await web(live, path), path
            assert headers["content-type"] == "text/plain; charset=utf-8"
            assert headers["cache-control"] == "no-store"
        code, _headers, body = await pbx.ask("/pbx/route?number=%2B79161234567")
        assert (code, body) == (200, "dial=PJSIP/101&regular=1")
    finally:
        pbx.close()


async def test_pipelined_questions_are_answered_in_order_even_when_one_reads_the_database(
        db_settings: Settings, db: Database, start_live: StartLive) -> None:
    """With the directory in memory off and the cache off, every question reads the
    database (a task); the question behind it waits for it."""
    await add_client(db, "Иван", NUMBER)
    await add_client(db, "Пётр", "+79035550000")
    live = await start_live(listening(db_settings, memory_index=False, cache_seconds=0.0))
    pbx = await connect(live)
    try:
        await pbx.send(get("/pbx/caller-name?number=%2B79161234567") + get("/pbx/caller-name?number=%2B79035550000")
                       + get("/pbx/caller-name?number=%2B79161234567", method="HEAD"))
        assert [(await pbx.reply())[2], (await pbx.reply())[2]] == ["Иван", "Пётр"]
        code, headers, body = await pbx.reply(head=True)
        assert (code, headers["content-length"], body) == (200, str(len("Иван".encode())), "")
        await pbx.send(get("/pbx/caller-name?number=%2B79035550000", extra="Connection: close\r\n"))
        code, headers, body = await pbx.reply()
        assert (code, body, headers["connection"]) == (200, "Пётр", "close")
        assert await pbx.closed()
    finally:
        pbx.close()
        await live.close()


@pytest.mark.parametrize(("request_bytes", "code"), [
    (b"GARBAGE\r\n\r\n", 400),
    (get("/pbx/caller-name?number=1", method="POST", extra="Content-Length: 0\r\n"), 405),
    (get("/api/me"), 404),
    (get("/pbx/caller-name?number=1", extra="Content-Length: 3\r\n") + b"abc", 400),
    (get("/pbx/caller-name?number=1", extra="X-Long: " + "a" * 5000 + "\r\n"), 400),
])
async def test_anything_but_a_question_is_refused_and_the_connection_closed(
        live: Live, request_bytes: bytes, code: int) -> None:
    pbx = await connect(live)
    try:
        await pbx.send(request_bytes)
        got, headers, body = await pbx.reply()
        assert (got, body, headers["connection"]) == (code, "", "close")
        assert await pbx.closed()
    finally:
        pbx.close()
    pbx = await connect(live)  # the port itself goes on answering
    try:
        assert (await pbx.ask("/pbx/caller-name?number=%2B79990000000"))[0] == 200
    finally:
        pbx.close()


async def test_the_token_and_the_allow_list_hold_on_this_port(db_settings: Settings, db: Database,
                                                               start_live: StartLive) -> None:
    await add_client(db, "Иван", NUMBER)
    live = await start_live(listening(db_settings, token="s3cret"))
    pbx = await connect(live)
    try:
        code, headers, body = await pbx.ask("/pbx/caller-name?number=%2B79161234567&token=wrong")
        assert (code, body, headers["x-callpop-status"]) == (403, "", "forbidden")
        assert (await pbx.ask("/pbx/caller-name?number=%2B79161234567&token=s3cret"))[2] == "Иван"
    finally:
        pbx.close()
        await live.close()
    live = await start_live(listening(db_settings, allow=("10.9.8.7",)))
    pbx = await connect(live)
    try:
        await pbx.send(get("/pbx/caller-name?number=%2B79161234567"))
        assert await pbx.closed()  # not the PBX: not a byte
        assert live.app[EXTRA]["dialplan_listener"].refused == 1
    finally:
        pbx.close()
        await live.close()


async def test_a_question_on_this_port_warms_the_pop_as_on_the_web_port(db_settings: Settings, db: Database,
                                                                         start_live: StartLive) -> None:
    rec = Recorder()
    await add_client(db, "Иван", NUMBER)
    live = await start_live(listening(db_settings), store=rec.hooks())
    pbx = await connect(live)
    try:
        await pbx.ask("/pbx/caller-name?number=%2B79161234567&call=1700000000.1")
        await pbx.ask("/pbx/route?number=%2B79161234567&call=1700000000.1")
        await rec.started(1)  # the route was the last question: the card's lookup starts
        assert rec.lookups == [NUMBER]
    finally:
        pbx.close()
        await live.close()


async def test_a_failure_while_answering_answers_empty_and_the_connection_goes_on(
        live: Live, db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail open: a bug in composing the route is an empty answer, as on the web port."""
    anna = await add_employee(db, "anna", ["101"])
    await add_client(db, "Иван", NUMBER, responsible_id=anna)

    def broken(_app: object) -> set[str]:
        raise RuntimeError("a bug")

    monkeypatch.setattr(pbx_answers, "_talking", broken)
    pbx = await connect(live)
    try:
        code, headers, body = await pbx.ask("/pbx/route?number=%2B79161234567")
        assert (code, body, headers["x-callpop-status"]) == (200, "", "error")
        assert (await pbx.ask("/pbx/caller-name?number=%2B79161234567"))[2] == "Иван"
    finally:
        pbx.close()
