"""What the browser shows for a call: pure functions from call events and a directory
lookup to the JSON of docs/websocket.md. No I/O here, so every card can be tested from data.

The card is built once per call (the pipeline caches it) and travels unchanged in every
message about that call: a colleague's tab, a transferred-to agent and a reconnecting
tab all see the same history the first ringing phone saw.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol

from callpop.phones import format_display, is_withheld, phone_key
from callpop.settings import PhoneSettings
from callpop.telephony.events import (
    Answered,
    Direction,
    Ended,
    Ringing,
    RingStopped,
    Transferred,
)

__all__ = [
    "ClientMatch",
    "LookupResult",
    "MatchKind",
    "answered_message",
    "build_card",
    "client_id_of",
    "ended_message",
    "ring_stopped_message",
    "ringing_message",
    "transferred_message",
]

MatchKind = Literal["single", "several", "none", "withheld", "error"]
Message = dict[str, Any]


class ClientMatch(Protocol):
    """One client the number belongs to (the directory's ClientCard)."""

    def to_json(self) -> dict[str, Any]: ...


class LookupResult(Protocol):
    """The directory's answer for a number: zero, one or several clients."""

    @property
    def matches(self) -> Sequence[ClientMatch]: ...


def client_id_of(match: ClientMatch) -> int | None:
    """The client's database id in a match (the journal links the call to it)."""
    client = getattr(match, "client", None)
    ident = getattr(client, "id", None)
    if isinstance(ident, int):
        return ident
    data = match.to_json()
    for candidate in (data.get("id"), (data.get("client") or {}).get("id")):
        if isinstance(candidate, int):
            return candidate
    return None


def number_json(raw: str | None, phones: PhoneSettings) -> dict[str, Any]:
    """The caller's number as raw, E.164 and display forms; withheld numbers are empty."""
    if is_withheld(raw):
        return {"raw": "", "e164": None, "display": "", "withheld": True}
    assert raw is not None
    key = phone_key(raw, phones.default_region, phones.min_external_digits)
    display = format_display(key.e164, phones.default_region) if key.e164 else key.raw
    return {"raw": key.raw, "e164": key.e164, "display": display, "withheld": False}


def build_card(call: str, direction: Direction, number: str | None, caller_name: str | None,
               lookup: LookupResult | None, phones: PhoneSettings, *, failed: bool = False) -> dict[str, Any]:
    """The card for a call: one client (full card), several (candidates), none (offer to
    create or attach), withheld (nothing to look up), or error (directory unreachable)."""
    num = number_json(number, phones)
    name = caller_name.strip() if caller_name and caller_name.strip() and not is_withheld(caller_name) else None
    matches = tuple(lookup.matches) if lookup is not None else ()
    kind: MatchKind
    client: dict[str, Any] | None = None
    candidates: list[dict[str, Any]] = []
    offer: dict[str, Any] | None = None
    if num["withheld"]:
        kind = "withheld"
    elif failed:
        kind = "error"
    elif len(matches) == 1:
        kind = "single"
        client = matches[0].to_json()
    elif matches:
        kind = "several"
        candidates = [m.to_json() for m in matches]
    else:
        kind = "none"
        phone = num["e164"] or num["raw"]
        offer = {"create": {"phone": phone, "name": name}, "attach": {"phone": phone}}
    return {"call": call, "direction": direction, "number": num, "caller_name": name,
            "match": kind, "client": client, "candidates": candidates, "offer": offer}


def ringing_message(event: Ringing, card: dict[str, Any]) -> Message:
    return {"type": "call.ringing", "call": event.call, "agent": event.agent,
            "direction": event.direction, "at": event.at, "card": card}


def answered_message(event: Answered, direction: Direction, card: dict[str, Any]) -> Message:
    return {"type": "call.answered", "call": event.call, "agent": event.agent,
            "direction": direction, "at": event.at, "card": card}


def ring_stopped_message(event: RingStopped) -> Message:
    return {"type": "call.ring_stopped", "call": event.call, "agent": event.agent,
            "reason": event.reason, "at": event.at}


def transferred_message(event: Transferred, agent: str, card: dict[str, Any] | None) -> Message:
    return {"type": "call.transferred", "call": event.call, "agent": agent,
            "from_agent": event.from_agent, "to_agent": event.to_agent, "kind": event.kind,
            "at": event.at, "card": card}


def ended_message(event: Ended, agent: str, call_id: int | None) -> Message:
    """``answer_unseen`` / ``end_unseen``: callpop did not see the answer (it learned the
    call from a listing) or the end (a lost PBX link, a silent channel): ``talk_seconds`` is
    then the least the talk can have been, to be shown as such, never as the talk."""
    return {"type": "call.ended", "call": event.call, "agent": agent, "direction": event.direction,
            "outcome": event.outcome, "answered_by": list(event.answered_by),
            "talk_seconds": event.talk_seconds, "answer_unseen": event.outcome == "answered" and event.answer_unseen,
            "end_unseen": event.end_unseen, "call_id": call_id, "at": event.ended_at}
