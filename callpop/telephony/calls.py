"""One call as the tracker follows it (its live channels, legs and agents), and the call events it gives rise to.

A call is everything that shares a Linkedid. Inside it, each agent has one state: ringing
(one or more *legs*, dialled channels, ring for them: a Local pair and the real phone
behind it are one agent ringing, not three), talking, or neither. Events are emitted on
the agent's transitions, never per channel, which is what makes "at most one ``ringing``
per ringing episode" and "missed per call, never per leg" hold by construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from callpop.phones import is_withheld, phone_key
from callpop.telephony.events import (
    AgentTalk,
    Answered,
    CallEvent,
    Direction,
    Ended,
    Ringing,
    RingStopped,
    RingStopReason,
    TransferKind,
    Transferred,
)

__all__ = ["AgentState", "Call", "Channel", "Leg", "stop_reason"]

# Q.850 causes that mean "the phone could not be reached" (unregistered, no route, out of order...).
_UNAVAILABLE = frozenset({1, 2, 3, 20, 22, 27, 28, 34, 38, 41, 42, 44, 47, 58, 65, 66, 69, 79, 88})
CAUSE_BUSY = 17
CAUSE_REJECTED = 21
CAUSE_ANSWERED_ELSEWHERE = 26


@dataclass(slots=True, eq=False)
class Channel:
    """What we know of one live Asterisk channel (keyed by Uniqueid)."""

    uniqueid: str
    name: str
    linkedid: str
    agent: str | None
    state: str = ""
    cid_num: str = ""
    cid_name: str = ""
    exten: str = ""
    bridge: str = ""
    hangup_requested: bool = False
    gone: bool = False
    pinned: bool = False  # moved by a transfer: a later Linkedid change must not move it back
    seen_at: float | None = None  # clock of the last message about it (for the idle sweep)
    call: Call | None = field(default=None, repr=False)
    leg: Leg | None = field(default=None, repr=False)


@dataclass(slots=True, eq=False)
class Leg:
    """A channel dialled on behalf of an agent: the agent's phone (inbound, internal) or,
    for an outbound call, the trunk channel towards the client (the agent "rings out").

    A Local pair between the dialler and the phone (a queue member ``Local/...``) is walked:
    the ``;1`` half that was dialled is a *proxy* leg when it is nobody's device (it never
    rings by itself), and the phone its ``;2`` dials points back to it as *upstream*, so
    a queue's "no answer" for the Local member reaches the phone behind it."""

    agent: str
    channel: Channel
    dialer: Channel | None
    upstream: Leg | None = None
    proxy: bool = False
    status: str = ""  # last DialEnd DialStatus
    no_answer: bool = False  # DialEnd NOANSWER or a queue's AgentRingNoAnswer
    answered: bool = False
    done: bool = False


@dataclass(slots=True, eq=False)
class AgentState:
    agent: str
    legs: set[str] = field(default_factory=set)  # uniqueids of legs ringing now
    channels: set[str] = field(default_factory=set)  # the agent's own channels in this call
    ringing: bool = False
    talking: bool = False
    talk_since: float | None = None
    # an answer not seen (a listing showed the agent already talking): the earliest it can
    # have been (the agent channel's creation); talk_since is then the latest (the listing)
    answer_from: float | None = None
    # a talk whose end was not seen (its channel vanished: see ChannelBook.vanish): the
    # latest it can have ended (when the channel was found gone)
    end_by: float | None = None
    talked: float = 0.0
    spans: list[tuple[float, float]] = field(default_factory=list)  # (from, to) of each talk
    clockless: bool = False  # some talk had no clock: fall back on talk_hint
    talk_hint: int | None = None  # the queue's AgentComplete TalkTime


def _name(raw: str) -> str | None:
    """Caller names are data (attacker-controlled, shown with textContent): kept verbatim,
    except Asterisk's placeholder for "no name"."""
    return None if not raw or raw == "<unknown>" else raw


def _client(number: str, region: str, min_digits: int) -> str | None:
    """E.164 when the number reads as one, else as sent; None when withheld."""
    return None if is_withheld(number) else phone_key(number, region, min_digits).display_key


def stop_reason(call: Call, leg: Leg, cause: int | None) -> RingStopReason:
    """Why an agent's phone stopped ringing. Order matters: a colleague who answered
    explains everything else (a ring-group member did not miss the call), then what the
    phone itself said (busy, declined, unreachable), then timeouts, then the caller. The
    agent who is dialling (a colleague transferred to this phone, still on the line) is
    talking but answered nothing of this dial."""
    chain = [leg]
    while chain[-1].upstream is not None and len(chain) < 8:
        chain.append(chain[-1].upstream)
    dialer = chain[-1].dialer  # the caller's side, above any Local pair
    calling = dialer.agent if dialer is not None else None
    for other in call.agents.values():
        if other.talking and other.agent not in (leg.agent, calling):
            return "answered_elsewhere"
    if cause == CAUSE_ANSWERED_ELSEWHERE:
        return "answered_elsewhere"
    statuses = {link.status for link in chain}
    if cause == CAUSE_REJECTED:  # a 603 Decline: chan_sip reports DialStatus BUSY for it
        return "rejected"
    if cause == CAUSE_BUSY or "BUSY" in statuses:
        return "busy"
    if statuses & {"CHANUNAVAIL", "CONGESTION"} or (cause is not None and cause in _UNAVAILABLE):
        return "unavailable"
    if any(link.no_answer for link in chain):
        return "no_answer"
    if call.caller_gone or (dialer is not None and (dialer.hangup_requested or dialer.gone)):
        return "caller_hangup"
    return "no_answer"


