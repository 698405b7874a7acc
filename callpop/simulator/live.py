"""Which channels are up while a scenario plays, as ``CoreShowChannels`` would list them.

Shared by the scenario compiler and the transfer builder.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["CHAN_FIELDS", "track"]

CHAN_FIELDS = ("ChannelState", "ChannelStateDesc", "CallerIDNum", "CallerIDName", "ConnectedLineNum",
                "ConnectedLineName", "Language", "AccountCode", "Context", "Exten", "Priority",
                "Uniqueid", "Linkedid")


def track(live: dict[str, dict[str, str]], event: Mapping[str, Any], t: float) -> None:
    """Follow which channels are up, as CoreShowChannels would list them."""
    name = event.get("Event")
    chan = event.get("Channel")
    if not isinstance(chan, str) or "Uniqueid" not in event:
        return
    if name == "Hangup":
        live.pop(chan, None)
        return
    entry = live.setdefault(chan, {"_created": str(t)})
    for k in CHAN_FIELDS:
        if k in event:
            entry[k] = str(event[k])
    if name == "Newexten":
        entry["Application"] = str(event.get("Application", ""))
        entry["ApplicationData"] = str(event.get("AppData", ""))
    elif name == "BridgeEnter":
        entry["BridgeId"] = str(event.get("BridgeUniqueid", ""))
    elif name == "BridgeLeave":
        entry["BridgeId"] = ""
