"""What each journal job writes, in one session: the call row at its first ringing and
its end (with the contacts for the KPI), each ringing agent, the client found late, the
answer, and the rows nobody follows any more (callpop/store/journal_recovery.py)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from callpop import cards
from callpop.journal_jobs import Closed, Job, unavailable
from callpop.logs import call_context
from callpop.settings import Settings
from callpop.store import journal_recovery
from callpop.store.caller_cache import write_generation
from callpop.store_hooks import StoreHooks
from callpop.telephony.events import AgentTalk, Answered, Ended, Ringing
from callpop.telephony.pbxes import pbx_of

if TYPE_CHECKING:
    from callpop.store.db import Database

__all__ = ["RowWrites"]

log = logging.getLogger("callpop.journal_writer")

# The extension -> employee map is re-read when the directory may have changed (a write
# through this process, or another process's announced by the database), and at least
# this often whatever was announced (the announcing connection may be down).
EXTENSIONS_TTL = 30.0


class RowWrites:
    """The database half of :class:`callpop.journal_writer.JournalWriter`: one
    transaction for a batch of jobs, and what each kind of job writes."""

    _settings: Settings
    _db: Database
    _store: StoreHooks
    _by_extension: tuple[float, int, dict[str, int]] | None
    on_counted: Callable[[tuple[int, ...]], None] | None
    last_beat: float | None

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

    async def _transaction(self, jobs: list[Job]) -> list[Any]:
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
                   client_id: int | None, job: Job | None = None) -> Any:
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
            return Closed(found, (), written=False)
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
        interval (``answer_unseen``); so it does with one when the end was not seen either
        (``end_unseen``): the most it can have been still bounds it."""
        assert event.ended_at is not None
        answered = await journal_recovery.recorded_answer(session, self._pbx(event.call), event.call)
        if answered is None:
            return event
        talk = max(0, int(event.ended_at - answered.timestamp()))
        talks = event.talks
        if len(talks) == 1:
            most = talks[0].at_most
            talks = (AgentTalk(talks[0].agent, talk,
                               max(talk, most) if event.end_unseen and most is not None else None),)
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
                if item.client_id is None:  # its lookup's answer was never written (a kill)
                    found = await self._client_of(session, item.ended)
                    if found is not None:
                        await journal_recovery.record_client(session, self._pbx(item.ended.call), item.ended.call,
                                                             found)
                contacts = await self._store.log_contacts(session, item.call_id, item.ended, self._settings,
                                                          by_extension=by_ext)
                counted = tuple(sorted({c.employee_id for c in contacts if getattr(c, "counted", False)}))
                if counted and self.on_counted is not None:
                    self.on_counted(counted)
        return len(closed)

    async def _extensions(self, session: AsyncSession) -> dict[str, int]:
        """Who owns which extension, remembered until the directory may have changed: every
        call end needs it (with a thousand agents, reading it each time would be most of the
        journal's work), and a contact credited to an extension's former owner would be paid
        to the wrong manager. The directory's write counter (store/caller_cache.py) moves on
        this process's writes to employees and extensions and on those other processes
        announce (store/directory_changes.py)."""
        now = time.monotonic()
        stamp = write_generation(self._db.engine).stamp
        cached = self._by_extension
        if cached is None or cached[1] != stamp or now - cached[0] > EXTENSIONS_TTL:
            cached = self._by_extension = (now, stamp, await self._store.employees_by_extension(session))
        return cached[2]

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
