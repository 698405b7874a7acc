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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from callpop.phones import is_withheld, phone_key
from callpop.telephony.calls import Call, Channel, Leg
from callpop.telephony.channels import AgentRule, local_peer
from callpop.telephony.events import ActiveCall, Arrival, CallEvent
from callpop.telephony.tracker_listing import ListingHandlers
from callpop.telephony.tracker_transfers import TransferHandlers

if TYPE_CHECKING:
    from callpop.settings import Settings

__all__ = ["CallTracker", "TrackerConfig"]

log = logging.getLogger(__name__)

AmiMessage = Mapping[str, "str | list[str]"]

# Field names of one channel in a message: plain, or with the prefix of DialBegin/transfers.
_FIELDS = ("Uniqueid", "Channel", "Linkedid", "ChannelStateDesc", "CallerIDNum", "CallerIDName", "Exten")
_PREFIXED: dict[str, tuple[str, ...]] = {
    p: tuple(p + f for f in _FIELDS)
    for p in ("", "Dest", "Transferer", "Transferee", "OrigTransferer", "SecondTransferer", "TransferTarget")
}


@dataclass(frozen=True)
class TrackerConfig:
    agents: Mapping[str, str]
    agent_extension_pattern: str
    trunk_devices: tuple[str, ...]
    default_region: str
    min_external_digits: int

    @classmethod
    def from_settings(cls, settings: Settings) -> TrackerConfig:
        return cls(
            agents=dict(settings.agents),
            agent_extension_pattern=settings.pbx.agent_extension_pattern,
            trunk_devices=tuple(settings.pbx.trunk_devices),
            default_region=settings.phones.default_region,
            min_external_digits=settings.phones.min_external_digits,
        )


