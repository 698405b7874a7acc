"""The journal writer's use of its spool (callpop/journal_spool.py): every write kept
there ahead of the database, spool mode while the database is away, writing the spool back
in order when it answers again, and the daemon's heartbeat."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from callpop.journal_jobs import MAX_BATCH, Closed, Job, unavailable
from callpop.journal_rows import RowWrites
from callpop.journal_spool import Spool
from callpop.telephony.events import Answered, Ended, Ringing

__all__ = ["Spooling"]

log = logging.getLogger("callpop.journal_writer")


class Spooling(RowWrites):
    """The spool half of :class:`callpop.journal_writer.JournalWriter`."""

    _queue: asyncio.Queue[Job]
    _ahead: asyncio.Queue[Job]
    _drainer: asyncio.Task[None] | None
    _spool: Spool | None
    _spooling: bool
    _mode: asyncio.Lock
    _pending_sweep: Job | None
    failed: int
    spooled: int
    unspooled: int

    async def _log_ahead(self) -> None:
        """Every write goes to the spool before the database: a daemon killed while a write
        waits for the database (slow, or locked) loses none; the next start writes what is
        left (upserts: a write both committed and left in the spool changes nothing)."""
        assert self._spool is not None
        while True:
            batch = [await self._ahead.get()]
            while len(batch) < MAX_BATCH and not self._ahead.empty():
                batch.append(self._ahead.get_nowait())
            rows = [j for j in batch if j.kind != "sweep" and j.event is not None]
            if rows:
                try:
                    kept: list[tuple[str, int | None, Ringing | Answered | Ended]] = [
                        (j.kind, j.client_id, j.event) for j in rows if j.event is not None]
                    ids = await asyncio.to_thread(self._spool.append, kept)
                    for job, spool_id in zip(rows, ids, strict=True):
                        job.spool_id = spool_id
                except Exception:
                    log.exception("journal: %d writes not kept in the spool %s (written to the database only)",
                                  len(rows), self._spool.path)
            for job in batch:
                self._queue.put_nowait(job)
                self._ahead.task_done()

    async def _forget(self, jobs: list[Job]) -> None:
        """The database has these (or refused them for themselves): drop their spool copies."""
        ids = [j.spool_id for j in jobs if j.spool_id is not None]
        if ids and self._spool is not None:
            try:
                await asyncio.to_thread(self._spool.delete, ids)
            except Exception:
                log.exception("journal: written rows not removed from %s (rewriting them changes nothing)",
                              self._spool.path)

    async def _to_spool(self, batch: list[Job], *, start: bool = False) -> bool:
        """Append *batch* to the spool if the writer is (or, with *start*, now goes) in
        spool mode; the jobs' callers get None. False: spool mode ended meanwhile."""
        assert self._spool is not None
        async with self._mode:
            if not self._spooling and not start:
                return False
            rows = [(j.kind, j.client_id, j.event) for j in batch
                    if j.kind != "sweep" and j.event is not None and j.spool_id is None]
            if rows:
                await asyncio.to_thread(self._spool.append, rows)  # type: ignore[arg-type]
            self.spooled += len(rows)
            for job in batch:
                if job.kind == "sweep":
                    self._pending_sweep = job  # the newest wins; run once the spool is written
                    if not job.done.done():
                        job.done.set_result(0)
                    continue
                if not job.done.done():
                    job.done.set_result(None)
            if not self._spooling:
                self._spooling = True
                self._drainer = asyncio.create_task(self._drain(), name="journal-spool-drain")
        return True

    async def _drain(self) -> None:
        """While writes wait in the spool: try the database every retry_interval; write them
        in order, oldest first, and leave spool mode when none is left."""
        assert self._spool is not None
        spool = self._spool
        pause = self._settings.journal.retry_interval
        size = MAX_BATCH
        while True:
            jobs = await asyncio.to_thread(spool.head, size)
            if not jobs:
                async with self._mode:
                    if await asyncio.to_thread(spool.count) == 0:
                        self._spooling = False
                        log.warning("journal: the database is back; %d spooled writes written", self.unspooled)
                        sweep, self._pending_sweep = self._pending_sweep, None
                        if sweep is not None:
                            self._queue.put_nowait(Job("sweep", None, None, sweep.live, sweep.before,
                                                       scope=sweep.scope))
                        return
                continue
            try:
                results = await self._spooled_transaction(jobs)
            except Exception as exc:
                if not unavailable(exc):
                    await self._drain_one_by_one(jobs)
                    continue
                log.debug("journal: database still unavailable (%s); %d writes spooled", type(exc).__name__,
                          await asyncio.to_thread(spool.count))
                if isinstance(exc, TimeoutError):
                    size = max(1, size // 2)  # a slow database must not time out every batch for good
                await asyncio.sleep(pause)
                continue
            size = min(MAX_BATCH, size * 2)
            await asyncio.to_thread(spool.delete, [j.id for j in jobs])
            self.unspooled += len(jobs)
            self._announce(results)

    async def _spooled_transaction(self, jobs: list[Any]) -> list[Any]:
        async with asyncio.timeout(self._write_timeout), self._db.sessions() as session:
            results = []
            for j in jobs:
                client_id = j.client_id
                if client_id is None and j.kind == "close" and isinstance(j.event, Ended):
                    client_id = await self._client_of(session, j.event)
                results.append(await self._one(session, j.kind, j.event, client_id))
            await session.commit()
        return results

    async def _drain_one_by_one(self, jobs: list[Any]) -> None:
        """A spooled batch the database refuses: write what it takes, drop (and log) rows it
        refuses for themselves, so one bad row never holds the rest back for good."""
        assert self._spool is not None
        for job in jobs:
            try:
                results = await self._spooled_transaction([job])
            except Exception as exc:
                if unavailable(exc):
                    return
                self.failed += 1
                log.error("journal: spooled %s of call %s refused by the database, dropped: %s",
                          job.kind, getattr(job.event, "call", "?"), exc)
            else:
                self.unspooled += 1
                self._announce(results)
            await asyncio.to_thread(self._spool.delete, [job.id])

    def _announce(self, results: list[Any]) -> None:
        if self.on_counted is None:
            return
        for result in results:
            if isinstance(result, Closed) and result.counted_employees:
                self.on_counted(result.counted_employees)

    async def _beat(self) -> None:
        assert self._spool is not None
        every = self._settings.journal.heartbeat_interval
        while True:
            try:
                await asyncio.to_thread(self._spool.beat, time.time())
            except Exception:
                log.exception("journal: heartbeat not written to %s", self._spool.path)
            await asyncio.sleep(every or 1.0)
