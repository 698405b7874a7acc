"""From call events to pops: tracker events in, one lookup per call, cards out to the hub.

Each call gets its own little worker: the events of one call are handled in order, while
different calls never wait for each other (a slow lookup for one caller does not delay the
next caller's pop). ``handle`` itself only queues, so the AMI reader that calls it is never
held up by the database.

Once per call the caller is looked up (callpop/pipeline_lookup.py) and the card is
reused by every message of the call.
Internal calls (agent to agent) are journalled but never popped.

Journal: the call row is written at the first ringing (so the after-call form can link
promises and notes to ``call_id`` while the call is still on), closed at the end, then
the contacts for the KPI are logged and the managers whose counted contacts changed get
``kpi_changed``. Journal writes go through one batching writer (callpop/journal_writer.py),
so a hundred calls a second do not queue on SQLite's write lock. A failure is logged with
the call id and never stops the pipeline.

Every call message gets an id made of the PBX, the call, the agent, the kind and how many
of that kind this agent has had in this call (``main/1795818143.12/101/ringing/1``):
another callpop instance tracking the same PBX computes the same id for the same message,
so the hub delivers whichever copy comes first and drops the other (docs/websocket.md,
"Several instances").

What the tabs are told when a PBX link drops or comes back is in callpop/pipeline_link.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from aiohttp import web

from callpop import cards
from callpop.journal_writer import JournalWriter
from callpop.logs import CALL_ID, Throttle
from callpop.pipeline_link import PbxLinks
from callpop.pipeline_lookup import CallLookups
from callpop.pipeline_state import ActiveCallSource, CallState
from callpop.push import Hub
from callpop.settings import Settings
from callpop.store_hooks import StoreHooks
from callpop.telephony.events import (
    Answered,
    CallEvent,
    Ended,
    Ringing,
    RingStopped,
    Transferred,
)
from callpop.telephony.pbxes import pbx_of

if TYPE_CHECKING:
    from callpop.store.db import Database

__all__ = ["PIPELINE", "Pipeline"]

log = logging.getLogger(__name__)

STALE_AFTER = 6 * 3600.0  # a call with no event for this long is forgotten (missed hangup)
SWEEP_EVERY = 60.0
LOGGED_IDS = 10  # forgotten calls named by id in the log line; the rest are counted


class Pipeline(CallLookups, PbxLinks):
    """Turns tracker call events into pushed cards and journal rows."""

    def __init__(self, settings: Settings, db: Database, hub: Hub, tracker: ActiveCallSource | None = None,
                 store: StoreHooks | None = None) -> None:
        self._settings = settings
        self._db = db
        self._hub = hub
        self._tracker = tracker
        self._store = store or StoreHooks.default()
        self._warm = store is None  # the real directory: warm it up at start
        self._warm_task: asyncio.Task[None] | None = None
        self._calls: dict[str, CallState] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self.journal = JournalWriter(settings, db, self._store)
        self.journal.on_counted = self._counted
        self._resync_sweeps: set[asyncio.Task[int]] = set()
        self._last_event = time.monotonic()
        self.lookups = 0
        self.early_running = 0
        self.early_skipped = 0
        self._throttle = Throttle(log)
        self.pops = 0
        self.on_pop: Callable[[float | None], None] | None = None  # ring→pop observer (callpop/metrics.py)
        # the other instances logged in to a PBX (callpop/fanout.py); None: this one only
        self.peers_follow: Callable[[str], list[str]] | None = None
        self._links_down: dict[str, bool] = {}  # PBX ("" the first) whose link is down here -> tabs told so
        hub.set_snapshot_source(self.snapshot)

    # --- life cycle ---------------------------------------------------------------------

    def start(self) -> None:
        self.journal.start()
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="pipeline-sweeper")
        if self._warm:
            self._warm_task = asyncio.create_task(self.warm_up(), name="pipeline-warm-up")

    async def close(self, grace: float = 5.0) -> None:
        """Let calls in flight finish their journal writes (bounded), then stop."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._resync_sweeps:
            await asyncio.gather(*self._resync_sweeps, return_exceptions=True)
        if self._warm_task is not None:
            self._warm_task.cancel()
            await asyncio.gather(self._warm_task, return_exceptions=True)
        early = [s.early[1] for s in self._calls.values() if s.early is not None and s.worker is None]
        for lookup in early:
            lookup.cancel()
        await asyncio.gather(*early, return_exceptions=True)
        workers = [s.worker for s in self._calls.values() if s.worker is not None]
        if workers:
            _done, pending = await asyncio.wait(workers, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self.journal.close()

    @property
    def active(self) -> int:
        return len(self._calls)

    def quiet_for(self) -> float:
        """Seconds since the last call event (the GC pacer waits for a quiet moment)."""
        return time.monotonic() - self._last_event

    # --- input --------------------------------------------------------------------------

    async def handle(self, events: Sequence[CallEvent]) -> None:
        """The AMI connection's sink: queue each event on its call's worker and return."""
        self._last_event = time.monotonic()
        for event in events:
            state = self._calls.get(event.call)
            if state is None:
                state = self._calls[event.call] = CallState(call=event.call)
            state.last_event = time.monotonic()
            state.inbox.put_nowait(event)
            if state.worker is None:
                state.worker = asyncio.create_task(self._work(state), name=f"call-{event.call}")

    async def drain(self) -> None:
        """Wait until every queued event has been handled (tests and shutdown)."""
        while True:
            workers = [s.worker for s in self._calls.values() if s.worker is not None]
            if not workers:
                return
            await asyncio.gather(*workers, return_exceptions=True)

    async def _work(self, state: CallState) -> None:
        CALL_ID.set(state.call)  # this task's context only: every line it logs names the call
        try:
            while not state.inbox.empty():
                event = state.inbox.get_nowait()
                try:
                    await self._dispatch(state, event)
                except Exception:
                    self._throttle.log(logging.ERROR, f"handling-{event.event}", "call %s: handling %s failed; "
                                       "the pipeline goes on", state.call, event.event, exc_info=True)
        finally:
            state.worker = None
            if state.ended and state.inbox.empty() and self._calls.get(state.call) is state:
                del self._calls[state.call]

    async def _dispatch(self, state: CallState, event: CallEvent) -> None:
        if isinstance(event, Ringing):
            await self._ringing(state, event)
        elif isinstance(event, Answered):
            await self._answered(state, event)
        elif isinstance(event, RingStopped):
            self._ring_stopped(state, event)
        elif isinstance(event, Transferred):
            await self._transferred(state, event)
        elif isinstance(event, Ended):
            await self._ended(state, event)

    # --- events -------------------------------------------------------------------------

    async def _ringing(self, state: CallState, event: Ringing) -> None:
        if state.direction is None:
            state.direction, state.number, state.caller_name = event.direction, event.client, event.caller_name
        state.agents[event.agent] = "ringing"
        state.since[event.agent] = event.at
        state.involved.add(event.agent)
        opening: asyncio.Task[int | None] | None = None
        if state.db_id is None and state.card is None and not state.internal and self.journal.extras:
            # the row is queued before the lookup runs: a daemon killed (or a database
            # stalled) during the lookup must not cost the call its row
            opening = asyncio.create_task(self.journal.open_call(event, None), name=f"open-{state.call}")
        if not state.internal:
            card = await self._card(state)
            self._push(state, cards.ringing_message(event, card), event.agent)
            self.pops += 1
            if self.on_pop is not None:
                self.on_pop(event.at)
        if opening is not None:
            try:
                db_id = await opening
                if db_id is not None:
                    state.db_id = db_id
                if state.client_id is not None:
                    await self.journal.client(event.call, state.client_id)
            except Exception:
                log.exception("call %s: journal open failed; the call is written when it ends", state.call)
        elif state.db_id is None:
            await self._open_journal(state, event)
        else:
            try:
                await self.journal.rang(event)
            except Exception:
                log.exception("call %s: recording that %s rang failed", state.call, event.agent)

    async def _answered(self, state: CallState, event: Answered) -> None:
        state.agents[event.agent] = "answered"
        state.since[event.agent] = event.at
        state.involved.add(event.agent)
        card = await self._card_for_unknown(state)
        if card is not None and state.direction is not None:
            self._push(state, cards.answered_message(event, state.direction, card), event.agent)
        try:
            await self.journal.answer(event)
        except Exception:
            log.exception("call %s: recording the answer failed; the end still records it", state.call)

    def _ring_stopped(self, state: CallState, event: RingStopped) -> None:
        state.agents.pop(event.agent, None)
        if not state.internal:
            self._push(state, cards.ring_stopped_message(event), event.agent)

    async def _transferred(self, state: CallState, event: Transferred) -> None:
        state.agents.pop(event.from_agent, None)
        if event.to_agent not in state.agents:
            state.agents[event.to_agent] = "answered" if event.kind == "attended" else "ringing"
            state.since[event.to_agent] = event.at
        state.involved.add(event.to_agent)
        card = await self._card_for_unknown(state)
        if card is None:
            return
        for agent in (event.to_agent, event.from_agent):
            self._push(state, cards.transferred_message(event, agent, card), agent)

    async def _ended(self, state: CallState, event: Ended) -> None:
        if state.direction is None:
            state.direction, state.number, state.caller_name = event.direction, event.client, event.caller_name
        agents = state.involved | set(event.agents_rang) | set(event.answered_by) | {t.agent for t in event.talks}
        state.agents.clear()
        state.ended = True
        if state.db_id is None:
            await self._close_journal(state, event)
            self._publish_ended(state, event, agents)
        else:
            self._publish_ended(state, event, agents)
            await self._close_journal(state, event)

    def _publish_ended(self, state: CallState, event: Ended, agents: set[str]) -> None:
        if state.internal:
            return
        for agent in sorted(agents):
            self._push(state, cards.ended_message(event, agent, state.db_id), agent)

    def _push(self, state: CallState, message: dict[str, Any], agent: str) -> None:
        """Publish a call message to *agent*'s tabs under its cross-instance id."""
        kind = str(message["type"]).removeprefix("call.")
        state.sent[(agent, kind)] += 1
        message["id"] = f"{self._settings.pbx.id}/{state.call}/{agent}/{kind}/{state.sent[(agent, kind)]}"
        self._hub.publish(message, agents=(agent,))

    # --- snapshots --------------------------------------------------------------------

    def snapshot(self, watched: frozenset[str] | None) -> list[dict[str, Any]]:
        """The calls ringing or in progress at *watched* extensions (None: all), as the
        messages that showed them; called by the hub when a tab (re)connects."""
        messages: list[dict[str, Any]] = []
        for state in sorted(self._calls.values(), key=lambda s: s.first_seen):
            if state.card is None or state.internal or state.direction is None:
                continue
            for agent, status in state.agents.items():
                if watched is not None and agent not in watched:
                    continue
                kind = "call.ringing" if status == "ringing" else "call.answered"
                messages.append({"type": kind, "call": state.call, "agent": agent,
                                 "direction": state.direction, "at": state.since.get(agent), "card": state.card})
        return messages

    # --- journal ------------------------------------------------------------------------

    async def _open_journal(self, state: CallState, event: Ringing) -> None:
        try:
            db_id = await self.journal.open_call(event, state.client_id)
            if db_id is not None:
                state.db_id = db_id
        except Exception:
            log.exception("call %s: journal open failed; the call is written when it ends", state.call)

    async def _close_journal(self, state: CallState, event: Ended) -> None:
        try:
            closed = await self.journal.close_call(event, state.client_id,
                                                   resolve=state.lookup_failed and state.client_id is None)
        except Exception:
            log.exception("call %s: journal close failed", state.call)
            return
        if closed is None:
            return  # spooled: the database is unavailable; kpi_changed comes when it is written
        state.db_id = closed.call_id
        self._counted(closed.counted_employees, state.call)

    def _counted(self, employee_ids: Sequence[int], call: str | None = None) -> None:
        """``kpi_changed`` for each employee whose counted contacts changed; when a call
        caused it, its id names the call, so the instances that both journal it send one."""
        for employee_id in employee_ids:
            message: dict[str, Any] = {"type": "kpi_changed", "employee_id": employee_id}
            if call is not None:
                message["id"] = f"{self._settings.pbx.id}/{call}/kpi/{employee_id}"
            self._hub.publish(message, employee_ids=(employee_id,))

    # --- housekeeping -------------------------------------------------------------------

    async def _sweep_forever(self) -> None:
        bound = self._settings.journal.max_open_hours * 3600.0
        while True:
            await asyncio.sleep(SWEEP_EVERY)
            self.sweep(time.monotonic())
            try:
                await self.journal.sweep(self._followed(), older_than=bound)
            except Exception:
                log.exception("journal: closing rows open longer than %g h failed", bound / 3600)

    def sweep(self, now: float) -> int:
        """Forget calls whose hangup we never saw: silent for STALE_AFTER, or silent for a
        minute and unknown to the tracker. Returns how many were dropped; the log names
        them (the first LOGGED_IDS of each PBX), for looking them up in the PBX's own logs."""
        active: set[str] | None = None
        if self._tracker is not None:
            with contextlib.suppress(Exception):
                active = {a.call for a in self._tracker.active_calls()}
        dropped: dict[str, list[str]] = {}  # PBX -> its calls, in the order they were first heard
        for call, state in list(self._calls.items()):
            idle = now - state.last_event
            gone = active is not None and call not in active and idle > SWEEP_EVERY
            if state.worker is None and (idle > STALE_AFTER or gone):
                del self._calls[call]
                dropped.setdefault(pbx_of(call, self._settings.pbx.id, self._settings.more_ami), []).append(call)
        several = bool(self._settings.more_ami)
        for pbx, calls in dropped.items():
            more = f" and {len(calls) - LOGGED_IDS} more" if len(calls) > LOGGED_IDS else ""
            log.info("forgot %d calls with no hangup seen: %s%s", len(calls), ", ".join(calls[:LOGGED_IDS]), more,
                     extra={"pbx": pbx} if several else None)
        return sum(len(calls) for calls in dropped.values())


PIPELINE: web.AppKey[Pipeline] = web.AppKey("pipeline", Pipeline)
