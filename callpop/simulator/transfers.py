"""Blind and attended transfer scenarios, built on the captured answered call.

There is no capture of a transfer, so the part after "agent 101 is talking to the client"
is written from Asterisk's documented events (AMI_Events/BlindTransfer and
AttendedTransfer, Asterisk 18+), in the shape chan_pjsip gives the rest of the call:

* blind (101 sends a REFER to 102): ``BlindTransfer`` (Transferer = 101's channel,
  Transferee = the trunk, Extension 102, IsExternal Yes); the trunk leaves the bridge and
  dials ``PJSIP/102`` from 101's context ``from-agents-sip``; 101's channel hangs up; 102 rings and answers in
  a new bridge. Every channel keeps the call's Linkedid.
* attended (101 holds the client, calls 102 on a second line, then completes): a second
  call ``PJSIP/101`` -> ``PJSIP/102`` with its own Linkedid; on completion the client's
  channel leaves its bridge and swaps into the consult bridge in place of 101's second
  channel (``BridgeEnter`` with ``SwapUniqueid``), then ``AttendedTransfer``
  (OrigTransferer/SecondTransferer/Transferee/TransferTarget, DestType Bridge), then
  both of 101's channels hang up. 102's channel carries the client's (older) Linkedid from
  its next event on: Asterisk adopts the oldest Linkedid on bridge join and says so in no
  event. This order is the one a real Asterisk attended transfer shows (the tracker's
  hand-made streams in ``tests/fixtures/streams`` follow the same recording).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from callpop.simulator.live import CHAN_FIELDS, track

__all__ = ["build_transfer"]

Record = tuple[float, dict[str, Any]]

_B = "PJSIP/102-000000b1"
_A2 = "PJSIP/101-000000a2"
_BRIDGE2 = "00000000-0000-4000-8000-0000000000b2"
_BRIDGE3 = "00000000-0000-4000-8000-0000000000b3"


class _Builder:
    def __init__(self, head: Sequence[Record]) -> None:
        self.out: list[Record] = list(head)
        self.live: dict[str, dict[str, str]] = {}
        for t, e in head:
            track(self.live, e, t)
        self.t = head[-1][0]

    def chan(self, name: str, prefix: str = "") -> dict[str, str]:
        f = self.live[name]
        return {f"{prefix}Channel": name, **{f"{prefix}{k}": f[k] for k in CHAN_FIELDS}}

    def set(self, name: str, **fields: str) -> None:
        self.live.setdefault(name, {"_created": str(self.t)}).update(fields)

    def emit(self, event: str, *parts: dict[str, str], priv: str = "call,all", dt: float = 0.0005) -> None:
        self.t += dt
        e: dict[str, Any] = {"Event": event, "Privilege": priv}
        for p in parts:
            e.update(p)
        self.out.append((self.t, e))
        track(self.live, e, self.t)

    def on(self, event: str, name: str, **extra: str) -> None:
        self.emit(event, self.chan(name), extra)

    def new_channel(self, name: str, uid: str, linkedid: str, num: str, cname: str, state: tuple[str, str],
                    exten: str) -> None:
        self.set(name, ChannelState=state[0], ChannelStateDesc=state[1], CallerIDNum=num, CallerIDName=cname,
                 ConnectedLineNum="<unknown>", ConnectedLineName="<unknown>", Language="en", AccountCode="",
                 Context="from-agents-sip", Exten=exten, Priority="1", Uniqueid=uid, Linkedid=linkedid)
        self.on("Newchannel", name)

    def state(self, name: str, code: str, desc: str) -> None:
        self.set(name, ChannelState=code, ChannelStateDesc=desc)
        self.on("Newstate", name)

    def connected(self, name: str, num: str, cname: str) -> None:
        self.set(name, ConnectedLineNum=num, ConnectedLineName=cname)
        self.on("NewConnectedLine", name)

    def dial(self, event: str, src: str, dst: str, **extra: str) -> None:
        self.emit(event, self.chan(src), self.chan(dst, "Dest"), extra)

    def bridge(self, bid: str, n: int, prefix: str = "") -> dict[str, str]:
        return {f"{prefix}BridgeUniqueid": bid, f"{prefix}BridgeType": "basic",
                f"{prefix}BridgeTechnology": "simple_bridge", f"{prefix}BridgeCreator": "<unknown>",
                f"{prefix}BridgeName": "<unknown>", f"{prefix}BridgeNumChannels": str(n),
                f"{prefix}BridgeVideoSourceMode": "none"}

    def enter(self, event: str, bid: str, n: int, name: str) -> None:
        self.emit(event, self.bridge(bid, n), self.chan(name))

    def hangup(self, name: str) -> None:
        self.on("Hangup", name, **{"Cause": "16", "Cause-txt": "Normal Clearing"})

    def device(self, device: str, state: str) -> None:
        self.emit("DeviceStateChange", {"Device": device, "State": state})

    def answer_leg(self, src: str, dst: str, bid: str) -> None:
        """dst answers src's Dial: Up, DialEnd, a new bridge with both."""
        self.state(dst, "6", "Up")
        self.dial("DialEnd", src, dst, DialStatus="ANSWER")
        if self.live[src]["ChannelState"] != "6":
            self.state(src, "6", "Up")
        self.emit("BridgeCreate", self.bridge(bid, 0))
        self.enter("BridgeEnter", bid, 1, dst)
        self.enter("BridgeEnter", bid, 2, src)
        self.device(dst.rsplit("-", 1)[0], "INUSE")

    def end(self, client: str, agent: str, bid: str) -> None:
        self.on("HangupRequest", client, Cause="16")
        self.enter("BridgeLeave", bid, 1, client)
        self.enter("BridgeLeave", bid, 0, agent)
        self.emit("BridgeDestroy", self.bridge(bid, 0))
        self.hangup(agent)
        self.hangup(client)
        self.device(agent.rsplit("-", 1)[0], "NOT_INUSE")


