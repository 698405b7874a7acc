"""Every variant of the Asterisk 13 classes (chan_sip phones behind Local routes; the
streams of tests/fixtures/streams/sip13_*.py): for each, the call events a
user expects: one followed call per conversation, who rang, who answered, the transfer,
the client and direction, the outcome, and talk time = the caller's connected time."""

from __future__ import annotations

import pytest

from callpop.telephony.events import AgentTalk, CallEvent, Ended, Ringing, RingStopped, Transferred
from callpop.telephony.tracker import CallTracker
from tests.support.captures import SIP13_CONFIG, STREAMS, dicts, expected, messages, run

ATTENDED = ["sip13-attended-transfer-by-caller", "sip13-attended-transfer-joins-callers",
            "sip13-attended-transfer-withheld"]
BLONDE = ["sip13-blonde-transfer-by-caller", "sip13-blonde-transfer-withheld",
          "sip13-blonde-transfer-outbound-to-group", "sip13-blonde-transfer-reject"]
BLIND = ["sip13-blind-transfer", "sip13-blind-transfer-by-caller", "sip13-blind-transfer-by-callee",
         "sip13-blind-transfer-by-caller-unreachable", "sip13-blind-transfer-by-callee-unreachable",
         "sip13-blind-transfer-to-group", "sip13-blind-transfer-to-group-no-answer"]
CLICK_TO_DIAL = ["sip13-click-to-dial-agent-declines", "sip13-click-to-dial-client-busy",
                 "sip13-click-to-dial-client-unreachable", "sip13-click-to-dial-progress",
                 "sip13-click-to-dial-progress-then-ringing", "sip13-click-to-dial-no-ringing",
                 "sip13-click-to-dial-attended-transfer", "sip13-click-to-dial-colleague-transfers"]
QUEUE = ["sip13-queue-to-group", "sip13-queue-to-group-caller-gives-up", "sip13-queue-blind-transfer"]
FORWARDING = ["sip13-call-forward", "sip13-call-forward-chain", "sip13-call-forward-from-group", "sip13-call-pickup",
              "sip13-call-pickup-sip-replaces"]
NAMES = ATTENDED + BLONDE + BLIND + CLICK_TO_DIAL + QUEUE + FORWARDING
CLIENT = "+31260010001"


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


# --- transfers completed while the target rings ("blonde") -------------------------------

def rang(events: list[CallEvent], call: str) -> list[tuple[str, str, str | None]]:
    return [(e.agent, e.direction, e.client) for e in events if isinstance(e, Ringing) and e.call == call]


def test_caller_transfers_the_called_party_while_the_target_rings() -> None:
    events = replay("sip13-blonde-transfer-by-caller")
    consultation, call = ended(events)
    assert (consultation.outcome, consultation.answered_by, consultation.agents_rang) == ("answered", (), ("203",))
    assert rang(events, call.call) == [("202", "internal", "201"), ("203", "internal", "201")]
    assert transfers(events) == [(call.call, "201", "203", "attended")]
    assert (call.answered_by, call.agents_rang) == (("202", "203"), ("202", "203"))
    assert call.talks == (AgentTalk("202", 17), AgentTalk("203", 7)) and call.talk_seconds == 17


def test_withheld_caller_transferred_while_the_target_rings() -> None:
    events = replay("sip13-blonde-transfer-withheld")
    _, call = ended(events)
    assert rang(events, call.call) == [("201", "inbound", None), ("202", "inbound", None)]
    assert transfers(events) == [(call.call, "201", "202", "attended")]
    assert (call.direction, call.client, call.outcome, call.answered_by) == ("inbound", None, "answered",
                                                                             ("201", "202"))
    assert call.talks == (AgentTalk("201", 7), AgentTalk("202", 6)) and call.talk_seconds == 13


def test_outbound_call_transferred_to_a_ringing_group() -> None:
    """201's call to a client goes on to group 500 while it rings: both members ring in
    the client's call, 202 answers, 203 stops (answered elsewhere). The client's connected
    time leaves out the ringing between 201 and 202."""
    events = replay("sip13-blonde-transfer-outbound-to-group")
    _, call = ended(events)
    assert rang(events, call.call) == [("201", "outbound", CLIENT), ("202", "outbound", CLIENT),
                                       ("203", "outbound", CLIENT)]
    assert transfers(events) == [(call.call, "201", "202", "attended")]
    assert [(e.agent, e.reason) for e in events if isinstance(e, RingStopped) and e.call == call.call] == [
        ("203", "answered_elsewhere")]
    assert (call.direction, call.client, call.answered_by) == ("outbound", CLIENT, ("201", "202"))
    assert call.talks == (AgentTalk("201", 7), AgentTalk("202", 8)) and call.talk_seconds == 15


