"""The whole directory's numbers in memory, for the dialplan's questions.

The PBX asks ``/pbx/caller-name`` once per call, so the answer cache (caller_cache.py) never
helps the first question: it costs a statement (SQLite: a hand-over to a reader thread;
PostgreSQL: a round trip to another process), 1-2 ms on a busy machine. This is a
snapshot of what that statement reads, for every client, held in flat arrays (about
115 bytes per client: 1M clients ~115 MB, ~150 MB more for the moment a new copy
arrives): a question is two binary searches, a few microseconds on the event loop. The copy is
read by a process of its own (store/caller_index_read.py), so reading it never holds
this process's GIL.

A stale answer is worse than a slow one, so the snapshot is only ever used while nothing
can have changed since it was read: it carries the write generation it was read under
(caller_cache.write_generation, moved by every write to clients, numbers, employees or
extensions through this process, and by every change another process announces), and
it is not used at all while the directory watch cannot hear other processes
(store/directory_changes.py). After a change the questions go to the database as before
until a new snapshot is read, at most once per ``[dialplan] index_refresh`` seconds.

An answer from here equals ``caller_matches`` on the same data, row for row
(tests/store/test_caller_index.py compares them on both databases).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import callpop
from callpop.phones import PhoneKey
from callpop.store.caller import CallerMatch, exact_first
from callpop.store.caller_cache import write_generation
from callpop.store.caller_index_wire import Parts, e164_code, read_parts, tail_code
from callpop.store.db import Database

__all__ = ["CallerIndex", "IndexKeeper"]

log = logging.getLogger(__name__)

SETTLE = 1.0  # seconds without a change before a new copy is read
_TICK = 0.25


@dataclass(slots=True)
class CallerIndex(Parts):
    """One copy, as read under write generation ``generation``."""

    generation: int = 0

    @property
    def clients(self) -> int:
        return len(self.ids)

    @property
    def numbers(self) -> int:
        return len(self.tails) + sum(len(v) for v in self.odd_tails.values())

    def matches(self, key: PhoneKey) -> tuple[CallerMatch, ...]:
        """What ``caller_matches`` answers for *key* on the snapshot's data."""
        found: dict[int, bool] = {}  # client id -> an exact E.164 match among its numbers
        wanted = e164_code(key.e164) if key.e164 else None
        if key.tail10:
            code = tail_code(key.tail10)
            if code is not None:
                lo, hi = bisect_left(self.tails, code), bisect_right(self.tails, code)
                for i in range(lo, hi):
                    client = self.tail_clients[i]
                    found[client] = found.get(client, False) or (wanted is not None and self.tail_e164s[i] == wanted)
            for client, e164 in self.odd_tails.get(key.tail10, ()):
                found[client] = found.get(client, False) or (key.e164 is not None and e164 == key.e164)
        if key.e164:
            if wanted is not None:
                lo, hi = bisect_left(self.e164s, wanted), bisect_right(self.e164s, wanted)
                for i in range(lo, hi):
                    found[self.e164_clients[i]] = True
            for client in self.odd_e164s.get(key.e164, ()):
                found[client] = True
        if not found:
            return ()
        return exact_first([m for m in (self._client(client, exact) for client, exact in sorted(found.items()))
                            if m is not None])

    def _client(self, client_id: int, exact: bool) -> CallerMatch | None:
        at = bisect_left(self.ids, client_id)
        if at == len(self.ids) or self.ids[at] != client_id:
            return None  # a number whose client the snapshot lacks: the join finds nothing either
        start = self.name_ends[at - 1] if at else 0
        name = self.names[start:self.name_ends[at]].decode()
        company: str | None = None
        if not self.no_company[at]:
            start = self.company_ends[at - 1] if at else 0
            company = self.companies[start:self.company_ends[at]].decode()
        responsible = self.responsible[at]
        manager = None if responsible < 0 else responsible
        return CallerMatch(client_id, name, company, bool(self.regular[at]), exact, manager,
                           self.extensions.get(responsible, ()) if manager is not None else ())


