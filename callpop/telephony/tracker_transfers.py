"""Blind and attended transfers (Asterisk 12+ ``BlindTransfer``/``AttendedTransfer`` events).

A transfer keeps the client's call id: the agent who answers after a blind transfer, or the
consultation partner of an attended one, joins the client's call. What Asterisk does and
what we read from it:

* **Blind** (SIP REFER, ``#`` feature): ``BlindTransfer`` names the transferer and the
  transferee; the transferee then runs ``Extension@Context`` in the same call (same
  Linkedid) and dials the target like any new leg. The transferer's talk ends at the
  event; ``transferred`` (kind ``blind``) is emitted when an agent answers the transferred
  call (for a queue or ring-group target only then is "the" new agent known), right before
  that agent's ``answered``. A transfer nobody answers leaves the call answered by the
  first agent only.
* **Attended**: the transferer called a colleague first, a call of its own (its own
  Linkedid, direction internal). ``AttendedTransfer`` names both transferer channels, the
  transferee and the transfer target; Asterisk merges the two bridges, and the channel that
  changed calls adopts the oldest Linkedid silently, on its next event. We move it into the
  client's call at the event: ``transferred`` (kind ``attended``) then ``answered`` for the
  colleague; the consultation call ends (internal, answered) when its last channel hangs up.
  If a stream shows the Linkedid change *before* the ``AttendedTransfer`` event, the move
  has already happened (``answered`` first) and the event only adds ``transferred``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from callpop.telephony.channels import local_peer, uniqueid_age
from callpop.telephony.events import TransferKind, Transferred

if TYPE_CHECKING:
    from callpop.telephony.calls import Call, Channel
    from callpop.telephony.events import CallEvent

__all__ = ["TransferHandlers"]

AmiMessage = Mapping[str, "str | list[str]"]


class TransferHandlers:
    """Mixed into CallTracker; uses its channel bookkeeping."""

    _now: float | None
    _out: list[CallEvent]
    _by_name: dict[str, Channel]
    _channels: dict[str, Channel]

    def _touch(self, m: AmiMessage, prefix: str = "") -> Channel | None:
        raise NotImplementedError

    def _move(self, ch: Channel, into: Call, *, talk: bool) -> None:
        raise NotImplementedError

    def _bad(self, message: AmiMessage, why: str) -> None:
        raise NotImplementedError

    def _on_blind_transfer(self, m: AmiMessage) -> None:
        transferer, transferee = self._touch(m, "Transferer"), self._touch(m, "Transferee")
        if transferer is None:
            return self._bad(m, "no TransfererChannel")
        if m.get("Result") != "Success":
            return
        call = (transferee or transferer).call
        if call is None or transferer.agent is None:
            return
        call.stop_talk(transferer.agent, self._now)
        call.pending_blind = transferer.agent

    def _on_attended_transfer(self, m: AmiMessage) -> None:
        first = self._touch(m, "OrigTransferer")
        second = self._touch(m, "SecondTransferer")
        transferee, target = self._touch(m, "Transferee"), self._touch(m, "TransferTarget")
        transferer = first or second
        if transferer is None:
            return self._bad(m, "no OrigTransfererChannel/SecondTransfererChannel")
        if m.get("Result") != "Success":
            return
        for ch in (first, second):
            if ch is not None and ch.call is not None and ch.agent is not None:
                ch.call.stop_talk(ch.agent, self._now)
        if transferee is None or target is None:
            transferee, target = self._by_bridges(m, first, second)
        if transferee is None or target is None or transferee.call is None or target.call is None:
            return  # transfer to an application or a ringing phone: nobody joins a call yet
        keep, moving = self._client_side(transferee, target)
        into = keep.call
        if into is None:
            return
        agent = moving.agent
        kind: TransferKind = "attended"
        from_agent = transferer.agent
        if moving.call is into:  # the Linkedid change came first: already moved and answered
            if agent is not None and from_agent is not None and from_agent != agent:
                self._out.append(Transferred(into.id, from_agent, agent, kind, at=self._now))
            return
        peer = self._by_name.get(local_peer(moving.name) or "")
        for ch in (moving, peer):
            if ch is not None and ch.call is moving.call:
                ch.pinned = True
                self._move(ch, into, talk=False)
        if agent is not None and into.direction is not None:
            transfer = (from_agent, kind) if from_agent is not None and from_agent != agent else None
            into.start_talk(agent, self._now, self._out, transfer=transfer)

    def _by_bridges(self, m: AmiMessage, first: Channel | None, second: Channel | None
                    ) -> tuple[Channel | None, Channel | None]:
        """Asterisk before 13.x named only the transferers and the bridges: the transferee
        is the other party of the first transferer's call, the target that of the second,
        found among the channels in either bridge (the merge may already have moved them)."""
        bridges = {m.get("OrigBridgeUniqueid"), m.get("SecondBridgeUniqueid"), m.get("DestBridgeUniqueid")}
        bridges.discard(None)
        bridges.discard("")
        transferee = target = None
        for ch in self._channels.values():
            if ch is first or ch is second or ch.bridge not in bridges:
                continue
            if transferee is None and first is not None and ch.call is first.call:
                transferee = ch
            elif target is None and second is not None and ch.call is second.call:
                target = ch
        return transferee, target

    @staticmethod
    def _client_side(transferee: Channel, target: Channel) -> tuple[Channel, Channel]:
        """(channel whose call survives, channel that moves): the call with a client in it
        (not internal) survives, else the older one, as Asterisk keeps the oldest Linkedid."""
        a, b = transferee.call, target.call
        a_internal = a is None or a.direction in (None, "internal")
        b_internal = b is None or b.direction in (None, "internal")
        if a_internal and not b_internal:
            return target, transferee
        if b_internal and not a_internal:
            return transferee, target
        if a is not None and b is not None and uniqueid_age(b.id) < uniqueid_age(a.id):
            return target, transferee
        return transferee, target
