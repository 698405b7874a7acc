"""Helpers for the AMI tests: a capture-replaying AMI server, a settable clock, a sink.

``CaptureServer`` answers the handshake like Asterisk (banner, Challenge, Login,
CoreShowChannels with an empty listing, Ping) and then writes a recorded ``.ami`` file to
the client in chunks of random size, some cut inside a UTF-8 character. Before each chunk
it sets the client's clock to the capture's clock for the messages that chunk completes
and waits until the client has read it, so talk times come out as in ``callpop replay``
without sleeping on the capture's timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from callpop.settings import AmiSettings, Settings
from callpop.telephony.amitext import AmiMessage, iter_messages
from callpop.telephony.connection import AmiConnection
from callpop.telephony.events import Arrival, CallEvent
from callpop.telephony.protocol import AmiFramer, parse_message
from callpop.telephony.tracker import CallTracker, TrackerConfig

DONE = b"Event: UserEvent\r\nPrivilege: user,all\r\nUserEvent: replay-done\r\n\r\n"


class Clock:
    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now


class Collector:
    """The connection's sink: keeps every call event."""

    def __init__(self) -> None:
        self.events: list[CallEvent] = []
        self.changed = asyncio.Event()

    async def __call__(self, events: Sequence[CallEvent]) -> None:
        self.events.extend(events)
        self.changed.set()

    def dicts(self) -> list[dict[str, Any]]:
        return [e.as_dict() for e in self.events]

    async def wait_for(self, pred: Callable[[list[CallEvent]], bool], within: float = 5.0) -> None:
        async def loop() -> None:
            while not pred(self.events):
                self.changed.clear()
                await self.changed.wait()
        await asyncio.wait_for(loop(), within)


class DoneWatch:
    """Wraps the real tracker; notices the end-of-replay marker."""

    def __init__(self, tracker: CallTracker) -> None:
        self.tracker = tracker
        self.done = asyncio.Event()

    def feed(self, message: AmiMessage, now: float | None = None) -> list[CallEvent]:
        if message.get("UserEvent") == "replay-done":
            self.done.set()
        return self.tracker.feed(message, now)

    @property
    def arrivals(self) -> list[Arrival]:
        return self.tracker.arrivals


def tracker(settings: Settings | None = None) -> CallTracker:
    return CallTracker(TrackerConfig.from_settings(settings or Settings()))


def ami_settings(port: int, **kw: Any) -> AmiSettings:
    base: dict[str, Any] = {"host": "127.0.0.1", "port": port, "username": "callpop", "secret": "s3cret",
                            "ping_interval": 5.0, "pong_timeout": 2.0, "reconnect_min": 0.05,
                            "reconnect_max": 0.2}
    base.update(kw)
    return AmiSettings(**base)


