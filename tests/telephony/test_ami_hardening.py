"""AMI hardening: a peer that is not Asterisk, a server that asks for the plain secret, TLS.

Real TCP (and real TLS with a certificate made for the test by the ``openssl`` command)
through panoramisk, against the simulated PBX or a hostile little server.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from callpop.simulator.pbx import SimulatedPbx
from callpop.telephony.connection import AmiConnection
from callpop.telephony.events import Ended
from callpop.telephony.protocol import MAX_BANNER, AmiFramer, AmiFramingError
from tests.support.ami import Collector, ami_settings, running, tracker, wait_until


def test_a_banner_line_that_never_ends_is_refused_not_buffered() -> None:
    framer = AmiFramer()
    assert framer.feed(b"Asterisk Call Manager/") == []
    with pytest.raises(AmiFramingError, match="banner without a line end"):
        for _ in range(40):
            framer.feed(b"x" * 256 * 1024)
    assert framer.pending == 0


def test_a_real_banner_in_small_pieces_still_reads() -> None:
    framer = AmiFramer()
    banner = b"Asterisk Call Manager/22.1.0\r\n"
    assert len(banner) < MAX_BANNER
    for i in range(len(banner)):
        assert framer.feed(banner[i:i + 1]) == []
    assert framer.version == "22.1.0"


async def test_a_peer_sending_an_endless_banner_is_dropped_and_retried(caplog: pytest.LogCaptureFixture) -> None:
    sent: list[int] = []
    closed = asyncio.Event()

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/")
        try:
            for _ in range(40):
                writer.write(b"A" * 256 * 1024)
                await writer.drain()
                sent.append(1)
        except (ConnectionError, OSError):
            closed.set()
        finally:
            writer.close()

    server = await asyncio.start_server(endless, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    conn = AmiConnection(ami_settings(port, reconnect_min=5.0), tracker(), Collector())
    async with running(conn, login=False):
        await wait_until(lambda: "banner without a line end" in caplog.text, what="banner refused")
        await asyncio.wait_for(closed.wait(), 5)
    server.close()
    assert len(sent) < 40  # the connection was cut long before the peer was done
    assert conn.stats.logins == 0
    assert "not an Asterisk Manager Interface; dropping the connection" in caplog.text


async def test_no_plain_text_secret_when_the_server_refuses_md5(caplog: pytest.LogCaptureFixture) -> None:
    sim = SimulatedPbx("callpop", "s3cret", md5=False)
    port = await sim.start()
    try:
        conn = AmiConnection(ami_settings(port, reconnect_min=5.0), tracker(), Collector())
        async with running(conn, login=False):
            await wait_until(lambda: "not sending the secret in plain text" in caplog.text, what="refusal")
            assert conn.state != "logged_in"
    finally:
        await sim.stop()
    assert sim.logins == []  # no Login action, so no secret, ever reached the server
    assert "allow_plain_login" in caplog.text and "s3cret" not in caplog.text


async def test_plain_login_only_when_allowed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sim = SimulatedPbx("callpop", "s3cret", md5=False)
    port = await sim.start()
    try:
        async with running(AmiConnection(ami_settings(port, allow_plain_login=True), tracker(), Collector())):
            pass
    finally:
        await sim.stop()
    assert sim.logins == [("plain", True)]
    assert "sending the secret in plain text" in caplog.text and "s3cret" not in caplog.text


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for 127.0.0.1 (and localhost)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    return cert, key


@pytest.fixture
async def tls_pbx(certificate: tuple[Path, Path]) -> AsyncIterator[tuple[SimulatedPbx, int]]:
    cert, key = certificate
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    sim = SimulatedPbx("callpop", "s3cret", speed=4.0, rng_seed=7)
    port = await sim.start(ssl=ctx)
    yield sim, port
    await sim.stop()


async def test_ami_over_tls_logs_in_and_tracks_a_call(tls_pbx: tuple[SimulatedPbx, int],
                                                       certificate: tuple[Path, Path]) -> None:
    sim, port = tls_pbx
    sink = Collector()
    conn = AmiConnection(ami_settings(port, tls=True, tls_ca_file=str(certificate[0])), tracker(), sink)
    async with running(conn):
        lid = await sim.place_call("incoming_answered", client="+79161234567", agent="102")
        await sink.wait_for(lambda ev: any(isinstance(e, Ended) and e.call == lid for e in ev))
    assert sim.logins == [("md5", True)]
    assert [e.event for e in sink.events if e.call == lid] == ["ringing", "answered", "ended"]


async def test_tls_refuses_a_certificate_it_cannot_verify(tls_pbx: tuple[SimulatedPbx, int],
                                                          caplog: pytest.LogCaptureFixture) -> None:
    sim, port = tls_pbx
    conn = AmiConnection(ami_settings(port, tls=True, reconnect_min=5.0), tracker(), Collector())
    async with running(conn, login=False):
        await wait_until(lambda: "CERTIFICATE_VERIFY_FAILED" in caplog.text, what="verification failure")
    assert sim.logins == [] and conn.stats.logins == 0


async def test_tls_without_verification_is_possible_for_a_test_pbx(tls_pbx: tuple[SimulatedPbx, int]) -> None:
    sim, port = tls_pbx
    async with running(AmiConnection(ami_settings(port, tls=True, tls_verify=False), tracker(), Collector())):
        pass
    assert sim.logins == [("md5", True)]
