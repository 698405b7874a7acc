"""The calls the other instances told of: shown in a snapshot until they stop there."""

from __future__ import annotations

from typing import Any

from callpop.relayed_calls import RelayedCalls

CARD: dict[str, Any] = {"call": "k1", "match": "none"}


def _msg(kind: str, agent: str, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "id": f"main/k1/{agent}/{kind}/1", "call": "k1", "agent": agent, "direction": "inbound",
            "at": 1.0, **extra}


def test_a_ring_group_answered_by_one_then_transferred_and_ended() -> None:
    book = RelayedCalls()
    for agent in ("101", "102"):
        book.apply("cp1", _msg("call.ringing", agent, card=CARD))
    assert [(m["type"], m["agent"]) for m in book.snapshot(None, set())] == [
        ("call.ringing", "101"), ("call.ringing", "102")]
    assert [m["agent"] for m in book.snapshot(frozenset({"102"}), set())] == ["102"]
    assert book.snapshot(None, {"k1"}) == []  # the pipeline knows the call: its view wins
    book.apply("cp1", _msg("call.ring_stopped", "102", reason="answered_elsewhere"))
    book.apply("cp1", _msg("call.answered", "101", card=CARD))
    assert [(m["type"], m["agent"]) for m in book.snapshot(None, set())] == [("call.answered", "101")]
    transfer: dict[str, Any] = {"from_agent": "101", "to_agent": "103", "card": CARD}
    book.apply("cp1", {**_msg("call.transferred", "103", **transfer), "kind": "attended"})
    book.apply("cp1", {**_msg("call.transferred", "101", **transfer), "kind": "attended"})
    assert [(m["type"], m["agent"]) for m in book.snapshot(None, set())] == [("call.answered", "103")]
    book.apply("cp1", _msg("call.ended", "103", outcome="answered"))
    assert book.snapshot(None, set()) == [] and len(book) == 0


def test_what_an_instance_said_goes_with_it() -> None:
    book = RelayedCalls()
    book.apply("cp1", _msg("call.ringing", "101", card=CARD))
    book.apply("cp2", _msg("call.ringing", "102", card=CARD))
    assert book.forget("cp1") == 0  # the call is still shown by what cp2 said
    assert [m["agent"] for m in book.snapshot(None, set())] == ["102"]
    assert book.forget("cp2") == 1 and len(book) == 0
