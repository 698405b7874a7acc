"""The AMI connection: panoramisk's Manager with its known gaps closed.

What panoramisk 1.4 leaves to us, and where it is handled:

* framing on bytes and whole-message UTF-8 decoding: :mod:`callpop.telephony.protocol`;
* sync callbacks inside ``data_received``: the protocol only enqueues timestamped batches,
  ONE consumer task (:mod:`callpop.telephony.ami_pump`) feeds the tracker in order and
  awaits the sink; an exception on one message is logged with that message and the stream
  goes on;
* its Ping never waits for the Pong: :meth:`AmiConnection._watch` expects the Pong within
  ``pong_timeout`` and otherwise aborts the transport (``Manager.close()`` would switch
  panoramisk's reconnect off; we drive reconnects ourselves anyway);
* fixed-delay reconnects: capped exponential backoff in :meth:`AmiConnection.run`;
* plain-text login only: MD5 challenge first; a server that refuses the challenge gets no
  secret at all unless ``[ami] allow_plain_login`` says so;
* TLS (``[ami] tls``): an :class:`ssl.SSLContext` from :func:`tls_context` handed to
  panoramisk's ``ssl`` (Asterisk's ``tlsbindport``).

Resynchronisation (every login): a ``CoreShowChannels`` is sent and its list events
(``CoreShowChannel`` ... ``CoreShowChannelsComplete``) travel through the same queue as live
events, at their position in the stream, and are fed to the tracker like any event; the
tracker collects the items and resynchronises on ``CoreShowChannelsComplete``. So events
read before the snapshot are applied before it, events after it after it, nothing is held
back or reordered, and the daemon takes a listing exactly as ``callpop replay`` takes one
found in a recorded stream. (Holding live events back until the listing completes would
apply them after a snapshot that predates some of them: a channel that hung up between
the two would come back to life.)
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from panoramisk import Manager

from callpop.settings import AmiSettings, ami_secret_variable
from callpop.telephony.ami_pump import AmiStats, EventPump, IdleSweep, Prefetch, Sink, Tracker
from callpop.telephony.protocol import AmiConnectionLost, Batch, CallpopAmiProtocol

__all__ = ["AmiAuthError", "AmiConnection", "AmiError", "AmiNotConnected", "AmiRefused", "AmiStats", "Tracker",
           "tls_context"]

log = logging.getLogger(__name__)


class AmiError(Exception):
    """Base of the errors the AMI connection raises to its callers."""


class AmiNotConnected(AmiError):
    """An action was asked for while callpop is not logged in to Asterisk."""


class AmiRefused(AmiError):
    """Asterisk answered an action with an error."""


class AmiAuthError(AmiError):
    """Login refused (wrong username or secret, or the user may not log in from here)."""


def _check_value(name: str, value: str) -> str:
    """AMI is line-based: a CR/LF in a value would inject headers into the action."""
    if "\r" in value or "\n" in value:
        raise ValueError(f"{name}: line breaks are not allowed in AMI values, got {value!r}")
    return value


def tls_context(settings: AmiSettings) -> ssl.SSLContext | None:
    """The client TLS context for ``[ami] tls`` (None: plain TCP).

    Verifies Asterisk's certificate and host name against ``tls_ca_file`` (or the system's
    CAs); ``tls_verify = false`` skips both, for a test PBX with a throwaway certificate.
    """
    if not settings.tls:
        return None
    ctx = ssl.create_default_context(cafile=settings.tls_ca_file or None)
    if not settings.tls_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class _Manager(Manager):  # type: ignore[misc]
    """panoramisk's Manager without its own login, pinger and reconnect timer."""

    def __init__(self, owner: AmiConnection, **config: Any) -> None:
        super().__init__(protocol_factory=CallpopAmiProtocol, encoding="utf-8", **config)
        self._owner = owner

    def connection_made(self, f: asyncio.Future[Any]) -> None:
        if f.cancelled() or f.exception() is not None:
            return  # the session awaiting connect() reports it
        _transport, protocol = f.result()
        self.protocol = protocol
        protocol.factory = self
        protocol.clock = self._owner._clock
        protocol.encoding = self.encoding = "utf-8"
        self.responses = protocol.responses = {}
        self._owner._on_connected()
        protocol.attached()

    def enqueue(self, batch: Batch) -> None:
        self._owner._pump.enqueue(batch)

    def received(self, nbytes: int) -> None:
        self._owner.stats.bytes_received += nbytes
        self._owner.heard = self._owner._clock()

    def connection_lost(self, exc: Exception | None) -> None:
        self._owner._on_lost(exc, getattr(self.protocol, "lost_reason", None))

    def ping(self) -> None:
        """Replaced by AmiConnection's watchdog, which waits for the Pong."""


