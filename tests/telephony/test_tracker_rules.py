"""The tracker's rules on small hand-written message sequences: who is an agent, Local
pairs walked to the phone, a silent Linkedid change, malformed messages."""

from __future__ import annotations

from typing import Any

import pytest

from callpop.settings_file import settings_from_mapping
from callpop.telephony.channels import device_of
from callpop.telephony.events import Ended
from callpop.telephony.tracker import CallTracker, TrackerConfig
from tests.support.captures import CONFIG, dicts

CLIENT = "+79161234567"


def chan(name: str, uid: str, linkedid: str, state: str, num: str = "<unknown>") -> dict[str, str]:
    return {"Channel": name, "ChannelStateDesc": state, "CallerIDNum": num, "CallerIDName": "<unknown>",
            "Exten": "s", "Uniqueid": uid, "Linkedid": linkedid}


def dest(block: dict[str, str]) -> dict[str, str]:
    return {"Dest" + k: v for k, v in block.items()}


def ev(event: str, *blocks: dict[str, str], **extra: str) -> dict[str, str]:
    message = {"Event": event}
    for block in blocks:
        message.update(block)
    message.update(extra)
    return message


def feed_all(tracker: CallTracker, timed: list[tuple[float, dict[str, Any]]]) -> list[dict[str, Any]]:
    out = []
    for t, message in timed:
        out.extend(tracker.feed(message, 1_800_000_000.0 + t))
    return dicts(out)


@pytest.mark.parametrize(("channel", "device"), [
    ("PJSIP/101-0000000a", "PJSIP/101"),
    ("Local/101@agent-phone-0000000c;1", "Local/101@agent-phone"),
    ("SIP/150010002-00000029", "SIP/150010002"),
    ("Local/ID12@osvpi_route_phoneaccount-00000022;1<ZOMBIE>", "Local/ID12@osvpi_route_phoneaccount"),
    ("PJSIP/carrier", "PJSIP/carrier"),
])
def test_device_of_channel(channel: str, device: str) -> None:
    assert device_of(channel) == device


def test_agent_rule_settings_and_default() -> None:
    settings = settings_from_mapping({"agents": {"SIP/150010002": "102"},
                                      "pbx": {"trunk_devices": ["PJSIP/999"]}})
    tracker = CallTracker(TrackerConfig.from_settings(settings))
    assert tracker.agent_for_device("PJSIP/101-00000001") == "101"
    assert tracker.agent_for_device("Local/101@agent-phone-0000000c;1") == "101"
    assert tracker.agent_for_device("SIP/150010002-00000029") == "102"
    assert tracker.agent_for_device("PJSIP/999-00000001") is None  # listed as a trunk
    assert tracker.agent_for_device("PJSIP/carrier-00000000") is None
    assert tracker.agent_for_device("Local/74951112201@from-pstn-00000000;2") is None  # 11 digits