class CallTracker(ListingHandlers, TransferHandlers):
    """Follows channels and calls; :meth:`feed` one AMI message at a time."""

    def __init__(self, config: TrackerConfig) -> None:
        self.config = config
        self._agent = AgentRule(config.agents, config.agent_extension_pattern, config.trunk_devices)
        self._channels: dict[str, Channel] = {}
        self._by_name: dict[str, Channel] = {}
        self._calls: dict[str, Call] = {}
        self._now: float | None = None
        self._out: list[CallEvent] = []
        # Hints of the last ``feed``: calls from outside that just reached the PBX (Arrival)
        self.arrivals: list[Arrival] = []
        self._listing: list[Mapping[str, str]] = []
        self._listing_id: str | None = None
        self._hung_since_listing: set[str] = set()
        self.malformed = 0
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
            "BlindTransfer": self._on_blind_transfer,
            "AttendedTransfer": self._on_attended_transfer,
            "CoreShowChannel": self._on_listing_item,
            "CoreShowChannelsComplete": self._on_listing_complete,
        }

    # --- public API ------------------------------------------------------------------

    def feed(self, message: AmiMessage, now: float | None = None) -> list[CallEvent]:
        """One AMI message (event or response, AMI key names as received) in, call events out.
        *now* is the wall-clock epoch seconds of reception, None when the source has no clock."""
        if self.arrivals:
            self.arrivals = []
        name = message.get("Event")
        handler = self._handlers.get(name) if isinstance(name, str) else None
        if handler is None:
            return []
        self._now = now
        out = self._out = []
        handler(message)
        return out

    def active_calls(self) -> list[ActiveCall]:
        seen: set[int] = set()
        result: list[ActiveCall] = []
        for call in self._calls.values():
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
        return self._agent(channel_or_device)

    # --- channels and calls ------------------------------------------------------------

    def _bad(self, message: AmiMessage, why: str) -> None:
        self.malformed += 1
        log.debug("skipped malformed AMI message (%s): event=%s", why, message.get("Event"))

    def _touch(self, m: AmiMessage, prefix: str = "") -> Channel | None:
        """The channel a message talks about, created on first sight, kept up to date."""
        k_uid, k_name, k_linked, k_state, k_num, k_cname, k_exten = _PREFIXED[prefix]
        uid = m.get(k_uid)
        if not uid or not isinstance(uid, str):
            return None
        linkedid = m.get(k_linked) or uid
        if not isinstance(linkedid, str):
            return None
        ch = self._channels.get(uid)
        if ch is None:
            name = m.get(k_name)
            if not name or not isinstance(name, str):
                return None
            ch = Channel(uid, name, linkedid, self._agent(name))
            self._channels[uid] = ch
            self._by_name[name] = ch
            call = self._calls.get(linkedid)
            if call is None or call.ended:
                call = Call(linkedid, self._now, keys=[linkedid])
                self._calls[linkedid] = call
            self._attach(ch, call)
            if uid == linkedid:
                call.origin = ch
        elif linkedid != ch.linkedid:
            self._relink(ch, linkedid)
        state = m.get(k_state)
        if state and isinstance(state, str):
            ch.state = state
        num = m.get(k_num)
        if isinstance(num, str):
            ch.cid_num = num
        cname = m.get(k_cname)
        if isinstance(cname, str):
            ch.cid_name = cname
        exten = m.get(k_exten)
        if exten and isinstance(exten, str):
            ch.exten = exten
        return ch

    def _attach(self, ch: Channel, call: Call) -> None:
        call.channels[ch.uniqueid] = ch
        ch.call = call
        if ch.agent is not None:
            call.state(ch.agent).channels.add(ch.uniqueid)

    def _detach(self, ch: Channel) -> Call | None:
        call = ch.call
        if call is None:
            return None
        call.channels.pop(ch.uniqueid, None)
        ch.call = None
        if ch.agent is not None:
            st = call.agents.get(ch.agent)
            if st is not None:
                st.channels.discard(ch.uniqueid)
                if st.talking and not st.channels:
                    call.stop_talk(ch.agent, self._now)
        return call

    def _close_if_empty(self, call: Call) -> None:
        if call.channels:
            return
        call.end(self._now, self._out)
        for key in call.keys:
            if self._calls.get(key) is call:
                del self._calls[key]

    def _move(self, ch: Channel, into: Call, *, talk: bool) -> None:
        """A channel joins another call (bridge merge, transfer, pickup)."""
        leg = ch.leg
        if leg is not None and ch.call is not None:
            ch.call.stop_leg(leg, None, self._now, self._out)
            ch.leg = None
        old = self._detach(ch)
        self._attach(ch, into)
        if talk and ch.agent is not None and ch.state == "Up" and into.direction is not None:
            into.start_talk(ch.agent, self._now, self._out)
        if old is not None and old is not into:
            self._close_if_empty(old)

    def _relink(self, ch: Channel, linkedid: str) -> None:
        """Asterisk gave the channel another Linkedid (it adopts the oldest on bridge join,
        and no event says so): the channel now belongs to that call."""
        ch.linkedid = linkedid
        if ch.pinned or ch.call is None:
            return
        target = self._calls.get(linkedid)
        if target is None:
            # the oldest channel was never seen (stream started mid-call): same call, new key
            ch.call.keys.append(linkedid)
            self._calls[linkedid] = ch.call
        elif target is not ch.call and not target.ended:
            self._move(ch, target, talk=True)

    def _gone(self, ch: Channel, cause: int | None) -> None:
        ch.gone = True
        self._channels.pop(ch.uniqueid, None)
        if self._by_name.get(ch.name) is ch:
            del self._by_name[ch.name]
        if self._listing_id is not None:
            self._hung_since_listing.add(ch.uniqueid)
        leg = ch.leg
        if leg is not None and ch.call is not None:
            ch.call.stop_leg(leg, cause, self._now, self._out)
        call = self._detach(ch)
        if call is not None:
            self._close_if_empty(call)

    # --- dialling ------------------------------------------------------------------------

    def _dial(self, call: Call, dialer: Channel, dest: Channel, agent: str | None, dialled: str) -> None:
        """*dialer* rings *dest*: decide whose phone this is and start that agent ringing."""
        if dest.leg is not None and not dest.leg.done:
            return
        upstream = self._upstream(dialer)
        if agent is None:
            if dialer.agent is None:
                if dest.name.startswith("Local/"):  # may lead to a phone: keep its dial status
                    dest.leg = Leg("", dest, dialer, upstream, proxy=True)
                return  # trunk to trunk: nobody of ours
            agent = dialer.agent  # the trunk leg of an outbound call (or an agent's follow-me)
        elif call.origin is not None and agent == call.origin.agent and not call.announced:
            return  # the PBX rings the originator's own phone first (click-to-call)
        if call.direction is None:
            call.decide(dialer, dest, dialled, self.config.default_region, self.config.min_external_digits)
        leg = dest.leg = Leg(agent, dest, dialer, upstream)
        call.ring(leg, self._now, self._out)
        if dest.state == "Up":
            call.answer(leg, self._now, self._out)

    def _upstream(self, dialer: Channel) -> Leg | None:
        """The leg a Local ``;2`` half continues: the one its ``;1`` half was dialled as."""
        if not dialer.name.endswith(";2"):
            return None
        peer = self._by_name.get(local_peer(dialer.name) or "")
        return None if peer is None else peer.leg

    def _on_touch(self, m: AmiMessage) -> None:
        if self._touch(m) is None:
            self._bad(m, "no Uniqueid/Channel")

    def _on_newchannel(self, m: AmiMessage) -> None:
        """A new channel; when it is a call's first and comes from outside (not one of our
        phones, not a Local channel of an Originate), the caller is known now: an Arrival."""
        ch = self._touch(m)
        if ch is None:
            self._bad(m, "no Uniqueid/Channel")
            return
        call = ch.call
        if call is None or call.origin is not ch or ch.agent is not None or ch.name.startswith("Local/") \
                or is_withheld(ch.cid_num):
            return
        key = phone_key(ch.cid_num or "", self.config.default_region, self.config.min_external_digits)
        if key.external:
            self.arrivals.append(Arrival(call.id, key.display_key, self._now))

    def _on_newstate(self, m: AmiMessage) -> None:
        ch = self._touch(m)
        if ch is None:
            return self._bad(m, "no Uniqueid/Channel")
        if ch.state == "Up" and ch.leg is not None and ch.call is not None:
            ch.call.answer(ch.leg, self._now, self._out)

    def _on_dial_begin(self, m: AmiMessage) -> None:
        if not m.get("Channel"):
            return  # an Originate dialling its first party: nobody called *to* them
        dialer, dest = self._touch(m), self._touch(m, "Dest")
        if dialer is None or dest is None or dialer.call is None:
            return self._bad(m, "no Channel/DestChannel")
        if dest.call is not dialer.call:
            self._move(dest, dialer.call, talk=False)
        dialled = m.get("DestCallerIDNum")
        if not isinstance(dialled, str) or not any(c.isdigit() for c in dialled):
            dialled = dialer.exten
        self._dial(dialer.call, dialer, dest, dest.agent, dialled)

    def _on_agent_called(self, m: AmiMessage) -> None:
        caller, member = self._touch(m), self._touch(m, "Dest")
        if caller is None or member is None or caller.call is None:
            return self._bad(m, "no Channel/DestChannel")
        if member.call is not caller.call:
            self._move(member, caller.call, talk=False)
        interface = m.get("Interface")
        agent = member.agent
        if agent is None and isinstance(interface, str):
            agent = self._agent(interface)
        self._dial(caller.call, caller, member, agent, "")

    def _dest_leg(self, m: AmiMessage) -> Leg | None:
        self._touch(m)
        dest = self._touch(m, "Dest")
        return None if dest is None else dest.leg

    def _on_dial_end(self, m: AmiMessage) -> None:
        leg = self._dest_leg(m)
        if leg is None or leg.channel.call is None:
            return
        status = m.get("DialStatus")
        leg.status = status if isinstance(status, str) else ""
        if leg.status == "ANSWER":
            leg.channel.call.answer(leg, self._now, self._out)
        elif leg.status == "NOANSWER":
            leg.no_answer = True

    def _on_agent_connect(self, m: AmiMessage) -> None:
        leg = self._dest_leg(m)
        if leg is not None and leg.channel.call is not None:
            leg.channel.call.answer(leg, self._now, self._out)

    def _on_ring_no_answer(self, m: AmiMessage) -> None:
        leg = self._dest_leg(m)
        if leg is not None:
            leg.no_answer = True

    def _on_agent_complete(self, m: AmiMessage) -> None:
        self._touch(m)
        dest = self._touch(m, "Dest")
        talk = m.get("TalkTime")
        if dest is None or dest.call is None or not isinstance(talk, str) or not talk.isdigit():
            return
        interface = m.get("Interface")
        agent = dest.agent or (self._agent(interface) if isinstance(interface, str) else None)
        if agent is not None:
            dest.call.state(agent).talk_hint = int(talk)

    def _on_caller_abandon(self, m: AmiMessage) -> None:
        ch = self._touch(m)
        if ch is not None and ch.call is not None:
            ch.call.caller_gone = True

    def _on_hangup_request(self, m: AmiMessage) -> None:
        ch = self._touch(m)
        if ch is not None:
            ch.hangup_requested = True

    def _on_hangup(self, m: AmiMessage) -> None:
        ch = self._touch(m)
        if ch is None:
            return self._bad(m, "no Uniqueid/Channel")
        raw = m.get("Cause")
        cause = int(raw) if isinstance(raw, str) and raw.isdigit() else None
        self._gone(ch, cause)

    def _on_bridge(self, m: AmiMessage) -> None:
        ch = self._touch(m)
        if ch is None:
            return self._bad(m, "no Uniqueid/Channel")
        bridge = m.get("BridgeUniqueid")
        ch.bridge = bridge if m.get("Event") == "BridgeEnter" and isinstance(bridge, str) else ""

    def _on_rename(self, m: AmiMessage) -> None:
        uid, new = m.get("Uniqueid"), m.get("Newname")
        ch = self._channels.get(uid) if isinstance(uid, str) else None
        if ch is None or not isinstance(new, str) or not new:
            return
        if self._by_name.get(ch.name) is ch:
            del self._by_name[ch.name]
        ch.name = new
        self._by_name[new] = ch