class AmiConnection:
    """Connects to Asterisk, keeps the connection alive and feeds the tracker."""

    def __init__(self, settings: AmiSettings, tracker: Tracker, sink: Sink, *,
                 loop_clock: Callable[[], float] = time.time, prefetch: Prefetch | None = None,
                 idle_sweep: IdleSweep | None = None,
                 on_resync: Callable[[float | None], None] | None = None,
                 on_lost: Callable[[], None] | None = None, name: str = "") -> None:
        self._settings = settings
        self._name = name  # "" for the first PBX ([ami]), else NAME of its [ami.NAME] table
        self._clock = loop_clock
        self.stats = AmiStats()
        self.heard: float | None = None  # when the PBX last sent anything (epoch seconds)
        self._pump = EventPump(tracker, sink, self.stats, settings.queue_warn, prefetch, idle_sweep,
                               on_resync, on_lost)
        self._state = "idle"
        self._manager: _Manager | None = None
        self._lost: asyncio.Future[str] | None = None
        self._stop_requested: asyncio.Event | None = None
        self._run_done: asyncio.Event | None = None
        self._step_timeout = settings.ping_interval + settings.pong_timeout
        self._ssl = tls_context(settings)
        self.version: str | None = None

    # --- public -------------------------------------------------------------------------

    @property
    def state(self) -> str:
        """idle | connecting | connected | logged_in | lost | stopped"""
        return self._state

    async def run(self) -> None:
        """Connect, log in, resync and follow events; reconnect forever until stopped."""
        self._stop_requested = asyncio.Event()
        self._run_done = asyncio.Event()
        self._pump.start()
        delay = self._settings.reconnect_min
        failures = 0
        last_reason = ""
        try:
            while not self._stop_requested.is_set():
                quiet = failures > 0
                outcome = await self._session_or_stop(quiet=quiet)
                if outcome is None:
                    break
                logged_in, reason = outcome
                if logged_in:
                    delay, failures = self._settings.reconnect_min, 0
                failures += 1
                self._set_state("lost", reason, quiet=quiet and reason == last_reason)
                last_reason = reason
                log.warning("ami: retrying in %.3g s (attempt %d)", delay, failures)
                try:
                    await asyncio.wait_for(self._stop_requested.wait(), timeout=delay)
                except TimeoutError:
                    pass
                delay = min(max(delay, 0.001) * 2, self._settings.reconnect_max)
        finally:
            self._abort("stopping")
            await self._pump.stop()
            self._set_state("stopped", "")
            self._run_done.set()

    async def stop(self) -> None:
        """Close the connection; ``run()`` returns after the queued events are handled."""
        if self._stop_requested is not None:
            self._stop_requested.set()
        self._abort("stopped by callpop")
        if self._run_done is not None and asyncio.current_task() is not self._pump.task:
            await self._run_done.wait()

    async def originate(self, channel: str, exten: str, context: str, caller_id: str | None = None,
                        timeout_s: float = 30, variables: Sequence[tuple[str, str]] = ()) -> None:
        """Click-to-call: ring ``channel`` (the agent's phone), then dial ``exten``.
        ``variables`` are set on the channel (one ``Variable:`` header each).

        Returns once Asterisk has queued the call; the call itself arrives as events.
        """
        if self._state != "logged_in":
            raise AmiNotConnected(f"Originate {channel} -> {exten}: not logged in to Asterisk "
                                  f"(AMI state: {self._state})")
        action: dict[str, str | list[str]] = {
            "Action": "Originate", "Channel": _check_value("channel", channel),
            "Exten": _check_value("exten", exten), "Context": _check_value("context", context),
            "Priority": "1", "Async": "true", "Timeout": str(int(timeout_s * 1000)),
        }
        if caller_id:
            action["CallerID"] = _check_value("caller_id", caller_id)
        if variables:
            action["Variable"] = [_check_value("variable", f"{name}={value}") for name, value in variables]
        resp = await self._action(action, what=f"Originate {channel} -> {exten}@{context}")
        if not resp.success:
            raise AmiRefused(f"Asterisk refused Originate {channel} -> {exten}@{context}: "
                             f"{resp.message or resp.response}")
        log.info("ami: originate queued: %s -> %s@%s", channel, exten, context)

    # --- one TCP session ----------------------------------------------------------------

    async def _session_or_stop(self, *, quiet: bool) -> tuple[bool, str] | None:
        """Run one session; a stop() at any step (even mid-connect) ends it: None."""
        assert self._stop_requested is not None
        session = asyncio.create_task(self._session(quiet=quiet), name="ami-session")
        stopper = asyncio.create_task(self._stop_requested.wait(), name="ami-stop")
        try:
            await asyncio.wait({session, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            if not session.done():
                session.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await session
        if self._stop_requested.is_set() or session.cancelled():
            return None
        return session.result()

    async def _session(self, *, quiet: bool) -> tuple[bool, str]:
        """One connection from connect to loss; returns (logged in?, why it ended)."""
        loop = asyncio.get_running_loop()
        self._lost = loop.create_future()
        s = self._settings
        self._set_state("connecting", f"{s.host}:{s.port}{' over TLS' if self._ssl else ''}", quiet=quiet)
        manager = _Manager(self, host=s.host, port=s.port, loop=loop, ssl=self._ssl or False)
        self._manager = manager
        logged_in = False
        try:
            await asyncio.wait_for(manager.connect(), timeout=self._step_timeout)
            self.stats.connects += 1
            self._set_state("connected", f"{s.host}:{s.port}")
            await self._login()
            logged_in = True
            self.stats.logins += 1
            if self.stats.logins > 1:
                self.stats.reconnects += 1
            self._set_state("logged_in", f"as {s.username!r}, Asterisk Call Manager {self.version}, "
                                         f"events={s.events}")
            await self._resync()
            return logged_in, await self._watch()
        except AmiAuthError as exc:
            table = f"ami.{self._name}" if self._name else "ami"
            log.error("ami: %s; check [%s] username and secret (%s)", exc, table, ami_secret_variable(self._name))
            return logged_in, str(exc)
        except (OSError, AmiError, TimeoutError) as exc:
            reason = self._lost.result() if self._lost.done() else (str(exc) or type(exc).__name__)
            return logged_in, reason
        except Exception as exc:  # a bug must not end the AMI connection for good
            log.exception("ami: unexpected error in the session; reconnecting")
            return logged_in, f"internal error: {type(exc).__name__}: {exc}"
        finally:
            self._abort("session ended")

    async def _action(self, action: Mapping[str, str | list[str]], *, what: str) -> Any:
        manager = self._manager
        if manager is None or manager.protocol is None or self._state not in ("connected", "logged_in"):
            raise AmiNotConnected(f"{what}: not connected to Asterisk (AMI state: {self._state})")
        try:
            return await asyncio.wait_for(manager.send_action(action, as_list=False),
                                          timeout=self._step_timeout)
        except AmiConnectionLost as exc:
            raise AmiNotConnected(f"{what}: {exc}") from None
        except TimeoutError:
            raise AmiNotConnected(f"{what}: no response within {self._step_timeout:g} s") from None

    async def _login(self) -> None:
        s = self._settings
        resp = await self._action({"Action": "Challenge", "AuthType": "MD5"}, what="Challenge")
        challenge = resp.challenge if resp.success else ""
        login: dict[str, str] = {"Action": "Login", "Username": s.username, "Events": s.events}
        if challenge:
            login["AuthType"] = "MD5"
            login["Key"] = hashlib.md5((challenge + s.secret).encode("utf-8")).hexdigest()
        elif s.allow_plain_login:
            log.info("ami: server offers no MD5 challenge (%s); sending the secret in plain text "
                     "([ami] allow_plain_login)", resp.message or resp.response)
            login["Secret"] = s.secret
        else:
            raise AmiAuthError(f"{s.host}:{s.port} offers no MD5 challenge ({resp.message or resp.response}); "
                               f"not sending the secret in plain text (set [ami] allow_plain_login = true "
                               f"to allow it, over tls or loopback only)")
        resp = await self._action(login, what="Login")
        if not resp.success:
            raise AmiAuthError(f"login as {s.username!r} refused by {s.host}:{s.port}: "
                               f"{resp.message or resp.response}")
        if self._manager is not None:
            self.version = self._manager.protocol.framer.version

    async def _resync(self) -> None:
        # Our own ActionID, known before the listing can reach the consumer.
        action_id = f"callpop-resync-{self.stats.logins}-{id(self)}"
        self._pump.expect_listing(action_id, self._clock())  # rows started before it are the listing's to explain
        resp = await self._action({"Action": "CoreShowChannels", "ActionID": action_id}, what="CoreShowChannels")
        if not resp.success:
            self._pump.forget_listing(action_id)
            log.error("ami: CoreShowChannels refused (%s): calls in progress are not resynchronised",
                      resp.message)

    async def _watch(self) -> str:
        """Ping every ping_interval; no Pong within pong_timeout -> abort. Returns the loss reason."""
        assert self._lost is not None and self._manager is not None
        s = self._settings
        while True:
            done, _ = await asyncio.wait({self._lost}, timeout=s.ping_interval)
            if done:
                return self._lost.result()
            ping = self._manager.send_action({"Action": "Ping"}, as_list=False)
            try:
                resp = await asyncio.wait_for(ping, timeout=s.pong_timeout)
            except TimeoutError:
                self.stats.missed_pongs += 1
                log.warning("ami: no Pong within %.1f s: Asterisk is frozen or the link is half-open; "
                            "forcing a reconnect", s.pong_timeout)
                self._abort(f"no Pong within {s.pong_timeout:g} s")
                return await self._lost
            except AmiConnectionLost:
                return await self._lost
            if not resp.success:
                log.warning("ami: Ping answered %r", resp.message or resp.response)

    # --- callbacks from the manager/protocol (inside data_received: no awaits) -------------

    def _on_connected(self) -> None:
        self._pump.new_session()

    def _on_lost(self, exc: Exception | None, reason: str | None) -> None:
        why = reason or (f"{type(exc).__name__}: {exc}" if exc else "closed by Asterisk")
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(why)
        # A PBX that closes or resets the connection was there until now (killed, it ended
        # its calls now); one we gave up on (no Pong) was last there when it last spoke.
        at = self.heard if reason is not None or self.heard is None else max(self.heard, self._clock())
        if self._state == "logged_in":
            self._pump.lost(at)

    def _abort(self, reason: str) -> None:
        """Drop the TCP connection now (a frozen peer would never complete a graceful close)."""
        manager = self._manager
        protocol = getattr(manager, "protocol", None) if manager else None
        if protocol is None or protocol.closed:
            return
        if protocol.lost_reason is None:
            protocol.lost_reason = reason
        protocol.transport.abort()

    def _set_state(self, state: str, detail: str, *, quiet: bool = False) -> None:
        if state == self._state:
            return
        self._state = state
        level = logging.DEBUG if quiet else (logging.WARNING if state == "lost" else logging.INFO)
        log.log(level, "ami: %s%s", state.replace("_", " "), f" ({detail})" if detail else "")
