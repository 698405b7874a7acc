"""The push hub: one websocket per browser tab, one bounded queue and one sender per socket.

``publish`` never awaits a socket. It drops the message into each concerned connection's
queue with ``put_nowait``; a tab whose queue is full (a frozen laptop, a dead network) is
disconnected on the spot with close code 4000, so one slow browser never delays the pop
on everybody else's screen. The tab reconnects and gets a fresh snapshot, so being dropped
loses nothing.

Routing: a manager's connection is indexed by their extensions and employee id; a
supervisor or admin who sent ``subscribe_all`` is in the watchers set and receives every
call message (read-only). The snapshot on (re)connect is taken in the same synchronous step
that registers the connection, so no message can fall between the snapshot and the live
stream (see docs/websocket.md, "Order of messages").

Several instances (docs/websocket.md, "Several instances"): every message has an ``id``;
the pipeline gives a call's messages ids that every instance tracking that PBX computes
alike, anything else gets one unique to this instance. A message whose id was already
delivered here (the same call message produced by this instance and relayed by another)
is dropped, and what is published here is handed to the relay (callpop/fanout.py) for the
other instances.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from aiohttp import web

from callpop.accounts import CurrentUser
from callpop.settings import PushSettings

__all__ = ["CLOSE_SESSION_ENDED", "CLOSE_TOO_SLOW", "DELIVERED_MEMORY", "Connection", "Hub", "Origin", "Relay",
           "Scope", "SnapshotSource"]

log = logging.getLogger(__name__)

Scope = Literal["own", "all"]
# Given the extensions a tab watches (None = every call), the call messages to replay.
SnapshotSource = Callable[[frozenset[str] | None], list[dict[str, Any]]]

Origin = Literal["local", "relay"]

CLOSE_TOO_SLOW = 4000
CLOSE_SESSION_ENDED = 4001
_CLOSE_WAIT = 1.0  # seconds a closing handshake may take before the TCP connection is aborted
# Ids of delivered messages remembered to drop a second copy. The two copies of a call
# message arrive milliseconds apart; a busy PBX makes a few thousand messages a minute,
# so this covers minutes at ~100 bytes an id.
DELIVERED_MEMORY = 8192


class Relay(Protocol):
    """Where the hub hands what is published here for the other instances."""

    def publish(self, message: dict[str, Any], agents: tuple[str, ...], employee_ids: tuple[int, ...],
                supervisors: bool) -> None: ...

    def disconnect(self, employee_id: int, reason: str, older_than: int | None,
                   session: str | None = None) -> None: ...

    def watches(self, extension: str) -> bool: ...

    def presence_changed(self) -> None: ...


@dataclass(eq=False)
class Connection:
    """One browser tab. ``seq`` numbers the messages actually sent to it."""

    ws: web.WebSocketResponse
    user: CurrentUser
    queue: asyncio.Queue[dict[str, Any]]
    transport: asyncio.Transport | None
    scope: Scope = "own"
    seq: int = 0
    sent: int = 0
    closed: bool = False
    connected_at: float = field(default_factory=time.time)
    sender: asyncio.Task[None] | None = None
    session: str = ""  # the login session the tab was opened under (``auth.session_key``)

    @property
    def watched(self) -> frozenset[str] | None:
        """The extensions this tab shows calls for; None means every call."""
        return None if self.scope == "all" else frozenset(self.user.extensions)


class Hub:
    """Fan-out of call messages to browser tabs, each with its own bounded queue."""

    def __init__(self, settings: PushSettings, snapshot: SnapshotSource | None = None,
                 instance: str = "local") -> None:
        self._settings = settings
        self.instance = instance
        self.relay: Relay | None = None
        self._delivered: OrderedDict[str, None] = OrderedDict()
        self._next_id = 0
        self._queue_size = max(2, settings.queue_size)
        self._snapshot: SnapshotSource = snapshot or (lambda _watched: [])
        self._by_extension: dict[str, set[Connection]] = {}
        self._by_employee: dict[int, set[Connection]] = {}
        self._watchers: set[Connection] = set()
        self._all: set[Connection] = set()
        self._closing: set[asyncio.Task[None]] = set()
        self.counters: Counter[str] = Counter()

    def set_snapshot_source(self, source: SnapshotSource) -> None:
        """The pipeline tells the hub how to list the calls in progress."""
        self._snapshot = source

    @property
    def connections(self) -> int:
        return len(self._all)

    def watches(self, extension: str) -> bool:
        """Whether a tab of *extension*'s manager is open, here or on another instance:
        they are at the desk."""
        if self._by_extension.get(extension):
            return True
        return self.relay is not None and self.relay.watches(extension)

    def presence_changed(self) -> None:
        """What this instance announces to the others changed (a PBX link): say it soon."""
        if self.relay is not None:
            self.relay.presence_changed()

    def watched_extensions(self) -> list[str]:
        """The extensions with a tab open here (announced to the other instances)."""
        return list(self._by_extension)

    def stats(self) -> dict[str, Any]:
        return {"connections": len(self._all), "watchers": len(self._watchers), **self.counters}

    # --- connections --------------------------------------------------------------------

    def attach(self, ws: web.WebSocketResponse, user: CurrentUser,
               transport: asyncio.Transport | None = None, session: str = "") -> Connection:
        """Register a tab and queue ``hello`` and its snapshot ahead of any live message."""
        conn = Connection(ws=ws, user=user, queue=asyncio.Queue(self._queue_size), transport=transport,
                          session=session)
        conn.queue.put_nowait({"type": "hello", "user": {
            "id": user.id, "login": user.login, "name": user.name, "role": user.role,
            "extensions": list(user.extensions)}, "scope": conn.scope,
            "dismiss_after": self._settings.dismiss_after, "server_time": time.time()})
        self._index(conn)
        conn.queue.put_nowait(self._snapshot_message(conn))
        conn.sender = asyncio.create_task(self._send_loop(conn), name=f"push-sender-{user.login}")
        self.counters["attached"] += 1
        log.info("websocket attached login=%s extensions=%s connections=%d",
                 user.login, ",".join(user.extensions) or "-", len(self._all))
        return conn

    def detach(self, conn: Connection) -> None:
        """Forget a tab (its handler ended); idempotent."""
        if not conn.closed:
            self.counters["detached"] += 1
        self._unindex(conn)
        conn.closed = True
        if conn.sender is not None and conn.sender is not asyncio.current_task():
            conn.sender.cancel()

    def set_scope(self, conn: Connection, scope: Scope) -> None:
        """Switch a tab between its own calls and every call; a fresh snapshot follows."""
        if conn.closed:
            return
        self._unindex(conn)
        conn.scope = scope
        self._index(conn)
        self._offer(conn, {"type": "subscribed", "scope": scope})
        self._offer(conn, self._snapshot_message(conn))

    def reply(self, conn: Connection, message: dict[str, Any]) -> None:
        """Queue an answer to one tab (pong, error) behind what it is already owed."""
        self._offer(conn, message)

    def _snapshot_message(self, conn: Connection) -> dict[str, Any]:
        try:
            calls = self._snapshot(conn.watched)
        except Exception:
            log.exception("snapshot failed login=%s; the tab gets live events only", conn.user.login)
            calls = []
        return {"type": "snapshot", "scope": conn.scope, "calls": calls}

    def _index(self, conn: Connection) -> None:
        self._all.add(conn)
        self._by_employee.setdefault(conn.user.id, set()).add(conn)
        if conn.scope == "all":
            self._watchers.add(conn)
        for ext in conn.user.extensions:
            bucket = self._by_extension.setdefault(ext, set())
            bucket.add(conn)
            if len(bucket) == 1 and self.relay is not None:
                self.relay.presence_changed()

    def _unindex(self, conn: Connection) -> None:
        self._all.discard(conn)
        self._watchers.discard(conn)
        _discard(self._by_employee, conn.user.id, conn)
        for ext in conn.user.extensions:
            _discard(self._by_extension, ext, conn)
            if ext not in self._by_extension and self.relay is not None:
                self.relay.presence_changed()

    # --- publishing ---------------------------------------------------------------------

    def publish(self, message: dict[str, Any], *, agents: Iterable[str] = (),
                employee_ids: Iterable[int] = (), supervisors: bool = True, origin: Origin = "local") -> int:
        """Queue *message* for the tabs of *agents* (extensions) and *employee_ids*, plus
        every supervisor watching all calls; returns how many tabs it was queued for.

        A message without ``id`` gets one unique to this instance; one whose id was
        delivered here already is dropped (counted in ``duplicates_local`` or
        ``duplicates_relay`` by where the second copy came from). What is published here
        (not what a relay brought) goes to the relay too."""
        mid = message.get("id")
        if mid is None:
            self._next_id += 1
            mid = f"{self.instance}#{self._next_id}"
            message = {**message, "id": mid}
        elif not self._first_time(str(mid)):
            self.counters[f"duplicates_{origin}"] += 1
            return 0
        agents, employee_ids = tuple(agents), tuple(employee_ids)
        targets: set[Connection] = set()
        for ext in agents:
            targets.update(self._by_extension.get(ext, ()))
        for emp in employee_ids:
            targets.update(self._by_employee.get(emp, ()))
        if supervisors:
            targets.update(self._watchers)
        queued = 0
        for conn in targets:
            queued += self._offer(conn, message)
        self.counters["published" if origin == "local" else "relayed_in"] += 1
        if origin == "local" and self.relay is not None:
            self.relay.publish(message, agents, employee_ids, supervisors)
        return queued

    def _first_time(self, mid: str) -> bool:
        """Remember *mid*; False when it was delivered already (within the memory)."""
        if mid in self._delivered:
            return False
        self._delivered[mid] = None
        if len(self._delivered) > DELIVERED_MEMORY:
            self._delivered.popitem(last=False)
        return True

    def tell_all(self, message: dict[str, Any]) -> int:
        """Queue *message* for every tab (the PBX link went down or came back)."""
        return sum(self._offer(conn, message) for conn in list(self._all))

    def resend_snapshots(self) -> int:
        """A fresh snapshot to every tab: after a resynchronisation with the PBX, what each
        tab shows is put right (calls gone are dropped, calls still on shown again)."""
        return sum(self._offer(conn, self._snapshot_message(conn)) for conn in list(self._all))

    def _offer(self, conn: Connection, message: dict[str, Any]) -> int:
        if conn.closed:
            return 0
        try:
            conn.queue.put_nowait(message)
        except asyncio.QueueFull:
            self._drop(conn, "queue_full", f"fell {conn.queue.maxsize} messages behind")
            return 0
        return 1

    async def _send_loop(self, conn: Connection) -> None:
        timeout = self._settings.send_timeout or None
        try:
            while True:
                message = await conn.queue.get()
                conn.seq += 1
                data = json.dumps({**message, "seq": conn.seq}, ensure_ascii=False, separators=(",", ":"))
                try:
                    async with asyncio.timeout(timeout):
                        await conn.ws.send_str(data)
                except TimeoutError:
                    self._drop(conn, "send_timeout", f"a send took over {timeout:g} s")
                    return
                except (ConnectionError, RuntimeError) as exc:
                    # a socket that cannot be written to: close it so the tab reconnects
                    self._drop(conn, "send_failed", f"{type(exc).__name__}: {exc}")
                    return
                conn.sent += 1
        except asyncio.CancelledError:
            pass

    def _drop(self, conn: Connection, reason: str, detail: str) -> None:
        """Disconnect a tab that cannot keep up, without waiting for it."""
        if conn.closed:
            return
        self.detach(conn)
        self.counters[f"dropped_{reason}"] += 1
        log.warning("websocket dropped login=%s reason=%s (%s); it will reconnect and resync",
                    conn.user.login, reason, detail)
        task = asyncio.create_task(self._close(conn, CLOSE_TOO_SLOW, f"too slow: {reason}"))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close(self, conn: Connection, code: int, reason: str) -> None:
        try:
            async with asyncio.timeout(_CLOSE_WAIT):
                await conn.ws.close(code=code, message=reason.encode())
        except (TimeoutError, ConnectionError, RuntimeError):
            pass
        finally:
            if conn.transport is not None and not conn.transport.is_closing():
                conn.transport.abort()

    def tabs_of(self, employee_id: int) -> int:
        """Open tabs of one account (the socket handler caps them)."""
        return len(self._by_employee.get(employee_id, ()))

    def employee_ids(self) -> set[int]:
        """The accounts with at least one open tab."""
        return set(self._by_employee)

    def disconnect_user(self, employee_id: int, reason: str = "logged out", *, older_than: int | None = None,
                        session: str | None = None, origin: Origin = "local", fan_out: bool = True) -> int:
        """Close the tabs of one user: with *session*, only those of that login session
        (logout in one browser: its cookie is gone, so are its tabs; the same employee on
        another device stays); with *older_than*, only the tabs let in under an older session
        generation; with neither, every tab (the account is gone). With *fan_out* (a logout
        here) the other instances close theirs too; each instance's own account re-check
        passes False."""
        if origin == "local" and fan_out and self.relay is not None:
            self.relay.disconnect(employee_id, reason, older_than, session)
        conns = [c for c in self._by_employee.get(employee_id, ())
                 if (older_than is None or c.user.session_generation < older_than)
                 and (session is None or c.session == session)]
        for conn in conns:
            self.detach(conn)
            task = asyncio.create_task(self._close(conn, CLOSE_SESSION_ENDED, reason))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        return len(conns)

    async def close_all(self, code: int = 1001, reason: str = "server shutting down") -> None:
        """Close every tab (application shutdown)."""
        conns = list(self._all)
        for conn in conns:
            self.detach(conn)
        await asyncio.gather(*(self._close(c, code, reason) for c in conns), return_exceptions=True)
        for task in list(self._closing):
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _discard(index: dict[Any, set[Connection]], key: Any, conn: Connection) -> None:
    bucket = index.get(key)
    if bucket is not None:
        bucket.discard(conn)
        if not bucket:
            del index[key]