def queue_via_local_member(outcome: str) -> list[tuple[float, dict[str, str]]]:
    """A queue whose member is ``Local/s@member-q`` (nobody's device): its ``;2`` dials
    PJSIP/101. *outcome*: "timeout" (the queue gives up on the member) or "abandon"."""
    trunk = chan("PJSIP/carrier-00000001", "1.1", "1.1", "Ring", CLIENT)
    one = chan("Local/s@member-q-00000002;1", "1.2", "1.1", "Down")
    two = chan("Local/s@member-q-00000002;2", "1.3", "1.1", "Ring", CLIENT)
    phone = chan("PJSIP/101-00000003", "1.4", "1.1", "Down", "101")
    steps = [
        (0.0, ev("Newchannel", trunk)),
        (0.1, ev("Newchannel", one)), (0.1, ev("Newchannel", two)),
        (0.2, ev("AgentCalled", trunk, dest(one), Interface="Local/s@member-q", MemberName="Manager 101")),
        (0.2, ev("DialBegin", trunk, dest(one), DialString="Local/s@member-q")),
        (0.3, ev("Newchannel", phone)),
        (0.3, ev("DialBegin", two, dest(phone), DialString="101")),
        (0.4, ev("Newstate", {**phone, "ChannelStateDesc": "Ringing"})),
    ]
    if outcome == "timeout":
        steps.append((15.0, ev("AgentRingNoAnswer", trunk, dest(one), RingTime="15000")))
        steps.append((15.0, ev("DialEnd", trunk, dest(one), DialStatus="NOANSWER")))
    else:
        steps.append((5.0, ev("HangupRequest", trunk, Cause="16")))
        steps.append((5.0, ev("DialEnd", trunk, dest(one), DialStatus="CANCEL")))
    # the member's Local pair is torn down, which cancels the Dial to the phone
    steps += [(15.1, ev("HangupRequest", two, Cause="16")),
              (15.1, ev("DialEnd", two, dest(phone), DialStatus="CANCEL")),
              (15.1, ev("Hangup", {**phone, "ChannelStateDesc": "Ringing"}, Cause="0")),
              (15.1, ev("Hangup", two, Cause="0")), (15.1, ev("Hangup", one, Cause="0")),
              (20.0, ev("Hangup", trunk, Cause="16"))]
    return steps


@pytest.mark.parametrize(("outcome", "reason"), [("timeout", "no_answer"), ("abandon", "caller_hangup")])
def test_local_member_is_walked_to_the_phone(outcome: str, reason: str) -> None:
    events = feed_all(CallTracker(CONFIG), queue_via_local_member(outcome))
    assert events == [
        {"event": "ringing", "call": "1.1", "direction": "inbound", "client": CLIENT, "agent": "101"},
        {"event": "ring_stopped", "call": "1.1", "agent": "101", "reason": reason},
        {"event": "ended", "call": "1.1", "direction": "inbound", "client": CLIENT, "outcome": "missed",
         "answered_by": [], "talk_seconds": 0},
    ]


def test_silent_linkedid_change_moves_an_agent_into_the_older_call() -> None:
    """102 picks up (or is bridged into) the client's call: its channel, from a call of its
    own, shows the client's Linkedid on its next event. 101, still ringing, lost the race."""
    trunk = chan("PJSIP/carrier-00000001", "5.1", "5.1", "Ring", CLIENT)
    p101 = chan("PJSIP/101-00000002", "5.2", "5.1", "Down", "101")
    p102 = chan("PJSIP/102-00000003", "7.3", "7.3", "Ring", "102")
    steps = [
        (0.0, ev("Newchannel", trunk)), (0.0, ev("Newchannel", p101)),
        (0.1, ev("DialBegin", trunk, dest(p101), DialString="101")),
        (0.2, ev("Newchannel", p102)),  # 102 dials the pickup code: a call of its own, no dial
        (2.0, ev("Newstate", {**p102, "ChannelStateDesc": "Up"})),
        (2.1, ev("BridgeEnter", {**p102, "ChannelStateDesc": "Up", "Linkedid": "5.1"}, BridgeUniqueid="b")),
        (2.1, ev("DialEnd", trunk, dest(p101), DialStatus="CANCEL")),
        (2.1, ev("Hangup", {**p101, "ChannelStateDesc": "Ringing"}, Cause="26")),
        (9.1, ev("Hangup", trunk, Cause="16")),
        (9.1, ev("Hangup", {**p102, "Linkedid": "5.1"}, Cause="16")),
    ]
    tracker = CallTracker(CONFIG)
    events = feed_all(tracker, steps)
    assert events == [
        {"event": "ringing", "call": "5.1", "direction": "inbound", "client": CLIENT, "agent": "101"},
        {"event": "answered", "call": "5.1", "agent": "102"},
        {"event": "ring_stopped", "call": "5.1", "agent": "101", "reason": "answered_elsewhere"},
        {"event": "ended", "call": "5.1", "direction": "inbound", "client": CLIENT, "outcome": "answered",
         "answered_by": ["102"], "talk_seconds": 7},
    ]
    assert tracker.active_calls() == []


