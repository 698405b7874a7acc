"""CoreShowChannels: rebuilding the calls in progress from a channel listing.

After every (re)login the connection asks Asterisk for ``CoreShowChannels``; ``feed``
collects the ``CoreShowChannel`` items until ``CoreShowChannelsComplete`` and hands them to
:meth:`Listing.resync` (a recorded stream that contains a listing is read the same way).
Channels the listing does not show are gone (their calls end); channels we did not know
become calls: agent channels that are ``Ringing`` ring, agent channels that are ``Up``
talk, and for an outbound call the trunk channel towards the client stands for the
agent's leg. What we already knew produces no event, so a listing taken while we were in
step changes nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from callpop.telephony.amitext import AmiMessage
from callpop.telephony.calls import Call
from callpop.telephony.channels import uniqueid_age
from callpop.telephony.events import Answered, CallEvent, Ringing
from callpop.telephony.tracker_book import ChannelBook

__all__ = ["Listing", "created_at"]


def created_at(item: AmiMessage, now: float | None) -> float | None:
    """When a listed channel was created: *now* minus its ``Duration`` (``HH:MM:SS``, whole
    seconds, relative, so the PBX's clock does not matter). None without a clock or a
    readable Duration."""
    raw = item.get("Duration")
    if now is None or not isinstance(raw, str):
        return None
    parts = raw.split(":")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    h, m, sec = (int(p) for p in parts)
    return now - (h * 3600 + m * 60 + sec)


def _restore_times(call: Call, created: dict[str, float], now: float | None, out: list[CallEvent]) -> None:
    """A call first seen in a listing: its start goes back to when its oldest channel was
    created, and so does the ``ringing`` just emitted for it (the journal records it as the
    call's start). A talking agent's answer is not known: it came between the creation of
    the agent's channel and the listing. The talk is counted from the listing (what is sure)
    and the creation kept as the earliest answer (``AgentState.answer_from``): the talk is
    an interval, and the ``answered`` says it was not seen."""
    times = [created[uid] for uid in call.channels if uid in created]
    if not times or now is None:
        return
    start = min(times)
    if call.started_at is None or start < call.started_at:
        call.started_at = start
    for ch in call.channels.values():
        leg = ch.leg
        if leg is None or not leg.answered or ch.uniqueid not in created:
            continue
        st = call.agents.get(leg.agent)
        if st is not None and st.talking and st.talk_since == now:
            st.answer_from = max(start, created[ch.uniqueid])
            call.answer_unseen = True  # the journal prefers an answer it recorded live
            _move_emitted(out, call.id, leg.agent, now, st.answer_from)


def _move_emitted(out: list[CallEvent], call: str, agent: str, now: float, rang_at: float) -> None:
    """The ``ringing`` of *agent* in *call* emitted at *now* by this listing started at
    *rang_at* (the channel's creation); its ``answered`` came at an unknown moment up to *now*."""
    for i, event in enumerate(out):
        if not isinstance(event, Ringing | Answered) or event.call != call or event.agent != agent \
                or event.at != now:
            continue
        if isinstance(event, Ringing):
            out[i] = dataclasses.replace(event, at=rang_at)
        else:
            out[i] = dataclasses.replace(event, unseen=True)


class Listing:
    """Collects the items of one listing and applies them to the book."""

    def __init__(self, book: ChannelBook) -> None:
        self.book = book
        self._items: list[AmiMessage] = []
        self._action_id: str | None = None

    def resync(self, channels: Sequence[AmiMessage], now: float | None = None) -> list[CallEvent]:
        """The CoreShowChannel items of a (re)login: rebuild the calls in progress, end the
        calls whose channels are gone, emit what changed (nothing, if we were in step).

        A call first seen here is announced as it would have been live: ``ringing`` for every
        agent whose phone rings or talks, then ``answered`` for the talking ones. Its start
        is its oldest channel's creation (``Duration`` says how long ago, to the second).
        Asterisk lists no answer time: a talking agent's talk is counted from the listing (a
        lower bound) and is at most since their channel's creation (the ring included);
        ``Ended.answer_unseen`` and ``AgentTalk.at_most`` say so. After :meth:`CallTracker.link_lost`
        the calls not listed end at the last message heard before the drop, unseen."""
        book = self.book
        hung = book.hung_during_listing or set()
        lost_at, book.lost_at = book.lost_at, None
        book.now = now
        out = book.out = []
        listed: dict[str, AmiMessage] = {}
        for item in channels:
            uid = item.get("Uniqueid")
            if isinstance(uid, str) and uid and isinstance(item.get("Channel"), str):
                listed[uid] = item
        for uid, known in list(book.channels.items()):
            if uid not in listed:
                if lost_at is not None:
                    book.vanish(known, lost_at)
                else:
                    book.gone(known, None)
        known_before = set(book.channels)
        touched: dict[str, Call] = {}
        created: dict[str, float] = {}
        for uid, item in listed.items():
            if uid in hung:
                continue
            ch = book.touch(item)
            if ch is None or ch.call is None:
                continue
            bridge = item.get("BridgeId")
            ch.bridge = bridge if isinstance(bridge, str) else ""
            touched[ch.call.id] = ch.call
            at = created_at(item, now)
            if at is not None and uid not in known_before:
                created[uid] = at
        for call in sorted(touched.values(), key=lambda c: uniqueid_age(c.id)):
            new = not any(uid in known_before for uid in call.channels)
            self._rebuild(call)
            if new and created:
                _restore_times(call, created, now, out)
        return out

    def on_item(self, m: AmiMessage) -> None:
        action = m.get("ActionID")
        key = action if isinstance(action, str) else ""
        if self._action_id != key:
            self._items, self._action_id = [], key
            self.book.hung_during_listing = set()
        self._items.append({k: v for k, v in m.items() if isinstance(v, str)})

    def on_complete(self, m: AmiMessage) -> None:
        book = self.book
        items = self._items if self._action_id is not None else []
        out = book.out
        out.extend(self.resync(items, book.now))
        self._items, self._action_id = [], None
        book.hung_during_listing = None
        book.out = out

    def _rebuild(self, call: Call) -> None:
        """Legs for the channels a listing shows ringing or talking that we did not know."""
        book = self.book
        chans = sorted(call.channels.values(), key=lambda c: uniqueid_age(c.uniqueid))
        if call.origin is None and chans:
            call.origin = chans[0]
        origin = call.origin
        if origin is None:
            return
        for ch in chans:
            if ch.leg is not None:
                if ch.state == "Up":
                    call.answer(ch.leg, book.now, book.out)
                continue
            if ch.state not in ("Ringing", "Up") or ch is origin:
                continue
            if origin.agent is None:
                if ch.agent is not None:
                    book.dial(call, origin, ch, ch.agent, "")
            elif ch.agent is None:
                number = ch.cid_num if any(c.isdigit() for c in ch.cid_num) else ch.exten
                book.dial(call, origin, ch, None, number)
            elif ch.agent != origin.agent:
                book.dial(call, origin, ch, ch.agent, "")
