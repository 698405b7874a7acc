"""Which extensions have a desk open on the other callpop instances, and which PBXs they follow.

``/pbx/route`` gives a call to the client's manager only when that manager is at the desk
(a tab open). With several instances behind a load balancer the tab may be on another
instance than the one the dialplan asks, so every instance announces the extensions of
its open tabs (callpop/fanout.py sends the announcements: every ``ANNOUNCE_EVERY`` seconds
and soon after a change) and remembers the others'. An instance not heard from for
``ttl`` seconds (killed, network gone) is forgotten; one that stops says so at once.

The announcement also says which PBXs the instance is logged in to: an instance whose own
link to a PBX dropped while another still follows it keeps popping from the other's
messages, so its tabs are not told the PBX is unreachable (callpop/pipeline.py).

An announcement may not fit one notification (thousands of agents): it is split into
parts numbered within a version, and a version counts once all its parts arrived. No I/O
here: the clock is passed in.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ANNOUNCE_EVERY", "Presence", "announcements"]

ANNOUNCE_EVERY = 5.0
PART_BYTES = 6000  # extensions per notification part, in bytes of JSON


def announcements(instance: str, version: int, extensions: Iterable[str],
                  links: dict[str, bool] | None = None) -> list[dict[str, Any]]:
    """The envelopes announcing *extensions* and the PBX *links* (PBX id -> logged in),
    each well under a notification's 8000 bytes."""
    parts: list[list[str]] = [[]]
    size = 0
    for ext in sorted(extensions):
        cost = len(json.dumps(ext, ensure_ascii=False).encode()) + 1
        if parts[-1] and size + cost > PART_BYTES:
            parts.append([])
            size = 0
        parts[-1].append(ext)
        size += cost
    return [{"o": instance, "k": "w", "v": version, "n": n, "of": len(parts), "x": part, "p": links or {}}
            for n, part in enumerate(parts)]


@dataclass
class _Peer:
    extensions: frozenset[str] = frozenset()
    links: frozenset[str] = frozenset()  # the PBXs it is logged in to
    expires: float = 0.0
    version: int = -1
    parts: dict[int, list[str]] = field(default_factory=dict)


class Presence:
    """The other instances' announced extensions, each valid for *ttl* seconds."""

    def __init__(self, ttl: float = 3 * ANNOUNCE_EVERY, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._peers: dict[str, _Peer] = {}

    def heard(self, instance: str, version: int, part: int, parts: int, extensions: list[str],
              links: dict[str, bool] | None = None) -> None:
        """One part of *instance*'s announcement number *version*."""
        peer = self._peers.setdefault(instance, _Peer())
        if version < peer.version:
            return  # a late part of an announcement already replaced
        if version > peer.version:
            peer.version, peer.parts = version, {}
        peer.parts[part] = extensions
        if len(peer.parts) == parts:
            peer.extensions = frozenset(ext for chunk in peer.parts.values() for ext in chunk)
            peer.links = frozenset(pbx for pbx, up in (links or {}).items() if up)
            peer.expires = self._clock() + self._ttl
            peer.parts = {}

    def gone(self, instance: str) -> None:
        """*instance* said it is stopping."""
        self._peers.pop(instance, None)

    def reap(self) -> list[str]:
        """Forget the peers not heard from for *ttl*; returns their names."""
        now = self._clock()
        gone = [name for name, p in self._peers.items() if p.expires and p.expires <= now]
        for name in gone:
            del self._peers[name]
        return gone

    def watches(self, extension: str) -> bool:
        """Whether a live peer has a tab of *extension* open."""
        now = self._clock()
        return any(extension in p.extensions and p.expires > now for p in self._peers.values())

    def follows(self, pbx: str) -> list[str]:
        """The live peers logged in to *pbx*."""
        now = self._clock()
        return sorted(name for name, p in self._peers.items() if pbx in p.links and p.expires > now)

    def peers(self) -> dict[str, int]:
        """The live peers and how many extensions each has at the desk."""
        now = self._clock()
        return {name: len(p.extensions) for name, p in self._peers.items() if p.expires > now}
