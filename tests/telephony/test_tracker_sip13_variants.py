"""Every variant of the Asterisk 13 classes (chan_sip phones behind Local routes; the
streams of tests/fixtures/streams/make_sip13_variants.py): for each, the call events a
user expects: one followed call per conversation, who rang, who answered, the transfer,
the client and direction, the outcome, and talk time = the caller's connected time."""

from __future__ import annotations

import pytest

from callpop.telephony.events import AgentTalk, CallEvent, Ended, Ringing, Transferred
from callpop.telephony.tracker import CallTracker
from tests.support.captures import SIP13_CONFIG, STREAMS, dicts, expected, messages, run

ATTENDED = ["sip13-attended-transfer-by-caller", "sip13-attended-transfer-joins-callers",
            "sip13-attended-transfer-withheld"]
NAMES = ATTENDED


def replay(name: str) -> list[CallEvent]:
    tracker = CallTracker(SIP13_CONFIG)
    events = run(messages(STREAMS / f"{name}.jsonl"), tracker)
    assert tracker.malformed == 0 and tracker.active_calls() == []
    assert not tracker.book.channels and not tracker.book.calls
    return events


def ended(events: list[CallEvent]) -> list[Ended]:
    return [e for e in events if isinstance(e, Ended)]


def transfers(events: list[CallEvent]) -> list[tuple[str, str, str, str]]:
    return [(e.call, e.from_agent, e.to_agent, e.kind) for e in events if isinstance(e, Transferred)]


@pytest.mark.parametrize("name", NAMES)
def test_stream_gives_the_expected_events_and_leaves_nothing(name: str) -> None:
    assert dicts(replay(name)) == expected(name)


# --- attended transfers ------------------------------------------------------------------

def test_caller_transfers_the_called_party_to_a_colleague() -> None:
    """201 calls 202, consults 203 and transfers: 202 talks to 203 in 201's first call."""
    events = replay("sip13-attended-transfer-by-caller")
    consultation, call = ended(events)
    assert (consultation.client, consultation.answered_by, consultation.talk_seconds) == ("201", ("203",), 4)
    assert (call.direction, call.client, call.outcome, call.answered_by) == ("internal", "201", "answered",
                                                                             ("202", "203"))
    assert transfers(events) == [(call.call, "201", "203", "attended")]
    assert call.talks == (AgentTalk("202", 18), AgentTalk("203", 7)) and call.talk_seconds == 18


def test_agent_joins_two_callers() -> None:
    """202 and 203 both call 201, who joins them: 203 joins 202's call (the older one)."""
    events = replay("sip13-attended-transfer-joins-callers")
    second, first = ended(events)
    assert (second.client, second.answered_by) == ("203", ("201",))
    assert (first.client, first.answered_by, first.agents_rang) == ("202", ("201", "203"), ("201",))
    assert transfers(events) == [(first.call, "201", "203", "attended")]
    assert first.talks == (AgentTalk("201", 9), AgentTalk("203", 6)) and first.talk_seconds == 15


def test_withheld_caller_is_transferred_as_one_call_without_a_number() -> None:
    """The PBX masks a withheld number (+31260xxxxxx): the client is withheld (None), not
    a number nobody can call back; the transfer keeps the one inbound call."""
    events = replay("sip13-attended-transfer-withheld")
    assert [(e.agent, e.direction, e.client) for e in events if isinstance(e, Ringing)] == [
        ("201", "inbound", None), ("203", "internal", "201")]
    consultation, call = ended(events)
    assert consultation.direction == "internal"
    assert (call.direction, call.client, call.outcome, call.answered_by) == ("inbound", None, "answered",
                                                                             ("201", "203"))
    assert transfers(events) == [(call.call, "201", "203", "attended")]
    assert call.talks == (AgentTalk("201", 9), AgentTalk("203", 7)) and call.talk_seconds == 16