def test_target_declines_a_transfer_completed_while_it_rang() -> None:
    """202 rang in the client's call and was busy: no transfer happened; the call was
    answered by 201 only, for 201's talk."""
    events = replay("sip13-blonde-transfer-reject")
    _, call = ended(events)
    assert [(e.agent, e.reason) for e in events if isinstance(e, RingStopped) and e.call == call.call] == [
        ("202", "busy")]
    assert transfers(events) == []
    assert (call.client, call.outcome, call.answered_by, call.agents_rang) == (CLIENT, "answered", ("201",),
                                                                               ("201", "202"))
    assert call.talks == (AgentTalk("201", 7),) and call.talk_seconds == 7


@pytest.mark.parametrize("name", ["sip13-blonde-transfer", "sip13-blonde-transfer-to-group", *BLONDE])
def test_ringing_handed_to_the_transferred_call_was_not_missed(name: str) -> None:
    """The consultation's ringing became the transferred call's: each target rings there
    first, then stops ringing in the consultation as ``transferred`` (never "no answer"), and
    the consultation ends like an attended one's (answered, here by nobody), never a missed
    call."""
    events = replay(name)
    (call,) = [e for e in ended(events) if e.call == events[0].call]  # the call that was there first
    (consultation,) = [e for e in ended(events) if e.call != call.call]
    stopped = [(i, e) for i, e in enumerate(events) if isinstance(e, RingStopped) and e.call == consultation.call]
    assert stopped and {e.reason for _, e in stopped} == {"transferred"}
    for i, stop in stopped:
        rings_on = [j for j, e in enumerate(events) if isinstance(e, Ringing) and e.call == call.call
                    and e.agent == stop.agent]
        assert rings_on and rings_on[0] < i
    assert (consultation.outcome, consultation.answered_by, consultation.talk_seconds) == ("answered", (), 0)
    assert call.outcome == "answered" and all(stop.agent in call.agents_rang for _, stop in stopped)


# --- blind transfers ---------------------------------------------------------------------

def stops(events: list[CallEvent]) -> list[tuple[str, str]]:
    return [(e.agent, e.reason) for e in events if isinstance(e, RingStopped)]


def test_blind_transfer_of_a_direct_call() -> None:
    events = replay("sip13-blind-transfer")
    (call,) = ended(events)
    assert rang(events, call.call) == [("201", "inbound", CLIENT), ("202", "inbound", CLIENT)]
    assert transfers(events) == [(call.call, "201", "202", "blind")]
    assert (call.client, call.outcome, call.answered_by) == (CLIENT, "answered", ("201", "202"))
    assert call.talks == (AgentTalk("201", 6), AgentTalk("202", 7)) and call.talk_seconds == 13


@pytest.mark.parametrize(("side", "transferer", "talks"), [
    ("caller", "201", (AgentTalk("202", 14), AgentTalk("203", 6))),
    ("callee", "202", (AgentTalk("202", 5), AgentTalk("203", 6)))])
def test_either_party_blind_transfers_the_other(side: str, transferer: str, talks: tuple[AgentTalk, ...]) -> None:
    """201 calls 202; either of them sends the other to 203: one call, 203 rang in it and
    answered. When 202 is the one transferred, 202 stays on the line throughout."""
    events = replay(f"sip13-blind-transfer-by-{side}")
    (call,) = ended(events)
    assert rang(events, call.call) == [("202", "internal", "201"), ("203", "internal", "201")]
    assert transfers(events) == [(call.call, transferer, "203", "blind")]
    assert (call.outcome, call.answered_by, call.talks) == ("answered", ("202", "203"), talks)


