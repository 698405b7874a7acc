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
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncSession

from callpop import cards
from callpop.journal_spool import Spool
from callpop.logs import call_context
from callpop.settings import Settings
from callpop.store import journal_recovery
from callpop.store_hooks import StoreHooks
from callpop.telephony.events import AgentTalk, Answered, Ended, Ringing
from callpop.telephony.pbxes import pbx_of

if TYPE_CHECKING:
    from callpop.store.db import Database

__all__ = ["Closed", "JournalWriter"]

log = logging.getLogger(__name__)

MAX_BATCH = 100
EXTENSIONS_TTL = 30.0  # the extension -> employee map is re-read at most this often
RETRY_PAUSE = 0.2
BACKLOG_WARN = 1000
_DOWN = (OSError, TimeoutError, sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError)


@dataclass(frozen=True, slots=True)
class Closed:
    """What closing a call wrote: its calls.id and the employees whose counted contacts it
    touched (they get ``kpi_changed``)."""

    call_id: int
    counted_employees: tuple[int, ...]


Kind = Literal["open", "rang", "client", "answer", "close", "sweep"]


@dataclass(eq=False)
class _Job:
    kind: Kind
    event: Ringing | Answered | Ended | None
    client_id: int | None
    live: frozenset[str] = frozenset()  # sweep: call keys still followed
    before: dt.datetime | None = None  # sweep: only rows started before this
    scope: str | None = None  # sweep: only the calls of this PBX (journal_recovery.in_scope)
    resolve: bool = False  # close: the call's lookup failed; find its client when writing
    spool_id: int | None = None  # its copy in the spool, written ahead of the database
    done: asyncio.Future[Any] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


def unavailable(exc: BaseException) -> bool:
    """The database did not take the write for reasons of its own (down, restarting,
    locked, read-only, too slow), as opposed to a row it refuses: worth keeping and retrying.
    PostgreSQL says so with SQLSTATE class 08 (connection) or 57P (shutting down, starting)."""
    if isinstance(exc, _DOWN):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        for cause in (exc.orig, getattr(exc.orig, "__cause__", None)):
            state = str(getattr(cause, "sqlstate", "") or "")
            if state.startswith(("08", "57P")):
                return True
    return False


