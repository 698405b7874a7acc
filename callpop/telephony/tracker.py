"""The call tracker: AMI messages in, call events out. Pure: no I/O, no clock of its own.

What it relies on, as the captures in ``tests/fixtures/ami`` show Asterisk 22 doing it:

* Every channel of a call carries the Linkedid of the call's first channel; a call is keyed
  by it and the ``call`` id we emit is that first Linkedid, kept across transfers.
* An agent rings when a channel of the agent's device is dialled (``DialBegin``/
  ``AgentCalled``, DestChannel); it answers when that channel goes ``Up``; it stops ringing
  when the dialled channel hangs up (its Cause tells busy/declined/unreachable/answered
  elsewhere). A ``DialBegin`` with no ``Channel`` is an Originate ringing a phone on behalf
  of whoever asked: the click-to-call agent's own phone (08b) is not a call *to* the agent,
  so it is not shown; the agent sees the outbound call once the PBX dials the client.
  A phone dialled into a call while already ``Up`` took it with a pickup code: it
  answers without having rung.
* A call's first channel from outside (a trunk's ``Newchannel``, not one of our phones nor
  a Local channel) names the caller before any phone rings: the tracker leaves an
  ``Arrival`` hint in ``arrivals`` (not a call event) so the caller can be looked up early.
* The direction comes from the call's first channel: from outside (a trunk) is inbound; an
  agent dialling a trunk is outbound (the client is the number dialled); agent to agent is
  internal (tracked and emitted; consumers leave them out of pops and KPIs).
* Local channel pairs are walked by device: ``Local/101@agent-phone-..;1`` belongs to agent
  101 like ``PJSIP/101-..`` does, and a Local half that is nobody's device but dials a phone
  hands its queue's "no answer" on to that phone. An agent is one ringing, however many of
  its channels ring.
* A Local channel that is nobody's device and not named by a phone number is a route
  (``Local/ID730151@osvpi_route_phoneaccount``, a follow-me, a forwarding): it rings
  nobody itself; what its ``;2`` half dials decides who rings and the direction.
* An Originate of such a route (a CRM's click-to-dial) rings the agent's own phone first:
  that agent is the call's originator, and the call is that agent's outbound call.
* A queue that rings its members again after ``retry`` gives a fresh ``ringing`` after the
  ``ring_stopped no_answer``: the phone really stopped for ``retry`` seconds and rings
  again, and the pop should come back with it (05b: two episodes per member).

Talk time is measured with the ``now`` given to :meth:`CallTracker.feed`, floored to whole
seconds like Asterisk's billsec. With ``now=None`` (a raw capture has no clock) the only
measure left is the queue's ``AgentComplete TalkTime``; other calls report 0.

A stream (or a daemon) that starts in the middle of calls learns them from the
``CoreShowChannels`` listing (see :mod:`callpop.telephony.tracker_listing`). Without a
listing, a call already in progress is never reported, not even its end: we saw neither
its direction nor its answer. Calls that start later are reported in full.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from callpop.phones import is_withheld, phone_key
from callpop.telephony.amitext import AmiMessage
from callpop.telephony.calls import Leg
from callpop.telephony.channels import AgentRule
from callpop.telephony.events import ActiveCall, Arrival, CallEvent
from callpop.telephony.tracker_book import ChannelBook, NumberRules
from callpop.telephony.tracker_listing import Listing
from callpop.telephony.tracker_transfers import Transfers

if TYPE_CHECKING:
    from callpop.settings import Settings

__all__ = ["CallTracker", "TrackerConfig"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrackerConfig:
    agents: Mapping[str, str]
    agent_extension_pattern: str
    trunk_devices: tuple[str, ...]
    default_region: str
    min_external_digits: int
    agent_prefix: str = ""

    @classmethod
    def from_settings(cls, settings: Settings, pbx: str | None = None) -> TrackerConfig:
        """The tracker of PBX *pbx* (None: the first, ``[pbx] id``). On another PBX a device
        listed as ``"NAME:PJSIP/101"`` in ``[agents]`` is that PBX's, and a device found by
        the default rule is agent ``NAME:101``: extensions of two PBXs never mix."""
        other = pbx is not None and pbx != settings.pbx.id
        agents = {}
        for device, ext in settings.agents.items():
            owner, sep, bare = device.partition(":")
            if not sep or "/" in owner:
                if not other:
                    agents[device] = ext
            elif other and owner == pbx:
                agents[bare] = ext
        return cls(
            agents=agents,
            agent_extension_pattern=settings.pbx.agent_extension_pattern,
            trunk_devices=tuple(settings.pbx.trunk_devices),
            default_region=settings.phones.default_region,
            min_external_digits=settings.phones.min_external_digits,
            agent_prefix=f"{pbx}:" if other else "",
        )


class CallTracker:
    """Follows channels and calls; :meth:`feed` one AMI message at a time."""

    def __init__(self, config: TrackerConfig) -> None:
        self.config = config
        agent = AgentRule(config.agents, config.agent_extension_pattern, config.trunk_devices, config.agent_prefix)
        self.book = ChannelBook(agent, NumberRules(config.default_region, config.min_external_digits))
        self._listing = Listing(self.book)
        self._transfers = Transfers(self.book)
        # Hints of the last ``feed``: calls from outside that just reached the PBX (Arrival)
        self.arrivals: list[Arrival] = []
        self._handlers: dict[str, Callable[[AmiMessage], None]] = {
            "Newchannel": self._on_newchannel,
            "NewCallerid": self._on_touch,
            "NewConnectedLine": self._on_touch,
            "Newstate": self._on_newstate,
            "DialBegin": self._on_dial_begin,
            "DialEnd": self._on_dial_end,
            "AgentCalled": self._on_agent_called,
            "AgentConnect": self._on_agent_connect,
            "AgentRingNoAnswer": self._on_ring_no_answer,
            "AgentComplete": self._on_agent_complete,
            "QueueCallerAbandon": self._on_caller_abandon,
            "HangupRequest": self._on_hangup_request,
            "SoftHangupRequest": self._on_hangup_request,
            "Hangup": self._on_hangup,
            "BridgeEnter": self._on_bridge,
            "BridgeLeave": self._on_bridge,
            "Rename": self._on_rename,
            "BlindTransfer": self._transfers.on_blind,
            "AttendedTransfer": self._transfers.on_attended,
            "CoreShowChannel": self._listing.on_item,
            "CoreShowChannelsComplete": self._listing.on_complete,
        }

    # --- public API ------------------------------------------------------------------

    @property
    def malformed(self) -> int:
        """Messages skipped because they lacked the fields their event needs."""
        return self.book.malformed

    def feed(self, message: AmiMessage, now: float | None = None) -> list[CallEvent]:
        """One AMI message (event or response, AMI key names as received) in, call events out.
        *now* is the wall-clock epoch seconds of reception, None when the source has no clock."""
        if self.arrivals:
            self.arrivals = []
        if now is not None:
            self.book.heard_at = now
        name = message.get("Event")
        handler = self._handlers.get(name) if isinstance(name, str) else None
        if handler is None:
            self._seen(message, now)
            return []
        self.book.now = now
        out = self.book.out = []
        handler(message)
        return out

    @property
    def handled_events(self) -> frozenset[str]:
        """The AMI events the tracker reads; any other event is ignored (eventfilter.py)."""
        return frozenset(self._handlers)

    def resync(self, channels: Sequence[AmiMessage], now: float | None = None) -> list[CallEvent]:
        """Apply a CoreShowChannels listing (see :meth:`Listing.resync`)."""
        return self._listing.resync(channels, now)

    def link_lost(self, at: float | None = None) -> None:
        """The AMI connection to the PBX dropped. What happened meanwhile is unknown until
        the listing of the next login: the calls it no longer shows end at the last message
        heard before the drop (not at the listing), with ``end_unseen``; the calls it still
        shows go on as if nothing happened. Calling it twice keeps the first moment.

        *at*: when the connection itself last heard the PBX, if later (a PBX that closed or
        reset the connection was there until then: killed, it ended its calls at that
        moment, while its last event may be far older when the calls were only talking)."""
        if self.book.lost_at is None:
            heard = self.book.heard_at
            self.book.lost_at = at if at is not None and (heard is None or at > heard) else heard

    def sweep(self, now: float, idle_after: float) -> list[CallEvent]:
        """Forget the channels nothing was heard of for more than *idle_after* seconds.

        Asterisk sends a Hangup for every channel; one that never comes (a lost event, a
        channel leaked by a module) would keep its channel, and its call, here forever. Such
        a channel goes as if it had vanished (see ``ChannelBook.vanish``): at the last
        message about it, and a call it was the last channel of ends with ``end_unseen``
        (outcome ``unknown`` if nobody was seen answering). The bound must be longer than
        any quiet stretch of a real call: a talking call sends no event of its own (RTCP
        reports and dialplan events about its channels count as heard). Returns the call
        events this caused."""
        return [e for part in self.sweep_chunks(now, idle_after) for e in part]

    def sweep_chunks(self, now: float, idle_after: float, chunk: int = 1000) -> Iterator[list[CallEvent]]:
        """:meth:`sweep` in parts of *chunk* channels, so a caller on the event loop can let
        the AMI reader run between parts (100,000 stuck channels take seconds). Nothing may
        be fed to the tracker until the iterator is exhausted."""
        book = self.book
        limit = now - idle_after
        idle = sorted((ch for ch in book.channels.values() if ch.seen_at is not None and ch.seen_at < limit),
                      key=lambda ch: ch.seen_at or 0.0)
        if idle:
            log.warning("tracker: dropping %d channels silent for more than %.0f s (no Hangup seen): %s",
                        len(idle), idle_after, ", ".join(ch.name for ch in idle[:5]))
        for start in range(0, len(idle), chunk):
            book.now = now
            out = book.out = []
            for ch in idle[start:start + chunk]:
                if book.channels.get(ch.uniqueid) is ch:
                    book.vanish(ch, ch.seen_at)
            book.out = []
            yield out

    def _seen(self, message: AmiMessage, now: float | None) -> None:
        """An event the tracker has no handler for (VarSet, RTCP reports...) still shows
        that its channel is alive: the idle sweep must not drop a long quiet call."""
        if now is not None:
            uid = message.get("Uniqueid")
            ch = self.book.channels.get(uid) if isinstance(uid, str) else None
            if ch is not None:
                ch.seen_at = now

    def active_calls(self) -> list[ActiveCall]:
        seen: set[int] = set()
        result: list[ActiveCall] = []
        for call in self.book.calls.values():
            if id(call) in seen or call.ended or not call.announced or call.direction is None:
                continue
            seen.add(id(call))
            result.append(ActiveCall(
                call.id, call.direction, call.client, call.caller_name,
                ringing=tuple(a for a, st in call.agents.items() if st.ringing),
                talking=tuple(a for a, st in call.agents.items() if st.talking),
                started_at=call.started_at,
            ))
        return result

    def agent_for_device(self, channel_or_device: str) -> str | None:
        return self.book.agent(channel_or_device)

    # --- handlers ------------------------------------------------------------------------

    def _on_touch(self, m: AmiMessage) -> None:
        book = self.book
        if book.touch(m) is None:
            book.bad(m, "no Uniqueid/Channel")

    def _on_newchannel(self, m: AmiMessage) -> None:
        """A new channel; when it is a call's first and comes from outside (not one of our
        phones, not a Local channel of an Originate), the caller is known now: an Arrival."""
        book = self.book
        ch = book.touch(m)
        if ch is None:
            book.bad(m, "no Uniqueid/Channel")
            return
        call = ch.call
        if call is None or call.origin is not ch or ch.agent is not None or ch.name.startswith("Local/") \
                or is_withheld(ch.cid_num):
            return
        key = phone_key(ch.cid_num or "", self.config.default_region, self.config.min_external_digits)
        if key.external:
            self.arrivals.append(Arrival(call.id, key.display_key, book.now))

    def _on_newstate(self, m: AmiMessage) -> None:
        book = self.book
        ch = book.touch(m)
        if ch is None:
            return book.bad(m, "no Uniqueid/Channel")
        if ch.state == "Up" and ch.leg is not None and ch.call is not None:
            ch.call.answer(ch.leg, book.now, book.out)

    def _on_dial_begin(self, m: AmiMessage) -> None:
        book = self.book
        if not m.get("Channel"):
            # an Originate dialling its first party: nobody called *to* them
            dest = book.touch(m, "Dest")
            if dest is not None and dest.call is not None and dest.call.origin is dest:
                dest.call.originated = True
            return
        dialer, dest = book.touch(m), book.touch(m, "Dest")
        if dialer is None or dest is None or dialer.call is None:
            return book.bad(m, "no Channel/DestChannel")
        if dest.call is not dialer.call:
            if dest.call is not None and dest.call.announced and not dest.call.ended:
                book.take_over(dest, dialer.call)
            else:
                book.move(dest, dialer.call, talk=False)
        dialled = m.get("DestCallerIDNum")
        if not isinstance(dialled, str) or not any(c.isdigit() for c in dialled):
            dialled = dialer.exten
        book.dial(dialer.call, dialer, dest, dest.agent, dialled)

    def _on_agent_called(self, m: AmiMessage) -> None:
        book = self.book
        caller, member = book.touch(m), book.touch(m, "Dest")
        if caller is None or member is None or caller.call is None:
            return book.bad(m, "no Channel/DestChannel")
        if member.call is not caller.call:
            book.move(member, caller.call, talk=False)
        interface = m.get("Interface")
        agent = member.agent
        if agent is None and isinstance(interface, str):
            agent = book.agent(interface)
        book.dial(caller.call, caller, member, agent, "")

    def _dest_leg(self, m: AmiMessage) -> Leg | None:
        book = self.book
        book.touch(m)
        dest = book.touch(m, "Dest")
        return None if dest is None else dest.leg

    def _on_dial_end(self, m: AmiMessage) -> None:
        book = self.book
        leg = self._dest_leg(m)
        if leg is None or leg.channel.call is None:
            return
        status = m.get("DialStatus")
        leg.status = status if isinstance(status, str) else ""
        if leg.status == "ANSWER":
            leg.channel.call.answer(leg, book.now, book.out)
        elif leg.status == "NOANSWER":
            leg.no_answer = True

    def _on_agent_connect(self, m: AmiMessage) -> None:
        book = self.book
        leg = self._dest_leg(m)
        if leg is not None and leg.channel.call is not None:
            leg.channel.call.answer(leg, book.now, book.out)

    def _on_ring_no_answer(self, m: AmiMessage) -> None:
        leg = self._dest_leg(m)
        if leg is not None:
            leg.no_answer = True

    def _on_agent_complete(self, m: AmiMessage) -> None:
        """The queue's own talk time: the only measure when the stream has no clock. The
        member channel it names may have hung up long ago (a Local pair optimised away):
        the agent then comes from ``Interface`` and the call from the caller's channel."""
        book = self.book
        caller = book.touch(m)
        dest = book.touch(m, "Dest")
        talk = m.get("TalkTime")
        if not isinstance(talk, str) or not talk.isdigit():
            return
        call = dest.call if dest is not None else caller.call if caller is not None else None
        interface = m.get("Interface")
        agent = dest.agent if dest is not None else None
        if agent is None and isinstance(interface, str):
            agent = book.agent(interface)
        if call is not None and agent is not None:
            call.state(agent).talk_hint = int(talk)

    def _on_caller_abandon(self, m: AmiMessage) -> None:
        book = self.book
        ch = book.touch(m)
        if ch is not None and ch.call is not None:
            ch.call.caller_gone = True

    def _on_hangup_request(self, m: AmiMessage) -> None:
        book = self.book
        ch = book.touch(m)
        if ch is not None:
            ch.hangup_requested = True

    def _on_hangup(self, m: AmiMessage) -> None:
        book = self.book
        ch = book.touch(m)
        if ch is None:
            return book.bad(m, "no Uniqueid/Channel")
        raw = m.get("Cause")
        cause = int(raw) if isinstance(raw, str) and raw.isdigit() else None
        book.gone(ch, cause)

    def _on_bridge(self, m: AmiMessage) -> None:
        book = self.book
        ch = book.touch(m)
        if ch is None:
            return book.bad(m, "no Uniqueid/Channel")
        bridge = m.get("BridgeUniqueid")
        ch.bridge = bridge if m.get("Event") == "BridgeEnter" and isinstance(bridge, str) else ""

    def _on_rename(self, m: AmiMessage) -> None:
        uid, new = m.get("Uniqueid"), m.get("Newname")
        ch = self.book.channels.get(uid) if isinstance(uid, str) else None
        if ch is not None and isinstance(new, str) and new:
            self.book.rename(ch, new)
