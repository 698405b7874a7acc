"""Writes another process made to the directory, heard of here: stale answers forgotten.

The dialplan's remembered answers (store/caller_cache.py) are forgotten at once when this
process writes to clients, numbers, employees or extensions. ``callpop import``,
``callpop user``, a second instance or a script write behind its back; the database tells
of those (triggers of the ``directory_changes`` migration, whoever the writer), and this watch passes it on:

* **PostgreSQL**: one connection of its own LISTENs on ``callpop_directory``. Each
  notification names what one written row touches (``c12``: client 12, ``e3``: employee 3,
  ``n+79161234567`` / ``t9161234567``: a number, as E.164 / its last 10 digits) or is
  ``*`` (a transaction wrote more rows than the database names one by one: a bulk
  import). The answers of a named client, of a named manager's clients, and for a named
  number are dropped; ``*`` forgets all. A notification arrives when its transaction has
  committed, so the next question reads the new data. What is written while the
  connection is down is not told: on every (re)connection everything is forgotten, and
  meanwhile ``[dialplan] cache_seconds`` bounds an answer's age, as it always does.
* **SQLite** (no NOTIFY): the triggers bump one counter row, ``directory_version``; a
  background task reads it every ``[database] sqlite_change_check`` seconds on a
  connection of its own, never on the answer's path, and forgets every answer when it
  moved. An outside write is seen within one interval. The read runs on a thread of its
  own (about 60 us of CPU with the hand-over) unless ``sqlite_reads_in_thread`` is off,
  then on the loop (about 8 us, never waiting for a lock: a busy file skips one check);
  bench/README.md "Outside writes on SQLite".

The answer path itself is unchanged: no question waits for this watch or asks the
database anything more.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from callpop.store.caller import CallerMatch
from callpop.store.caller_cache import forget_everything, forget_where
from callpop.store.db import Database, reads_in_thread

__all__ = ["CHANNEL", "Change", "DirectoryWatch", "parse"]

log = logging.getLogger(__name__)

CHANNEL = "callpop_directory"
KEEPALIVE = 10.0  # seconds of silence after which the listening connection is checked
RECONNECT_MIN, RECONNECT_MAX = 0.5, 15.0
_MAX_IDS = 1 << 62

State = Literal["starting", "listening", "polling", "lost", "off", "stopped"]


@dataclass(frozen=True, slots=True)
class Change:
    """What other processes changed: everything, or these clients, managers and numbers."""

    everything: bool = False
    clients: frozenset[int] = frozenset()
    employees: frozenset[int] = frozenset()
    numbers: frozenset[str] = frozenset()  # last 10 digits (or fewer: the whole number)

    def __or__(self, other: Change) -> Change:
        return Change(self.everything or other.everything, self.clients | other.clients,
                      self.employees | other.employees, self.numbers | other.numbers)

    def stale(self, number: str, answer: Any) -> bool:
        """Could the remembered *answer* for *number* have changed?"""
        if _digits(number) in self.numbers:
            return True
        if not isinstance(answer, tuple) or not all(isinstance(m, CallerMatch) for m in answer):
            return True  # an answer this watch cannot read: better asked again
        return any(m.client_id in self.clients or m.responsible_id in self.employees for m in answer)


def _digits(number: str) -> str:
    return "".join(ch for ch in number if ch.isdigit())[-10:]


def parse(payload: str) -> Change | None:
    """The change one notification names; None when it is not what the triggers send
    (anyone who may connect to the database may NOTIFY on the channel)."""
    if payload == "*":
        return Change(everything=True)
    clients: set[int] = set()
    employees: set[int] = set()
    numbers: set[str] = set()
    for word in payload.split():
        kind, value = word[:1], word[1:]
        if kind in ("c", "e"):
            if not value.isdigit() or int(value) >= _MAX_IDS:
                return None
            (clients if kind == "c" else employees).add(int(value))
        elif kind in ("n", "t") and _digits(value):
            numbers.add(_digits(value))
        else:
            return None
    if not (clients or employees or numbers):
        return None
    return Change(clients=frozenset(clients), employees=frozenset(employees), numbers=frozenset(numbers))


class _Lost(Exception):
    """The listening connection was terminated."""


class DirectoryWatch:
    """Hears of other processes' directory writes and forgets the answers they change."""

    def __init__(self, db: Database, *, check_every: float = 0.2, keepalive: float = KEEPALIVE) -> None:
        self._db = db
        self._check_every = check_every
        self._keepalive = keepalive
        self.state: State = "starting"
        self.heard = 0          # notifications (PostgreSQL) or moves of the counter (SQLite) taken in
        self.ignored = 0        # notifications on the channel that were not the triggers'
        self.everything = 0     # times every answer was forgotten
        self.forgotten = 0      # answers dropped for a named change
        self.reconnects = 0
        self._pending: Change | None = None
        self._task: asyncio.Task[None] | None = None

    def current(self) -> bool:
        """Whether other processes' writes are being heard now (what is remembered may be
        trusted until they say otherwise)."""
        return self.state in ("listening", "polling")

    def start(self) -> None:
        if self._db.dialect == "postgresql":
            self._task = asyncio.create_task(self._listen(), name="directory-watch")
            return
        path = self._db.engine.url.database or ""
        if path in ("", ":memory:") or path.startswith("file:") or self._check_every <= 0:
            self.state = "off"  # nobody else can open this database, or checking is turned off
            log.info("directory watch: off (%s)", "checking turned off" if self._check_every <= 0
                     else "in-memory database")
            return
        self._task = asyncio.create_task(self._poll(path), name="directory-watch")

    async def stop(self) -> None:
        self.state = "stopped"
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    # --- taking changes in ------------------------------------------------------------

    def _forget_everything(self) -> None:
        self.everything += 1
        forget_everything(self._db.engine)

    def take(self, payload: str) -> None:
        """One notification: remembered, and applied with the others of the same moment
        (a transaction's notifications arrive together) in one pass over the caches."""
        change = parse(payload)
        if change is None:
            self.ignored += 1
            log.warning("directory watch: a notification on %s is not one callpop's triggers send (%d bytes); "
                        "ignored", CHANNEL, len(payload))
            return
        self.heard += 1
        if self._pending is None:
            self._pending = change
            asyncio.get_running_loop().call_soon(self._apply)
        else:
            self._pending = self._pending | change

    def _apply(self) -> None:
        change, self._pending = self._pending, None
        if change is None:
            return
        if change.everything:
            self._forget_everything()
            log.info("directory watch: another process changed the directory in bulk; every remembered "
                     "answer forgotten")
            return
        dropped = forget_where(self._db.engine, change.stale)
        self.forgotten += dropped
        log.debug("directory watch: %d clients, %d employees, %d numbers changed elsewhere; %d answers "
                  "forgotten", len(change.clients), len(change.employees), len(change.numbers), dropped)

    # --- PostgreSQL ---------------------------------------------------------------------

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self.take(payload)

    async def _listen(self) -> None:
        import asyncpg  # type: ignore[import-untyped]

        _args, connect_args = self._db.engine.dialect.create_connect_args(self._db.engine.url)
        delay = RECONNECT_MIN
        while True:
            try:
                conn = await asyncpg.connect(**connect_args, server_settings={"application_name": "callpop-directory"})
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                self.state = "lost"
                log.warning("directory watch: cannot connect to PostgreSQL to LISTEN (%s: %s); retrying in "
                            "%.1f s; meanwhile outside writes are seen after [dialplan] cache_seconds",
                            type(exc).__name__, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX)
                continue
            lost = asyncio.Event()
            try:
                conn.add_termination_listener(lambda _c, ended=lost: ended.set())
                await conn.add_listener(CHANNEL, self._on_notify)
                # what was written before this LISTEN took effect was never told: start afresh
                self._forget_everything()
                if self.state == "lost":
                    self.reconnects += 1
                    log.warning("directory watch: listening on %s again; every remembered answer forgotten "
                                "(writes made meanwhile were not told)", CHANNEL)
                else:
                    log.info("directory watch: listening on %s", CHANNEL)
                self.state = "listening"
                delay = RECONNECT_MIN
                await self._keep(conn, lost)
            except (_Lost, OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                self.state = "lost"
                log.warning("directory watch: LISTEN connection lost (%s); reconnecting in %.1f s; meanwhile "
                            "outside writes are seen after [dialplan] cache_seconds",
                            "terminated" if isinstance(exc, _Lost) else f"{type(exc).__name__}: {exc}", delay)
            finally:
                conn.terminate()
            await asyncio.sleep(delay)

    async def _keep(self, conn: Any, lost: asyncio.Event) -> None:
        """Until the connection dies: a backend that stops answering is noticed within
        two keep-alive periods."""
        while True:
            try:
                async with asyncio.timeout(self._keepalive):
                    await lost.wait()
                raise _Lost()
            except TimeoutError:
                async with asyncio.timeout(self._keepalive):
                    await conn.fetchval("SELECT 1")

    # --- SQLite -------------------------------------------------------------------------

    async def _poll(self, path: str) -> None:
        loop = asyncio.get_running_loop()
        thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="callpop-directory")
        in_thread = reads_in_thread(self._db.engine)
        reader = _VersionReader(path, busy_ms=1000 if in_thread else 0)
        seen: int | None = None
        failing = False
        self.state = "polling"
        log.info("directory watch: checking %s for other processes' writes every %g s", path, self._check_every)
        try:
            while True:
                try:
                    version = (await loop.run_in_executor(thread, reader.version) if in_thread
                               else reader.version())
                except sqlite3.Error as exc:
                    if not failing:
                        log.warning("directory watch: cannot read directory_version (%s); outside writes are "
                                    "seen after [dialplan] cache_seconds until it can", exc)
                    failing = True
                    self.state = "lost"
                else:
                    if failing:
                        log.info("directory watch: directory_version readable again")
                        failing = False
                        self.state = "polling"
                        seen = None
                    if version != seen:
                        if seen is not None:
                            self.heard += 1
                        self._forget_everything()  # the first read too: start afresh
                        seen = version
                await asyncio.sleep(self._check_every)
        finally:
            await loop.run_in_executor(thread, reader.close)
            thread.shutdown(wait=False)


class _VersionReader:
    """The counter row, read on one plain sqlite3 connection of its own."""

    def __init__(self, path: str, busy_ms: int) -> None:
        self._path = path
        self._busy_ms = busy_ms
        self._conn: sqlite3.Connection | None = None

    def version(self) -> int:
        if self._conn is None:
            conn = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA query_only = ON")
            conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
            self._conn = conn
        try:
            row = self._conn.execute("SELECT version FROM directory_version WHERE id = 1").fetchone()
        except sqlite3.Error:
            self.close()
            raise
        return int(row[0]) if row is not None else -1

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
