"""CoreShowChannels: rebuilding the calls in progress from a channel listing.

After every (re)login the connection asks Asterisk for ``CoreShowChannels`` and hands the
items to :meth:`ListingHandlers.resync`; a recorded stream that contains a listing is read
the same way (``feed`` collects the ``CoreShowChannel`` items until
``CoreShowChannelsComplete``). Channels the listing does not show are gone (their calls
end); channels we did not know become calls: agent channels that are ``Ringing`` ring,
agent channels that are ``Up`` talk, and for an outbound call the trunk channel towards the
client stands for the agent's leg. What we already knew produces no event, so a listing
taken while we were in step changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from callpop.telephony.channels import uniqueid_age

if TYPE_CHECKING:
    from callpop.telephony.calls import Call, Channel
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

    def _touch(self, m: AmiMessage, prefix: str = "") -> Channel | None:
        raise NotImplementedError

    def _gone(self, ch: Channel, cause: int | None) -> None:
        raise NotImplementedError

    def _dial(self, call: Call, dialer: Channel, dest: Channel, agent: str | None, dialled: str) -> None:
        raise NotImplementedError

    def resync(self, channels: Sequence[Mapping[str, str]], now: float | None = None) -> list[CallEvent]:
        """The CoreShowChannel items of a (re)login: rebuild the calls in progress, end the
        calls whose channels are gone, emit what changed (nothing, if we were in step).

        A call first seen here is announced as it would have been live: ``ringing`` for every
        agent whose phone rings or talks, then ``answered`` for the talking ones. Its talk is
        counted from this moment: the listing does not say when the answer was."""
        self._now = now
        out = self._out = []
        listed: dict[str, Mapping[str, str]] = {}
        for item in channels:
            uid = item.get("Uniqueid")
            if isinstance(uid, str) and uid and isinstance(item.get("Channel"), str):
                listed[uid] = item
        for uid, known in list(self._channels.items()):
            if uid not in listed:
                self._gone(known, None)
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
            self._rebuild(call)
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

    def _rebuild(self, call: Call) -> None:
        """Legs for the channels a listing shows ringing or talking that we did not know."""
        chans = sorted(call.channels.values(), key=lambda c: uniqueid_age(c.uniqueid))
        if call.origin is None and chans:
            call.origin = chans[0]
        origin = call.origin
        if origin is None:
            return
        for ch in chans:
            if ch.leg is not None:
                if ch.state == "Up":
                    call.answer(ch.leg, self._now, self._out)
                continue
            if ch.state not in ("Ringing", "Up") or ch is origin:
                continue
            if origin.agent is None:
                if ch.agent is not None:
                    self._dial(call, origin, ch, ch.agent, "")
            elif ch.agent is None:
                number = ch.cid_num if any(c.isdigit() for c in ch.cid_num) else ch.exten
                self._dial(call, origin, ch, None, number)
            elif ch.agent != origin.agent:
                self._dial(call, origin, ch, ch.agent, "")
