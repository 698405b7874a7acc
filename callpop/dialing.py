"""How callpop asks the PBX to place or route a call: devices, dial strings, caller IDs.

Pure functions of the settings. A live PBX taught us the defaults are not enough: an
outbound route matches what the trunk expects (``8XXXXXXXXXX`` in Russia, ``+E164`` on
many SIP trunks, a ``9`` to get an outside line), and the caller ID given to Originate is
what the agent's phone shows *and* what the trunk sends on, so giving it the client's own
number showed the client their own number. So the agent leg carries the agent's own
caller ID (which also tells FreePBX which extension is calling) and the number the client
should see travels separately, as a channel variable the outbound context applies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from callpop.callerid import safe_caller_name, to_ascii
from callpop.settings import Settings

__all__ = ["OUTBOUND_CID_VARIABLE", "Dial", "OriginatePlan", "device_for", "dial_for", "originate_plan", "pbx_of"]

OUTBOUND_CID_VARIABLE = "CALLPOP_OUTBOUND_CID"


@dataclass(frozen=True, slots=True)
class Dial:
    """What to dial for a client's number, and in which dialplan context."""

    exten: str
    context: str


@dataclass(frozen=True, slots=True)
class OriginatePlan:
    """The fields of one AMI Originate for click-to-call."""

    channel: str
    exten: str
    context: str
    caller_id: str
    variables: tuple[tuple[str, str], ...]


def pbx_of(extension: str, settings: Settings) -> tuple[str, str]:
    """The PBX an extension is on and its number there: ``office2:101`` is 101 on the
    ``[ami.office2]`` PBX (telephony/pbxes.py); a plain one is on the first PBX."""
    pbx, sep, bare = extension.partition(":")
    if sep and pbx in settings.more_ami:
        return pbx, bare
    return settings.pbx.id, extension


def device_for(extension: str, settings: Settings) -> str:
    """The phone of *extension* on its PBX: its ``[agents]`` device (``"NAME:PJSIP/x"``
    entries on PBX NAME), else ``PJSIP/<extension>``."""
    pbx, bare = pbx_of(extension, settings)
    for device, ext in settings.agents.items():
        if ext == extension:
            return device.removeprefix(f"{pbx}:") if pbx != settings.pbx.id else device
    return f"PJSIP/{bare}"


def dial_for(e164: str, settings: Settings) -> Dial:
    """*e164* ("+79161234567") as the PBX's outbound route expects it: the first matching
    ``[dialing] rules`` entry, else the digits without "+"; then ``prefix``."""
    dialing = settings.dialing
    context = settings.pbx.originate_context
    exten = e164.lstrip("+")
    for rule in dialing.rules:
        if re.search(rule.pattern, e164):
            exten = re.sub(rule.pattern, rule.dial, e164, count=1)
            context = rule.context or context
            break
    return Dial(dialing.prefix + exten, context)


def _number_part(number: str) -> str:
    """A caller ID number keeps digits, "+", "*" and "#" only (it ends up in SIP headers)."""
    return "".join(ch for ch in number if ch.isdigit() or ch in "+*#")


def originate_plan(extension: str, agent_name: str, e164: str, settings: Settings) -> OriginatePlan:
    """Click-to-call by the manager at *extension* to the client at *e164*. The agent's
    name is cleaned as the dialplan's ``CALLERID(name)`` answers are (``[dialplan]``
    ``name_max_length`` and ``transliterate``): the same phones show both."""
    dial = dial_for(e164, settings)
    dialplan = settings.dialplan
    name = safe_caller_name(agent_name, dialplan.name_max_length, ascii_only=dialplan.transliterate) or extension
    caller_id = settings.dialing.agent_caller_id.format(name=name, extension=_number_part(pbx_of(extension,
                                                                                                 settings)[1]))
    if dialplan.transliterate:  # the template's own words reach the same phone
        caller_id = to_ascii(caller_id)
    outbound = settings.dialing.outbound_numbers.get(extension) or settings.dialing.outbound_number
    variables = ((OUTBOUND_CID_VARIABLE, _number_part(outbound)),) if _number_part(outbound) else ()
    return OriginatePlan(channel=device_for(extension, settings), exten=dial.exten, context=dial.context,
                         caller_id=" ".join(caller_id.split()), variables=variables)
