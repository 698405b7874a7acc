"""An Asterisk 13 PBX with chan_sip phones behind Local routes (tests/fixtures/streams/
sip13_model.py tells where each shape comes from): transfers, a transfer completed
while the target rings, forwarding to a group, a click-to-dial started by another tool."""

from __future__ import annotations

import pytest

from callpop.telephony.events import AgentTalk, CallEvent, Ended, Ringing, RingStopped, Transferred
from callpop.telephony.tracker import CallTracker
from tests.support.captures import SIP13_CONFIG, STREAMS, dicts, expected, messages, run

NAMES = ["sip13-queue-attended-transfer", "sip13-internal-attended-transfer", "sip13-blonde-transfer",
         "sip13-blonde-transfer-to-group",
         "sip13-blind-transfer-reject", "sip13-queue-simple", "sip13-call-forward-to-group", "sip13-click-to-dial",
         "sip13-click-to-dial-colleague"]


def replay(name: str) -> tuple[list[CallEvent], CallTracker]:
    tracker = CallTracker(SIP13_CONFIG)
    return run(messages(STREAMS / f"{name}.jsonl"), tracker), tracker


@pytest.mark.parametrize("name", NAMES)
def test_stream_gives_the_expected_events_and_leaves_nothing(name: str) -> None:
    events, tracker = replay(name)
    assert dicts(events) == expected(name)
    assert tracker.malformed == 0 and tracker.active_calls() == []
    assert not tracker.book.channels and not tracker.book.calls


def test_attended_transfer_is_one_followed_call_and_an_internal_consultation() -> None:
    """Asterisk 13 names only the transferers and their bridges; the consultation through
    202's route is an internal call, not a call to an outside number "202"."""
    events, _ = replay("sip13-queue-attended-transfer")
    ended = [e for e in events if isinstance(e, Ended)]
    assert [(e.direction, e.client) for e in ended] == [("internal", "201"), ("inbound", "+31260010001")]
    client_call = ended[1]
    assert client_call.talks == (AgentTalk("201", 11), AgentTalk("202", 9)) and client_call.talk_seconds == 20
    (transfer,) = [e for e in events if isinstance(e, Transferred)]
    assert (transfer.call, transfer.from_agent, transfer.to_agent) == (client_call.call, "201", "202")


def test_transfer_completed_while_the_target_rings_is_a_transfer_and_the_target_rang() -> None:
    events, _ = replay("sip13-blonde-transfer")
    client = next(e for e in events if isinstance(e, Ended) and e.direction == "inbound")
    assert [(e.agent, e.direction) for e in events if isinstance(e, Ringing) and e.call == client.call] == [
        ("201", "inbound"), ("202", "inbound")]
    (transfer,) = [e for e in events if isinstance(e, Transferred)]
    assert (transfer.call, transfer.from_agent, transfer.to_agent, transfer.kind) == (
        client.call, "201", "202", "attended")
    assert client.answered_by == ("201", "202") and client.agents_rang == ("201", "202")
    assert client.talks == (AgentTalk("201", 8), AgentTalk("202", 10))


def test_blind_transfer_the_target_declines() -> None:
    events, _ = replay("sip13-blind-transfer-reject")
    stops = [(e.agent, e.reason) for e in events if isinstance(e, RingStopped)]
    assert stops == [("202", "rejected")]
    (ended,) = [e for e in events if isinstance(e, Ended)]
    assert ended.answered_by == ("201",) and ended.agents_rang == ("201", "202")
    assert not any(isinstance(e, Transferred) for e in events)


def test_forwarding_to_a_group_rings_the_group_not_the_forwarding_extension() -> None:
    events, _ = replay("sip13-call-forward-to-group")
    (ended,) = [e for e in events if isinstance(e, Ended)]
    assert ended.agents_rang == ("203", "204") and ended.answered_by == ("203",)
    assert (ended.direction, ended.client) == ("internal", "201")


def test_click_to_dial_from_another_tool_is_the_agents_outbound_call() -> None:
    """The Originate rings 201's phone first (not a call to 201), then the client."""
    events, _ = replay("sip13-click-to-dial")
    (ringing,) = [e for e in events if isinstance(e, Ringing)]
    assert (ringing.direction, ringing.client, ringing.agent) == ("outbound", "+31260010001", "201")
    (ended,) = [e for e in events if isinstance(e, Ended)]
    assert (ended.direction, ended.client, ended.answered_by, ended.talk_seconds) == (
        "outbound", "+31260010001", ("201",), 6)


def test_internal_attended_transfer_keeps_the_first_call() -> None:
    """201 -> 202, 202 consults 203 and transfers: one call 201 -> 202 then 203, and the
    consultation 202 -> 203."""
    events, _ = replay("sip13-internal-attended-transfer")
    ended = [e for e in events if isinstance(e, Ended)]
    assert [(e.direction, e.client, e.answered_by) for e in ended] == [
        ("internal", "202", ("203",)), ("internal", "201", ("202", "203"))]
    (transfer,) = [e for e in events if isinstance(e, Transferred)]
    assert (transfer.call, transfer.from_agent, transfer.to_agent) == (ended[1].call, "202", "203")


def test_click_to_dial_to_a_colleague_is_an_internal_call_of_the_agent() -> None:
    events, _ = replay("sip13-click-to-dial-colleague")
    assert [(e.agent, e.direction, e.client) for e in events if isinstance(e, Ringing)] == [
        ("202", "internal", "201")]
    (ended,) = [e for e in events if isinstance(e, Ended)]
    assert (ended.direction, ended.client, ended.answered_by) == ("internal", "201", ("202",))


def test_transfer_to_a_ringing_group_follows_every_member_into_the_client_call() -> None:
    events, _ = replay("sip13-blonde-transfer-to-group")
    client = next(e for e in events if isinstance(e, Ended) and e.direction == "inbound")
    assert client.agents_rang == ("201", "202", "203") and client.answered_by == ("201", "203")
    (transfer,) = [e for e in events if isinstance(e, Transferred)]
    assert (transfer.call, transfer.from_agent, transfer.to_agent) == (client.call, "201", "203")
    assert [(e.agent, e.reason) for e in events if isinstance(e, RingStopped) and e.call == client.call] == [
        ("202", "answered_elsewhere")]
