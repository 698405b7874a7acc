"""The pipeline's lookups: who is calling, asked once per call, as early as possible.

Once per call: the number is looked up as soon as the caller reaches the PBX (the
tracker's ``Arrival`` hint, while the dialplan, an IVR or a queue runs) or else at the
first ringing, and the card is cached; a ring group ringing three phones, a second tab, a
transfer or a reconnecting browser all reuse it. A lookup is bounded by a timeout; a
failed one pops the number alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from callpop import cards
from callpop.cards import LookupResult
from callpop.logs import CALL_ID, Throttle
from callpop.pipeline_state import ActiveCallSource, CallState
from callpop.settings import Settings
from callpop.store_hooks import StoreHooks
from callpop.telephony.events import Arrival, Direction

if TYPE_CHECKING:
    from callpop.store.db import Database

__all__ = ["DB_TIMEOUT", "CallLookups"]

log = logging.getLogger("callpop.pipeline")

DB_TIMEOUT = 5.0         # seconds one lookup may take
WARM_UP_NUMBER = "+74950000000"  # a well-formed number looked up once at start (see warm_up)


class CallLookups:
    """The lookup half of :class:`callpop.pipeline.Pipeline`: early lookups at a caller's
    arrival, the card of each call, and the cards other instances relay without one."""

    _settings: Settings
    _db: Database
    _store: StoreHooks
    _tracker: ActiveCallSource | None
    _calls: dict[str, CallState]
    _throttle: Throttle
    lookups: int
    early_running: int
    early_skipped: int

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

    def prefetch(self, arrivals: Sequence[Arrival]) -> None:
        """The AMI connection's hint sink: a caller reached the PBX, no phone rings yet.
        Start the lookup now; the first ringing uses it if the number is still the same.

        At most ``[ami] early_lookups`` run at once: beyond that a caller is left to the
        ringing's lookup, so a flood of arrivals (or a PBX replaying thousands of channels)
        costs neither memory nor database connections nor a traceback per caller.

        A hint for a call whose events are already being handled (the dialplan's lookup,
        held back while questions were answered, comes after the phone started ringing)
        adds nothing: the ringing looks the caller up itself, once."""
        for arrival in arrivals:
            state = self._calls.get(arrival.call)
            if state is not None and (state.card is not None or state.early is not None
                                      or state.direction is not None or state.worker is not None):
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
