"""Demo calls talk long enough to be KPI contacts, so a newcomer sees the earnings move.

The simulated PBX runs at 40x; the AMI connection's clock runs at the same pace, so the
tracker measures the talk time a real Asterisk would have shown.
"""

from __future__ import annotations

import asyncio
import random
import time

from sqlalchemy import select

from callpop.settings import Settings
from callpop.simulator.pbx import SimulatedPbx, demo_talk_seconds
from callpop.store.db import Database
from callpop.store.models import Contact
from callpop.telephony.connection import AmiConnection
from callpop.telephony.events import CallEvent, Ended
from tests.support.ami import Collector, ami_settings, running, tracker
from tests.support.live import Recorder, StartLive, add_client, add_employee

NUMBER = "+79161234567"
SPEED = 40.0


def _end_of(events: list[CallEvent], call: str) -> Ended | None:
    return next((e for e in events if isinstance(e, Ended) and e.call == call), None)


async def _ended_calls(talks: list[float | None]) -> tuple[list[Ended], list[CallEvent]]:
    """Place one answered call per talk time (None: the capture's own timing); returns the
    calls' Ended events and every call event, in the order the connection delivered them."""
    pbx = SimulatedPbx("callpop", "s3cret", ["101", "102"], speed=SPEED, rng_seed=5)
    port = await pbx.start()
    t0 = time.time()
    sink = Collector()
    conn = AmiConnection(ami_settings(port), tracker(), sink,
                         loop_clock=lambda: t0 + (time.time() - t0) * SPEED)
    ended: list[Ended] = []
    try:
        async with running(conn):
            for talk in talks:
                lid = await pbx.place_call("incoming_answered", client=NUMBER, agent="101", caller_name="Иван",
                                           talk_seconds=talk)
                await sink.wait_for(lambda ev, lid=lid: _end_of(ev, lid) is not None, 10)  # type: ignore[misc]
                end = _end_of(sink.events, lid)
                assert end is not None
                ended.append(end)
    finally:
        await pbx.stop()
    return ended, sink.events


async def test_a_40_second_demo_call_is_a_counted_contact_and_a_capture_length_one_is_not(
        settings: Settings, db: Database, start_live: StartLive) -> None:
    (long_call, short_call), events = await _ended_calls([40, None])
    assert long_call.talk_seconds >= 40
    assert short_call.talk_seconds < settings.kpi.min_talk_seconds

    live = await start_live(store=Recorder(real_journal=True).hooks())
    anna = await add_employee(db, "anna", ["101"])
    await add_client(db, "Иван Петров", NUMBER)  # a regular client
    tab = await live.tab("anna")
    await tab.start()
    await live.pipeline.handle(events)  # as the app's AMI connection would have
    changed = await tab.until("kpi_changed", wait=5)
    assert changed["employee_id"] == anna
    rows: list[tuple[int, bool]] = []
    for _ in range(100):  # the journal writer batches: the short call may land a moment later
        async with db.sessions() as session:
            rows = [(t, c) for t, c in (await session.execute(
                select(Contact.talk_seconds, Contact.counted).where(Contact.employee_id == anna)
                .order_by(Contact.talk_seconds))).all()]
        if len(rows) >= 2:
            break
        await asyncio.sleep(0.05)
    assert [(t >= 40, counted) for t, counted in rows] == [(False, False), (True, True)]


def test_demo_talk_times_are_mostly_long_enough_to_count() -> None:
    rng = random.Random(1)
    talks = [demo_talk_seconds(rng, 0.2) for _ in range(2000)]
    short = [t for t in talks if t < 30]
    assert 0.15 < len(short) / len(talks) < 0.25
    assert all(35 <= t <= 90 for t in talks if t >= 30)
    assert all(t >= 5 for t in short)
    assert all(demo_talk_seconds(rng, 0.0) >= 35 for _ in range(100))
