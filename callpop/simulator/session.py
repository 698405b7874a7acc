"""One AMI client of the simulated PBX: the actions it sends, answered as Asterisk does.

Asterisk's behaviour copied here: a banner line on connect; ``Challenge`` then an MD5
``Login`` (``Key = md5(challenge + secret)``) or a plain one; a failed login gets
``Authentication failed`` and the connection closed; anything but Login/Challenge/Logoff
before login gets ``Permission denied``; unknown actions ``Invalid/unknown command``; the
``Events:`` of the Login choose the event classes this client receives. A client that stops
reading is dropped (Asterisk's writetimeout). While the PBX is frozen nothing is read or
answered: the bytes wait until it thaws.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections.abc import Callable
from typing import Any, Protocol

from callpop.simulator.scenario import CLASS_BITS, event_mask
from callpop.telephony.protocol import AmiFramer, AmiMessage, parse_message

__all__ = ["BANNER", "AmiSession", "PbxState"]

log = logging.getLogger("callpop.simulator.pbx")

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
MAX_CLIENT_BUFFER = 16 * 1024 * 1024


def _msg(*lines: tuple[str, str]) -> bytes:
    return ("".join(f"{k}: {v}\r\n" for k, v in lines) + "\r\n").encode("utf-8")


class PbxState(Protocol):
    """What a session reads and calls of the simulated PBX that accepted it (``pbx.SimulatedPbx``)."""

    username: str
    secret: str
    md5: bool
    frozen: bool
    on_sent: Callable[[str, bytes], None] | None
    logins: list[tuple[str, bool]]
    originates: list[dict[str, Any]]
    _sessions: set[AmiSession]
    _started: float

    def _core_show_channels(self, action_id: str | None) -> bytes: ...

    def _place(self, scenario: str, *, client: str, agents: tuple[str, ...], caller_name: str | None,
               action_id: str | None, talk_seconds: float | None = None) -> str: ...


class AmiSession(asyncio.Protocol):
    """One AMI client."""

    def __init__(self, pbx: PbxState) -> None:
        self.pbx = pbx
        self.framer = AmiFramer()
        self.transport: asyncio.Transport | None = None
        self.logged_in = False
        self.mask = 0
        self.challenge: str | None = None
        self.held: list[bytes] = []
        self.peer = "?"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        host, port = transport.get_extra_info("peername")[:2]
        self.peer = f"{host}:{port}"
        self.pbx._sessions.add(self)
        if not self.pbx.frozen:
            self.write(BANNER)
        else:
            self.held.append(b"")  # the banner goes out on unfreeze
        log.info("simulated PBX: client %s connected (%d clients)", self.peer, len(self.pbx._sessions))

    def connection_lost(self, exc: Exception | None) -> None:
        self.pbx._sessions.discard(self)
        log.info("simulated PBX: client %s disconnected", self.peer)

    def data_received(self, data: bytes) -> None:
        if self.pbx.frozen:
            self.held.append(data)
            return
        for block in self.framer.feed(data):
            self.handle(parse_message(block.decode("utf-8", "replace")))

    def thaw(self) -> None:
        held, self.held = self.held, []
        for data in held:
            if data == b"":
                self.write(BANNER)
            else:
                self.data_received(data)

    def write(self, data: bytes) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        if t.get_write_buffer_size() > MAX_CLIENT_BUFFER:
            log.warning("simulated PBX: client %s stopped reading, dropping it", self.peer)
            t.abort()
            return
        t.write(data)
        if self.pbx.on_sent is not None:
            self.pbx.on_sent(self.peer, data)

    def handle(self, msg: AmiMessage) -> None:
        m = {k.lower(): v for k, v in msg.items()}
        action = str(m.get("action", "")).lower()
        aid = ("ActionID", str(m["actionid"])) if "actionid" in m else None
        head = (aid,) if aid else ()

        def reply(status: str, *lines: tuple[str, str]) -> None:
            self.write(_msg(("Response", status), *head, *lines))

        if action == "challenge" and not self.pbx.md5:
            reply("Error", ("Message", "Must specify AuthType"))
        elif action == "challenge":
            self.challenge = str(random.randint(100_000_000, 999_999_999))
            reply("Success", ("Challenge", self.challenge))
        elif action == "login":
            self._login(m, reply)
        elif action == "logoff":
            reply("Goodbye", ("Message", "Thanks for all the fish."))
            if self.transport:
                self.transport.close()
        elif not self.logged_in:
            reply("Error", ("Message", "Permission denied"))
        elif action == "ping":
            reply("Success", ("Ping", "Pong"), ("Timestamp", f"{time.time():.6f}"))
        elif action == "coreshowchannels":
            reply("Success", ("EventList", "start"), ("Message", "Channels will follow"))
            self.write(self.pbx._core_show_channels(aid[1] if aid else None))
        elif action == "originate":
            self._originate(m, reply, aid[1] if aid else None)
        else:  # manager.c's exact words, with the action as the client spelled it
            reply("Error", ("Message", f"Invalid/unknown command: {m.get('action', '')}. "
                                       "Use Action: ListCommands to show available commands."))

    def _login(self, m: dict[str, Any], reply: Callable[..., None]) -> None:
        pbx = self.pbx
        ok = str(m.get("username", "")) == pbx.username
        if str(m.get("authtype", "")).lower() == "md5":
            expected = hashlib.md5(f"{self.challenge}{pbx.secret}".encode()).hexdigest()
            ok = ok and self.challenge is not None and str(m.get("key", "")) == expected
        else:
            ok = ok and str(m.get("secret", "")) == pbx.secret
        method = "md5" if str(m.get("authtype", "")).lower() == "md5" else "plain"
        pbx.logins.append((method, ok))
        if not ok:
            log.warning("simulated PBX: %s failed to authenticate as %r", self.peer, m.get("username"))
            reply("Error", ("Message", "Authentication failed"))
            if self.transport:
                self.transport.close()
            return
        self.logged_in = True
        events = m.get("events")
        self.mask = event_mask(str(events) if events is not None else None)
        reply("Success", ("Message", "Authentication accepted"))
        if self.mask & CLASS_BITS["system"]:
            up = str(int(time.monotonic() - pbx._started))
            self.write(_msg(("Event", "FullyBooted"), ("Privilege", "system,all"), ("Uptime", up),
                            ("LastReload", up), ("Status", "Fully Booted")))

    def _originate(self, m: dict[str, Any], reply: Callable[..., None], action_id: str | None) -> None:
        self.pbx.originates.append(dict(m))
        channel, exten = str(m.get("channel", "")), str(m.get("exten", ""))
        if not channel:
            reply("Error", ("Message", "Channel not specified"))
            return
        if not exten:
            reply("Error", ("Message", "Exten not specified"))
            return
        agent = channel.partition("/")[2].partition("@")[0] or channel
        reply("Success", ("Message", "Originate successfully queued"))
        self.pbx._place("click_to_call", client=exten, agents=(agent,), caller_name=None, action_id=action_id)
