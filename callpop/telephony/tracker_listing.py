"""CoreShowChannels: rebuilding the calls in progress from a channel listing.

After every (re)login the connection asks Asterisk for ``CoreShowChannels`` and hands the
items to :meth:`ListingHandlers.resync`; a recorded stream that contains a listing is read
the same way (``feed`` collects the ``CoreShowChannel`` items until
``CoreShowChannelsComplete``). Channels the listing does not show are gone (their calls
end); channels we did not know become calls: agent channels that are ``Ringing`` ring,
agent channels that are ``Up`` talk, and for an outbound call the trunk channel towards the
client stands for the agent's leg. What we already knew produces no event, so a listing
taken while we were in step changes nothing.

Times (with a clock): an item's ``Duration`` is its channel's age, so a call first seen in
a listing started when its oldest listed channel was created, and an agent's phone rang
from its channel's creation. When the agent talked from is not in the listing: it is
estimated as the channel's creation (the talk then includes the ring; the call's
``Ended`` says ``answer_estimated`` so that a journal that recorded the real answer uses
it). After :meth:`ListingHandlers.connection_lost`, the calls the listing no longer shows
end at the moment the PBX was last heard, not at the listing: they ended while we could not
see them (a PBX that crashed ended them at once), and an answer seen in the listing for a
leg we knew ringing happened after that moment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from callpop.telephony.channels import uniqueid_age

if TYPE_CHECKING:
    from callpop.telephony.calls import Call, Channel, Leg
    from callpop.telephony.events import CallEvent

__all__ = ["ListingHandlers"]

AmiMessage = Mapping[str, "str | list[str]"]


class ListingHandlers:
    """Mixed into CallTracker; uses its channel bookkeeping."""

    _now: float | None
    _out: list[CallEvent]
    _channels: dict[str, Channel]
    _listing: list[Mapping[str, str]]
    _listing_id: str | None
    _hung_since_listing: set[str]
    _lost_at: float | None = None
    _created: dict[str, float]  # uniqueid -> creation time of the listing being applied

    def _touch(self, m: AmiMessage, prefix: str = "") -> Channel | None:
        raise NotImplementedError

    def _gone(self, ch: Channel, cause: int | None) -> None:
        raise NotImplementedError

    def _dial(self, call: Call, dialer: Channel, dest: Channel, agent: str | None, dialled: str) -> None:
        raise NotImplementedError

    def connection_lost(self, at: float | None) -> None:
        """The AMI connection dropped; *at*: when the PBX was last heard (epoch seconds)."""
        self._lost_at = at

    def resync(self, channels: Sequence[Mapping[str, str]], now: float | None = None) -> list[CallEvent]:
        """The CoreShowChannel items of a (re)login: rebuild the calls in progress, end the
        calls whose channels are gone, emit what changed (nothing, if we were in step).

        A call first seen here is announced as it would have been live: ``ringing`` for every
        agent whose phone rings or talks, then ``answered`` for the talking ones. Its talk is
        counted from its channel's creation: the listing does not say when the answer was."""
        out = self._out = []
        lost_at, self._lost_at = self._lost_at, None
        listed: dict[str, Mapping[str, str]] = {}
        for item in channels:
            uid = item.get("Uniqueid")
            if isinstance(uid, str) and uid and isinstance(item.get("Channel"), str):
                listed[uid] = item
        self._now = lost_at if lost_at is not None and now is not None and lost_at < now else now
        for uid, known in list(self._channels.items()):
            if uid not in listed:
                self._gone(known, None)
        self._now = now
        self._created = {uid: now - age for uid, item in listed.items()
                         if now is not None and (age := _age(item.get("Duration"))) is not None}
        touched: dict[str, Call] = {}
        for uid, item in listed.items():
            if uid in self._hung_since_listing:
                continue
            ch = self._touch(item)
            if ch is None or ch.call is None:
                continue
            ch.bridge = str(item.get("BridgeId") or "")
            touched[ch.call.id] = ch.call
        for call in sorted(touched.values(), key=lambda c: uniqueid_age(c.id)):
            first = min((self._created[u] for u in call.channels if u in self._created), default=None)
            if first is not None and (call.started_at is None or first < call.started_at):
                call.started_at = first
            self._rebuild(call, lost_at)
        self._now = now
        return out

    def _on_listing_item(self, m: AmiMessage) -> None:
        action = m.get("ActionID")
        key = action if isinstance(action, str) else ""
        if self._listing_id != key:
            self._listing, self._listing_id = [], key
            self._hung_since_listing = set()
        self._listing.append({k: v for k, v in m.items() if isinstance(v, str)})

    def _on_listing_complete(self, m: AmiMessage) -> None:
        items = self._listing if self._listing_id is not None else []
        out = self._out
        out.extend(self.resync(items, self._now))
        self._listing, self._listing_id = [], None
        self._hung_since_listing = set()
        self._out = out

    def _rebuild(self, call: Call, lost_at: float | None = None) -> None:
        """Legs for the channels a listing shows ringing or talking that we did not know."""
        chans = sorted(call.channels.values(), key=lambda c: uniqueid_age(c.uniqueid))
        if call.origin is None and chans:
            call.origin = chans[0]
        origin = call.origin
        if origin is None:
            return
        now = self._now
        for ch in chans:
            created = self._created.get(ch.uniqueid, now)
            if ch.leg is not None:
                if ch.state == "Up" and not (ch.leg.answered or ch.leg.done or ch.leg.proxy):
                    at = created if lost_at is None or created is None else max(created, lost_at)
                    self._answer_at(call, ch.leg, now if at is None else at)
                continue
            if ch.state not in ("Ringing", "Up") or ch is origin:
                continue
            self._now = created
            if ch.state == "Up":
                call.answer_estimated = True
            self._dial_listed(call, origin, ch)
            self._now = now

    def _answer_at(self, call: Call, leg: Leg, at: float | None) -> None:
        now, self._now = self._now, at
        call.answer_estimated = True
        call.answer(leg, at, self._out)
        self._now = now

    def _dial_listed(self, call: Call, origin: Channel, ch: Channel) -> None:
        if origin.agent is None:
            if ch.agent is not None:
                self._dial(call, origin, ch, ch.agent, "")
        elif ch.agent is None:
            number = ch.cid_num if any(c.isdigit() for c in ch.cid_num) else ch.exten
            self._dial(call, origin, ch, None, number)
        elif ch.agent != origin.agent:
            self._dial(call, origin, ch, ch.agent, "")


def _age(duration: object) -> int | None:
    """``Duration: HH:MM:SS`` of a CoreShowChannel item, in seconds; None when unreadable."""
    if not isinstance(duration, str):
        return None
    parts = duration.strip().split(":")
    if not parts or not all(p.isdigit() for p in parts):
        return None
    seconds = 0
    for p in parts:
        seconds = seconds * 60 + int(p)
    return seconds
