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
    # the listing's Duration restores when the calls started and when their agents took them:
    # the talk is the one the whole capture gives, not the talk since the listing
    whole = [e for e in expected(f"{flavour}11-coreshowchannels-midcall") if e["event"] == "ended"]
    assert [e for e in dicts(events) if e["event"] == "ended"] == whole
    answered = [e for e in events if isinstance(e, Ended) and e.outcome == "answered"]
    assert answered and all(e.answer_estimated for e in answered)
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