@pytest.mark.parametrize("side", ["caller", "callee"])
def test_blind_transfer_to_a_phone_that_fails(side: str) -> None:
    """203's phone fails at once (chan_sip: BUSY): 203 stopped for that reason, not
    because 202, the party being transferred and still on the line, "answered elsewhere";
    no transfer; the call was answered by 202 only."""
    events = replay(f"sip13-blind-transfer-by-{side}-unreachable")
    (call,) = ended(events)
    assert stops(events) == [("203", "busy")]
    assert transfers(events) == []
    assert (call.outcome, call.answered_by, call.agents_rang, call.talk_seconds) == (
        "answered", ("202",), ("202", "203"), 5)


def test_blind_transfer_to_a_group() -> None:
    events = replay("sip13-blind-transfer-to-group")
    (call,) = ended(events)
    assert rang(events, call.call) == [("201", "inbound", CLIENT), ("202", "inbound", CLIENT),
                                       ("203", "inbound", CLIENT)]
    assert transfers(events) == [(call.call, "201", "203", "blind")]
    assert stops(events) == [("202", "answered_elsewhere")]
    assert (call.answered_by, call.talks, call.talk_seconds) == (
        ("201", "203"), (AgentTalk("201", 5), AgentTalk("203", 7)), 12)


def test_blind_transfer_to_a_group_nobody_answers() -> None:
    """The group rings out: both members stop with no answer; the client's call is the one
    201 answered, for 201's talk only."""
    events = replay("sip13-blind-transfer-to-group-no-answer")
    (call,) = ended(events)
    assert stops(events) == [("202", "no_answer"), ("203", "no_answer")]
    assert transfers(events) == []
    assert (call.client, call.outcome, call.answered_by, call.talk_seconds) == (CLIENT, "answered", ("201",), 5)


# --- click-to-dial started by another tool (Originate) -----------------------------------

def test_click_to_dial_the_agent_declines_is_no_call() -> None:
    """201's own phone rang first (not a call to 201) and declined: the client was never
    dialled, so there is nothing to show or record."""
    assert replay("sip13-click-to-dial-agent-declines") == []


@pytest.mark.parametrize(("name", "reason"), [("sip13-click-to-dial-client-busy", "busy"),
                                              ("sip13-click-to-dial-client-unreachable", "unavailable"),
                                              ("sip13-click-to-dial-progress", "caller_hangup")])
def test_click_to_dial_the_client_never_answers(name: str, reason: str) -> None:
    """The agent's outbound call to the client, unanswered: busy, refused by the carrier
    before ringing (a 404), or given up by 201 while the carrier sent only early media."""
    events = replay(name)
    assert [(e.agent, e.direction, e.client) for e in events if isinstance(e, Ringing)] == [
        ("201", "outbound", CLIENT)]
    assert stops(events) == [("201", reason)]
    (call,) = ended(events)
    assert (call.direction, call.client, call.outcome, call.answered_by, call.talk_seconds) == (
        "outbound", CLIENT, "missed", (), 0)


@pytest.mark.parametrize("name", ["sip13-click-to-dial-no-ringing", "sip13-click-to-dial-progress-then-ringing"])
def test_click_to_dial_answered_without_or_after_early_media(name: str) -> None:
    """No ``Ringing`` before the answer, or early media then ``Ringing``: one ringing, one
    answered outbound call of 201, talk from the client's answer (8 s) to the end (14 s)."""
    events = replay(name)
    assert [(e.agent, e.direction, e.client) for e in events if isinstance(e, Ringing)] == [
        ("201", "outbound", CLIENT)]
    (call,) = ended(events)
    assert (call.direction, call.client, call.outcome, call.answered_by, call.talk_seconds) == (
        "outbound", CLIENT, "answered", ("201",), 6)
    assert call.answered_at is not None and call.started_at is not None
    assert round(call.answered_at - call.started_at) == 8


def test_click_to_dial_then_the_agent_transfers_the_client() -> None:
    """201's click-to-dial call to the client stays one outbound call of the client when
    201 hands it to 203 after a consultation; talk is the client's 8 s to 25 s."""
    events = replay("sip13-click-to-dial-attended-transfer")
    consultation, call = ended(events)
    assert (consultation.direction, consultation.answered_by) == ("internal", ("203",))
    assert transfers(events) == [(call.call, "201", "203", "attended")]
    assert (call.direction, call.client, call.outcome, call.answered_by) == ("outbound", CLIENT, "answered",
                                                                             ("201", "203"))
    assert call.talks == (AgentTalk("201", 10), AgentTalk("203", 7)) and call.talk_seconds == 17


