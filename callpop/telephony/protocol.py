"""AMI framing on bytes, and the panoramisk protocol that uses it.

panoramisk 1.4's ``AMIProtocol.data_received`` decodes every TCP chunk on its own with
``errors='ignore'``: a Cyrillic caller name whose UTF-8 bytes straddle two reads loses a
character, silently. Here messages are framed on bytes (``b"\\r\\n\\r\\n"``), the remainder is
kept for the next read, and only whole messages are decoded.

Events do not go through panoramisk's callback dispatch (callbacks run inside
``data_received``, and one exception there drops the AMI connection): every event of a
read is timestamped at receipt and handed over in one batch to the owner, which queues it
for a single consumer. Responses, and events that carry the ActionID of an action still
waiting for its answer, still go through panoramisk's ``handle_message`` so its Action
futures keep working.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from panoramisk import actions
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

from callpop.telephony.amitext import AmiMessage
from callpop.telephony.amitext import parse_text as parse_message

__all__ = [
    "AmiConnectionLost",
    "AmiFramer",
    "AmiMessage",
    "Batch",
    "CallpopAmiProtocol",
    "parse_message",
]

log = logging.getLogger(__name__)

Batch = list[tuple[AmiMessage, float]]

EOM = b"\r\n\r\n"
BANNER = b"Asterisk Call Manager/"
# Asterisk never sends a message this big; past it the peer is not speaking AMI.
MAX_PENDING = 4 * 1024 * 1024


class AmiConnectionLost(ConnectionError):
    """The AMI connection closed while an action was waiting for its response."""


class AmiFramer:
    """Splits a byte stream into whole AMI messages (bytes, terminator removed).

    The banner ``Asterisk Call Manager/x.y.z\\r\\n`` is a single line without the blank
    line, so it is peeled off the first message and kept in ``version``.
    """

    __slots__ = ("_pending", "version")

    def __init__(self) -> None:
        self._pending = b""
        self.version: str | None = None

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._pending + data if self._pending else data
        if self.version is None and buf.startswith(BANNER):
            line, sep, rest = buf.partition(b"\r\n")
            if not sep:  # the banner itself is split across reads
                self._pending = buf
                return []
            self.version = line[len(BANNER):].decode("ascii", "replace").strip()
            buf = rest
        blocks = buf.split(EOM)
        self._pending = blocks.pop()
        if len(self._pending) > MAX_PENDING:
            log.error("ami framing: %d bytes without a message end, discarding them", len(self._pending))
            self._pending = b""
        return [b for b in blocks if b.strip()]

    @property
    def pending(self) -> int:
        """Bytes of an unfinished message waiting for the next read."""
        return len(self._pending)


class CallpopAmiProtocol(AMIProtocol):  # type: ignore[misc]
    """panoramisk's protocol with byte framing, batched events and failing futures.

    ``factory`` is set by the manager on connect; it must provide ``enqueue(batch)``,
    ``received(nbytes)`` and panoramisk's ``connection_lost(exc)``. ``clock`` stamps each read (``time.time``).
    """

    clock: Callable[[], float] = time.time

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.framer = AmiFramer()
        self.lost_reason: str | None = None
        self._early: list[tuple[bytes, float]] = []

    def attached(self) -> None:
        """The manager has wired ``factory``: hand over what was read before (the banner)."""
        early, self._early = self._early, []
        for data, now in early:
            self._read(data, now)

    def data_received(self, data: bytes) -> None:
        if self.factory is None:  # read before the manager's connect callback ran
            self._early.append((data, self.clock()))
            return
        self._read(data, self.clock())

    def _read(self, data: bytes, now: float) -> None:
        self.factory.received(len(data))
        batch: Batch = []
        pending = self.responses
        for block in self.framer.feed(data):
            text = block.decode("utf-8", "replace")
            if text.startswith("Event: "):
                msg = parse_message(text)
                action_id = msg.get("ActionID")
                if isinstance(action_id, str) and action_id in pending:
                    self._via_panoramisk(text)
                    continue
                batch.append((msg, now))
                if msg["Event"] == "Shutdown":
                    self.lost_reason = "Asterisk is shutting down"
                    break
            else:
                # A response (or a stray event panoramisk would dispatch from a callback).
                stray = self._via_panoramisk(text)
                if stray is not None:
                    batch.append((stray, now))
        if batch:
            self.factory.enqueue(batch)
        if self.lost_reason:
            self.transport.abort()

    def _via_panoramisk(self, text: str) -> AmiMessage | None:
        """Let panoramisk complete its Action futures; return an event it would dispatch."""
        message = Message.from_line(text.strip())
        if message is None:
            return None
        if "event" in message and message.action_id not in self.responses:
            return parse_message(text)
        self.handle_message(message)
        return None

    def send(self, data: Any, as_list: bool | None = False) -> Any:
        """Like panoramisk's, but never logs the action (a Login carries the secret)."""
        if not isinstance(data, actions.Action):
            data = actions.Action(data, as_list=as_list)
        data.as_list = as_list
        self.responses[data.id] = data
        if self.closed or self.transport.is_closing():
            self.responses.pop(data.id, None)
            data.future.set_exception(AmiConnectionLost(f"cannot send {data['action']}: connection closed"))
            _mark_retrieved(data.future)
            return data.future
        self.transport.write(str(data).encode("utf-8"))
        return data.future

    def connection_lost(self, exc: Exception | None) -> None:
        why = self.lost_reason or (f"{type(exc).__name__}: {exc}" if exc else "closed by the peer")
        for action in list(self.responses.values()):
            if not action.future.done():
                action.future.set_exception(AmiConnectionLost(f"{action['action']}: connection lost ({why})"))
                _mark_retrieved(action.future)
        self.responses.clear()
        super().connection_lost(exc)


def _mark_retrieved(future: Any) -> None:
    """Nobody may await a failed ping after a reconnect: don't let asyncio log it."""
    future.add_done_callback(lambda f: f.exception())