def _seq_uid(linkedid: str, step: int) -> str:
    epoch, _, seq = linkedid.partition(".")
    return f"{epoch}.{int(seq) + step}"


def build_transfer(kind: str, base: Sequence[Record]) -> list[Record]:
    """The answered call of ``base`` until both sides are bridged, then the transfer."""
    t_bridged = max(t for t, e in base if e.get("Event") == "BridgeEnter")
    head = [(t, e) for t, e in base if t <= t_bridged + 0.005]
    b = _Builder(head)
    enters = [e for _, e in head if e.get("Event") == "BridgeEnter"]
    bridge_x = str(enters[-1]["BridgeUniqueid"])
    client = next(c for c in b.live if c.startswith("PJSIP/carrier-"))
    agent = next(c for c in b.live if c != client)
    linkedid = b.live[client]["Linkedid"]
    client_num, client_name = b.live[client]["CallerIDNum"], b.live[client]["CallerIDName"]
    b.t += 2.0  # they talk for two seconds
    if kind == "blind_transfer":
        _blind(b, client, agent, bridge_x, linkedid, client_num, client_name)
    elif kind == "attended_transfer":
        _attended(b, client, agent, bridge_x, linkedid, client_num, client_name)
    else:
        raise ValueError(f"unknown transfer scenario {kind!r}")
    return b.out


def _blind(b: _Builder, client: str, agent: str, bridge_x: str, linkedid: str, num: str, name: str) -> None:
    # A REFER from the phone: the extension is looked up in the transferer's own context.
    b.emit("BlindTransfer", {"Result": "Success"}, b.chan(agent, "Transferer"), b.chan(client, "Transferee"),
           b.bridge(bridge_x, 2), {"IsExternal": "Yes", "Context": "from-agents-sip", "Extension": "102"})
    b.enter("BridgeLeave", bridge_x, 1, client)
    b.set(client, Context="from-agents-sip", Exten="102", Priority="1")
    b.on("Newexten", client, Extension="102", Application="Dial", AppData="PJSIP/102,15,t")
    b.on("HangupRequest", agent, Cause="16")
    b.enter("BridgeLeave", bridge_x, 0, agent)
    b.emit("BridgeDestroy", b.bridge(bridge_x, 0))
    b.hangup(agent)
    b.device("PJSIP/101", "NOT_INUSE")
    b.new_channel(_B, _seq_uid(linkedid, 10), linkedid, "102", "Manager 102", ("0", "Down"), "s")
    b.connected(_B, num, name)
    b.dial("DialBegin", client, _B, DialString="102")
    b.connected(client, "102", "Manager 102")
    b.state(_B, "5", "Ringing")
    b.device("PJSIP/102", "RINGING")
    b.dial("DialState", client, _B, DialStatus="RINGING")
    b.t += 1.5  # 102 rings, then answers
    b.answer_leg(client, _B, _BRIDGE2)
    b.t += 3.0
    b.end(client, _B, _BRIDGE2)


def _attended(b: _Builder, client: str, agent: str, bridge_x: str, linkedid: str, num: str, name: str) -> None:
    b.on("Hold", agent, MusicClass="default")
    b.on("MusicOnHoldStart", client, Class="default")
    uid_a2 = _seq_uid(linkedid, 10)
    b.new_channel(_A2, uid_a2, uid_a2, "101", "Manager 101", ("4", "Ring"), "102")
    b.on("Newexten", _A2, Extension="102", Application="Dial", AppData="PJSIP/102,15,t")
    b.new_channel(_B, _seq_uid(linkedid, 11), uid_a2, "102", "Manager 102", ("0", "Down"), "s")
    b.connected(_B, "101", "Manager 101")
    b.dial("DialBegin", _A2, _B, DialString="102")
    b.state(_B, "5", "Ringing")
    b.device("PJSIP/102", "RINGING")
    b.dial("DialState", _A2, _B, DialStatus="RINGING")
    b.t += 1.0  # 102 answers and the agents talk
    b.answer_leg(_A2, _B, _BRIDGE3)
    b.t += 2.0  # 101 completes the transfer: the client swaps into the consult bridge
    b.on("MusicOnHoldStop", client)
    b.enter("BridgeLeave", bridge_x, 1, client)
    b.enter("BridgeLeave", _BRIDGE3, 1, _A2)
    b.emit("BridgeEnter", b.bridge(_BRIDGE3, 2), b.chan(client), {"SwapUniqueid": uid_a2})
    b.emit("AttendedTransfer", {"Result": "Success"},
           b.chan(agent, "OrigTransferer"), b.bridge(bridge_x, 1, "Orig"),
           b.chan(_A2, "SecondTransferer"), b.bridge(_BRIDGE3, 2, "Second"),
           b.chan(client, "Transferee"), b.chan(_B, "TransferTarget"),
           {"IsExternal": "Yes", "DestType": "Bridge", "DestBridgeUniqueid": _BRIDGE3})
    b.on("HangupRequest", agent, Cause="16")
    b.enter("BridgeLeave", bridge_x, 0, agent)
    b.emit("BridgeDestroy", b.bridge(bridge_x, 0))
    b.hangup(_A2)
    b.hangup(agent)
    b.device("PJSIP/101", "NOT_INUSE")
    b.set(_B, Linkedid=linkedid)  # adopted silently on bridge join; seen on its next event
    b.connected(client, "102", "Manager 102")
    b.connected(_B, num, name)
    b.t += 3.0
    b.end(client, _B, _BRIDGE3)
