"""Call events: what the tracker tells the rest of callpop.

Frozen snapshots, never live tracker objects, so a consumer (lookup, push, journal) can
keep them without seeing later changes. ``as_dict`` is the public JSON form printed by
``callpop replay`` and must keep exactly the documented fields; the extra context a pop
needs (caller name, times) travels in the dataclass fields that ``as_dict`` leaves out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Direction = Literal["inbound", "outbound", "internal"]
# ``transferred``: the ringing went on in another call (a transfer completed while this phone
# rang moved it there); it was not missed
RingStopReason = Literal["answered_elsewhere", "caller_hangup", "no_answer", "busy", "rejected", "unavailable",
                         "transferred"]
TransferKind = Literal["blind", "attended"]
Outcome = Literal["answered", "missed", "unknown"]


@dataclass(frozen=True, slots=True)
class Ringing:
    """An agent's phone started ringing for a call (inbound) or an agent dialled out."""

    call: str
    direction: Direction
    client: str | None
    agent: str
    caller_name: str | None = field(default=None, compare=False)
    at: float | None = field(default=None, compare=False)
    event: Literal["ringing"] = field(default="ringing", init=False)

    def as_dict(self) -> dict[str, Any]:
        return {"event": self.event, "call": self.call, "direction": self.direction,
                "client": self.client, "agent": self.agent}


@dataclass(frozen=True, slots=True)
class RingStopped:
    call: str
    agent: str
    reason: RingStopReason
    at: float | None = field(default=None, compare=False)
    event: Literal["ring_stopped"] = field(default="ring_stopped", init=False)

    def as_dict(self) -> dict[str, Any]:
        return {"event": self.event, "call": self.call, "agent": self.agent, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Answered:
    """An agent took the call. ``unseen``: callpop did not see the answer, a listing showed
    the agent already talking; ``at`` is that listing, the latest the answer can have been."""

    call: str
    agent: str
    at: float | None = field(default=None, compare=False)
    unseen: bool = field(default=False, compare=False)
    event: Literal["answered"] = field(default="answered", init=False)

    def as_dict(self) -> dict[str, Any]:
        return {"event": self.event, "call": self.call, "agent": self.agent}


@dataclass(frozen=True, slots=True)
class Transferred:
    call: str
    from_agent: str
    to_agent: str
    kind: TransferKind
    at: float | None = field(default=None, compare=False)
    event: Literal["transferred"] = field(default="transferred", init=False)

    def as_dict(self) -> dict[str, Any]:
        return {"event": self.event, "call": self.call, "from_agent": self.from_agent,
                "to_agent": self.to_agent, "kind": self.kind}


@dataclass(frozen=True, slots=True)
class AgentTalk:
    """How long one agent talked in a call (a transferred call has several)."""

    agent: str
    talk_seconds: int
    # the answer or the end was not seen (Ended.answer_unseen, Ended.end_unseen):
    # talk_seconds is a lower bound, this the upper one; None when the talk is known
    at_most: int | None = None


@dataclass(frozen=True, slots=True)
class Ended:
    """The call is over. ``talk_seconds`` is the caller's connected time (the union of the
    agents' talk, never their sum); ``talks`` are each agent's own share; ``answered_at``
    the first answer, never before ``started_at``. A consultation whose ringing was handed
    to the call it transferred (completed while the target rang) is ``answered`` by nobody,
    with no talk, ``answered_at`` the hand-over: it went on as that call and missed nothing.

    ``end_unseen``: no Hangup was seen (the PBX link was lost and the call was gone from the
    listing after it, or its channels fell silent for longer than the idle bound):
    ``ended_at`` is the last moment the call was known to be on, so ``ended_at`` and the
    talk are lower bounds (``AgentTalk.at_most`` the upper: until the call was found gone),
    and a call nobody was seen answering has outcome ``unknown``."""

    call: str
    direction: Direction
    client: str | None
    outcome: Outcome
    answered_by: tuple[str, ...]
    talk_seconds: int
    caller_name: str | None = field(default=None, compare=False)
    started_at: float | None = field(default=None, compare=False)
    ended_at: float | None = field(default=None, compare=False)
    agents_rang: tuple[str, ...] = field(default=(), compare=False)
    talks: tuple[AgentTalk, ...] = field(default=(), compare=False)
    answered_at: float | None = field(default=None, compare=False)
    end_unseen: bool = field(default=False, compare=False)
    # the answer was not seen, only inferred from a channel listing (callpop was not
    # following the call then): ``answered_at`` is the latest it can have been (the
    # listing), ``talk_seconds`` and the talkers' shares are lower bounds, and each
    # ``AgentTalk.at_most`` the upper bound (from the agent channel's creation). The journal
    # counts the talk from the answer it recorded live when it has one (journal_writer.py)
    answer_unseen: bool = field(default=False, compare=False)
    # where the times come from: "ami" what callpop saw of the call (events, listings),
    # "cdr" the PBX's call detail records, read after the call for a row callpop could not
    # see whole (callpop/store/cdr_reconcile.py)
    times_source: Literal["ami", "cdr"] = field(default="ami", compare=False)
    event: Literal["ended"] = field(default="ended", init=False)

    def as_dict(self) -> dict[str, Any]:
        return {"event": self.event, "call": self.call, "direction": self.direction,
                "client": self.client, "outcome": self.outcome,
                "answered_by": list(self.answered_by), "talk_seconds": self.talk_seconds}


CallEvent = Ringing | RingStopped | Answered | Transferred | Ended


@dataclass(frozen=True, slots=True)
class Arrival:
    """A call from outside reached the PBX: its first channel (a trunk's) appeared, before
    any phone rings. Not a call event (nothing to show yet; never in ``callpop replay``):
    a hint that lets the pipeline look the caller up while the dialplan, an IVR or a queue
    runs, so the card is ready when a phone rings. ``client`` as in ``Ringing``."""

    call: str
    client: str
    at: float | None = None


@dataclass(frozen=True, slots=True)
class ActiveCall:
    """A call in progress, as the tracker sees it now: what a reconnecting browser is sent
    before live events. ``ringing`` are the agents whose phones ring now, ``talking`` the
    agents in conversation now."""

    call: str
    direction: Direction
    client: str | None
    caller_name: str | None
    ringing: tuple[str, ...]
    talking: tuple[str, ...]
    started_at: float | None = None
