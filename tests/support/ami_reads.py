"""What a killed daemon can have known: the AMI bytes it had read when it died.

The simulated PBX sends events when they happen; a daemon behind on its socket (a loaded
machine) has not read them all, and a SIGKILL loses what its kernel still holds for it:
those events never reached callpop. So the fault harness freezes the daemon (SIGSTOP) just
before the kill and asks the kernel how much of the PBX's stream it had read
(``bytes_received`` less what waits in its receive queue, from ``ss -tin``); the same
pure call tracker the daemon runs, fed that prefix, says which calls it had seen ring, be
answered (and when the PBX sent the answer) and end. Nothing of the daemon's own journal is
used to judge it.
"""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass, field

from callpop.telephony.events import Answered, Ended, Ringing
from callpop.telephony.protocol import AmiFramer, parse_message
from callpop.telephony.tracker import CallTracker
from tests.support.captures import CONFIG

__all__ = ["Heard", "SentLog", "bytes_read"]


@dataclass
class SentLog:
    """Everything the PBX sent each client connection, in order, with when it sent it
    (hook it to ``SimulatedPbx.on_sent``)."""

    chunks: dict[str, list[tuple[float, bytes]]] = field(default_factory=dict)

    def __call__(self, peer: str, data: bytes) -> None:
        self.chunks.setdefault(peer, []).append((time.time(), data))

    def heard(self, peer: str, read: int) -> Heard:
        """What a client of *peer* that had read the first *read* bytes of its stream can
        know, each message stamped with when the PBX sent it."""
        framer = AmiFramer()
        tracker = CallTracker(CONFIG)
        chunks = self.chunks.get(peer, [])
        heard = Heard(read, unread=sum(len(data) for _, data in chunks) - read)
        left = read
        for sent_at, data in chunks:
            if left <= 0:
                break
            part, left = data[:left], left - len(data)
            for block in framer.feed(part):
                for event in tracker.feed(parse_message(block.decode("utf-8", "replace")), sent_at):
                    if isinstance(event, Ringing):
                        heard.rang.add(event.call)
                    elif isinstance(event, Answered):
                        heard.answered.setdefault(event.call, sent_at)
                    elif isinstance(event, Ended):
                        heard.ended.add(event.call)
        return heard


@dataclass
class Heard:
    """The calls a daemon had heard of before it died: ``rang`` (a phone rang), ``answered``
    (call -> when the PBX sent the answer), ``ended``; ``read`` bytes of the PBX's stream,
    ``unread`` sent to it but not read."""

    read: int
    unread: int = 0
    rang: set[str] = field(default_factory=set)
    answered: dict[str, float] = field(default_factory=dict)
    ended: set[str] = field(default_factory=set)


_BYTES_RECEIVED = re.compile(r"\bbytes_received:(\d+)")


def bytes_read(local: str, remote: str) -> int:
    """How many bytes the process owning the TCP connection *local* -> *remote*
    ("127.0.0.1:PORT") has read from it: what its kernel received less what it holds unread.
    Stop the process first (SIGSTOP), or it reads on."""
    out = subprocess.run(["ss", "-tinH", "state", "established", "src", local, "dst", remote],
                         check=True, capture_output=True, text=True).stdout
    lines = out.splitlines()
    if not lines:
        raise AssertionError(f"no TCP connection {local} -> {remote} (ss -tin)")
    unread = int(lines[0].split()[0])  # Recv-Q of an established socket: received, not read
    found = _BYTES_RECEIVED.search(out)
    return (int(found.group(1)) if found else 0) - unread