@dataclass(slots=True, eq=False)
class Call:
    id: str
    started_at: float | None
    origin: Channel | None = None
    direction: Direction | None = None
    client: str | None = None
    caller_name: str | None = None
    channels: dict[str, Channel] = field(default_factory=dict)
    agents: dict[str, AgentState] = field(default_factory=dict)
    answered_by: list[str] = field(default_factory=list)
    rang: list[str] = field(default_factory=list)
    announced: bool = False
    caller_gone: bool = False
    # (transferer, kind) of a transfer whose target nobody answered yet: a blind transfer,
    # or an attended one completed while the target still rang ("blonde")
    pending_transfer: tuple[str, TransferKind] | None = None
    # agents whose ringing here was handed to another call (a transfer completed while they
    # rang, "blonde"): they stop ringing here as ``transferred``, and the call, which went on
    # as that call, ends ``answered`` like an attended transfer's consultation, never missed
    handed_over: set[str] = field(default_factory=set)
    handed_at: float | None = None  # when the first ringing was handed over (the answered_at then)
    originated: bool = False  # the first channel was created by an Originate (no dialler)
    originator: str | None = None  # the agent an Originate rang first (click-to-dial)
    ended: bool = False
    answer_unseen: bool = False  # an answer was inferred from a listing, not seen (Ended.answer_unseen)
    end_unseen: bool = False  # its channels vanished without a Hangup (see Ended.end_unseen)
    keys: list[str] = field(default_factory=list)  # Linkedids that lead to this call

    def state(self, agent: str) -> AgentState:
        st = self.agents.get(agent)
        if st is None:
            st = self.agents[agent] = AgentState(agent)
        return st

    def decide(self, dialer: Channel, dest: Channel, dialled: str, region: str, min_digits: int) -> None:
        """At the first dial: from outside is inbound (the client is the caller), an agent
        dialling out is outbound (the client is the number dialled), agent to agent is
        internal (the "client" is the calling agent's extension). A call an Originate
        started with an agent's phone (click-to-dial) is that agent's."""
        origin = self.origin or dialer
        origin_agent = self.originator or origin.agent
        if origin_agent is None:
            src = dialer if dialer.agent is None else origin
            self.direction = "inbound"
            self.client = _client(src.cid_num, region, min_digits)
            self.caller_name = _name(src.cid_name)
        elif dest.agent is None:
            self.direction = "outbound"
            self.client = _client(dialled, region, min_digits)
        else:
            self.direction = "internal"
            self.client = origin_agent
            self.caller_name = _name(origin.cid_name)

    # --- transitions -------------------------------------------------------------------

    def ring(self, leg: Leg, now: float | None, out: list[CallEvent]) -> None:
        """A leg starts ringing; the agent rings unless already ringing or talking here."""
        st = self.state(leg.agent)
        st.legs.add(leg.channel.uniqueid)
        if st.ringing or st.talking or self.direction is None:
            return
        st.ringing = True
        self.announced = True
        if leg.agent not in self.rang:
            self.rang.append(leg.agent)
        out.append(Ringing(self.id, self.direction, self.client, leg.agent,
                           caller_name=self.caller_name, at=now))

    def answer(self, leg: Leg, now: float | None, out: list[CallEvent]) -> None:
        if leg.answered or leg.done or leg.proxy:
            return
        leg.answered = True
        st = self.state(leg.agent)
        st.legs.discard(leg.channel.uniqueid)
        self.start_talk(leg.agent, now, out)

    def start_talk(self, agent: str, now: float | None, out: list[CallEvent],
                   transfer: tuple[str, TransferKind] | None = None) -> None:
        st = self.state(agent)
        if st.talking:
            return
        st.ringing = False
        st.talking = True
        st.talk_since = now
        self.announced = True
        if agent not in self.answered_by:
            self.answered_by.append(agent)
        if transfer is None and self.pending_transfer is not None and self.pending_transfer[0] != agent:
            transfer = self.pending_transfer
        if transfer is not None:
            self.pending_transfer = None
            out.append(Transferred(self.id, transfer[0], agent, transfer[1], at=now))
        out.append(Answered(self.id, agent, at=now))

    def stop_talk(self, agent: str, now: float | None) -> None:
        st = self.agents.get(agent)
        if st is None or not st.talking:
            return
        st.talking = False
        if now is not None and st.talk_since is not None:
            st.talked += max(0.0, now - st.talk_since)
            st.spans.append((st.talk_since, max(now, st.talk_since)))
        else:
            st.clockless = True
        st.talk_since = None

    def stop_leg(self, leg: Leg, cause: int | None, now: float | None, out: list[CallEvent]) -> None:
        """A leg ended without being answered; the agent stops ringing when it was the last."""
        if leg.done or leg.answered:
            return
        leg.done = True
        if leg.proxy:
            return
        st = self.state(leg.agent)
        st.legs.discard(leg.channel.uniqueid)
        if st.ringing and not st.legs:
            st.ringing = False
            out.append(RingStopped(self.id, leg.agent, stop_reason(self, leg, cause), at=now))

    def hand_over(self, legs: list[Leg], now: float | None) -> None:
        """The ringing *legs* go on in another call (see ``handed_over``): they end here
        without a ``ring_stopped`` of their own (their agents rang here, and answer or not
        in the other call); :meth:`stop_handed_over` tells the stop once that call rings."""
        if not self.handed_over:
            self.handed_at = now
        for leg in legs:
            leg.done = True
            self.handed_over.add(leg.agent)
            self.state(leg.agent).legs.discard(leg.channel.uniqueid)

    def stop_handed_over(self, now: float | None, out: list[CallEvent]) -> None:
        for agent in sorted(self.handed_over):
            st = self.agents.get(agent)
            if st is not None and st.ringing and not st.legs:
                st.ringing = False
                out.append(RingStopped(self.id, agent, "transferred", at=now))

    def end(self, now: float | None, out: list[CallEvent]) -> None:
        """The last channel is gone: close every agent and say how the call went."""
        if self.ended:
            return
        self.ended = True
        for st in self.agents.values():
            if st.ringing:
                st.ringing = False
                reason: RingStopReason = ("transferred" if st.agent in self.handed_over
                                          else "caller_hangup" if self.caller_gone else "no_answer")
                out.append(RingStopped(self.id, st.agent, reason, at=now))
            self.stop_talk(st.agent, now)
        if not self.announced or self.direction is None:
            return
        talks = tuple(AgentTalk(a, self.talk_seconds(a), self.talk_at_most(a)) for a in self.answered_by)
        answered_at, connected = self.connected(now)
        if answered_at is None and self.handed_over and self.handed_at is not None:
            lo = self.started_at if self.started_at is not None else self.handed_at
            answered_at = max(lo, self.handed_at if now is None else min(self.handed_at, now))
        if connected is None:  # some talk had no clock: the shares are all there is
            connected = sum(t.talk_seconds for t in talks)
        out.append(Ended(
            self.id, self.direction, self.client,
            "answered" if self.answered_by or self.handed_over else "unknown" if self.end_unseen else "missed",
            tuple(self.answered_by), connected,
            caller_name=self.caller_name, started_at=self.started_at, ended_at=now,
            agents_rang=tuple(self.rang), talks=talks, answered_at=answered_at,
            end_unseen=self.end_unseen, answer_unseen=self.answer_unseen,
        ))

    def connected(self, now: float | None) -> tuple[float | None, int | None]:
        """(first answer, whole seconds the caller was connected to an agent): the union of
        the agents' talk spans, so the consultation of an attended transfer, when both
        agents are on the call at once, counts once. Within the call's own start and end,
        so the answer is never before the start nor the talk longer than the call.
        (None, None) when some talk had no clock."""
        spans: list[tuple[float, float]] = []
        for st in self.agents.values():
            if st.clockless:
                return None, None
            spans.extend(st.spans)
        if not spans:
            return None, 0
        lo = self.started_at if self.started_at is not None else min(a for a, _ in spans)
        hi = now if now is not None else max(b for _, b in spans)
        total, reach = 0.0, lo
        for a, b in sorted(spans):
            a, b = max(a, reach), min(b, hi)
            if b > a:
                total += b - a
                reach = b
        return max(lo, min(min(a for a, _ in spans), hi)), int(total)

    def talk_seconds(self, agent: str) -> int:
        """Whole seconds (floored, as Asterisk's billsec). Without a clock the queue's
        AgentComplete TalkTime is the only measure there is; otherwise 0."""
        st = self.agents.get(agent)
        if st is None:
            return 0
        if st.clockless:
            return st.talk_hint if st.talk_hint is not None else int(st.talked)
        return int(st.talked)

    def talk_at_most(self, agent: str) -> int | None:
        """An agent whose answer was not seen talked at least ``talk_seconds`` (from when the
        listing showed them talking) and at most this (from their channel's creation, so
        the ring time included); one whose talk's end was not seen, at most until their
        channel was found gone. None when answer and end were seen: the talk is exact."""
        st = self.agents.get(agent)
        if st is None or (st.answer_from is None and st.end_by is None) or st.clockless or not st.spans:
            return None
        earlier = max(0.0, st.spans[0][0] - st.answer_from) if st.answer_from is not None else 0.0
        later = max(0.0, st.end_by - st.spans[-1][1]) if st.end_by is not None else 0.0
        return int(st.talked + earlier + later)
