"""Every real Asterisk capture, both flavours, gives exactly the call events written down in
tests/fixtures/expected/ (by hand from the README's description of each scenario)."""

from __future__ import annotations

import re
from collections import defaultdict

import pytest

from callpop.telephony.events import AgentTalk, Ended, Ringing
from tests.support.captures import CAPTURES, capture, dicts, expected, messages, run, without_talk


@pytest.mark.parametrize("name", CAPTURES)
def test_json_lines_capture_gives_the_expected_events(name: str) -> None:
    assert dicts(run(messages(capture(name, "jsonl")))) == expected(name)


@pytest.mark.parametrize("name", CAPTURES)
def test_raw_capture_gives_the_same_events(name: str) -> None:
    """The raw bytes carry no clock: same events, only talk time cannot be measured."""
    assert without_talk(dicts(run(messages(capture(name, "ami"))))) == without_talk(expected(name))


@pytest.mark.parametrize(("name", "talk"), [
    ("01-incoming-answered", 0), ("sip-01-incoming-answered", 0),
    ("05-queue-answered", 4), ("sip-05-queue-answered", 5),  # AgentComplete TalkTime
])
def test_without_a_clock_only_the_queue_reports_talk_time(name: str, talk: int) -> None:
    ended = [e for e in run(messages(capture(name, "ami"))) if isinstance(e, Ended)]
    assert [e.talk_seconds for e in ended] == [talk]


@pytest.mark.parametrize("flavour", ["", "sip-"])
def test_context_fields_for_pops_and_kpis(flavour: str) -> None:
    events = run(messages(capture(f"{flavour}04-ring-group", "jsonl")))
    ringing = [e for e in events if isinstance(e, Ringing)]
    (ended,) = [e for e in events if isinstance(e, Ended)]
    assert ended.agents_rang == ("101", "102", "103")
    assert ended.talks == (AgentTalk("103", 4),)
    assert ended.started_at is not None and ended.ended_at is not None
    assert 7 < ended.ended_at - ended.started_at < 8
    assert all(r.at is not None and ended.started_at <= r.at < ended.started_at + 1 for r in ringing)


@pytest.mark.parametrize(("name", "caller_name"), [
    ("09a-cid-cyrillic", "Иван Петров"), ("sip-09a-cid-cyrillic", "Иван Петров"),
    ("09b-cid-html", "<script>alert(1)</script>"), ("sip-09b-cid-html", "<script>alert(1)</script>"),
    ("09d-cid-empty", None), ("09i-cid-uk-e164", "London Office"), ("sip-09j-cid-short", "Reception"),
])
def test_caller_name_is_kept_verbatim_as_data(name: str, caller_name: str | None) -> None:
    events = run(messages(capture(name, "ami")))
    named = [e for e in events if isinstance(e, Ringing | Ended)]
    assert named and all(e.caller_name == caller_name for e in named)


@pytest.mark.parametrize("flavour", ["", "sip-"])
def test_national_international_and_e164_forms_are_one_client(flavour: str) -> None:
    clients = set()
    for name in ("01-incoming-answered", "09f-cid-8-national", "09g-cid-007-intl"):
        clients |= {e.client for e in run(messages(capture(flavour + name, "ami"))) if isinstance(e, Ended)}
    assert clients == {"+79161234567"}


@pytest.mark.parametrize("name", ["09c-cid-anonymous", "09d-cid-empty", "sip-09d-cid-empty",
                                  "sip-09e-cid-prohibited"])
def test_withheld_numbers_give_no_client(name: str) -> None:
    events = dicts(run(messages(capture(name, "jsonl"))))
    assert [e["client"] for e in events if "client" in e] == [None, None]


@pytest.mark.parametrize("flavour", ["", "sip-"])
def test_burst_of_fifty_calls(flavour: str) -> None:
    """README: 50 calls from +79165550000..49, round robin to 101..104 through the direct
    DIDs, every 5th unanswered (the caller gives up): 40 answered, 10 missed."""
    events = run(messages(capture(f"{flavour}10-burst-50", "jsonl")))
    by_call: dict[str, list[dict[str, object]]] = defaultdict(list)
    for e in dicts(events):
        by_call[str(e["call"])].append(e)
    assert len(by_call) == 50
    seen = set()
    for call_events in by_call.values():
        client = str(call_events[0]["client"])
        match = re.fullmatch(r"\+791655500(\d\d)", client)
        assert match, client
        i = int(match.group(1))
        seen.add(i)
        agent = str(101 + i % 4)
        if i % 5 == 4:
            want = [("ringing", agent), ("ring_stopped", agent)]
        else:
            want = [("ringing", agent), ("answered", agent)]
        assert [(e["event"], e["agent"]) for e in call_events[:-1]] == want
        ended = call_events[-1]
        assert ended["event"] == "ended" and ended["client"] == client
        if i % 5 == 4:
            assert call_events[1]["reason"] == "caller_hangup"
            assert (ended["outcome"], ended["answered_by"], ended["talk_seconds"]) == ("missed", [], 0)
        else:
            assert (ended["outcome"], ended["answered_by"]) == ("answered", [agent])
            assert ended["talk_seconds"] >= 1
    assert seen == set(range(50))
    # the capture names the answered callers "Client 01".."Client 50" (1-based) and sends
    # the unanswered ones without a name
    names = {e.client: e.caller_name for e in events if isinstance(e, Ringing)}
    assert names == {f"+791655500{i:02d}": None if i % 5 == 4 else f"Client {i + 1:02d}" for i in range(50)}
