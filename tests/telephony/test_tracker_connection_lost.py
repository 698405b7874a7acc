"""The PBX link lost: calls the next listing no longer shows ended while we could not see
them, at the moment the PBX was last heard (not at the listing); the downtime is never
counted as talk. A call still listed goes on."""

from __future__ import annotations

from callpop.telephony.events import Ended
from callpop.telephony.tracker import CallTracker
from tests.support.captures import CONFIG, capture, messages


def _until_answered(tracker: CallTracker, t0: float) -> float:
    """Feed 01-incoming-answered up to its answer, with the capture's clock; returns the time."""
    msgs = messages(capture("01-incoming-answered", "jsonl"))
    for msg, t in msgs:
        events = tracker.feed(msg, t0 + (t or 0.0))
        if any(e.event == "answered" for e in events):
            return t0 + (t or 0.0)
    raise AssertionError("the capture has no answer")


def test_a_call_gone_after_a_lost_connection_ends_when_the_pbx_was_last_heard() -> None:
    tracker = CallTracker(CONFIG)
    answered = _until_answered(tracker, 1_800_000_000.0)
    tracker.link_lost(answered + 6)  # the PBX closed the link (crashed) 6 s into the talk
    tracker.feed({"Event": "CoreShowChannel", "ActionID": "r2", "Uniqueid": "0"}, answered + 30)
    events = tracker.feed({"Event": "CoreShowChannelsComplete", "ActionID": "r2"}, answered + 30)
    (ended,) = [e for e in events if isinstance(e, Ended)]
    assert ended.outcome == "answered" and ended.talk_seconds == 6
    assert ended.ended_at == answered + 6
    # the end was not seen: the talk is at least 6 s and may have gone on until the listing
    assert ended.end_unseen and [(t.agent, t.talk_seconds, t.at_most) for t in ended.talks] == [("101", 6, 30)]
    assert tracker.active_calls() == []


def test_a_listing_without_a_loss_ends_gone_calls_at_the_listing() -> None:
    tracker = CallTracker(CONFIG)
    answered = _until_answered(tracker, 1_800_000_000.0)
    events = tracker.feed({"Event": "CoreShowChannelsComplete", "ActionID": "r1"}, answered + 9)
    (ended,) = [e for e in events if isinstance(e, Ended)]
    assert ended.talk_seconds == 9 and ended.ended_at == answered + 9


def test_a_call_learned_from_a_listing_rang_when_its_channels_were_created_and_its_answer_is_unseen() -> None:
    """A daemon started mid-call: the ``ringing`` the listing gives rise to carries the
    channel's creation (``Duration``); the ``answered`` is the listing's moment, marked
    unseen (the answer came somewhere in between), and the call's end says so."""
    from callpop.telephony.events import Answered, Ringing
    from tests.support.captures import STREAMS

    tracker = CallTracker(CONFIG)
    msgs = messages(STREAMS / "sip-11-partial-listing.jsonl")
    listed_at = next(t for m, t in msgs if m.get("Event") == "CoreShowChannelsComplete")
    assert listed_at is not None
    events = [e for m, t in msgs for e in tracker.feed(m, t)]
    answered = [e for e in events if isinstance(e, Answered)]
    rang = {e.call: e.at for e in events if isinstance(e, Ringing)}
    assert len(answered) == 2
    for event in answered:
        assert event.unseen and event.at == listed_at
        ring = rang[event.call]
        assert ring is not None and ring < listed_at - 1  # Duration: 2 s before the listing
    ended = [e for e in events if isinstance(e, Ended) and e.outcome == "answered"]
    assert ended and all(e.answer_unseen for e in ended)
