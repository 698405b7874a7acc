"""AmiConnection over real TCP: what an operator would notice at 3 a.m.

Split UTF-8, a failing handler, a frozen Asterisk, a dropped link in the middle of a call,
a daemon started in the middle of a call, MD5 login and a wrong secret.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import pytest

from callpop.simulator.pbx import SimulatedPbx
from callpop.telephony.amitext import AmiMessage
from callpop.telephony.connection import AmiConnection, AmiNotConnected
from callpop.telephony.events import Ended, Ringing
from tests.support.ami import (
    CaptureServer,
    Clock,
    Collector,
    DoneWatch,
    ami_settings,
    play,
    running,
    tracker,
    wait_until,
)
from tests.support.captures import expected
from tests.support.paths import FIXTURES

SIP = FIXTURES / "ami" / "pjsip"


@pytest.fixture
async def pbx() -> AsyncIterator[SimulatedPbx]:
    sim = SimulatedPbx("callpop", "s3cret", speed=4.0, rng_seed=7)
    await sim.start()
    yield sim
    await sim.stop()


def _port(sim: SimulatedPbx) -> int:
    assert sim._server is not None
    port: int = sim._server.sockets[0].getsockname()[1]
    return port


async def test_cyrillic_name_split_inside_a_character_arrives_intact() -> None:
    capture = SIP / "sip-09a-cid-cyrillic.ami"
    clock = Clock()
    server = CaptureServer(capture, clock)
    cut = server.body.index("Иван".encode()) + 3  # inside "в"
    assert 0x80 <= server.body[cut] < 0xC0
    clocks = [c for _, c in server.plan]
    server.plan = [(server.body[:cut], clocks[0]), (server.body[cut:], clocks[-1])]
    sink = Collector()
    await play(server, clock, DoneWatch(tracker()), sink)
    ringing = [e for e in sink.events if isinstance(e, Ringing)]
    assert ringing and ringing[0].caller_name == "Иван Петров"
    # two reads, two clocks: only the talk time differs from `callpop replay`
    strip = [{k: v for k, v in d.items() if k != "talk_seconds"} for d in sink.dicts()]
    assert strip == [{k: v for k, v in d.items() if k != "talk_seconds"} for d in expected("sip-09a-cid-cyrillic")]


class _Flaky:
    """The real tracker, except that it breaks on FullyBooted."""

    def __init__(self) -> None:
        self.inner = DoneWatch(tracker())
        self.done = self.inner.done

    def feed(self, message: AmiMessage, now: float | None = None) -> list:  # type: ignore[type-arg]
        if message.get("Event") == "FullyBooted":
            raise RuntimeError("boom")
        return self.inner.feed(message, now)


async def test_a_failing_handler_and_sink_are_logged_and_the_stream_goes_on(caplog: pytest.LogCaptureFixture
                                                                             ) -> None:
    clock = Clock()
    server = CaptureServer(SIP / "sip-01-incoming-answered.ami", clock)
    flaky = _Flaky()
    got: list[dict[str, object]] = []

    async def sink(events: object) -> None:
        for e in events:  # type: ignore[attr-defined]
            if e.event == "ringing" and not got:
                got.append({"failed": True})
                raise ValueError("sink down")
            got.append(e.as_dict())

    conn = await play(server, clock, flaky, sink)
    assert conn.stats.handler_errors == 1 and conn.stats.sink_errors == 1
    assert "tracker failed on this message" in caplog.text and "FullyBooted" in caplog.text
    assert "sink failed" in caplog.text
    assert [g.get("event") for g in got[1:]] == ["answered", "ended"]
    assert conn.stats.reconnects == 0


async def test_frozen_asterisk_is_noticed_and_the_connection_comes_back(pbx: SimulatedPbx,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    sink = Collector()
    conn = AmiConnection(ami_settings(_port(pbx), ping_interval=0.2, pong_timeout=0.2), tracker(), sink)
    async with running(conn):
        await wait_until(lambda: conn.stats.resyncs == 1, what="first resync")
        pbx.freeze()
        await wait_until(lambda: conn.state != "logged_in", what="watchdog")
        assert conn.stats.missed_pongs == 1  # one missed Pong is what dropped it, nothing else
        assert "no Pong within 0.2 s" in caplog.text
        await asyncio.sleep(0.3)
        pbx.unfreeze()
        await wait_until(lambda: conn.stats.resyncs == 2 and conn.state == "logged_in", what="re-login")
        assert conn.stats.reconnects == 1
        lid = await pbx.place_call("incoming_answered", client="+79161234567", agent="102")
        await sink.wait_for(lambda ev: any(isinstance(e, Ended) and e.call == lid for e in ev))
    assert "ami: lost (no Pong within 0.2 s)" in caplog.text
    assert "retrying in" in caplog.text


async def test_link_dropped_mid_call_resync_keeps_the_call_and_its_end_is_reported(pbx: SimulatedPbx) -> None:
    sink, calls = Collector(), tracker()
    conn = AmiConnection(ami_settings(_port(pbx)), calls, sink)
    async with running(conn):
        lid = await pbx.place_call("incoming_answered", client="+79161234567", agent="102")
        await sink.wait_for(lambda ev: [e.event for e in ev] == ["ringing", "answered"])
        await pbx.drop_clients()
        await wait_until(lambda: conn.stats.resyncs == 2, what="resync after reconnect")
        assert [(c.call, c.talking) for c in calls.active_calls()] == [(lid, ("102",))]
        await sink.wait_for(lambda ev: isinstance(ev[-1], Ended))
    ends = [e for e in sink.events if isinstance(e, Ended)]
    assert [(e.call, e.outcome, e.answered_by) for e in ends] == [(lid, "answered", ("102",))]
    assert [e.event for e in sink.events].count("answered") == 1
    assert conn.stats.reconnects == 1


async def test_each_listing_tells_when_it_was_asked_for(pbx: SimulatedPbx) -> None:
    """The journal's sweep after a listing closes only rows started before the listing was
    asked for (another callpop instance may have opened later ones): it needs that moment,
    at every login."""
    asked: list[float | None] = []
    before = time.time()
    conn = AmiConnection(ami_settings(_port(pbx)), tracker(), Collector(), on_resync=asked.append)
    async with running(conn):
        await wait_until(lambda: len(asked) == 1, what="first listing")
        await pbx.drop_clients()
        await wait_until(lambda: len(asked) == 2, what="listing after the reconnect")
    after = time.time()
    assert asked[0] is not None and asked[1] is not None
    assert before <= asked[0] < asked[1] <= after


async def test_daemon_started_in_the_middle_of_a_call_tracks_it_to_its_end(pbx: SimulatedPbx) -> None:
    lid = await pbx.place_call("incoming_answered", client="89161234567", agent="103", caller_name="Иван Петров")
    await wait_until(lambda: pbx._calls[lid].shown >= 1, what="call answered on the PBX")
    sink = Collector()
    conn = AmiConnection(ami_settings(_port(pbx)), tracker(), sink)
    async with running(conn):
        await sink.wait_for(lambda ev: any(isinstance(e, Ended) for e in ev))
    end = [e for e in sink.events if isinstance(e, Ended)]
    assert [(e.call, e.client, e.outcome, e.answered_by) for e in end] == [
        (lid, "+79161234567", "answered", ("103",))]


async def test_md5_login_with_the_events_the_tracker_needs(pbx: SimulatedPbx) -> None:
    conn = AmiConnection(ami_settings(_port(pbx)), tracker(), Collector())
    async with running(conn):
        pass
    assert pbx.logins == [("md5", True)]
    assert conn.state == "stopped"


async def test_wrong_secret_is_logged_clearly_retried_with_backoff_and_never_logged(
        pbx: SimulatedPbx, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    conn = AmiConnection(ami_settings(_port(pbx), secret="WrongHorse42", reconnect_min=0.02, reconnect_max=0.08),
                         tracker(), Collector())
    async with running(conn, login=False):
        await wait_until(lambda: len(pbx.logins) >= 5, what="retries")
    assert all(not ok for _, ok in pbx.logins)
    assert "login as 'callpop' refused" in caplog.text and "Authentication failed" in caplog.text
    delays = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert delays[:4] == ["ami: retrying in 0.02 s (attempt 1)", "ami: retrying in 0.04 s (attempt 2)",
                          "ami: retrying in 0.08 s (attempt 3)", "ami: retrying in 0.08 s (attempt 4)"]
    assert "WrongHorse42" not in caplog.text and "s3cret" not in caplog.text
    assert conn.stats.logins == 0


async def test_originate_needs_a_login_and_rejects_header_injection(pbx: SimulatedPbx) -> None:
    conn = AmiConnection(ami_settings(_port(pbx)), tracker(), Collector())
    with pytest.raises(AmiNotConnected, match="not logged in to Asterisk"):
        await conn.originate("PJSIP/101", "89161234567", "from-agents-sip")
    async with running(conn):
        with pytest.raises(ValueError, match="line breaks"):
            await conn.originate("PJSIP/101", "123\r\nAction: Logoff", "from-agents-sip")


async def test_stop_returns_at_once_even_while_asterisk_has_not_answered_the_login() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accepts, never answers: a PBX hung before the banner
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    conn = AmiConnection(ami_settings(server.sockets[0].getsockname()[1], ping_interval=30.0), tracker(),
                         Collector())
    async with running(conn, login=False):
        await wait_until(lambda: conn.state == "connected", what="TCP connect")
    # `running` gives stop() 5 s; a stop that waited for the login would wait forever here.
    assert conn.state == "stopped"
    server.close()


async def test_asterisk_restart_is_a_clean_reconnect(pbx: SimulatedPbx, caplog: pytest.LogCaptureFixture) -> None:
    conn = AmiConnection(ami_settings(_port(pbx)), tracker(), Collector())
    async with running(conn):
        await wait_until(lambda: conn.stats.resyncs == 1, what="first resync")
        await pbx.announce_shutdown()
        await wait_until(lambda: conn.stats.resyncs == 2 and conn.state == "logged_in", what="back after restart")
    assert "ami: lost (Asterisk is shutting down)" in caplog.text
    assert conn.stats.reconnects == 1 and conn.stats.missed_pongs == 0


async def test_a_slow_sink_builds_a_backlog_that_is_reported_never_dropped(caplog: pytest.LogCaptureFixture
                                                                            ) -> None:
    caplog.set_level(logging.INFO)
    clock = Clock()
    server = CaptureServer(SIP / "sip-10-burst-50.ami", clock)
    server.plan = [(server.body, server.plan[-1][1])]  # the whole burst in one write
    watch, got = DoneWatch(tracker()), Collector()

    async def slow_sink(events: object) -> None:
        await asyncio.sleep(0.002)
        await got(events)  # type: ignore[arg-type]

    conn = await play(server, clock, watch, slow_sink, within=20, queue_warn=500)
    assert conn.stats.queue_high_water > 500
    assert "messages waiting for the tracker (queue_warn=500)" in caplog.text and "nothing is dropped" in caplog.text
    assert "tracker caught up" in caplog.text
    assert len([e for e in got.events if isinstance(e, Ended)]) == 50
