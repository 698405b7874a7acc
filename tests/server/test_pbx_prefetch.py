"""The card lookups the dialplan's questions ask for wait until no question is being
answered, so they never delay an answer the PBX is waiting for, and still start
before the phone rings."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from callpop.server.pbx_prefetch import PrefetchPacer
from callpop.telephony.events import Arrival

NEVER = 3600.0  # a timer that does not fire during a test


class Started:
    """The pipeline's prefetch as the pacer sees it: which calls were started, in order."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.numbers: list[str] = []
        self.changed = asyncio.Event()

    def __call__(self, arrivals: Sequence[Arrival]) -> None:
        self.calls += [a.call for a in arrivals]
        self.numbers += [a.client for a in arrivals]
        self.changed.set()

    async def until(self, count: int) -> None:
        while len(self.calls) < count:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), 5.0)


def arrival(call: str, number: str = "+79161234567") -> Arrival:
    return Arrival(call, number)


async def test_the_route_answered_starts_the_lookup_once_no_question_is_in_flight() -> None:
    started = Started()
    pacer = PrefetchPacer(started, settle=NEVER, latest=NEVER)
    with pacer.question():  # another call's question, still being answered
        with pacer.question():
            pacer.asked(arrival("c1"), last=False)  # the name: the route follows
        with pacer.question():
            pacer.asked(arrival("c1"), last=True)  # the route: due, but a question waits
        assert started.calls == []
    assert started.calls == ["c1"]
    assert len(pacer) == 0


async def test_a_call_is_looked_up_once_whatever_it_is_asked() -> None:
    started = Started()
    pacer = PrefetchPacer(started, settle=NEVER, latest=NEVER)
    for call in ("c1", "c2"):
        with pacer.question():
            pacer.asked(arrival(call, f"+7916000000{call[-1]}"), last=False)
    with pacer.question():
        pacer.asked(arrival("c2", "+79160000009"), last=True)  # the dialplan changed the number
    with pacer.question():
        pacer.asked(arrival("c1", "+79160000001"), last=True)
    assert started.calls == ["c2", "c1"]
    assert started.numbers == ["+79160000009", "+79160000001"]


async def test_a_dialplan_that_asks_only_the_name_gets_its_lookup_after_settling() -> None:
    started = Started()
    pacer = PrefetchPacer(started, settle=0.001, latest=NEVER)
    with pacer.question():
        pacer.asked(arrival("c1"), last=False)
    assert started.calls == []  # not at the answer: the route may be asked next
    await started.until(1)
    assert started.calls == ["c1"] and pacer.started_late == 0


async def test_a_stream_of_questions_cannot_hold_a_lookup_back_past_the_latest() -> None:
    started = Started()
    pacer = PrefetchPacer(started, settle=0.0, latest=0.001)
    with pacer.question():  # a question that is never answered during the test
        with pacer.question():
            pacer.asked(arrival("c1"), last=True)
        await started.until(1)
        assert pacer.in_flight == 1
    assert started.calls == ["c1"] and pacer.started_late == 1


async def test_closing_forgets_what_was_held_back() -> None:
    started = Started()
    pacer = PrefetchPacer(started, settle=0.0, latest=0.0)
    with pacer.question():
        pacer.asked(arrival("c1"), last=False)
    pacer.close()
    await asyncio.sleep(0.01)  # past both timers
    assert started.calls == [] and len(pacer) == 0
