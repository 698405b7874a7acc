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
* **Blonde** (attended, completed while the target still rings): the transferee dials the
  target's ringing channel; the phones ring on in the client's call, and the consultation,
  which nobody missed, ends ``answered`` (see ``ChannelBook.take_over``).
"""

from __future__ import annotations

from callpop.telephony.amitext import AmiMessage
from callpop.telephony.calls import Channel
from callpop.telephony.channels import local_peer, uniqueid_age
from callpop.telephony.events import TransferKind, Transferred
from callpop.telephony.tracker_book import ChannelBook

__all__ = ["Transfers"]


class Transfers:
    """The transfer events, applied to the book."""

    def __init__(self, book: ChannelBook) -> None:
        self.book = book

    def on_blind(self, m: AmiMessage) -> None:
        book = self.book
        transferer, transferee = book.touch(m, "Transferer"), book.touch(m, "Transferee")
        if transferer is None:
            return book.bad(m, "no TransfererChannel")
        if m.get("Result") != "Success":
            return
        call = (transferee or transferer).call
        if call is None or transferer.agent is None:
            return
        call.stop_talk(transferer.agent, book.now)
        call.pending_transfer = (transferer.agent, "blind")

    def on_attended(self, m: AmiMessage) -> None:
        book = self.book
        first = book.touch(m, "OrigTransferer")
        second = book.touch(m, "SecondTransferer")
        transferee, target = book.touch(m, "Transferee"), book.touch(m, "TransferTarget")
        transferer = first or second
        if transferer is None:
            return book.bad(m, "no OrigTransfererChannel/SecondTransfererChannel")
        if m.get("Result") != "Success":
            return
        for ch in (first, second):
            if ch is not None and ch.call is not None and ch.agent is not None:
                ch.call.stop_talk(ch.agent, book.now)
        if transferee is None or target is None:
            transferee, target = self._by_bridges(m, first, second)
        if transferee is not None and transferee.call is not None and transferer.agent is not None and (
                target is None or target.call is None or target.state != "Up"):
            # completed while the target still rings ("blonde"): the transferee's call goes
            # on dialling it (DialBegin from the transferee, see ChannelBook.take_over); the
            # transfer is told when someone answers
            transferee.call.pending_transfer = (transferer.agent, "attended")
            return
        if transferee is None or target is None or transferee.call is None or target.call is None:
            return  # transfer to an application: nobody joins a call yet
        keep, moving = _client_side(transferee, target)
        into = keep.call
        if into is None:
            return
        agent = moving.agent
        kind: TransferKind = "attended"
        from_agent = transferer.agent
        if moving.call is into:  # the Linkedid change came first: already moved and answered
            if agent is not None and from_agent is not None and from_agent != agent:
                book.out.append(Transferred(into.id, from_agent, agent, kind, at=book.now))
            return
        peer = book.by_name.get(local_peer(moving.name) or "")
        for ch in (moving, peer):
            if ch is not None and ch.call is moving.call:
                ch.pinned = True
                book.move(ch, into, talk=False)
        if agent is not None and into.direction is not None:
            transfer = (from_agent, kind) if from_agent is not None and from_agent != agent else None
            into.start_talk(agent, book.now, book.out, transfer=transfer)

    def _by_bridges(self, m: AmiMessage, first: Channel | None, second: Channel | None
                    ) -> tuple[Channel | None, Channel | None]:
        """Asterisk before 13.x named only the transferers and the bridges: the transferee
        is the other party of the first transferer's call, the target that of the second,
        found among the channels in either bridge (the merge may already have moved them)."""
        bridges = {m.get("OrigBridgeUniqueid"), m.get("SecondBridgeUniqueid"), m.get("DestBridgeUniqueid")}
        bridges.discard(None)
        bridges.discard("")
        transferee = target = None
        for ch in self.book.channels.values():
            if ch is first or ch is second or ch.bridge not in bridges:
                continue
            if transferee is None and first is not None and ch.call is first.call:
                transferee = ch
            elif target is None and second is not None and ch.call is second.call:
                target = ch
        return transferee, target


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
