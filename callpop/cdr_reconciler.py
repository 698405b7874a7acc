"""Uncertain call rows put right from the PBX's CDR store, while the daemon runs.

With ``[cdr] url`` set, every ``[cdr] interval`` seconds the call rows whose answer or end
callpop did not see (it was down, or its PBX link was: docs/reliability.md) and that ended
at least ``wait_after_end`` and at most ``give_up_after`` seconds ago are looked up in the
PBX's CDR table (callpop/store/cdr.py); those whose CDR rows can be trusted are written
again through the journal writer like any call's end (callpop/store/cdr_reconcile.py):
the row is replaced once, whichever instance comes first, its contacts judged again on
the real talk, ``kpi_changed`` sent for the contacts that count. A row without CDR rows
stays uncertain, as without a CDR store: nothing is guessed.

Operators read ``cdr:`` log lines (reconciled, unusable, given up, database unreachable;
never the URL's password) and the ``callpop_cdr_*`` metrics.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from callpop.logs import call_context
from callpop.settings import Settings
from callpop.store.cdr import CdrRow, CdrSource, safe_url
from callpop.store.cdr_reconcile import Uncertain, cdr_call, corrected, uncertain_rows
from callpop.telephony.channels import AgentRule

if TYPE_CHECKING:
    from callpop.journal_writer import JournalWriter
    from callpop.store.db import Database

__all__ = ["CdrReconciler", "Pass"]

log = logging.getLogger(__name__)

BATCH = 500  # uncertain rows per pass


@dataclass(frozen=True, slots=True)
class Pass:
    """What one pass did."""

    candidates: int = 0
    reconciled: int = 0
    counted: int = 0  # employees told kpi_changed
    waiting: int = 0  # no CDR rows yet
    unusable: int = 0  # CDR rows that contradict what callpop saw, or do not say
    unreachable: bool = False


class CdrReconciler:
    def __init__(self, settings: Settings, db: Database, journal: JournalWriter, *,
                 source: CdrSource | None = None, clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._cfg = settings.cdr
        self._db = db
        self._journal = journal
        self._source = source
        self._clock = clock
        self._agent_of = AgentRule(settings.agents, settings.pbx.agent_extension_pattern, settings.pbx.trunk_devices)
        self._task: asyncio.Task[None] | None = None
        # calls.id -> (call key, ended_at): rows without CDR rows at the last pass
        self._waiting: dict[int, tuple[str, dt.datetime]] = {}
        self._told: set[int] = set()  # rows whose unusable CDR rows were logged
        self._down = False
        self.reconciled = 0
        self.unusable = 0
        self.unmatched = 0
        self.unreachable = 0
        self.waiting = 0

    @property
    def source(self) -> CdrSource:
        if self._source is None:
            self._source = CdrSource(self._cfg)
        return self._source

    def start(self) -> bool:
        """Start the periodic pass; False (logged) when the CDR database cannot be used at
        all (its driver is not installed): callpop runs on without reconciling."""
        try:
            self._source = self.source  # a URL whose driver is missing fails here, once, not at every pass
        except Exception as exc:
            log.error("cdr: the CDR database %s cannot be used (%s: %s); call rows are not reconciled",
                      safe_url(self._cfg.url), type(exc).__name__, self._secret_free(str(exc)))
            return False
        log.info("cdr: call rows callpop could not see whole are put right from %s, table %s, every %g s",
                 safe_url(self._cfg.url), self._cfg.table, self._cfg.interval)
        self._task = asyncio.create_task(self._run(), name="cdr-reconciler")
        return True

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._source is not None:
            await self._source.close()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._cfg.interval)
            try:
                await self.run_once()
            except Exception:
                log.exception("cdr: a reconciliation pass failed; the next one tries again")

    def _secret_free(self, text: str) -> str:
        password = self._cfg.password or _password_of(self._cfg.url)
        return text.replace(password, "***") if password else text

    async def run_once(self) -> Pass:
        """One pass over the uncertain rows (see the module docstring)."""
        now = dt.datetime.fromtimestamp(self._clock(), dt.UTC)
        async with self._db.sessions() as session:
            rows = await uncertain_rows(session, self._settings.pbx.id,
                                        settled=now - dt.timedelta(seconds=self._cfg.wait_after_end),
                                        since=now - dt.timedelta(seconds=self._cfg.give_up_after), limit=BATCH)
        self._gave_up({r.call_id for r in rows}, now - dt.timedelta(seconds=self._cfg.give_up_after))
        if not rows:
            self.waiting = 0
            return Pass()
        try:
            async with asyncio.timeout(self._cfg.timeout or None):
                found = await self.source.rows_of(r.call_key for r in rows)
        except (OSError, TimeoutError, SQLAlchemyError) as exc:
            self.unreachable += 1
            if not self._down:
                log.warning("cdr: the CDR database %s is unreachable (%s: %s); %d uncertain call rows wait for it",
                            safe_url(self._cfg.url), type(exc).__name__,
                            self._secret_free(str(exc).splitlines()[0] if str(exc) else ""), len(rows))
            self._down = True
            self.waiting = len(rows)
            return Pass(candidates=len(rows), waiting=len(rows), unreachable=True)
        if self._down:
            log.warning("cdr: the CDR database %s answers again", safe_url(self._cfg.url))
            self._down = False
        return await self._reconcile(rows, found)

    async def _reconcile(self, rows: list[Uncertain], found: dict[str, list[CdrRow]]) -> Pass:
        reconciled = counted = unusable = 0
        waiting: dict[int, tuple[str, dt.datetime]] = {}
        for row in rows:
            cdr_rows = found.get(row.call_key)
            if not cdr_rows:
                waiting[row.call_id] = (row.call_key, row.ended_at)
                continue
            with call_context(row.call_key):  # JSON log lines name the call, like the journal's
                outcome = await self._one(row, cdr_rows)
            if outcome == "unusable":
                unusable += 1
            elif isinstance(outcome, tuple):
                reconciled += 1
                counted += len(outcome)
        self._waiting = waiting
        self.waiting = len(waiting)
        if reconciled or unusable:
            log.info("cdr: reconciled %d call rows from the PBX's CDR (%d contacts counted), %d unusable, "
                     "%d wait for their CDR rows", reconciled, counted, unusable, len(waiting))
        return Pass(candidates=len(rows), reconciled=reconciled, counted=counted, waiting=len(waiting),
                    unusable=unusable)

    async def _one(self, row: Uncertain, cdr_rows: list[CdrRow]) -> str | tuple[int, ...]:
        """Put one row right: the employees counted, "unusable", or "other" (spooled, or
        written by another instance)."""
        made = cdr_call(cdr_rows, self._agent_of)
        ended = corrected(row, made) if not isinstance(made, str) else made
        if isinstance(ended, str):
            if row.call_id not in self._told:
                self._told.add(row.call_id)
                self.unusable += 1
                log.warning("cdr: call %s (#%d): its %d CDR rows are not used (%s); it stays uncertain",
                            row.call_key, row.call_id, len(cdr_rows), ended)
            return "unusable"
        # a row without a client (the daemon died between writing it at the first ringing
        # and the lookup's answer) is looked up again: else its contacts are nobody's
        closed = await self._journal.close_call(ended, row.client_id, resolve=row.client_id is None)
        if closed is None:  # the journal's database is away: spooled, written (and told) later
            return "other"
        if not closed.written:
            log.debug("cdr: call %s (#%d) was put right by another instance", row.call_key, row.call_id)
            return "other"
        self.reconciled += 1
        log.info("cdr: call %s (#%d) put right from %d CDR rows: %s, talk %d s%s", row.call_key, row.call_id,
                 len(cdr_rows), ended.outcome, ended.talk_seconds,
                 f", {len(closed.counted_employees)} contact(s) counted" if closed.counted_employees else "")
        if closed.counted_employees and self._journal.on_counted is not None:
            self._journal.on_counted(closed.counted_employees)
        return closed.counted_employees

    def _gave_up(self, still: set[int], horizon: dt.datetime) -> None:
        """Rows waited for at the last pass that are no longer candidates: past
        ``give_up_after`` without CDR rows (they stay uncertain), or put right meanwhile by
        another instance."""
        for call_id, (key, ended_at) in self._waiting.items():
            if call_id in still:
                continue
            if ended_at < horizon:
                self.unmatched += 1
                with call_context(key):
                    log.warning("cdr: call %s (#%d): no CDR rows %g s after its end; given up, it stays uncertain",
                                key, call_id, self._cfg.give_up_after)
            else:
                log.debug("cdr: call %s (#%d) was put right by another instance", key, call_id)
        self._waiting = {k: v for k, v in self._waiting.items() if k in still}


def _password_of(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).password or ""
    except Exception:
        return ""
