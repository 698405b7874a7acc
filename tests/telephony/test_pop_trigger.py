"""When the pop goes out: a phone rings (and its card is pushed) on the DialBegin that
dials it, not on a later Newstate Ringing or DialState; bench/pop_latency.py measures
from the DialBegin bytes, so a later trigger would be a systematic delay in every pop."""

from __future__ import annotations

import pytest

from callpop.telephony.events import Ringing
from callpop.telephony.tracker import CallTracker
from tests.support.captures import CONFIG, capture, messages

INBOUND = ["sip-01-incoming-answered", "sip-02-incoming-noanswer", "sip-03-caller-hangup-while-ringing",
           "sip-04-ring-group"]


@pytest.mark.parametrize("name", INBOUND)
def test_ringing_is_emitted_by_the_dialbegin_of_that_phone(name: str) -> None:
    tracker = CallTracker(CONFIG)
    triggers: list[tuple[str, str, str]] = []
    ringing_reported: set[str] = set()  # channels the PBX already said were Ringing
    for message, clock in messages(capture(name, "ami")):
        if message.get("Event") == "Newstate" and message.get("ChannelStateDesc") == "Ringing":
            ringing_reported.add(str(message.get("Channel")))
        for event in tracker.feed(message, clock):
            if isinstance(event, Ringing):
                dest = str(message.get("DestChannel", ""))
                triggers.append((event.agent, str(message.get("Event")), dest))
                assert dest not in ringing_reported, f"{event.agent} rang after its phone reported Ringing"
    assert triggers, f"{name}: no ringing at all"
    for agent, trigger, dest in triggers:
        assert trigger == "DialBegin", f"{name}: {agent} rang on {trigger}, not on its DialBegin"
        assert agent in dest or dest.startswith("Local/"), f"{name}: {agent} rang on the dial of {dest}"


ARRIVES = [*INBOUND, "sip-05-queue-answered", "sip-05b-queue-abandoned", "sip-09a-cid-cyrillic",
           "sip-09f-cid-8-national", "sip-09g-cid-007-intl"]


@pytest.mark.parametrize("name", ARRIVES)
def test_an_inbound_call_arrives_before_any_phone_rings(name: str) -> None:
    """The trunk's Newchannel names the caller: one Arrival per call, for the number the
    ringing will carry, before the first DialBegin (so the lookup can start early)."""
    tracker = CallTracker(CONFIG)
    arrivals: dict[str, str] = {}
    rang: dict[str, str] = {}
    for message, clock in messages(capture(name, "ami")):
        events = tracker.feed(message, clock)
        for arrival in tracker.arrivals:
            assert message.get("Event") == "Newchannel"
            assert arrival.call not in arrivals, "a second arrival for one call"
            assert arrival.call not in rang, "arrived after it rang"
            arrivals[arrival.call] = arrival.client
        for event in events:
            if isinstance(event, Ringing):
                rang.setdefault(event.call, event.client or "")
    assert rang, f"{name}: no ringing at all"
    for call, client in rang.items():
        assert arrivals.get(call) == client, f"{name}: call {call} rang for {client} without arriving first"


@pytest.mark.parametrize("name", ["sip-08-outbound-call", "sip-08b-click-to-call", "sip-09c-cid-anonymous",
                                  "sip-09d-cid-empty", "sip-09e-cid-prohibited", "sip-09j-cid-short"])
def test_no_arrival_for_our_own_calls_or_a_caller_without_a_number(name: str) -> None:
    """An agent dialling out, an Originate, a withheld or a short caller: nothing to look up early."""
    tracker = CallTracker(CONFIG)
    for message, clock in messages(capture(name, "ami")):
        tracker.feed(message, clock)
        assert tracker.arrivals == [], f"{name}: arrival on {message.get('Event')} {message.get('Channel')}"


async def test_the_arrival_reaches_the_prefetch_before_the_ringing_reaches_the_sink() -> None:
    """Over TCP through panoramisk (the queue capture, cut into random chunks): the AMI
    connection hands the arrival to its prefetch as soon as the trunk's Newchannel is read,
    before the first call event of that call is delivered."""
    from callpop.telephony.events import Arrival, CallEvent
    from tests.support.ami import CaptureServer, Clock, DoneWatch, play, tracker

    order: list[tuple[str, str, str]] = []

    def prefetch(arrivals: list[Arrival]) -> None:
        order.extend(("arrival", a.call, a.client) for a in arrivals)

    async def sink(events: list[CallEvent]) -> None:
        order.extend((e.event, e.call, getattr(e, "client", "") or "") for e in events)

    clock = Clock()
    server = CaptureServer(capture("sip-05-queue-answered", "ami"), clock, seed=5)
    conn = await play(server, clock, DoneWatch(tracker()), sink, prefetch=prefetch)  # type: ignore[arg-type]
    assert conn.stats.handler_errors == 0
    assert order[0][0] == "arrival", order[:3]
    assert order[1][0] == "ringing" and order[1][1:] == order[0][1:]
    assert [o for o in order if o[0] == "arrival"] == [order[0]]
