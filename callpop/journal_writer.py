"""One writer for the call journal: every call row, participant and contact goes through a
single task that writes them in batches, one transaction per batch.

Why: SQLite lets one writer in at a time. At 100 calls/s, three small transactions per
call from as many concurrent sessions spend their time waiting for the write lock (and
time out), while one writer committing whatever has queued up since its last commit does
the same work in a few transactions a second. PostgreSQL gains fewer round trips too.

A batch that fails because of one bad row is retried job by job, so one bad call never
costs the others their rows; a job that still fails is reported to the call's worker,
which logs it with the call id. A batch that fails because the database is unavailable
(refused, gone, locked or slower than ``[journal] write_timeout``) goes to the durable local
spool (callpop/journal_spool.py) with every later job, in order, until the database answers
again; the pops never wait for it. Jobs are never dropped on the floor: ``close`` drains
the queue before the database is closed.

Besides a call's first ringing and its end, the writer records each answer and each
ringing agent as it happens and closes rows nobody follows any more
(callpop/store/journal_recovery.py), and keeps the daemon's heartbeat in the spool file.

This module is the queue and the batching; what each job writes is in
callpop/journal_rows.py, the writer's side of the spool (kept ahead of the database,
spool mode, writing it back, the heartbeat) in callpop/journal_spooling.py, and the jobs
themselves in callpop/journal_jobs.py.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

from callpop.journal_jobs import MAX_BATCH, Closed, Job, unavailable
from callpop.journal_spool import Spool
from callpop.journal_spooling import Spooling
from callpop.settings import Settings
from callpop.store_hooks import StoreHooks
from callpop.telephony.events import Answered, Ended, Ringing

if TYPE_CHECKING:
    from callpop.store.db import Database

__all__ = ["JournalWriter"]

log = logging.getLogger(__name__)

RETRY_PAUSE = 0.2
BACKLOG_WARN = 1000


class JournalWriter(Spooling):
    def __init__(self, settings: Settings, db: Database, store: StoreHooks) -> None:
        self._settings = settings
        self._db = db
        self._store = store
        self._queue: asyncio.Queue[Job] = asyncio.Queue()
        self._ahead: asyncio.Queue[Job] = asyncio.Queue()
        self._logger: asyncio.Task[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._beater: asyncio.Task[None] | None = None
        self._drainer: asyncio.Task[None] | None = None
        self._by_extension: tuple[float, int, dict[str, int]] | None = None
        self._spool: Spool | None = None
        self._spooling = False
        self._mode = asyncio.Lock()
        self._pending_sweep: Job | None = None
        self.on_counted: Callable[[tuple[int, ...]], None] | None = None
        self.last_beat: float | None = None  # the previous run's last heartbeat (epoch s)
        self.batches = 0
        self.written = 0
        self.failed = 0
        self.spooled = 0
        self.unspooled = 0

    def start(self) -> None:
        cfg = self._settings.journal
        if cfg.spool_path:
            self._spool = Spool(cfg.spool_path)
            self.last_beat = self._spool.last_beat()
            if self._spool.count():
                log.warning("journal: %d writes waiting in %s from the last run; writing them first",
                            self._spool.count(), cfg.spool_path)
                self._spooling = True
                self._drainer = asyncio.create_task(self._drain(), name="journal-spool-drain")
            self._beater = asyncio.create_task(self._beat(), name="journal-heartbeat")
            self._logger = asyncio.create_task(self._log_ahead(), name="journal-spool-ahead")
        self._task = asyncio.create_task(self._run(), name="journal-writer")

    async def close(self) -> None:
        """Write what is queued (to the database or the spool), then stop."""
        if self._task is None:
            return
        await self._ahead.join()
        await self._queue.join()
        tasks = [t for t in (self._task, self._beater, self._drainer, self._logger) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._spool is not None:
            if self._spooling:
                log.warning("journal: stopping with %d writes in %s; they are written at the next start",
                            self._spool.count(), self._spool.path)
            self._spool.close()

    @property
    def backlog(self) -> int:
        return self._queue.qsize() + self._ahead.qsize()

    @property
    def spooling(self) -> bool:
        """Writes are going to the local spool (the database is unavailable)."""
        return self._spooling

    async def open_call(self, event: Ringing, client_id: int | None) -> int | None:
        """The calls.id of this call, its row created at the first ringing (and the agent
        listed as rung); None while the database is unavailable (the row is spooled)."""
        result: int | None = await self._submit(Job("open", event, client_id))
        return result

    async def rang(self, event: Ringing) -> None:
        """Another agent rang in a call whose row exists: list them."""
        if self.extras:
            await self._submit(Job("rang", event, None))

    async def client(self, call: str, client_id: int) -> None:
        """The call's client, found after its row was opened."""
        if self.extras:
            await self._submit(Job("client", Ringing(call, "inbound", None, ""), client_id))

    async def answer(self, event: Answered) -> None:
        if self.extras:
            await self._submit(Job("answer", event, None))

    async def close_call(self, event: Ended, client_id: int | None, *, resolve: bool = False) -> Closed | None:
        """None while the database is unavailable (spooled; ``on_counted`` tells later).
        *resolve*: the call's lookup failed (the database was down): look the client up again."""
        result: Closed | None = await self._submit(Job("close", event, client_id, resolve=resolve))
        return result

    async def sweep(self, live: Collection[str], *, older_than: float = 0.0, scope: str | None = None,
                    before: float | None = None) -> int:
        """Close the open rows of calls not in *live* that started over *older_than* seconds
        ago and before *before* (epoch s) (journal_recovery.close_unseen), of the PBX *scope*
        names (None: every PBX); after the jobs queued before it. Returns how many were
        closed (0 while the database is unavailable: done after the spool)."""
        if not self.extras:
            return 0
        until = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=older_than)
        if before is not None:
            until = min(until, dt.datetime.fromtimestamp(before, dt.UTC))
        result: int | None = await self._submit(Job("sweep", None, None, frozenset(live), until,
                                                    scope=scope))
        return result or 0

    async def _submit(self, job: Job) -> Any:
        (self._ahead if self._logger is not None else self._queue).put_nowait(job)
        if self.backlog == BACKLOG_WARN:
            log.warning("journal: %d writes waiting; the database is slower than the calls", BACKLOG_WARN)
        return await asyncio.shield(job.done)

    # --- the writer task ----------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._write(batch)
            except Exception as exc:  # never lose the writer task
                log.exception("journal: writing a batch failed")
                for job in batch:
                    if not job.done.done():
                        job.done.set_exception(exc)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _write(self, batch: list[Job]) -> None:
        if self._spooling and await self._to_spool(batch):
            return
        try:
            results = await self._transaction(batch)
        except Exception as exc:
            if unavailable(exc) and self._spool is not None:
                log.warning("journal: the database is unavailable (%s: %s); keeping call rows in %s",
                            type(exc).__name__, exc, self._spool.path)
                await self._to_spool(batch, start=True)
                return
            log.warning("journal: a batch of %d writes failed (%s); writing them one by one",
                        len(batch), type(exc).__name__)
            await asyncio.sleep(RETRY_PAUSE)
            for i, job in enumerate(batch):
                try:
                    (result,) = await self._transaction([job])
                except Exception as one:
                    if unavailable(one) and self._spool is not None:
                        await self._to_spool(batch[i:], start=True)
                        return
                    self.failed += 1
                    if not job.done.done():
                        job.done.set_exception(one)
                else:
                    self._resolve(job, result)
                await self._forget([job])
            return
        self.batches += 1
        await self._forget(batch)
        for job, result in zip(batch, results, strict=True):
            self._resolve(job, result)

    def _resolve(self, job: Job, result: Any) -> None:
        self.written += 1
        if not job.done.done():
            job.done.set_result(result)
