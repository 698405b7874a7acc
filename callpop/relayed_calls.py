"""The calls in progress as the other callpop instances relayed them.

A tab's snapshot (docs/websocket.md) is the pipeline's view of the calls in progress. An
instance whose PBX link is down has no such view of the calls it only hears of from the
others, so a tab connecting to it then (or the fresh snapshot its tabs get when its
LISTEN connection comes back) would leave those calls out: they would vanish from the
desk until their next message. This book keeps, per call and agent, the last relayed
message that shows the call (``call.ringing`` / ``call.answered`` with its card) and drops
it when the call stops ringing there, is transferred away or ends; the snapshot adds the
calls the pipeline does not know. What an instance said is forgotten with it (it stopped
or went quiet). No I/O.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RelayedCalls"]

MAX_CALLS = 4096  # more calls in progress than this at once: the oldest are forgotten


class RelayedCalls:
    """Call → agent → (instance that said it, the snapshot form of its message)."""

    def __init__(self) -> None:
        self._calls: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {}

    def __len__(self) -> int:
        return len(self._calls)

    def apply(self, origin: str, message: dict[str, Any]) -> None:
        """Follow one relayed message (second copies included: the book is about the calls,
        not about what was delivered)."""
        kind, call, agent = message.get("type"), message.get("call"), message.get("agent")
        if not isinstance(call, str) or not isinstance(agent, str):
            return
        if kind in ("call.ringing", "call.answered") and isinstance(message.get("card"), dict):
            self._show(origin, call, agent, kind, message)
        elif kind == "call.transferred" and isinstance(message.get("card"), dict) and agent == message.get("to_agent"):
            self._show(origin, call, agent, "call.answered" if message.get("kind") == "attended" else "call.ringing",
                       message)
        elif kind in ("call.ring_stopped", "call.ended", "call.transferred"):
            agents = self._calls.get(call)
            if agents is not None:
                agents.pop(agent, None)
                if not agents:
                    del self._calls[call]

    def _show(self, origin: str, call: str, agent: str, kind: str, message: dict[str, Any]) -> None:
        if call not in self._calls and len(self._calls) >= MAX_CALLS:
            del self._calls[next(iter(self._calls))]
        self._calls.setdefault(call, {})[agent] = (origin, {
            "type": kind, "call": call, "agent": agent, "direction": message.get("direction"),
            "at": message.get("at"), "card": message["card"]})

    def forget(self, origin: str) -> int:
        """Drop what *origin* said (it stopped, or was not heard from); returns how many calls went."""
        gone = 0
        for call in list(self._calls):
            agents = self._calls[call]
            for agent in [a for a, (said_by, _m) in agents.items() if said_by == origin]:
                del agents[agent]
            if not agents:
                del self._calls[call]
                gone += 1
        return gone

    def snapshot(self, watched: frozenset[str] | None, known: set[str]) -> list[dict[str, Any]]:
        """The calls at *watched* extensions (None: all) that are not in *known* (the
        pipeline's own calls), as snapshot messages, oldest call first."""
        return [message for call, agents in self._calls.items() if call not in known
                for agent, (_origin, message) in agents.items() if watched is None or agent in watched]
