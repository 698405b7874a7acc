"""cards.py: what a pop shows, from data alone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from callpop.cards import build_card, client_id_of, ended_message, ringing_message
from callpop.settings import PhoneSettings
from callpop.telephony.events import AgentTalk, Ended, Ringing

PHONES = PhoneSettings()


@dataclass
class FakeMatch:
    ident: int
    name: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.ident, "name": self.name, "promises": []}


@dataclass
class FakeLookup:
    matches: tuple[FakeMatch, ...]


def test_single_match_gives_full_card_with_formatted_number() -> None:
    card = build_card("c1", "inbound", "89161234567", "Иван Петров", FakeLookup((FakeMatch(7, "ООО Ромашка"),)), PHONES)
    assert card["match"] == "single"
    assert card["client"]["name"] == "ООО Ромашка"
    assert card["number"] == {"raw": "89161234567", "e164": "+79161234567",
                              "display": "+7 916 123-45-67", "withheld": False}
    assert card["caller_name"] == "Иван Петров"
    assert card["offer"] is None and card["candidates"] == []


def test_several_matches_are_candidates_not_a_guess() -> None:
    lookup = FakeLookup((FakeMatch(1, "A"), FakeMatch(2, "B")))
    card = build_card("c1", "inbound", "+79161234567", None, lookup, PHONES)
    assert card["match"] == "several"
    assert card["client"] is None
    assert [c["name"] for c in card["candidates"]] == ["A", "B"]


def test_unknown_number_offers_create_and_attach_prefilled() -> None:
    card = build_card("c1", "inbound", "8 (495) 111-22-33", "Пётр", FakeLookup(()), PHONES)
    assert card["match"] == "none"
    assert card["offer"] == {"create": {"phone": "+74951112233", "name": "Пётр"},
                             "attach": {"phone": "+74951112233"}}


def test_withheld_number_is_not_an_offer() -> None:
    for raw in ("anonymous", "", None, "<unknown>"):
        card = build_card("c1", "inbound", raw, "anonymous", None, PHONES)
        assert card["match"] == "withheld", raw
        assert card["number"]["withheld"] is True
        assert card["caller_name"] is None
        assert card["offer"] is None


def test_directory_failure_still_shows_the_number() -> None:
    card = build_card("c1", "inbound", "+79161234567", None, None, PHONES, failed=True)
    assert card["match"] == "error"
    assert card["number"]["display"] == "+7 916 123-45-67"


def test_caller_name_markup_is_kept_as_data() -> None:
    """The card carries the name verbatim; the browser shows it with textContent."""
    evil = "<img src=x onerror=alert(1)>"
    card = build_card("c1", "inbound", "+79161234567", evil, FakeLookup(()), PHONES)
    assert card["caller_name"] == evil
    assert card["offer"]["create"]["name"] == evil


def test_unreadable_number_is_shown_as_sent() -> None:
    card = build_card("c1", "inbound", "12345678901234", None, FakeLookup(()), PHONES)
    assert card["number"]["e164"] is None
    assert card["number"]["display"] == "12345678901234"


def test_client_id_found_in_json_or_attribute() -> None:
    assert client_id_of(FakeMatch(42, "x")) == 42


def test_messages_carry_the_agent_they_are_about() -> None:
    card = build_card("c9", "inbound", "+79161234567", None, FakeLookup(()), PHONES)
    ring = ringing_message(Ringing("c9", "inbound", "+79161234567", "102", at=5.0), card)
    assert (ring["type"], ring["agent"], ring["card"]) == ("call.ringing", "102", card)
    ended = Ended("c9", "inbound", "+79161234567", "answered", ("102",), 42, ended_at=9.0,
                  talks=(AgentTalk("102", 42),))
    msg = ended_message(ended, "102", 77)
    assert (msg["outcome"], msg["talk_seconds"], msg["call_id"], msg["answered_by"]) == ("answered", 42, 77, ["102"])
    assert (msg["answer_unseen"], msg["end_unseen"]) == (False, False)


def test_an_ended_message_says_when_its_talk_is_only_a_lower_bound() -> None:
    """A call learned from a listing (answer not seen) or gone without a Hangup (end not
    seen): the message says so, so no desk shows the least talk as the talk."""
    learned = Ended("c9", "inbound", "+79161234567", "answered", ("102",), 4, talks=(AgentTalk("102", 4, 12),),
                    answer_unseen=True)
    lost = Ended("c9", "inbound", "+79161234567", "answered", ("102",), 4, end_unseen=True)
    assert [(m["talk_seconds"], m["answer_unseen"], m["end_unseen"]) for m in (
        ended_message(learned, "102", 1), ended_message(lost, "102", 1))] == [(4, True, False), (4, False, True)]