async def wait_until(pred: Callable[[], bool], within: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + within
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def running(conn: AmiConnection, *, login: bool = True) -> AsyncIterator[asyncio.Task[None]]:
    """Run the connection for the block; always stop it, even when the test fails."""
    task = asyncio.create_task(conn.run())
    try:
        if login:
            await wait_until(lambda: conn.state == "logged_in", what="login")
        yield task
    finally:
        await asyncio.wait_for(conn.stop(), 5)
        await asyncio.wait_for(task, 5)


def chunk_plan(body: bytes, ends: Sequence[int], clocks: Sequence[float | None], rng: random.Random
               ) -> list[tuple[bytes, float | None]]:
    """Cut *body* at random sizes, inside some UTF-8 characters and wherever the clock
    changes; each chunk carries the clock of the messages it completes."""
    cuts = {0, len(body)}
    pos = 0
    while pos < len(body):
        pos += rng.randint(1, 3000)
        cuts.add(min(pos, len(body)))
    for i in range(1, len(body)):
        if 0x80 <= body[i] < 0xC0 and rng.random() < 0.3:
            cuts.add(i)  # a continuation byte: the cut splits a character
    for k in range(1, len(ends)):
        if clocks[k] != clocks[k - 1]:
            cuts.add(ends[k - 1])
    ordered = sorted(cuts)
    plan: list[tuple[bytes, float | None]] = []
    k = 0
    for a, b in itertools.pairwise(ordered):
        while k < len(ends) - 1 and ends[k] <= a:
            k += 1
        plan.append((body[a:b], clocks[min(k, len(clocks) - 1)]))
    return plan


class CaptureServer:
    """Plays one capture (``NAME.ami`` with the clock of ``NAME.jsonl``) to one client."""

    def __init__(self, ami_path: Path, clock: Clock, *, seed: int = 1) -> None:
        self.clock = clock
        data = ami_path.read_bytes()
        _banner, _, body = data.partition(b"\r\n")
        self.body = body
        framer = AmiFramer()
        blocks = framer.feed(body)
        ends, pos = [], 0
        for block in blocks:
            pos = body.index(block, pos) + len(block) + 4
            ends.append(pos)
        records = list(iter_messages(ami_path.with_suffix(".jsonl").read_bytes()))
        if len(records) != len(blocks):
            raise AssertionError(f"{ami_path.name}: {len(blocks)} messages, {len(records)} clocks")
        clocks = [c for _, c in records]
        self.plan = chunk_plan(body, ends, clocks, random.Random(seed))
        self.start_clock = clocks[0]
        self.written = 0
        self.conn: AmiConnection | None = None
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    def _write(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        self.written += len(data)

    async def _synced(self) -> None:
        """Wait (without sleeping) until the client has read everything written so far."""
        assert self.conn is not None
        stats = self.conn.stats
        for _ in range(100_000):
            if stats.bytes_received >= self.written:
                return
            await asyncio.sleep(0)
        raise AssertionError(f"the client read {stats.bytes_received} of {self.written} bytes")

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.start_clock is not None:
            self.clock.now = self.start_clock
        self._write(writer, b"Asterisk Call Manager/11.0.0\r\n")
        framer = AmiFramer()
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                for block in framer.feed(data):
                    msg = parse_message(block.decode())
                    aid = msg.get("ActionID", "")
                    action = str(msg.get("Action", "")).lower()
                    if action == "challenge":
                        self._write(writer, f"Response: Success\r\nActionID: {aid}\r\nChallenge: 4711\r\n\r\n".encode())
                    elif action == "login":
                        self._write(writer, f"Response: Success\r\nActionID: {aid}\r\n"
                                            "Message: Authentication accepted\r\n\r\n".encode())
                    elif action == "coreshowchannels":
                        self._write(writer, (f"Response: Success\r\nActionID: {aid}\r\nEventList: start\r\n"
                                             "Message: Channels will follow\r\n\r\n"
                                             f"Event: CoreShowChannelsComplete\r\nActionID: {aid}\r\n"
                                             "EventList: Complete\r\nListItems: 0\r\n\r\n").encode())
                        await self._play(writer)
                    elif action == "ping":
                        self._write(writer, f"Response: Success\r\nActionID: {aid}\r\nPing: Pong\r\n\r\n".encode())
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            writer.close()

    async def _play(self, writer: asyncio.StreamWriter) -> None:
        await writer.drain()
        await self._synced()
        for chunk, clock in self.plan:
            if clock is not None:
                self.clock.now = clock
            self._write(writer, chunk)
            await writer.drain()
            await self._synced()
        self._write(writer, DONE)
        await writer.drain()


async def play(server: CaptureServer, clock: Clock, watch: Any,
               sink: Callable[[Sequence[CallEvent]], Awaitable[None]], *, within: float = 10.0,
               prefetch: Callable[[Sequence[Arrival]], None] | None = None, **ami: Any) -> AmiConnection:
    """Serve *server*'s capture to a real AmiConnection (panoramisk underneath) until *watch*
    — a tracker with a ``done`` event — has seen it end; returns the connection for its stats."""
    port = await server.start()
    conn = AmiConnection(ami_settings(port, **{"ping_interval": 60.0, **ami}), watch, sink, loop_clock=clock,
                         prefetch=prefetch)
    server.conn = conn
    try:
        async with running(conn, login=False):
            await asyncio.wait_for(watch.done.wait(), within)
    finally:
        await server.stop()
    return conn

