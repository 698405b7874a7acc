"""The tracker's book of channels and calls, and the moves between them.

Every handler of :class:`callpop.telephony.tracker.CallTracker` and its helpers
(:mod:`~callpop.telephony.tracker_listing`, :mod:`~callpop.telephony.tracker_transfers`)
works on one :class:`ChannelBook`: it creates a channel on first sight (and the call of its
Linkedid), follows a channel into another call (a Linkedid change, a transfer), starts an
agent ringing when one of the agent's channels is dialled, and closes a call when its last
channel is gone. The clock (``now``) and the list the events go to (``out``) are set per
message by the tracker.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from callpop.telephony.amitext import AmiMessage
from callpop.telephony.calls import Call, Channel, Leg
from callpop.telephony.channels import AgentRule, local_peer
from callpop.telephony.events import CallEvent

__all__ = ["ChannelBook", "NumberRules"]

log = logging.getLogger(__name__)

# Uniqueids of channels that hung up, remembered so a late mention does not bring them back
_DEAD_KEPT = 4096

# Field names of one channel in a message: plain, or with the prefix of DialBegin/transfers.
_FIELDS = ("Uniqueid", "Channel", "Linkedid", "ChannelStateDesc", "CallerIDNum", "CallerIDName", "Exten")
_PREFIXED: dict[str, tuple[str, ...]] = {
    p: tuple(p + f for f in _FIELDS)
    for p in ("", "Dest", "Transferer", "Transferee", "OrigTransferer", "SecondTransferer", "TransferTarget")
}


@dataclass(frozen=True, slots=True)
class NumberRules:
    """How a dialled or calling number becomes a client (see :func:`callpop.phones.phone_key`)."""

    default_region: str
    min_external_digits: int


class ChannelBook:
    """The live channels (by Uniqueid and by name) and the calls (by every Linkedid that
    leads to them)."""

    def __init__(self, agent: AgentRule, numbers: NumberRules) -> None:
        self.agent = agent
        self.numbers = numbers
        self.channels: dict[str, Channel] = {}
        self.by_name: dict[str, Channel] = {}
        self.calls: dict[str, Call] = {}
        self.now: float | None = None
        self.heard_at: float | None = None  # clock of the last message of any kind
        self.lost_at: float | None = None  # heard_at when the PBX link was lost, until a listing
        self.out: list[CallEvent] = []
        self.malformed = 0
        # Channels that hung up, most recent last: Asterisk still names some afterwards (a
        # queue's AgentComplete names the member's Local half long after the optimisation
        # hung it up); brought back to life, such a channel would keep its call open forever.
        self.dead: dict[str, None] = {}
        # Uniqueids hung up while a listing is being collected (None: no listing open)
        self.hung_during_listing: set[str] | None = None

    def bad(self, message: AmiMessage, why: str) -> None:
        uid = message.get("Uniqueid")
        if isinstance(uid, str) and uid in self.dead:
            return  # about a channel that hung up: late, not malformed
        self.malformed += 1
        log.debug("skipped malformed AMI message (%s): event=%s", why, message.get("Event"))

    def touch(self, m: AmiMessage, prefix: str = "") -> Channel | None:
        """The channel a message talks about, created on first sight, kept up to date."""
        k_uid, k_name, k_linked, k_state, k_num, k_cname, k_exten = _PREFIXED[prefix]
        uid = m.get(k_uid)
        if not uid or not isinstance(uid, str):
            return None
        linkedid = m.get(k_linked) or uid
        if not isinstance(linkedid, str):
            return None
        ch = self.channels.get(uid)
        if ch is None:
            if uid in self.dead:
                return None
            name = m.get(k_name)
            if not name or not isinstance(name, str):
                return None
            ch = Channel(uid, name, linkedid, self.agent(name))
            self.channels[uid] = ch
            self.by_name[name] = ch
            call = self.calls.get(linkedid)
            if call is None or call.ended:
                call = Call(linkedid, self.now, keys=[linkedid])
                self.calls[linkedid] = call
            self.attach(ch, call)
            if uid == linkedid:
                call.origin = ch
        elif linkedid != ch.linkedid:
            self.relink(ch, linkedid)
        if self.now is not None:
            ch.seen_at = self.now
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

    def attach(self, ch: Channel, call: Call) -> None:
        call.channels[ch.uniqueid] = ch
        ch.call = call
        if ch.agent is not None:
            call.state(ch.agent).channels.add(ch.uniqueid)

    def detach(self, ch: Channel) -> Call | None:
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
                    call.stop_talk(ch.agent, self.now)
        return call

    def close_if_empty(self, call: Call) -> None:
        if call.channels:
            return
        call.end(self.now, self.out)
        for key in call.keys:
            if self.calls.get(key) is call:
                del self.calls[key]

    def move(self, ch: Channel, into: Call, *, talk: bool) -> None:
        """A channel joins another call (bridge merge, transfer, pickup)."""
        leg = ch.leg
        if leg is not None and ch.call is not None:
            ch.call.stop_leg(leg, None, self.now, self.out)
            ch.leg = None
        old = self.detach(ch)
        self.attach(ch, into)
        if talk and ch.agent is not None and ch.state == "Up" and into.direction is not None:
            into.start_talk(ch.agent, self.now, self.out)
        if old is not None and old is not into:
            self.close_if_empty(old)

    def relink(self, ch: Channel, linkedid: str) -> None:
        """Asterisk gave the channel another Linkedid (it adopts the oldest on bridge join,
        and no event says so): the channel now belongs to that call."""
        ch.linkedid = linkedid
        if ch.pinned or ch.call is None:
            return
        target = self.calls.get(linkedid)
        if target is None:
            # the oldest channel was never seen (stream started mid-call): same call, new key
            ch.call.keys.append(linkedid)
            self.calls[linkedid] = ch.call
        elif target is not ch.call and not target.ended:
            self.move(ch, target, talk=True)

    def gone(self, ch: Channel, cause: int | None) -> None:
        ch.gone = True
        self.channels.pop(ch.uniqueid, None)
        self.dead[ch.uniqueid] = None
        if len(self.dead) > _DEAD_KEPT:
            del self.dead[next(iter(self.dead))]
        if self.by_name.get(ch.name) is ch:
            del self.by_name[ch.name]
        if self.hung_during_listing is not None:
            self.hung_during_listing.add(ch.uniqueid)
        leg = ch.leg
        if leg is not None and ch.call is not None:
            ch.call.stop_leg(leg, cause, self.now, self.out)
        call = self.detach(ch)
        if call is not None:
            self.close_if_empty(call)

    def vanish(self, ch: Channel, at: float | None) -> None:
        """The channel is gone but no Hangup said so (a listing after a lost link does not
        show it; the idle sweep): it ends at *at*, the last moment it was known to be on,
        and the call it was the last channel of ends unseen (see ``Ended.end_unseen``). A
        talk it stops may have gone on until now (``AgentState.end_by``: the talk's upper
        bound, ``AgentTalk.at_most``)."""
        saved = self.now
        if at is not None:
            self.now = at
        call = ch.call
        talking = [st for st in call.agents.values() if st.talking] if call is not None else []
        for st in talking:
            st.end_by = saved
        if call is not None and len(call.channels) == 1:
            call.end_unseen = True
        self.gone(ch, None)
        for st in talking:
            if st.talking:  # still on through another channel: its end is yet to come
                st.end_by = None
        self.now = saved

    def rename(self, ch: Channel, new: str) -> None:
        if self.by_name.get(ch.name) is ch:
            del self.by_name[ch.name]
        ch.name = new
        self.by_name[new] = ch

    # --- dialling ------------------------------------------------------------------------

    def dial(self, call: Call, dialer: Channel, dest: Channel, agent: str | None, dialled: str) -> None:
        """*dialer* rings *dest*: decide whose phone this is and start that agent ringing.

        A Local channel that is nobody's device is a route (``Local/ID730151@route``, a
        queue member, a follow-me): it rings nobody by itself, and what its ``;2`` half
        dials decides (a phone: that agent rings; a trunk: the agent behind the route
        dials out). Only a Local channel named by a phone number
        (``Local/74950001122@pstn-out``) is the far end itself."""
        if dest.leg is not None and not dest.leg.done:
            return
        upstream = self.upstream(dialer)
        if agent is None:
            owner = dialer.agent or (upstream.agent if upstream is not None and upstream.proxy else "") \
                or self._originator_side(call, dialer)
            if dest.name.startswith("Local/") and (not owner or not self._number_local(dest.name)):
                dest.leg = Leg(owner, dest, dialer, upstream, proxy=True)  # keeps its dial status
                return
            if not owner:
                return  # trunk to trunk: nobody of ours
            agent = owner  # the trunk leg of an outbound call (or an agent's follow-me)
        elif not call.announced and self._rings_originator(call, agent):
            return  # the PBX rings the originator's own phone first (click-to-call)
        if call.direction is None:
            call.decide(dialer, dest, dialled, self.numbers.default_region, self.numbers.min_external_digits)
        leg = dest.leg = Leg(agent, dest, dialer, upstream)
        if dest.state == "Up" and dest.agent is not None and call.announced:
            # the phone dialled is answered already: a pickup (the PBX dials the picker's
            # line into the call it took); that agent answered, it never rang
            call.answer(leg, self.now, self.out)
            return
        call.ring(leg, self.now, self.out)
        if dest.state == "Up":
            call.answer(leg, self.now, self.out)

    def _number_local(self, name: str) -> bool:
        resource = name.partition("/")[2].partition("@")[0].lstrip("+")
        return resource.isdigit() and len(resource) >= self.numbers.min_external_digits

    def _rings_originator(self, call: Call, agent: str) -> bool:
        """An Originate rings its first party before anything else: an agent's own phone
        (the click-to-dial of 08b, or of a CRM through a Local route) is not a call *to*
        that agent; the call is the agent's, outbound once the client is dialled. An
        Originate of a Local channel named by a number is a caller (the lab's trunk)."""
        origin = call.origin
        if origin is None:
            return False
        if origin.agent is not None:
            return agent == origin.agent
        if call.originated and call.originator in (None, agent) and origin.name.startswith("Local/") \
                and not self._number_local(origin.name):
            call.originator = agent
            return True
        return False

    @staticmethod
    def _originator_side(call: Call, dialer: Channel) -> str:
        """The click-to-dial agent when *dialer* is the Originate's own channel (or its Local
        half) dialling the client."""
        origin = call.origin
        if call.originator is None or origin is None:
            return ""
        return call.originator if dialer is origin or local_peer(dialer.name) == origin.name else ""

    def take_over(self, ch: Channel, into: Call) -> None:
        """*into* dials a channel that belongs to another call: a transfer completed while
        its target still rang ("blonde": Asterisk hands the ringing dial to the transferee).
        The channel, its Local half and the phones they ring move into *into*, and those
        phones ring there. Nobody missed anything: the phones ring on, in *into* (told
        first, so the pop of the client's call comes before the consultation's card goes),
        and their ringing in the old call stops as ``transferred``, not "no answer"."""
        old = ch.call
        chain: list[Channel] = []
        ringing: list[tuple[Channel, Leg]] = []

        def add(one: Channel) -> None:
            chain.append(one)
            peer = self.by_name.get(local_peer(one.name) or "")
            if peer is not None and peer.call is old and peer not in chain:
                chain.append(peer)

        add(ch)
        grew = old is not None
        while grew and old is not None:  # a group's route dials routes that dial phones
            grew = False
            for other in list(old.channels.values()):
                leg = other.leg
                if other in chain or leg is None or leg.done or leg.answered or leg.dialer not in chain:
                    continue
                add(other)
                grew = True
                if not leg.proxy:
                    ringing.append((other, leg))
        if old is not None and ringing:
            old.hand_over([leg for _, leg in ringing], self.now)
        for moving in chain:
            moving.pinned = True
            self.move(moving, into, talk=False)
        for phone, leg in ringing:
            if leg.dialer is not None:
                self.dial(into, leg.dialer, phone, leg.agent, "")
        if old is not None and not old.ended:
            old.stop_handed_over(self.now, self.out)

    def upstream(self, dialer: Channel) -> Leg | None:
        """The leg a Local ``;2`` half continues: the one its ``;1`` half was dialled as."""
        if not dialer.name.endswith(";2"):
            return None
        peer = self.by_name.get(local_peer(dialer.name) or "")
        return None if peer is None else peer.leg
