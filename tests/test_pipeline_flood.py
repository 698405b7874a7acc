"""A flood of arriving callers: bounded early lookups, one log line instead of thousands."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from callpop.logs import Throttle
from callpop.settings import Settings
from callpop.store.db import Database
from callpop.telephony.events import Arrival, Ringing
from tests.support.live import Recorder, StartLive, add_client, add_employee

NUMBER = "+79161234567"


async def test_a_burst_of_arrivals_starts_only_the_bounded_early_lookups(
        settings: Settings, db: Database, start_live: StartLive, caplog: pytest.LogCaptureFixture) -> None:
    bounded = settings.replace(ami=dataclasses.replace(settings.ami, early_lookups=3))
    rec = Recorder(lookup_delay=0.2)
    live = await start_live(bounded, store=rec.hooks())
    try:
        await add_employee(db, "anna", ["101"])
        await add_client(db, "Иван Петров", NUMBER)
        anna = await live.tab("anna")
        await anna.start()
        burst = [Arrival(f"b{i}", f"+7916{i:07d}") for i in range(5000)]
        live.pipeline.prefetch(burst)
        assert len(rec.lookups) <= 3 and live.pipeline.early_running == 3
        assert live.pipeline.early_skipped == 4997
        assert live.pipeline.active == 3  # skipped callers leave no state behind
        warnings = [r for r in caplog.records if "callers beyond that are looked up" in r.getMessage()]
        assert len(warnings) == 1
        # a skipped caller whose phone rings is still looked up and popped with the card
        live.pipeline.prefetch([Arrival("late", NUMBER)])
        await live.pipeline.handle([Ringing(call="late", direction="inbound", client=NUMBER, agent="101",
                                            caller_name=None, at=1.0)])
        pop = await anna.until("call.ringing")
        assert pop["call"] == "late" and pop["card"]["client"]["name"] == "Иван Петров"
        await live.pipeline.drain()
    finally:
        await live.close()
    assert live.pipeline.early_running == 0


async def test_failing_lookups_log_one_traceback_not_one_per_call(
        settings: Settings, db: Database, start_live: StartLive, caplog: pytest.LogCaptureFixture) -> None:
    rec = Recorder(fail_lookup=True)
    live = await start_live(settings, store=rec.hooks())
    try:
        await add_employee(db, "anna", ["101"])
        anna = await live.tab("anna")
        await anna.start()
        await live.pipeline.handle([Ringing(call=f"f{i}", direction="inbound", client=f"+7916{i:07d}",
                                            agent="101", caller_name=None, at=1.0) for i in range(50)])
        for _ in range(50):
            pop = await anna.until("call.ringing")
            assert pop["card"]["match"] == "error"
    finally:
        await live.close()
    failures = [r for r in caplog.records if "directory lookup failed" in r.getMessage()]
    assert len(rec.lookups) == 50
    assert len(failures) == 1 and failures[0].exc_info is not None


def test_throttle_reports_how_many_lines_it_held_back(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    throttle = Throttle(logging.getLogger("test.throttle"), interval=60.0, clock=lambda: now[0])
    written = [throttle.log(logging.WARNING, "db", "database down: %s", i) for i in range(100)]
    assert written.count(True) == 1 and throttle.held("db") == 99
    assert throttle.log(logging.WARNING, "ami", "another kind") is True  # keys never hide each other
    now[0] = 61.0
    assert throttle.log(logging.WARNING, "db", "database down: %s", 100) is True
    assert [r.getMessage() for r in caplog.records] == [
        "database down: 0", "another kind", "database down: 100 (and 99 more like it in the last 60 s)"]
