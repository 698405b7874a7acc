"""Ports for the servers the tests and benches start, without the free-port race.

Picking a port by binding to 0, closing the socket and handing the number to a server that
binds it later leaves a window in which anything else on the machine may take it: another
test's server, or the local end of an outgoing connection (they come from the same range),
and the server then fails with "address already in use". So:

* a server in this process is given the socket itself (:func:`bound_socket`, bound to
  port 0 and never released: ``web.SockSite``, ``asyncio.start_server(sock=...)``);
* a server that goes away and must come back on the same port (a PBX restarted after a
  crash) binds next to a :class:`PortHold` (``SO_REUSEPORT``), which keeps the port while
  nothing listens on it: connections are refused, as by a dead host's kernel, and no one
  else can take it;
* a port nothing may listen on (a PBX that is unreachable) is a :class:`PortHold` too;
* a server in another process (``callpop run``) cannot be given a socket: it gets
  :func:`unbound_port` and is started again on a fresh one when the port was taken
  meanwhile (:func:`taken`; tests/support/faults.py ``spawn_daemon``).
"""

from __future__ import annotations

import socket

__all__ = ["PortHold", "bound_socket", "taken", "unbound_port"]

LOOPBACK = "127.0.0.1"


def bound_socket(host: str = LOOPBACK) -> socket.socket:
    """A TCP socket bound to a free port on *host*, not yet listening (the server it is
    handed to listens on it). Its port: ``sock.getsockname()[1]``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((host, 0))
    except BaseException:
        sock.close()
        raise
    return sock


class PortHold:
    """A port kept for a server that binds it with ``reuse_port=True`` (it may stop and
    start again on it); nobody else can bind it meanwhile, and with no server listening a
    connection to it is refused. Close it when done."""

    def __init__(self, host: str = LOOPBACK) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            self._sock.bind((host, 0))
        except BaseException:
            self._sock.close()
            raise
        self.port: int = self._sock.getsockname()[1]

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> PortHold:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def unbound_port(host: str = LOOPBACK) -> int:
    """A port free a moment ago, for a server in another process. It may be taken before
    that server binds it: start the server again on another one when :func:`taken` says so."""
    with bound_socket(host) as sock:
        port: int = sock.getsockname()[1]
        return port


def taken(output: str) -> bool:
    """Whether a server's output says its port was taken (EADDRINUSE) as it bound it."""
    return "address already in use" in output.lower()