class IndexKeeper:
    """Holds the current snapshot, says whether it may answer, and reads a new one after a
    change (at most once per *refresh* seconds)."""

    def __init__(self, db: Database, watch: Any, refresh: float) -> None:
        self._db = db
        self._watch = watch  # DirectoryWatch: .current() says whether outside writes are heard
        self._generation = write_generation(db.engine)
        self.refresh = refresh
        self.index: CallerIndex | None = None
        self.answered = 0   # questions answered from memory
        self.builds = 0
        self.discarded = 0  # snapshots a write overtook while they were read
        self.failed = 0     # copies that could not be read
        self._task: asyncio.Task[None] | None = None
        self._reader: asyncio.subprocess.Process | None = None
        self._stopping = False

    def lookup(self, key: PhoneKey) -> tuple[CallerMatch, ...] | None:
        """The answer from memory, or None when memory may be behind the database."""
        index = self.index
        if index is None or self.stale() or not self.current():
            return None
        self.answered += 1
        return index.matches(key)

    def current(self) -> bool:
        """Whether other processes' writes are heard now (else memory is not used)."""
        return bool(self._watch.current())

    def stale(self) -> bool:
        index = self.index
        return index is None or index.generation != self._generation.stamp

    def start(self) -> None:
        if self._request() is None:
            log.info("caller index: off (%s); the dialplan's questions read the database",
                     "an in-memory database" if self._db.dialect != "postgresql"
                     else "connection options that cannot be passed to another process")
            return
        self._task = asyncio.create_task(self._keep(), name="caller-index")

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._reader is not None and self._reader.returncode is None:
            self._reader.kill()

    def _request(self) -> dict[str, Any] | None:
        """What the reading process is told of the database; None: no copy can be read."""
        url = self._db.engine.url
        if self._db.dialect == "postgresql":
            _args, connect = self._db.engine.dialect.create_connect_args(url)
            try:
                json.dumps(connect)
            except TypeError:
                return None  # connect arguments that are objects (an SSL context): not passed on
            return {"postgresql": connect}
        path = url.database or ""
        if path in ("", ":memory:") or path.startswith("file:"):
            return None  # an in-memory database: another process would see another database
        return {"sqlite": str(Path(path).resolve())}

    async def rebuild(self) -> bool:
        """Read a copy now; True when it is current (no write overtook it)."""
        request = self._request()
        if request is None or self._stopping:
            return False
        generation = self._generation.stamp
        env = dict(os.environ)  # the reader imports the same callpop as this process
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(callpop.__file__).parent.parent),
                                                          env.get("PYTHONPATH")]))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "callpop.store.caller_index_read", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
        self._reader = proc
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        errors = asyncio.ensure_future(proc.stderr.read())
        try:
            proc.stdin.write(json.dumps(request).encode() + b"\n")  # secrets through a pipe, never argv
            await proc.stdin.drain()
            proc.stdin.close()
            try:
                index: CallerIndex | None = await read_parts(proc.stdout, CallerIndex(generation=generation))
            except (asyncio.IncompleteReadError, ValueError):
                index = None
            status = await proc.wait()
        finally:
            self._reader = None
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        why = (await errors).decode(errors="replace").strip().splitlines()
        if self._stopping:
            return False  # killed by stop()
        if status != 0 or index is None:
            self.failed += 1
            log.warning("caller index: reading the directory failed (exit %s: %s); the dialplan's questions "
                        "keep reading the database", status, why[-1][:300] if why else "no message")
            return False
        self.builds += 1
        if index.generation != self._generation.stamp:
            self.discarded += 1
            log.info("caller index: the directory changed while it was read (%.1f s); read again later",
                     index.built_in)
            return False
        self.index = index
        log.info("caller index: %d clients, %d numbers in memory (%.0f MB), read in %.1f s",
                 index.clients, index.numbers, index.nbytes() / 1e6, index.built_in)
        return True

    async def _keep(self) -> None:
        """Read a new copy once the directory has been still for ``SETTLE`` seconds (a
        burst of writes, or the SQLite watch's word on a write of our own arriving a
        moment later, would overtake a copy read sooner) and ``refresh`` seconds have
        passed since the last read began."""
        last = -self.refresh
        seen, still_since = self._generation.stamp, time.monotonic()
        while True:
            await asyncio.sleep(_TICK)
            now = time.monotonic()
            if self._generation.stamp != seen:
                seen, still_since = self._generation.stamp, now
            if not self.stale() or not self._watch.current() or now - still_since < SETTLE \
                    or now - last < self.refresh:
                continue
            last = now
            try:
                await self.rebuild()
            except Exception as exc:  # a database away: questions keep failing open on their own
                log.warning("caller index: reading the directory failed (%s: %s); retrying in %g s",
                            type(exc).__name__, exc, self.refresh)