class JournalWriter:
    def __init__(self, settings: Settings, db: Database, store: StoreHooks) -> None:
        self._settings = settings
        self._db = db
        self._store = store
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._ahead: asyncio.Queue[_Job] = asyncio.Queue()
        self._logger: asyncio.Task[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._beater: asyncio.Task[None] | None = None
        self._drainer: asyncio.Task[None] | None = None
        self._by_extension: tuple[float, dict[str, int]] | None = None
        self._spool: Spool | None = None
        self._spooling = False
        self._mode = asyncio.Lock()
        self._pending_sweep: _Job | None = None
        self.on_counted: Callable[[tuple[int, ...]], None] | None = None
        self.last_beat: float | None = None  # the previous run's last heartbeat (epoch s)
        self.batches = 0
        self.written = 0
        self.failed = 0
        self.spooled = 0
        self.unspooled = 0

    @property
    def _write_timeout(self) -> float | None:
        """``[journal] write_timeout``, except on SQLite: a transaction cancelled while SQLite
        waits for its lock leaves its connection stuck in the driver's thread (and out of the
        pool) until the wait ends; SQLite's own busy timeout bounds the wait and fails cleanly."""
        return None if self._db.dialect == "sqlite" else self._settings.journal.write_timeout

    @property
    def extras(self) -> bool:
        """Answers, ringing agents and sweeps are written (the real store; tests with
        counting stand-ins for open/close leave them out)."""
        return self._store.recovery

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
        result: int | None = await self._submit(_Job("open", event, client_id))
        return result

    async def rang(self, event: Ringing) -> None:
        """Another agent rang in a call whose row exists: list them."""
        if self.extras:
            await self._submit(_Job("rang", event, None))

    async def client(self, call: str, client_id: int) -> None:
        """The call's client, found after its row was opened."""
        if self.extras:
            await self._submit(_Job("client", Ringing(call, "inbound", None, ""), client_id))

    async def answer(self, event: Answered) -> None:
        if self.extras:
            await self._submit(_Job("answer", event, None))

    async def close_call(self, event: Ended, client_id: int | None, *, resolve: bool = False) -> Closed | None:
        """None while the database is unavailable (spooled; ``on_counted`` tells later).
        *resolve*: the call's lookup failed (the database was down): look the client up again."""
        result: Closed | None = await self._submit(_Job("close", event, client_id, resolve=resolve))
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
        result: int | None = await self._submit(_Job("sweep", None, None, frozenset(live), until,
                                                     scope=scope))
        return result or 0

    async def _submit(self, job: _Job) -> Any:
        (self._ahead if self._logger is not None else self._queue).put_nowait(job)
        if self.backlog == BACKLOG_WARN:
            log.warning("journal: %d writes waiting; the database is slower than the calls", BACKLOG_WARN)
        return await asyncio.shield(job.done)

    # --- the writer task ----------------------------------------------------------------

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

    async def _forget(self, jobs: list[_Job]) -> None:
        """The database has these (or refused them for themselves): drop their spool copies."""
        ids = [j.spool_id for j in jobs if j.spool_id is not None]
        if ids and self._spool is not None:
            try:
                await asyncio.to_thread(self._spool.delete, ids)
            except Exception:
                log.exception("journal: written rows not removed from %s (rewriting them changes nothing)",
                              self._spool.path)

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

    async def _write(self, batch: list[_Job]) -> None:
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

    async def _to_spool(self, batch: list[_Job], *, start: bool = False) -> bool:
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

    def _resolve(self, job: _Job, result: Any) -> None:
        self.written += 1
        if not job.done.done():
            job.done.set_result(result)

    async def _transaction(self, jobs: list[_Job]) -> list[Any]:
        results: list[Any] = []
        async with asyncio.timeout(self._write_timeout), self._db.sessions() as session:
            for job in jobs:
                with call_context(job.event.call) if job.event is not None else contextlib.nullcontext():
                    results.append(await self._one(session, job.kind, job.event, job.client_id, job))
            await session.commit()
        return results

    def _pbx(self, call: str) -> str:
        """The ``pbx_id`` of a call's row: the PBX it was heard on (callpop/telephony/pbxes.py)."""
        return pbx_of(call, self._settings.pbx.id, self._settings.more_ami)

    async def _one(self, session: AsyncSession, kind: str, event: Ringing | Answered | Ended | None,
                   client_id: int | None, job: _Job | None = None) -> Any:
        pbx = self._pbx(event.call) if event is not None else self._settings.pbx.id
        if kind == "open":
            assert isinstance(event, Ringing)
            call_id = await self._store.open_call(session, pbx, event, client_id)
            if self.extras:
                by_ext = await self._extensions(session)
                await journal_recovery.record_ringing(session, call_id, event.agent, by_ext.get(event.agent))
            return call_id
        if kind == "rang":
            assert isinstance(event, Ringing)
            row = await journal_recovery.call_row(session, pbx, event.call)
            if row is not None:
                by_ext = await self._extensions(session)
                await journal_recovery.record_ringing(session, row, event.agent, by_ext.get(event.agent))
            return None
        if kind == "client":
            assert event is not None and client_id is not None
            await journal_recovery.record_client(session, pbx, event.call, client_id)
            return None
        if kind == "answer":
            assert isinstance(event, Answered)
            by_ext = await self._extensions(session)
            return await journal_recovery.record_answer(session, pbx, event, by_ext.get(event.agent))
        if kind == "close":
            assert isinstance(event, Ended)
            if client_id is None and job is not None and job.resolve:
                client_id = await self._client_of(session, event)
            return await self._close(session, event, client_id)
        assert job is not None and job.before is not None
        return await self._sweep(session, job.live, job.before, job.scope)

    async def _close(self, session: AsyncSession, event: Ended, client_id: int | None) -> Closed:
        by_ext = await self._extensions(session)
        if self.extras and event.answer_unseen and event.ended_at is not None:
            event = await self._recorded_talk(session, event)
        pbx = self._pbx(event.call)
        written = await self._store.close_call(session, pbx, event, client_id, by_ext)
        if written is None:  # its end was journalled already (another instance): no news for the KPI
            found = await journal_recovery.call_row(session, pbx, event.call)
            assert found is not None  # the upsert found the row
            return Closed(found, ())
        call_id = written
        counted: set[int] = set()
        if self._store.log_contacts is not None:
            contacts = await self._store.log_contacts(session, call_id, event, self._settings, by_extension=by_ext)
            counted = {c.employee_id for c in contacts if getattr(c, "counted", False)}
        return Closed(call_id, tuple(sorted(counted)))

    async def _recorded_talk(self, session: AsyncSession, event: Ended) -> Ended:
        """A call re-learned from a channel listing (callpop restarted mid-call) has only
        bounds on its answer; the answer recorded while it was on is the truth: count the
        caller's talk (and a single talker's) from there. Without one the talk stays an
        interval (``answer_unseen``)."""
        assert event.ended_at is not None
        answered = await journal_recovery.recorded_answer(session, self._pbx(event.call), event.call)
        if answered is None:
            return event
        talk = max(0, int(event.ended_at - answered.timestamp()))
        talks = event.talks
        if len(talks) == 1:
            talks = (AgentTalk(talks[0].agent, talk),)
        return dataclasses.replace(event, talk_seconds=talk, talks=talks, answered_at=answered.timestamp(),
                                   answer_unseen=False)

    async def _sweep(self, session: AsyncSession, live: frozenset[str], before: dt.datetime,
                     scope: str | None = None) -> int:
        last = dt.datetime.fromtimestamp(self.last_beat, dt.UTC) if self.last_beat is not None else None
        by_ext = await self._extensions(session)
        if scope is None:  # every PBX's rows
            pbxes = [self._settings.pbx.id, *sorted(set(self._settings.more_ami) - {self._settings.pbx.id})]
        else:
            pbxes = [scope or self._settings.pbx.id]
        closed: list[journal_recovery.Unseen] = []
        for pbx in pbxes:
            closed += await journal_recovery.close_unseen(session, pbx, live, last_known=last, before=before,
                                                          extension_to_employee=by_ext, scope=scope)
        for item in closed:
            if self._store.log_contacts is not None and item.ended.outcome == "answered":
                contacts = await self._store.log_contacts(session, item.call_id, item.ended, self._settings,
                                                          by_extension=by_ext)
                counted = tuple(sorted({c.employee_id for c in contacts if getattr(c, "counted", False)}))
                if counted and self.on_counted is not None:
                    self.on_counted(counted)
        return len(closed)

    async def _extensions(self, session: AsyncSession) -> dict[str, int]:
        """Who owns which extension, cached briefly: every call end needs it, and with a
        thousand agents reading it each time would be most of the journal's work."""
        now = time.monotonic()
        if self._by_extension is None or now - self._by_extension[0] > EXTENSIONS_TTL:
            self._by_extension = (now, await self._store.employees_by_extension(session))
        return self._by_extension[1]

    # --- the spool ----------------------------------------------------------------------

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
                            self._queue.put_nowait(_Job("sweep", None, None, sweep.live, sweep.before,
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

    async def _client_of(self, session: AsyncSession, event: Ringing | Ended) -> int | None:
        """The client of a spooled call: its lookup most likely failed with the database
        down, so it is done again now (else the call and its contact would be nobody's)."""
        if event.direction == "internal" or not event.client:
            return None
        try:
            async with session.begin_nested():  # a failed lookup must not spoil the row's write
                result = await self._store.lookup(session, event.client, self._settings)
        except Exception as exc:
            if unavailable(exc):
                raise  # the database is away after all: the write is kept for later
            log.warning("call %s: its client could not be looked up again (%s); written without one",
                        event.call, exc)
            return None
        return cards.client_id_of(result.matches[0]) if len(result.matches) == 1 else None

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
