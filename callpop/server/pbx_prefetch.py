"""When the card lookup a dialplan question asks for runs: after the questions, never beside one.

A question with ``call=`` starts the lookup of the card the pop will show (server/pbx.py),
so the pop that follows the routing is warm. That lookup is five statements and the
card's objects: about 1 ms of CPU on SQLite and 3-4 ms on PostgreSQL at 1M clients
(bench/README.md, "Dialplan questions"), on the one event loop (and its GIL) that
answers the PBX. Started as soon as the name was answered, it ran while the same call's
route question, asked a millisecond later, waited for it, and while other calls'
questions came in. The phone it warms rings only once the dialplan has its answers and
has dialled, tens to hundreds of milliseconds later, so the lookup waits:

* until the call's route question (the dialplan's last) is answered, or ``SETTLE``
  seconds after the call's first question (a dialplan that asks only the name);
* then until no question is being answered: it starts the moment the last one in
  flight has been sent;
* but never later than ``LATEST`` seconds after the call's first question, so a steady
  stream of questions cannot starve it.

A phone that rings before the lookup started simply gets the pipeline's own lookup
(the pipeline never looks a call up twice).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from aiohttp import web

from callpop.telephony.events import Arrival

__all__ = ["LATEST", "PREFETCH_PACER", "SETTLE", "PrefetchPacer"]

SETTLE = 0.02   # s after a call's first question: its route question has come by then, if any
LATEST = 0.05   # s after a call's first question: start even while questions are in flight


@dataclass(eq=False)
class _Pending:
    arrival: Arrival
    due: bool = False
    timers: list[asyncio.TimerHandle] = field(default_factory=list)


class PrefetchPacer:
    """Holds the dialplan's card lookups back while questions are being answered.

    ``start`` is the pipeline's ``prefetch``. Handlers answer inside ``question()`` and
    call ``asked`` once their answer is sent."""

    def __init__(self, start: Callable[[Sequence[Arrival]], None], *, settle: float = SETTLE,
                 latest: float = LATEST) -> None:
        self._start = start
        self._settle = settle
        self._latest = latest
        self._pending: dict[str, _Pending] = {}
        self.in_flight = 0
        self.started = 0
        self.started_late = 0  # started at LATEST while questions were still in flight

    @contextmanager
    def question(self) -> Iterator[None]:
        """Around answering one question: no held-back lookup starts meanwhile."""
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                for call in [c for c, p in self._pending.items() if p.due]:
                    self._go(call)

    def asked(self, arrival: Arrival, *, last: bool) -> None:
        """A question about ``arrival.call`` was answered; *last*: it was the route, the
        dialplan's last question, so the lookup is due now."""
        pending = self._pending.get(arrival.call)
        if pending is None:
            pending = self._pending[arrival.call] = _Pending(arrival)
            loop = asyncio.get_running_loop()
            pending.timers = [loop.call_later(self._settle, self._settled, arrival.call),
                              loop.call_later(self._latest, self._overdue, arrival.call)]
        else:
            pending.arrival = arrival  # the number the dialplan asked about last
        if last:
            pending.due = True
            if self.in_flight == 0:
                self._go(arrival.call)

    def _settled(self, call: str) -> None:
        pending = self._pending.get(call)
        if pending is not None:
            pending.due = True
            if self.in_flight == 0:
                self._go(call)

    def _overdue(self, call: str) -> None:
        if call in self._pending:
            self.started_late += 1
            self._go(call)

    def _go(self, call: str) -> None:
        pending = self._pending.pop(call)
        for timer in pending.timers:
            timer.cancel()
        self.started += 1
        self._start([pending.arrival])

    def close(self) -> None:
        """Forget what is held back (the application stops)."""
        for pending in self._pending.values():
            for timer in pending.timers:
                timer.cancel()
        self._pending.clear()

    def __len__(self) -> int:
        return len(self._pending)


PREFETCH_PACER: web.AppKey[PrefetchPacer] = web.AppKey("pbx_prefetch_pacer", PrefetchPacer)