def test_click_to_dial_to_a_colleague_who_transfers() -> None:
    events = replay("sip13-click-to-dial-colleague-transfers")
    consultation, call = ended(events)
    assert (consultation.client, consultation.answered_by) == ("202", ("203",))
    assert transfers(events) == [(call.call, "202", "203", "attended")]
    assert (call.direction, call.client, call.answered_by) == ("internal", "201", ("202", "203"))
    assert call.talks == (AgentTalk("202", 8), AgentTalk("203", 6)) and call.talk_seconds == 14


# --- queues --------------------------------------------------------------------------------

def test_queue_whose_member_is_a_group() -> None:
    """The queue calls group 500 as one member: its phones ring, 202 answers, 203 stops
    (answered elsewhere); talk from 202's answer (6 s) to the client's hangup (15 s)."""
    events = replay("sip13-queue-to-group")
    (call,) = ended(events)
    assert rang(events, call.call) == [("203", "inbound", CLIENT), ("202", "inbound", CLIENT)]
    assert stops(events) == [("203", "answered_elsewhere")]
    assert (call.outcome, call.answered_by, call.talk_seconds) == ("answered", ("202",), 9)


def test_queue_caller_gives_up_while_the_group_rings() -> None:
    events = replay("sip13-queue-to-group-caller-gives-up")
    (call,) = ended(events)
    assert stops(events) == [("203", "caller_hangup"), ("202", "caller_hangup")]
    assert (call.client, call.outcome, call.answered_by, call.agents_rang) == (CLIENT, "missed", (), ("203", "202"))


def test_queue_call_blind_transferred() -> None:
    events = replay("sip13-queue-blind-transfer")
    (call,) = ended(events)
    assert rang(events, call.call) == [("201", "inbound", CLIENT), ("202", "inbound", CLIENT)]
    assert transfers(events) == [(call.call, "201", "202", "blind")]
    assert (call.answered_by, call.talks, call.talk_seconds) == (
        ("201", "202"), (AgentTalk("201", 6), AgentTalk("202", 8)), 14)


# --- call forwarding -----------------------------------------------------------------------

@pytest.mark.parametrize(("name", "agent"), [("sip13-call-forward", "202"), ("sip13-call-forward-chain", "203")])
def test_forwarded_call_rings_and_is_answered_by_the_phone_it_reaches(name: str, agent: str) -> None:
    """201's calls go to 202 (and on to 203): the forwarding extensions never rang nor
    answered; only the phone the call reached did."""
    events = replay(name)
    (call,) = ended(events)
    assert rang(events, call.call) == [(agent, "inbound", CLIENT)]
    assert (call.client, call.outcome, call.answered_by, call.agents_rang, call.talk_seconds) == (
        CLIENT, "answered", (agent,), (agent,), 8)


def test_group_member_forwards_to_a_group() -> None:
    """Group 500 rings 201 and 202, whose calls go to 203 and 204: 202 never rang; 204
    answered; 201 and 203 stopped, answered elsewhere."""
    events = replay("sip13-call-forward-from-group")
    (call,) = ended(events)
    assert rang(events, call.call) == [("201", "inbound", CLIENT), ("203", "inbound", CLIENT),
                                       ("204", "inbound", CLIENT)]
    assert stops(events) == [("203", "answered_elsewhere"), ("201", "answered_elsewhere")]
    assert (call.outcome, call.answered_by, call.talk_seconds) == ("answered", ("204",), 9)


@pytest.mark.parametrize("name", ["sip13-call-pickup", "sip13-call-pickup-sip-replaces"])
def test_call_picked_up_by_a_colleague(name: str) -> None:
    """201's phone rang; 202 took the call (pickup code, or a SIP replace, whose ringing
    phone hangs up with Cause 0): 202 answered without ringing, 201 stopped because the
    call was answered elsewhere (not missed)."""
    events = replay(name)
    (call,) = ended(events)
    assert rang(events, call.call) == [("201", "inbound", CLIENT)]
    assert stops(events) == [("201", "answered_elsewhere")]
    assert (call.outcome, call.answered_by, call.agents_rang, call.talk_seconds) == (
        "answered", ("202",), ("201",), 8)