def test_outbound_call_the_client_does_not_answer() -> None:
    phone = chan("PJSIP/101-00000001", "3.1", "3.1", "Ring", "101")
    trunk = chan("PJSIP/carrier-00000002", "3.2", "3.1", "Down", "84950001122")
    steps = [(0.0, ev("Newchannel", phone)), (0.0, ev("Newchannel", trunk)),
             (0.1, ev("DialBegin", phone, dest(trunk), DialString="74950001122@carrier")),
             (4.0, ev("DialEnd", phone, dest(trunk), DialStatus="BUSY")),
             (4.0, ev("Hangup", trunk, Cause="17")), (4.1, ev("Hangup", phone, Cause="17"))]
    tracker = CallTracker(CONFIG)
    events = [e for t, m in steps for e in tracker.feed(m, t)]
    assert dicts(events)[1:] == [
        {"event": "ring_stopped", "call": "3.1", "agent": "101", "reason": "busy"},
        {"event": "ended", "call": "3.1", "direction": "outbound", "client": "+74950001122",
         "outcome": "missed", "answered_by": [], "talk_seconds": 0}]
    assert isinstance(events[-1], Ended) and events[-1].caller_name is None


def test_malformed_messages_are_counted_not_raised() -> None:
    tracker = CallTracker(CONFIG)
    assert tracker.feed({"Event": "Hangup"}) == []
    assert tracker.feed({"Event": "Newstate", "Uniqueid": ["1.1", "1.2"], "Channel": "PJSIP/101-1"}) == []
    assert tracker.feed({"Event": "DialBegin", "Channel": "PJSIP/carrier-1"}) == []
    assert tracker.malformed == 3
    assert tracker.feed({"Response": "Success", "ActionID": "x"}) == []
    assert tracker.feed({"Event": "VarSet", "Variable": ["a", "b"]}) == []
    assert tracker.malformed == 3


def test_click_to_call_through_a_local_channel_is_an_outbound_call() -> None:
    """A CRM originates ``Local/101@from-internal``: its ``;2`` rings 101's own phone (not a
    call *to* 101, nothing is shown), then the ``;1`` dials the client: outbound for 101."""
    one = chan("Local/101@from-internal-00000001;1", "8.1", "8.1", "Down", "101")
    two = chan("Local/101@from-internal-00000001;2", "8.2", "8.1", "Ring", "101")
    phone = chan("PJSIP/101-00000002", "8.3", "8.1", "Down", "101")
    trunk = chan("PJSIP/carrier-00000003", "8.4", "8.1", "Down", "84950001122")
    steps = [(0.0, ev("Newchannel", one)), (0.0, ev("Newchannel", two)), (0.0, ev("Newchannel", phone)),
             (0.1, ev("DialBegin", two, dest(phone), DialString="101")),
             (2.0, ev("Newstate", {**phone, "ChannelStateDesc": "Up"})),
             (2.0, ev("DialEnd", two, dest({**phone, "ChannelStateDesc": "Up"}), DialStatus="ANSWER")),
             (2.1, ev("Newchannel", trunk)),
             (2.1, ev("DialBegin", {**one, "ChannelStateDesc": "Up"}, dest(trunk), DialString="74950001122@carrier")),
             (5.0, ev("Newstate", {**trunk, "ChannelStateDesc": "Up"})),
             (9.0, ev("Hangup", trunk, Cause="16")), (9.0, ev("Hangup", phone, Cause="16")),
             (9.0, ev("Hangup", two, Cause="16")), (9.0, ev("Hangup", one, Cause="16"))]
    assert feed_all(CallTracker(CONFIG), steps) == [
        {"event": "ringing", "call": "8.1", "direction": "outbound", "client": "+74950001122", "agent": "101"},
        {"event": "answered", "call": "8.1", "agent": "101"},
        {"event": "ended", "call": "8.1", "direction": "outbound", "client": "+74950001122",
         "outcome": "answered", "answered_by": ["101"], "talk_seconds": 4},
    ]
