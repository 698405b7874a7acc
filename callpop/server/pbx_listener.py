"""The dialplan's questions on a port of their own (``[dialplan] listen``).

On the web port a question pays for aiohttp's whole request path: a task wake-up per
request, the router's hundred routes, the middlewares, the response machinery and the
security headers. That alone is most of what the PBX waits for (bench/README.md,
"Dialplan questions": the web port answers nothing in 0.9 ms at the median and ~2 ms at
the p99 here). Asterisk's ``CURL()`` needs far less: a GET on a kept-alive connection
and a short plain-text answer. This listener gives it just that. aiohttp's own HTTP
parser reads the requests (nothing is parsed by hand); GET and HEAD of the two paths are
answered, in order when pipelined, each as one write; the connection stays open unless
the request asks to close it. Anything else gets its 4xx and the connection closed. The
answers, the address allow-list and the token are the web port's (server/pbx.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

from aiohttp import web
from aiohttp.base_protocol import BaseProtocol
from aiohttp.http import HttpRequestParser, RawRequestMessage

from callpop.server.keys import SETTINGS
from callpop.server.pbx import CALLER_NAME, ROUTE, Answer, answer, answer_at_once, question, sent
from callpop.server.peers import address_allowed

__all__ = ["DialplanListener"]

log = logging.getLogger(__name__)

MAX_LINE = 4096        # bytes of the request line or of one header
MAX_PIPELINED = 16     # requests waiting on one connection; beyond, it is closed
MAX_CONNECTIONS = 512  # open at once (Asterisk opens one per channel thread that asks)
IDLE = 60.0            # seconds a connection may wait for its next complete request
_PATHS = (CALLER_NAME, ROUTE)
_REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed"}


def _bytes(reply: Answer, *, head: bool, close: bool) -> bytes:
    body = reply.body.encode()
    lines = [f"HTTP/1.1 {reply.code} {_REASONS.get(reply.code, 'Error')}",
             "Content-Type: text/plain; charset=utf-8", f"Content-Length: {len(body)}",
             f"X-Callpop-Status: {reply.status}", "Cache-Control: no-store", "X-Content-Type-Options: nosniff"]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (b"" if head else body)


class _Connection(asyncio.Protocol):
    """One kept-alive connection from the PBX."""

    def __init__(self, listener: DialplanListener) -> None:
        self._listener = listener
        self._app = listener.app
        self._transport: asyncio.Transport | None = None
        self._peer: str | None = None
        self._waiting: deque[RawRequestMessage] = deque()
        self._later: asyncio.Task[None] | None = None
        self._closing = False
        self._idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self._peer = str(peer[0]) if peer else None
        loop = asyncio.get_running_loop()
        self._parser = HttpRequestParser(BaseProtocol(loop), loop, 2**16, max_line_size=MAX_LINE,
                                         max_field_size=MAX_LINE)
        allow = self._app[SETTINGS].dialplan.allow
        if self._listener.open_connections >= MAX_CONNECTIONS or (allow and not address_allowed(self._peer, allow)):
            self._listener.refused += 1
            transport.abort()  # not the PBX, or too many: no answer at all
            return
        self._listener.open_connections += 1
        self._listener.connections.add(self)
        self._idle = loop.call_later(IDLE, self.close)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._listener.open_connections -= 1
            self._listener.connections.discard(self)
            self._idle = None
        self._closing = True
        if self._later is not None:
            self._later.cancel()

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        try:
            messages, _upgraded, _tail = self._parser.feed_data(data)
        except Exception:  # aiohttp's BadHttpMessage family: not a request we can read
            self._refuse(400, "bad-request")
            return
        for message, _payload in messages:
            self._waiting.append(message)
        if len(self._waiting) > MAX_PIPELINED:
            self.close()
            return
        if messages and self._idle is not None:
            self._idle.cancel()
            self._idle = asyncio.get_running_loop().call_later(IDLE, self.close)
        self._serve()

    def _serve(self) -> None:
        """Answer the waiting requests in order; one that needs the database is answered
        by a task, and the ones behind it wait for it."""
        while self._waiting and self._later is None and not self._closing:
            message = self._waiting.popleft()
            refusal = self._refusal(message)
            if refusal is not None:
                self._refuse(*refusal)
                return
            query = message.url.query
            with question(self._app):
                reply = answer_at_once(self._app, message.url.path, query, self._peer)
                if reply is not None:
                    self._send(message, reply)
                    sent(self._app, query, reply)
                    continue
            self._later = asyncio.ensure_future(self._answer_later(message))

    async def _answer_later(self, message: RawRequestMessage) -> None:
        query = message.url.query
        with question(self._app):
            reply = await answer(self._app, message.url.path, query, self._peer)
            if not self._closing:
                self._send(message, reply)
                sent(self._app, query, reply)
        self._later = None
        self._serve()

    @staticmethod
    def _refusal(message: RawRequestMessage) -> tuple[int, str] | None:
        if message.method not in ("GET", "HEAD"):
            return 405, "bad-request"
        if message.chunked or message.headers.get("Content-Length", "0") not in ("", "0"):
            return 400, "bad-request"  # a question has no body
        if message.url.path not in _PATHS:
            return 404, "bad-request"
        return None

    def _send(self, message: RawRequestMessage, reply: Answer) -> None:
        assert self._transport is not None
        close = message.should_close
        self._transport.write(_bytes(reply, head=message.method == "HEAD", close=close))
        self._listener.answered += 1
        if close:
            self.close()

    def _refuse(self, code: int, status: str) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(_bytes(Answer("", status, code), head=False, close=True))
        self._listener.bad_requests += 1
        self.close()

    def close(self) -> None:
        self._closing = True
        self._waiting.clear()
        if self._transport is not None:
            self._transport.close()


class DialplanListener:
    """The port: started and stopped with the app (app.py)."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.server: asyncio.Server | None = None
        self.port = 0
        self.open_connections = 0
        self.answered = 0
        self.bad_requests = 0
        self.refused = 0  # connections from outside ``allow``, or past MAX_CONNECTIONS
        self.connections: set[_Connection] = set()

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _Connection(self), host, port)
        sockets: Any = self.server.sockets
        self.port = int(sockets[0].getsockname()[1])
        log.info("dialplan: answering the PBX's questions on %s:%d as well as on the web port", host, self.port)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            for connection in list(self.connections):
                connection.close()
            await self.server.wait_closed()
