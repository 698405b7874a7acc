"""Which extensions have a desk open on the other instances: announcements in parts, and
forgetting an instance that went quiet."""

from __future__ import annotations

import json

from callpop.fanout_wire import MAX_PAYLOAD
from callpop.presence import Presence, announcements


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_thousands_of_extensions_go_in_parts_that_each_fit_a_notification() -> None:
    extensions = [f"office2:{n}" for n in range(3000)]
    envelopes = announcements("cp1", 7, extensions)
    assert len(envelopes) > 1
    assert all(len(json.dumps(e, ensure_ascii=False).encode()) <= MAX_PAYLOAD for e in envelopes)
    presence = Presence(ttl=15, clock=Clock())
    for envelope in reversed(envelopes):  # parts may come in any order
        assert not presence.watches("office2:0")
        presence.heard("cp1", envelope["v"], envelope["n"], envelope["of"], envelope["x"])
    assert presence.watches("office2:0") and presence.watches("office2:2999")
    assert presence.peers() == {"cp1": 3000}


def test_a_peer_not_heard_from_is_forgotten_and_an_older_announcement_never_wins() -> None:
    clock = Clock()
    presence = Presence(ttl=15, clock=clock)
    presence.heard("cp1", 2, 0, 1, ["101"])
    presence.heard("cp1", 1, 0, 1, ["102"])  # late: announcement 1 was replaced by 2
    assert presence.watches("101") and not presence.watches("102")
    clock.now += 14.9
    assert presence.watches("101")
    clock.now += 0.2  # killed -9: no goodbye, no announcement for longer than ttl
    assert not presence.watches("101") and presence.peers() == {}
    presence.heard("cp1", 3, 0, 1, ["103"])
    presence.gone("cp1")
    assert not presence.watches("103")
