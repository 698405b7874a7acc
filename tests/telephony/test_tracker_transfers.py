"""Transfers, forwarding and ring failures, on the hand-made PJSIP streams of
tests/fixtures/streams/ (make_streams.py there tells each story and where its shape comes from)."""

from __future__ import annotations

import pytest

from callpop.telephony.events import AgentTalk, Ended, Transferred
from callpop.telephony.tracker import CallTracker
from tests.support.captures import CONFIG, STREAMS, dicts, expected, messages, run

STREAM_NAMES = ["sip-blind-transfer", "sip-attended-transfer", "sip-attended-transfer-linkedid-first",
                "sip-ring-group-failures", "sip-forward-noanswer", "sip-local-queue-attended-transfer",
                "sip-local-ring-group-attended-transfer"]


@pytest.mark.parametrize("name", STREAM_NAMES)
def test_stream_gives_the_expected_events(name: str) -> None:
    assert dicts(run(messages(STREAMS / f"{name}.jsonl"))) == expected(name)


def test_blind_transfer_keeps_the_call_and_splits_the_talk() -> None:
    events = run(messages(STREAMS / "sip-blind-transfer.jsonl"))
    assert {e.call for e in events} == {"1795820000.200"}
    (ended,) = [e for e in events if isinstance(e, Ended)]
    assert ended.answered_by == ("101", "102")
    assert ended.talks == (AgentTalk("101", 10), AgentTalk("102", 7))
    assert ended.talk_seconds == 17
    assert ended.agents_rang == ("101", "102")


def test_attended_transfer_joins_the_colleague_to_the_client_call() -> None:
    events = run(messages(STREAMS / "sip-attended-transfer.jsonl"))
    (transfer,) = [e for e in events if isinstance(e, Transferred)]
    assert (transfer.call, transfer.from_agent, transfer.to_agent, transfer.kind) == (
        "1795820100.300", "101", "102", "attended")
    client_call, consultation = (
        next(e for e in events if isinstance(e, Ended) and e.direction == d) for d in ("inbound", "internal"))
    assert client_call.talks == (AgentTalk("101", 12), AgentTalk("102", 6))
    assert consultation.answered_by == ("102",) and consultation.client == "101"


def test_active_calls_during_a_blind_transfer() -> None:
    """What a browser reconnecting while the transferred call rings at 102 is sent."""
    tracker = CallTracker(CONFIG)
    for message, clock in messages(STREAMS / "sip-blind-transfer.jsonl"):
        tracker.feed(message, clock)
        if message.get("Event") == "DialState" and message.get("DestChannel", "").startswith("PJSIP/102"):
            break
    (active,) = tracker.active_calls()
    assert (active.call, active.direction, active.client, active.caller_name) == (
        "1795820000.200", "inbound", "+79161234567", "Иван Петров")
    assert (active.ringing, active.talking) == (("102",), ())


def test_attended_transfer_event_without_transferee_and_target_fields() -> None:
    """Older Asterisk names only the transferers and the bridges: the parties are found in
    the bridges, with the same result."""
    msgs = []
    for message, clock in messages(STREAMS / "sip-attended-transfer.jsonl"):
        if message.get("Event") == "AttendedTransfer":
            message = {k: v for k, v in message.items() if not k.startswith(("Transferee", "TransferTarget"))}
        msgs.append((message, clock))
    assert dicts(run(msgs)) == expected("sip-attended-transfer")


@pytest.mark.parametrize("name", ["sip-local-queue-attended-transfer", "sip-local-ring-group-attended-transfer"])
def test_attended_transfer_through_local_members_ends_and_leaves_nothing_behind(name: str) -> None:
    """Members behind Local channels: the pairs are optimised away and the queue's
    AgentComplete names a member half that hung up long before. The client's call still
    ends, with both agents' shares, and the tracker keeps no channel nor call."""
    tracker = CallTracker(CONFIG)
    events = run(messages(STREAMS / f"{name}.jsonl"), tracker)
    client_call = [e for e in events if isinstance(e, Ended) and e.direction == "inbound"]
    assert [(e.answered_by, e.talks, e.talk_seconds) for e in client_call] == [
        (("101", "102"), (AgentTalk("101", 11), AgentTalk("102", 6)), 17)]
    assert tracker.active_calls() == [] and tracker.malformed == 0
    assert not tracker.book.channels and not tracker.book.calls
