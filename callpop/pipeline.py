"""From call events to pops: tracker events in, one lookup per call, cards out to the hub.

Each call gets its own little worker: the events of one call are handled in order, while
different calls never wait for each other (a slow lookup for one caller does not delay the
next caller's pop). ``handle`` itself only queues, so the AMI reader that calls it is never
held up by the database.

Once per call: the number is looked up as soon as the caller reaches the PBX (the
tracker's ``Arrival`` hint, while the dialplan, an IVR or a queue runs) or else at the
first ringing, and the card is cached; a ring group ringing three phones, a second tab, a
transfer or a reconnecting browser all reuse it.
Internal calls (agent to agent) are journalled but never popped.

Journal: the call row is written at the first ringing (so the after-call form can link
promises and notes to ``call_id`` while the call is still on), closed at the end, then
the contacts for the KPI are logged and the managers whose counted contacts changed get
``kpi_changed``. Journal writes go through one batching writer (callpop/journal_writer.py),
so a hundred calls a second do not queue on SQLite's write lock; a lookup is bounded by a
timeout. A failure is logged with the call id and never stops the pipeline.

Every call message gets an id made of the PBX, the call, the agent, the kind and how many
of that kind this agent has had in this call (``main/1795818143.12/101/ringing/1``):
another callpop instance tracking the same PBX computes the same id for the same message,
so the hub delivers whichever copy comes first and drops the other (docs/websocket.md,
"Several instances").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from aiohttp import web

from callpop import cards
from callpop.cards import LookupResult
from callpop.journal_writer import JournalWriter
from callpop.logs import CALL_ID, Throttle
from callpop.push import Hub
from callpop.settings import Settings
from callpop.store_hooks import StoreHooks
from callpop.telephony.events import (
    ActiveCall,
    Answered,
    Arrival,
    CallEvent,
    Direction,
    Ended,
    Ringing,
    RingStopped,
    Transferred,
)

if TYPE_CHECKING:
    from callpop.store.db import Database

__all__ = ["PIPELINE", "ActiveCallSource", "CallState", "Pipeline", "StoreHooks"]

log = logging.getLogger(__name__)

DB_TIMEOUT = 5.0         # seconds one lookup may take
WARM_UP_NUMBER = "+74950000000"  # a well-formed number looked up once at start (see warm_up)
STALE_AFTER = 6 * 3600.0  # a call with no event for this long is forgotten (missed hangup)
SWEEP_EVERY = 60.0

AgentState = Literal["ringing", "answered"]
class ActiveCallSource(Protocol):
    """What the pipeline needs of the tracker: the calls it believes are on."""

    def active_calls(self) -> list[ActiveCall]: ...


@dataclass(eq=False)
class CallState:
    """What the pipeline knows and has published about one call."""

    call: str
    direction: Direction | None = None
    number: str | None = None
    caller_name: str | None = None
    card: dict[str, Any] | None = None
    lookup_failed: bool = False
    client_id: int | None = None
    db_id: int | None = None
    agents: dict[str, AgentState] = field(default_factory=dict)
    since: dict[str, float | None] = field(default_factory=dict)  # agent -> when its state began
    involved: set[str] = field(default_factory=set)
    first_seen: float = field(default_factory=time.monotonic)
    last_event: float = field(default_factory=time.monotonic)
    early: tuple[str, asyncio.Task[tuple[LookupResult | None, bool]]] | None = None  # number, lookup
    inbox: asyncio.Queue[CallEvent] = field(default_factory=asyncio.Queue)
    sent: Counter[tuple[str, str]] = field(default_factory=Counter)  # (agent, kind) -> messages so far
    worker: asyncio.Task[None] | None = None
    ended: bool = False

    @property
    def internal(self) -> bool:
        return self.direction == "internal"


class Pipeline:
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

    async def warm_up(self) -> None:
        """One lookup at start, so the first caller of the day does not pay for opening the
        reader connection and compiling the statements (first pop ~9 ms more on SQLite at
        1M clients, bench/README.md "Pop latency"). Not counted in ``lookups``; a failure
        only means the first pop pays that cost."""
        try:
            async with asyncio.timeout(DB_TIMEOUT), self._db.sessions() as session:
                await self._store.lookup(session, WARM_UP_NUMBER, self._settings)
        except Exception as exc:
            log.debug("lookup warm-up failed (%s): the first pop pays for it", type(exc).__name__)

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

    def prefetch(self, arrivals: Sequence[Arrival]) -> None:
        """The AMI connection's hint sink: a caller reached the PBX, no phone rings yet.
        Start the lookup now; the first ringing uses it if the number is still the same.

        At most ``[ami] early_lookups`` run at once: beyond that a caller is left to the
        ringing's lookup, so a flood of arrivals (or a PBX replaying thousands of channels)
        costs neither memory nor database connections nor a traceback per caller."""
        for arrival in arrivals:
            state = self._calls.get(arrival.call)
            if state is not None and (state.card is not None or state.early is not None):
                continue
            if self.early_running >= self._settings.ami.early_lookups:
                self.early_skipped += 1
                self._throttle.log(logging.WARNING, "early-skipped",
                                   "%d callers arriving at once (early_lookups=%d): callers beyond that are "
                                   "looked up when a phone rings (%d skipped so far)",
                                   self.early_running, self._settings.ami.early_lookups, self.early_skipped)
                continue
            if state is None:
                state = self._calls[arrival.call] = CallState(call=arrival.call)
            self.early_running += 1
            task = asyncio.create_task(self._lookup(state.call, arrival.client), name=f"lookup-{arrival.call}")
            task.add_done_callback(self._early_done)
            state.early = (arrival.client, task)

    def _early_done(self, _task: asyncio.Task[tuple[LookupResult | None, bool]]) -> None:
        self.early_running -= 1

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

    # --- cards --------------------------------------------------------------------------

    async def _card(self, state: CallState) -> dict[str, Any]:
        """The call's card, looked up on first need (or at the caller's arrival) and then reused."""
        if state.card is not None and not state.lookup_failed:
            return state.card
        lookup: LookupResult | None = None
        failed = False
        early, state.early = state.early, None
        reuse = early is not None and early[0] == state.number
        if early is not None and not reuse:
            early[1].cancel()  # the dialplan changed the caller ID: that answer is not wanted
        if not cards.number_json(state.number, self._settings.phones)["withheld"]:
            if early is not None and reuse:
                lookup, failed = await early[1]
            if not reuse or failed:  # no early lookup, another number, or it failed: ask now
                lookup, failed = await self._lookup(state.call, state.number or "")
        assert state.direction is not None
        state.card = cards.build_card(state.call, state.direction, state.number, state.caller_name,
                                      lookup, self._settings.phones, failed=failed)
        state.lookup_failed = failed
        if lookup is not None and len(lookup.matches) == 1:
            state.client_id = cards.client_id_of(lookup.matches[0])
        return state.card

    async def _lookup(self, call: str, number: str) -> tuple[LookupResult | None, bool]:
        """The directory's answer for *number*, and whether the lookup failed."""
        self.lookups += 1
        CALL_ID.set(call)  # an early lookup runs in its own task; in the worker it is already set
        try:
            async with asyncio.timeout(DB_TIMEOUT), self._db.sessions() as session:
                return await self._store.lookup(session, number, self._settings), False
        except Exception:
            self._throttle.log(logging.ERROR, "lookup-failed", "call %s: directory lookup failed; popping the "
                               "number alone", call, exc_info=True)
            return None, True

    async def _card_for_unknown(self, state: CallState) -> dict[str, Any] | None:
        """The card for a call whose ringing we never saw (daemon restarted mid-call):
        the tracker's snapshot says who is calling."""
        if state.card is not None and not state.lookup_failed:
            return state.card
        if state.direction is None and self._tracker is not None:
            for active in self._tracker.active_calls():
                if active.call == state.call:
                    state.direction, state.number, state.caller_name = (
                        active.direction, active.client, active.caller_name)
                    break
        if state.direction is None or state.internal:
            return None
        return await self._card(state)

    async def card_for(self, call: str, direction: Direction, number: str | None,
                       caller_name: str | None) -> dict[str, Any]:
        """The card of a call another instance relayed without one (too big for a
        notification): this instance's own card when it follows the call, else a lookup."""
        state = self._calls.get(call)
        if state is not None and state.card is not None and not state.lookup_failed:
            return state.card
        lookup: LookupResult | None = None
        failed = False
        if not cards.number_json(number, self._settings.phones)["withheld"]:
            lookup, failed = await self._lookup(call, number or "")
        return cards.build_card(call, direction, number, caller_name, lookup, self._settings.phones, failed=failed)

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

    # --- the PBX link -------------------------------------------------------------------

    def pbx_lost(self, pbx: str = "") -> None:
        """The AMI connection to *pbx* ("" the first PBX, else its ``[ami.NAME]``) dropped:
        every tab is told that what it shows of that PBX's calls in progress may be stale,
        until its resynchronisation puts it right. The other PBXs' calls are not concerned.

        Unless another callpop instance still follows that PBX: the tabs here keep getting
        its pops (callpop/fanout.py), so they are told only if it stops following it too."""
        followers = self._followers(pbx)
        self._links_down[pbx] = not followers
        if followers:
            log.warning("PBX %s: link lost here; instance %s still follows it, the desks here keep popping",
                        pbx or self._settings.pbx.id, ",".join(followers))
        else:
            self._hub.tell_all(self._pbx_status(pbx, connected=False))
        self._hub.presence_changed()

    def _followers(self, pbx: str) -> list[str]:
        return self.peers_follow(pbx or self._settings.pbx.id) if self.peers_follow is not None else []

    def peers_changed(self) -> None:
        """The other instances' PBX links changed: for each PBX whose link is down here,
        tell the tabs whether any instance still follows it."""
        for pbx, told in list(self._links_down.items()):
            followers = self._followers(pbx)
            if told and followers:
                log.info("PBX %s: instance %s follows it again; the desks here pop from it",
                         pbx or self._settings.pbx.id, ",".join(followers))
                self._hub.tell_all(self._pbx_status(pbx, connected=True))
            elif not told and not followers:
                log.warning("PBX %s: no instance follows it any more (its link is down here too)",
                            pbx or self._settings.pbx.id)
                self._hub.tell_all(self._pbx_status(pbx, connected=False))
            self._links_down[pbx] = not followers

    def resynced(self, pbx: str = "", asked_at: float | None = None) -> None:
        """A CoreShowChannels listing of *pbx* ("" the first PBX, else its ``[ami.NAME]``),
        asked for at *asked_at* (epoch s), was applied: tabs get a fresh snapshot, and that
        PBX's journal rows that no call in progress explains (the call ended while callpop
        or its PBX link was down) are closed, never left open.

        Only rows started before the listing was asked for: a call that started after it
        is followed from its own events, which may still be on their way here while
        another callpop instance on the same PBX has already opened its row."""
        self._links_down.pop(pbx, None)
        self._hub.presence_changed()
        self._hub.tell_all(self._pbx_status(pbx, connected=True))
        self._hub.resend_snapshots()
        task = asyncio.create_task(self.journal.sweep(self._followed(), scope=pbx, before=asked_at),
                                   name="journal-resync-sweep")
        self._resync_sweeps.add(task)
        task.add_done_callback(self._resync_sweeps.discard)

    def _pbx_status(self, pbx: str, *, connected: bool) -> dict[str, Any]:
        """``pbx.status`` (docs/websocket.md): the PBX's id and the prefix of its call ids
        ("" for the first PBX's plain Linkedids, ``NAME:`` for another's)."""
        return {"type": "pbx.status", "pbx": pbx or self._settings.pbx.id, "calls": f"{pbx}:" if pbx else "",
                "connected": connected}

    def _followed(self) -> set[str]:
        """Call keys still followed: the tracker's calls and those with events in flight here."""
        live = {call for call, state in self._calls.items() if not state.ended or state.worker is not None}
        if self._tracker is not None:
            with contextlib.suppress(Exception):
                live.update(a.call for a in self._tracker.active_calls())
        return live

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
        minute and unknown to the tracker. Returns how many were dropped."""
        active: set[str] | None = None
        if self._tracker is not None:
            with contextlib.suppress(Exception):
                active = {a.call for a in self._tracker.active_calls()}
        dropped = 0
        for call, state in list(self._calls.items()):
            idle = now - state.last_event
            gone = active is not None and call not in active and idle > SWEEP_EVERY
            if state.worker is None and (idle > STALE_AFTER or gone):
                del self._calls[call]
                dropped += 1
        if dropped:
            log.info("forgot %d calls with no hangup seen", dropped)
        return dropped


PIPELINE: web.AppKey[Pipeline] = web.AppKey("pipeline", Pipeline)
