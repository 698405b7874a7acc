"""Channel names, devices and who is an agent.

Asterisk names a channel ``<tech>/<resource>-<sequence>``: ``PJSIP/101-0000000a`` is a call
on the device ``PJSIP/101``; a Local channel adds the half, ``Local/101@agent-phone-0000000c;1``
is one half of a pair on the device ``Local/101@agent-phone``. callpop knows agents by
device: the ``[agents]`` table maps a device to an extension, and a device not listed is an
agent when its resource (``101``, or ``101`` of ``101@agent-phone``) matches
``pbx.agent_extension_pattern``. Anything else (``PJSIP/carrier``,
``Local/74951112201@from-pstn``: eleven digits are a number, not an extension) is the
outside world: a trunk, a client.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

__all__ = ["AgentRule", "device_of", "local_peer", "uniqueid_age"]

_HEX = frozenset("0123456789abcdefABCDEF")


def device_of(channel: str) -> str:
    """``PJSIP/101-0000000a`` -> ``PJSIP/101``; ``Local/101@x-0000000c;1`` -> ``Local/101@x``.

    Masquerade decorations (``<ZOMBIE>``, ``<MASQ>``) are dropped; a bare device comes back
    unchanged."""
    name = channel.split("<", 1)[0]
    if name.startswith("Local/") and name[-2:] in (";1", ";2"):
        name = name[:-2]
    head, sep, tail = name.rpartition("-")
    if sep and "/" in head and len(tail) >= 8 and all(c in _HEX for c in tail):  # Asterisk: %08x
        return head
    return name


def local_peer(channel: str) -> str | None:
    """The other half of a Local channel pair, by name; None for other technologies."""
    if channel.startswith("Local/"):
        if channel.endswith(";1"):
            return channel[:-1] + "2"
        if channel.endswith(";2"):
            return channel[:-1] + "1"
    return None


def uniqueid_age(uniqueid: str) -> tuple[float, int]:
    """Sort key of a Uniqueid (``[system-]epoch.sequence``): smaller is older. Asterisk
    hands a bridge the Linkedid of its oldest channel; we use this to pick the same one."""
    tail = uniqueid.rpartition("-")[2]
    seconds, _, seq = tail.partition(".")
    try:
        return float(seconds), int(seq or 0)
    except ValueError:
        return float("inf"), 0


class AgentRule:
    """Device -> agent extension (or None), cached: the same few devices come back all day."""

    def __init__(self, agents: Mapping[str, str], pattern: str, trunks: Collection[str], prefix: str = "") -> None:
        self._agents = dict(agents)
        self._prefix = prefix  # "office2:" on a second PBX: its 101 is not the first PBX's 101
        self._pattern = re.compile(pattern)
        self._trunks = frozenset(trunks)
        self._cache: dict[str, str | None] = {}

    def __call__(self, channel_or_device: str) -> str | None:
        device = device_of(channel_or_device)
        cached = self._cache.get(device, "")
        if cached != "":
            return cached
        agent = self._resolve(device)
        if len(self._cache) > 10_000:  # devices are few; this only bounds a flood of junk names
            self._cache.clear()
        self._cache[device] = agent
        return agent

    def _resolve(self, device: str) -> str | None:
        if device in self._trunks:
            return None
        listed = self._agents.get(device)
        if listed is not None:
            return listed
        resource = device.partition("/")[2].partition("@")[0]
        if resource and self._pattern.match(resource):
            return self._prefix + resource
        return None
