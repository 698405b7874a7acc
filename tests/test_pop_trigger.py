"""When the pop goes out: a phone rings (and its card is pushed) on the DialBegin that
dials it, not on a later Newstate Ringing or DialState; bench/pop_latency.py measures
from the DialBegin bytes, so a later trigger would be a systematic delay in every pop."""

from __future__ import annotations

import pytest
from tracker_support import CONFIG, capture, messages

from callpop.telephony.events import Ringing
from callpop.telephony.tracker import CallTracker

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
