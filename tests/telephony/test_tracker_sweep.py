"""Channels that never hang up: the idle sweep forgets them, ends their calls at the last
message heard (end not seen), and the AMI pump runs it periodically in stream order."""

from __future__ import annotations

import asyncio

from callpop.telephony.ami_pump import AmiStats, EventPump, IdleSweep
from callpop.telephony.events import CallEvent, Ended
from callpop.telephony.tracker import CallTracker
from tests.support.captures import CONFIG, capture, messages, run

HOUR = 3600.0


def _stuck(name: str, until_event: str) -> tuple[CallTracker, float]:
    """The capture up to (and including) the first *until_event*: its Hangups never come."""
    tracker = CallTracker(CONFIG)
    msgs = messages(capture(name, "jsonl"))
    cut = next(i for i, (m, _) in enumerate(msgs) if m.get("Event") == until_event)
    run(msgs[: cut + 1], tracker)
    last = msgs[cut][1]
    assert last is not None
    return tracker, last


def test_a_talking_call_whose_hangup_never_came_ends_when_last_heard() -> None:
    tracker, last = _stuck("sip-01-incoming-answered", "BridgeEnter")
    assert tracker.sweep(last + HOUR - 1, HOUR) == []  # not idle long enough: kept
    assert tracker.active_calls()
    (ended,) = tracker.sweep(last + HOUR + 1, HOUR)
    assert isinstance(ended, Ended)
    assert (ended.outcome, ended.answered_by, ended.end_unseen) == ("answered", ("101",), True)
    assert ended.ended_at == last
    # talked at least until last heard, at most until the sweep found the channels gone
    assert [(t.agent, t.at_most is not None and t.at_most >= t.talk_seconds + HOUR) for t in ended.talks] == [
        ("101", True)]
    assert tracker.active_calls() == [] and not tracker.book.channels and not tracker.book.calls


def test_a_ringing_call_whose_hangup_never_came_has_an_unknown_outcome() -> None:
    tracker, last = _stuck("sip-03-caller-hangup-while-ringing", "DialState")
    events = tracker.sweep(last + 2 * HOUR, HOUR)
    (ended,) = [e for e in events if isinstance(e, Ended)]
    assert (ended.outcome, ended.end_unseen) == ("unknown", True)
    assert not tracker.book.channels


def test_events_without_a_handler_keep_a_quiet_call_alive() -> None:
    """RTCP reports (or dialplan VarSets) about a channel show it is still up."""
    tracker, last = _stuck("sip-01-incoming-answered", "BridgeEnter")
    for ch in list(tracker.book.channels.values()):
        tracker.feed({"Event": "RTCPSent", "Channel": ch.name, "Uniqueid": ch.uniqueid}, last + HOUR)
    assert tracker.sweep(last + HOUR + 10, HOUR) == []
    assert tracker.active_calls()


def test_sweep_releases_a_hundred_thousand_stuck_channels() -> None:
    tracker = CallTracker(CONFIG)
    for i in range(100_000):
        uid = f"1795000000.{i}"
        tracker.feed({"Event": "Newchannel", "Channel": f"PJSIP/carrier-{i:08x}", "Uniqueid": uid,
                      "Linkedid": uid, "ChannelStateDesc": "Ring", "CallerIDNum": "+79161234567"}, 1000.0)
    assert len(tracker.book.channels) == 100_000
    assert tracker.sweep(1000.0 + HOUR + 1, HOUR) == []  # never announced: nothing to report
    assert not tracker.book.channels and not tracker.book.calls


async def test_the_pump_runs_the_sweep_periodically_and_delivers_its_events() -> None:
    tracker = CallTracker(CONFIG)
    msgs = messages(capture("sip-01-incoming-answered", "jsonl"))
    cut = next(i for i, (m, _) in enumerate(msgs) if m.get("Event") == "BridgeEnter")
    last = msgs[cut][1]
    assert last is not None
    got: list[CallEvent] = []
    done = asyncio.Event()

    async def sink(events: object) -> None:
        got.extend(events)  # type: ignore[arg-type]
        if any(isinstance(e, Ended) for e in got):
            done.set()

    sweep = IdleSweep(lambda now: tracker.sweep_chunks(now, HOUR), 0.01, lambda: last + 2 * HOUR)
    stats = AmiStats()
    pump = EventPump(tracker, sink, stats, 10_000, sweep=sweep)
    pump.start()
    try:
        pump.enqueue([(m, t if t is not None else 0.0) for m, t in msgs[: cut + 1]])
        await asyncio.wait_for(done.wait(), 5)
    finally:
        await pump.stop()
    (ended,) = [e for e in got if isinstance(e, Ended)]
    assert ended.end_unseen and ended.ended_at == last and stats.sweeps >= 1
