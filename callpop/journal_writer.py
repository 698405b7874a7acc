"""One writer for the call journal: every call row, participant and contact goes through a
single task that writes them in batches, one transaction per batch.

Why: SQLite lets one writer in at a time. At 100 calls/s, three small transactions per
call from as many concurrent sessions spend their time waiting for the write lock (and
time out), while one writer committing whatever has queued up since its last commit does
the same work in a few transactions a second. PostgreSQL gains fewer round trips too.

A batch that fails (a lock held too long, a bad row) is retried job by job, so one bad
call never costs the others their rows; a job that still fails is reported to the call's
worker, which logs it with the call id. Jobs are never dropped on the floor: ``close``
drains the queue before the database is closed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from callpop.logs import call_context
from callpop.settings import Settings
from callpop.store_hooks import StoreHooks
from callpop.telephony.events import Ended, Ringing

if TYPE_CHECKING:
    from callpop.store.db import Database

__all__ = ["Closed", "JournalWriter"]

log = logging.getLogger(__name__)

MAX_BATCH = 100
EXTENSIONS_TTL = 30.0  # the extension -> employee map is re-read at most this often
RETRY_PAUSE = 0.2
BACKLOG_WARN = 1000


@dataclass(frozen=True, slots=True)
class Closed:
    """What closing a call wrote: its calls.id and the employees whose counted contacts it
    touched (they get ``kpi_changed``)."""

    call_id: int
    counted_employees: tuple[int, ...]


@dataclass(eq=False)
class _Job:
    kind: Literal["open", "close"]
    event: Ringing | Ended
    client_id: int | None
    done: asyncio.Future[Any] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class JournalWriter:
    def __init__(self, settings: Settings, db: Database, store: StoreHooks) -> None:
        self._settings = settings
        self._db = db
        self._store = store
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._by_extension: tuple[float, dict[str, int]] | None = None
        self.batches = 0
        self.written = 0
        self.failed = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="journal-writer")

    async def close(self) -> None:
        """Write what is queued, then stop."""
        if self._task is None:
            return
        await self._queue.join()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    async def open_call(self, event: Ringing, client_id: int | None) -> int:
        """The calls.id of this call, its row created at the first ringing."""
        result: int = await self._submit(_Job("open", event, client_id))
        return result

    async def close_call(self, event: Ended, client_id: int | None) -> Closed:
        result: Closed = await self._submit(_Job("close", event, client_id))
        return result

    async def _submit(self, job: _Job) -> Any:
        self._queue.put_nowait(job)
        if self._queue.qsize() == BACKLOG_WARN:
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
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _write(self, batch: list[_Job]) -> None:
        try:
            results = await self._transaction(batch)
        except Exception as exc:
            log.warning("journal: a batch of %d writes failed (%s); writing them one by one",
                        len(batch), type(exc).__name__)
            await asyncio.sleep(RETRY_PAUSE)
            for job in batch:
                try:
                    (result,) = await self._transaction([job])
                except Exception as one:
                    self.failed += 1
                    if not job.done.done():
                        job.done.set_exception(one)
                else:
                    self._resolve(job, result)
            return
        self.batches += 1
        for job, result in zip(batch, results, strict=True):
            self._resolve(job, result)

    def _resolve(self, job: _Job, result: Any) -> None:
        self.written += 1
        if not job.done.done():
            job.done.set_result(result)

    async def _transaction(self, jobs: list[_Job]) -> list[Any]:
        results: list[Any] = []
        async with self._db.sessions() as session:
            for job in jobs:
                with call_context(job.event.call):
                    if job.kind == "open":
                        assert isinstance(job.event, Ringing)
                        results.append(await self._store.open_call(session, self._settings.pbx.id, job.event,
                                                                   job.client_id))
                    else:
                        assert isinstance(job.event, Ended)
                        results.append(await self._close(session, job.event, job.client_id))
            await session.commit()
        return results

    async def _close(self, session: AsyncSession, event: Ended, client_id: int | None) -> Closed:
        by_ext = await self._extensions(session)
        call_id = await self._store.close_call(session, self._settings.pbx.id, event, client_id, by_ext)
        counted: set[int] = set()
        if self._store.log_contacts is not None:
            contacts = await self._store.log_contacts(session, call_id, event, self._settings, by_extension=by_ext)
            counted = {c.employee_id for c in contacts if getattr(c, "counted", False)}
        return Closed(call_id, tuple(sorted(counted)))

    async def _extensions(self, session: AsyncSession) -> dict[str, int]:
        """Who owns which extension, cached briefly: every call end needs it, and with a
        thousand agents reading it each time would be most of the journal's work."""
        now = time.monotonic()
        if self._by_extension is None or now - self._by_extension[0] > EXTENSIONS_TTL:
            self._by_extension = (now, await self._store.employees_by_extension(session))
        return self._by_extension[1]
