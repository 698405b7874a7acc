"""A daemon started in the middle of calls: the CoreShowChannels listing rebuilds them, and
without a listing nothing breaks (scenario 11 cut, in tests/fixtures/streams/)."""

from __future__ import annotations

import pytest

from callpop.telephony.events import Answered, Ended
from callpop.telephony.tracker import CallTracker
from tests.support.captures import CONFIG, STREAMS, capture, dicts, expected, messages, run


@pytest.mark.parametrize("flavour", ["", "sip-"])
def test_stream_starting_with_a_listing_tracks_the_calls_to_their_end(flavour: str) -> None:
    name = f"{flavour}11-partial-listing"
    events = run(messages(STREAMS / f"{name}.jsonl"))
    assert dicts(events) == expected(name)
    names = {e.client: e.caller_name for e in events if isinstance(e, Ended)}
    assert names == {"+79161234567": "Иван Петров", "+74957654321": None, "+79031112233": "ООО Ромашка"}
    answered = [e for e in events if isinstance(e, Ended) and e.outcome == "answered"]
    assert answered and all(e.answer_unseen for e in answered)
    assert all(e.started_at is not None and e.ended_at is not None and e.started_at < e.ended_at for e in answered)


@pytest.mark.parametrize("flavour", ["", "sip-"])
def test_stream_without_a_listing_reports_the_calls_that_start_after_the_cut(flavour: str) -> None:
    """Calls already talking when the stream starts are not reported at all: we saw neither
    their direction nor their answer, and an ``ended`` alone would journal a guess."""
    name = f"{flavour}11-partial-no-listing"
    tracker = CallTracker(CONFIG)
    assert dicts(run(messages(STREAMS / f"{name}.jsonl"), tracker)) == expected(name)
    assert tracker.malformed == 0 and tracker.active_calls() == []


@pytest.mark.parametrize("flavour", ["", "sip-"])
def test_listing_in_a_stream_is_the_same_as_resync(flavour: str) -> None:
    msgs = messages(STREAMS / f"{flavour}11-partial-listing.jsonl")
    items = [m for m, _ in msgs if m.get("Event") == "CoreShowChannel"]
    fed, direct = CallTracker(CONFIG), CallTracker(CONFIG)
    from_feed = run(msgs[: len(items) + 2], fed)  # response, items, complete
    from_resync = direct.resync(items, msgs[len(items) + 1][1])
    assert dicts(from_feed) == dicts(from_resync)
    assert fed.active_calls() == direct.active_calls()


@pytest.mark.parametrize("flavour", ["", "sip-"])
def test_listing_taken_while_in_step_changes_nothing(flavour: str) -> None:
    """The full capture has a listing at 2.5 s: it must not emit anything."""
    tracker = CallTracker(CONFIG)
    events = []
    for message, clock in messages(capture(f"{flavour}11-coreshowchannels-midcall", "jsonl")):
        out = tracker.feed(message, clock)
        if message.get("Event") in ("CoreShowChannel", "CoreShowChannelsComplete"):
            assert out == []
            events.append(message)
    assert events


def test_resync_ends_the_calls_whose_channels_are_gone() -> None:
    tracker = CallTracker(CONFIG)
    msgs = messages(capture("sip-01-incoming-answered", "jsonl"))
    answered_at = next(i for i, e in enumerate(msgs) if e[0].get("Event") == "BridgeEnter")
    events = run(msgs[: answered_at + 1], tracker)
    assert any(isinstance(e, Answered) for e in events)
    (ended,) = tracker.resync([], now=msgs[answered_at][1] + 60)
    assert isinstance(ended, Ended) and ended.answered_by == ("101",) and ended.talk_seconds == 60
    assert tracker.active_calls() == []


@pytest.mark.parametrize("flavour", ["", "sip-"])
def test_calls_first_seen_in_a_listing_keep_their_real_start_and_bound_their_talk(flavour: str) -> None:
    """The listing's Duration puts the start back where it was (to the second). The answer
    is not listed: the talk is an interval, at least since the listing, at most since the
    agent's channel was created, and the talk of a tracker that saw the whole capture lies
    in it; the talk reported is the lower bound, never the guess."""
    whole = {e.call: e for e in run(messages(capture(f"{flavour}11-coreshowchannels-midcall", "jsonl")))
             if isinstance(e, Ended)}
    cut = {e.call: e for e in run(messages(STREAMS / f"{flavour}11-partial-listing.jsonl"))
           if isinstance(e, Ended)}
    assert whole.keys() == cut.keys()
    for call, full in whole.items():
        part = cut[call]
        assert part.started_at is not None and full.started_at is not None
        assert abs(part.started_at - full.started_at) < 1.5
        if full.outcome != "answered":
            assert not part.answer_unseen and part.talk_seconds == 0
            continue
        (talk,) = part.talks
        assert part.answer_unseen and talk.at_most is not None
        assert talk.talk_seconds == part.talk_seconds < full.talk_seconds <= talk.at_most


def _talking_call() -> tuple[CallTracker, float]:
    tracker = CallTracker(CONFIG)
    msgs = messages(capture("sip-01-incoming-answered", "jsonl"))
    answered = next(i for i, e in enumerate(msgs) if e[0].get("Event") == "BridgeEnter")
    run(msgs[: answered + 3], tracker)
    last = msgs[answered + 2][1]
    assert last is not None
    return tracker, last


def test_after_a_lost_link_a_call_gone_from_the_listing_ends_when_last_heard() -> None:
    """PBX crashed and came back without the call: it ends at the last message heard
    before the drop, not at the listing 60 s later, and says its end was not seen."""
    tracker, last = _talking_call()
    tracker.link_lost()
    tracker.feed({"Response": "Success", "Message": "Authentication accepted"}, last + 59)
    (ended,) = tracker.resync([], now=last + 60)
    assert isinstance(ended, Ended) and ended.end_unseen and ended.outcome == "answered"
    assert ended.ended_at == last
    assert ended.talk_seconds < 5


def test_after_a_lost_link_a_call_still_listed_goes_on() -> None:
    tracker, last = _talking_call()
    listing = [{"Event": "CoreShowChannel", **ch} for ch in (
        {"Channel": c.name, "Uniqueid": c.uniqueid, "Linkedid": c.linkedid, "ChannelStateDesc": "Up"}
        for c in tracker.book.channels.values())]
    tracker.link_lost()
    assert tracker.resync(listing, now=last + 10) == []
    (active,) = tracker.active_calls()
    assert active.talking == ("101",)


def test_a_ringing_call_gone_after_a_lost_link_has_an_unknown_outcome() -> None:
    tracker = CallTracker(CONFIG)
    msgs = messages(capture("sip-03-caller-hangup-while-ringing", "jsonl"))
    ringing = next(i for i, e in enumerate(msgs) if e[0].get("Event") == "DialState")
    run(msgs[: ringing + 1], tracker)
    tracker.link_lost()
    events = tracker.resync([], now=1e10)
    (ended,) = [e for e in events if isinstance(e, Ended)]
    assert (ended.outcome, ended.end_unseen, ended.answered_by) == ("unknown", True, ())
