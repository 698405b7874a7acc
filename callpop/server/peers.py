"""Who is on the other end of a request, for the endpoints that machines call (the PBX's
dialplan, a Prometheus scraper): an address allow-list instead of a login."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence

from aiohttp import web

__all__ = ["address_allowed", "peer_allowed"]


def peer_allowed(request: web.Request, allow: Sequence[str]) -> bool:
    """Whether the request's TCP peer is allowed (``address_allowed``)."""
    return address_allowed(request.remote, allow)


def address_allowed(address: str | None, allow: Sequence[str]) -> bool:
    """Whether *address* is in one of the *allow* addresses or networks (an IPv4 peer
    seen through an IPv6 socket counts as IPv4)."""
    try:
        peer = ipaddress.ip_address((address or "").split("%")[0])
    except ValueError:
        return False
    if isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped is not None:
        peer = peer.ipv4_mapped
    return any(peer in net for net in _networks(tuple(allow)))


@functools.lru_cache(maxsize=16)
def _networks(allow: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Parsed once per allow-list (settings are frozen), not once per request."""
    return tuple(ipaddress.ip_network(net, strict=False) for net in allow)
