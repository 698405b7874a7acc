"""The fault harness itself: its servers never lose their port to something else on the
machine (tests/support/ports.py): a PBX that crashed comes back on its port, and a daemon
whose web port was taken before it bound it is started on another; and it knows what a
killed daemon had read of the PBX (tests/support/ami_reads.py)."""

from __future__ import annotations

import asyncio
import errno
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from callpop.simulator.pbx import SimulatedPbx
from tests.support import faults
from tests.support.ami import wait_until
from tests.support.ami_reads import SentLog, bytes_read
from tests.support.faults import AGENTS, SECRET, Plan, Run

pytestmark = pytest.mark.faults


def _run(sqlite_template: Path, tmp_path: Path) -> Run:
    path = tmp_path / "callpop.db"
    shutil.copyfile(sqlite_template, path)
    return Run(f"sqlite+aiosqlite:///{path}", tmp_path, Plan())


async def test_a_crashed_pbx_comes_back_on_its_port_and_nothing_else_can_take_it(
        sqlite_template: Path, tmp_path: Path) -> None:
    run = _run(sqlite_template, tmp_path)
    await run.start_pbx()
    try:
        port = run.pbx_port
        await run.pbx.stop()  # crashed: nothing listens on its port...
        with socket.socket() as other, pytest.raises(OSError) as refused:
            other.connect(("127.0.0.1", port))  # ...so connections are refused, as by a dead PBX's host
        assert refused.value.errno == errno.ECONNREFUSED
        with socket.socket() as other, pytest.raises(OSError) as taken:
            other.bind(("127.0.0.1", port))  # and nobody else can bind it meanwhile
        assert taken.value.errno == errno.EADDRINUSE
        await run.start_pbx()
        assert run.pbx_port == port
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"Asterisk Call Manager/")
        finally:
            writer.close()
    finally:
        await run.close()


async def test_a_daemon_whose_web_port_was_taken_is_started_on_another(
        sqlite_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = _run(sqlite_template, tmp_path)
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken_port = squatter.getsockname()[1]
    real = faults.unbound_port

    def ports() -> Iterator[int]:
        yield taken_port  # taken between the pick and the daemon's bind
        while True:
            yield real()

    picks = ports()
    monkeypatch.setattr(faults, "unbound_port", lambda: next(picks))
    await run.start_pbx()
    try:
        await run.start_daemon()
        assert run.web_port != taken_port
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{run.web_port}/health") as resp:
            assert resp.status in (200, 503)  # this daemon answers there
        assert run.daemon is not None and run.daemon.poll() is None
        log = run.log.read_text(errors="replace")
        assert log.lower().count("address already in use") == 1
    finally:
        squatter.close()
        await run.close()


async def test_what_a_client_had_read_of_the_pbx_is_what_it_can_know() -> None:
    """The fault harness judges a killed daemon on the AMI bytes it had read: a client that
    read up to a call's first ringing knows the call rang, not that it was answered or
    ended; one that read everything knows all three."""
    sent = SentLog()
    pbx = SimulatedPbx("callpop", SECRET, AGENTS, speed=20.0, rng_seed=3)
    pbx.on_sent = sent
    port = await pbx.start("127.0.0.1", 0)
    client = socket.create_connection(("127.0.0.1", port))
    try:
        client.sendall(f"Action: Login\r\nUsername: callpop\r\nSecret: {SECRET}\r\n\r\n".encode())
        await wait_until(lambda: pbx.clients == 1 and bool(pbx.logins), 10, "the login")
        call = await pbx.place_call("incoming_answered", client="+79161234567", agent="101")
        await wait_until(lambda: not pbx._calls, 30, "the call to end")
        (peer,) = sent.chunks
        server = f"127.0.0.1:{port}"
        assert bytes_read(peer, server) == 0  # all of it is still in the client's kernel
        chunks = [data for _, data in sent.chunks[peer]]
        ringing = next(i for i, data in enumerate(chunks) if b"Event: DialBegin" in data)
        upto = sum(len(data) for data in chunks[:ringing + 1])
        client.setblocking(False)
        got = b""
        while len(got) < upto:
            got += client.recv(upto - len(got))
        assert bytes_read(peer, server) == upto
        early = sent.heard(peer, upto)
        assert (call in early.rang, call in early.answered, call in early.ended) == (True, False, False)
        total = sum(len(data) for data in chunks)
        while len(got) < total:
            got += client.recv(total - len(got))
        assert bytes_read(peer, server) == total
        late = sent.heard(peer, total)
        assert (call in late.rang, call in late.answered, call in late.ended) == (True, True, True)
    finally:
        client.close()
        await pbx.stop()
