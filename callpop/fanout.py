"""Pushes across callpop instances through PostgreSQL ``LISTEN``/``NOTIFY`` (no broker).

Two or more instances on one PostgreSQL database, each tracking the same PBXs: what the
hub publishes on one is sent as a notification on the ``callpop_push`` channel, and every
other instance delivers it to its own tabs. A call message is produced by every instance
that tracks the call, under the same id (callpop/pipeline.py), so the hub of each keeps the
first copy and drops the second; an instance whose PBX link is down gets its tabs' pops
from the others. A message caused by a user on one instance (``kpi_changed``, a logout)
exists once and reaches every instance this way.

One dedicated asyncpg connection per instance both listens and sends (so a notification
from our own backend is recognised by its pid and skipped). It is watched: a terminated
backend or a ``SELECT 1`` that does not answer within ``KEEPALIVE`` seconds starts a
reconnect with backoff; on resubscribing, the tabs here get a fresh snapshot, since what
was notified meanwhile is lost (PostgreSQL keeps no notification for a session that is
not listening).

Payloads are at most 7999 bytes (PostgreSQL's limit): a call message whose card makes
it bigger is sent as a reference (the number, caller name and direction) and the
receiving instance builds the card itself (``Pipeline.card_for``). Relayed messages are
delivered as they arrive, in the order they were sent; while a card is being built, the
later messages of that call wait behind it (a call's messages keep their order), those of
other calls do not.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal

from aiohttp import web

from callpop.fanout_wire import CHANNEL, MAX_PAYLOAD, decode, encode
from callpop.logs import Throttle
from callpop.presence import ANNOUNCE_EVERY, Presence, announcements
from callpop.push import Hub
from callpop.relayed_calls import RelayedCalls
from callpop.settings import PushSettings

if TYPE_CHECKING:
    from callpop.store.db import Database

__all__ = ["FANOUT", "CardSource", "Fanout", "fanout_enabled", "instance_name"]

log = logging.getLogger(__name__)

OUTBOX = 4096             # notifications waiting to be sent; beyond that they are dropped (counted)
BATCH = 64                # notifications sent in one statement
KEEPALIVE = 10.0          # seconds of silence after which the connection is checked
RECONNECT_MIN, RECONNECT_MAX = 0.5, 15.0
CARD_CACHE = 64           # cards built here for relayed references, by call
CARD_TIMEOUT = 5.0        # seconds building such a card may take

State = Literal["connecting", "listening", "lost", "stopped"]
CardSource = Callable[[str, Any, str | None, str | None], Awaitable[dict[str, Any]]]


def instance_name(settings: PushSettings) -> str:
    """``[push] instance_id``, else hostname-pid-random (unique even for two apps in one process)."""
    return settings.instance_id or f"{socket.gethostname()[:24]}-{os.getpid()}-{secrets.token_hex(2)}"


def fanout_enabled(settings: PushSettings, db: Database) -> bool:
    """Fan-out runs with ``fanout = "auto"`` on PostgreSQL; SQLite has no LISTEN/NOTIFY."""
    return settings.fanout == "auto" and db.dialect == "postgresql"


class _Announcement(str):
    """A presence announcement in the outbox (counted apart from the messages)."""

    __slots__ = ()


class _Lost(Exception):
    """The listening connection went away."""


class Fanout:
    """The relay between this instance's hub and the others' (see the module docstring)."""

    def __init__(self, connect_args: dict[str, Any], hub: Hub, card_source: CardSource | None = None,
                 *, keepalive: float = KEEPALIVE, links: Callable[[], dict[str, bool]] | None = None) -> None:
        self._connect_args = connect_args
        self._hub = hub
        self.instance = hub.instance
        self._card_source = card_source
        self._keepalive = keepalive
        self.state: State = "connecting"
        self.counters: Counter[str] = Counter()
        self.reconnects = 0
        self.backend_pid: int | None = None
        self._outbox: asyncio.Queue[str | int] = asyncio.Queue(OUTBOX)
        self._held: dict[str, list[tuple[dict[str, Any], float]]] = {}  # call -> waiting for its card
        self.presence = Presence()
        self._links = links or dict
        self.on_peers_changed: Callable[[], None] | None = None  # the pipeline re-judges its PBX links
        self.relayed = RelayedCalls()
        self._presence_version = 0
        self._presence_changed = asyncio.Event()
        self._building: set[asyncio.Task[None]] = set()
        self._retry: list[str] = []
        self._sending = 0
        self._generation = 0
        self._cards: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._throttle = Throttle(log)
        self._tasks: list[asyncio.Task[None]] = []
        self.on_relayed: Callable[[float], None] | None = None  # seconds from NOTIFY received to delivery

    # --- the hub's side (Relay) ----------------------------------------------------------

    def publish(self, message: dict[str, Any], agents: tuple[str, ...], employee_ids: tuple[int, ...],
                supervisors: bool) -> None:
        envelope = {"o": self.instance, "k": "p", "m": message, "a": list(agents), "e": list(employee_ids),
                    "s": supervisors}
        payload = encode(envelope)
        if len(payload.encode()) > MAX_PAYLOAD:
            payload = self._as_reference(envelope)
            if not payload:
                return
        self._send(payload)

    def watches(self, extension: str) -> bool:
        return self.presence.watches(extension)

    def presence_changed(self) -> None:
        self._presence_changed.set()

    def disconnect(self, employee_id: int, reason: str, older_than: int | None, session: str | None = None) -> None:
        self._send(encode({"o": self.instance, "k": "d", "e": employee_id, "r": reason, "g": older_than,
                            "t": session}))

    def _as_reference(self, envelope: dict[str, Any]) -> str:
        """The envelope with the card replaced by what the receiver needs to build it."""
        message = envelope["m"]
        card = message.get("card")
        if isinstance(card, dict):
            message = {k: v for k, v in message.items() if k != "card"}
            message["ref"] = {"direction": card.get("direction"), "caller_name": card.get("caller_name"),
                              "number": (card.get("number") or {}).get("raw") or None}
            payload = encode({**envelope, "m": message})
            if len(payload.encode()) <= MAX_PAYLOAD:
                self.counters["sent_as_reference"] += 1
                return payload
        self.counters["dropped_oversized"] += 1
        self._throttle.log(logging.ERROR, "oversized", "fanout: %s %s is over %d bytes even without its card; "
                           "the other instances do not get it", message.get("type"), message.get("id"),
                           MAX_PAYLOAD)
        return ""

    def _send(self, payload: str) -> None:
        try:
            self._outbox.put_nowait(payload)
        except asyncio.QueueFull:
            self.counters["dropped_backlog"] += 1
            self._throttle.log(logging.WARNING, "backlog", "fanout: %d notifications waiting (connection %s); "
                               "dropping new ones: the other instances' tabs miss them until their next "
                               "snapshot", self._outbox.qsize(), self.state)

    # --- life cycle --------------------------------------------------------------------

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run(), name="fanout-connection"),
                       asyncio.create_task(self._announce_forever(), name="fanout-presence")]

    async def stop(self, grace: float = 1.0) -> None:
        """Say goodbye (the others forget this instance's desks at once), then stop."""
        if self.state == "listening":
            self._send(_Announcement(encode({"o": self.instance, "k": "w", "v": self._presence_version + 1,
                                              "n": 0, "of": 1, "x": [], "bye": True})))
            for _ in range(int(grace / 0.01)):
                if not self.waiting:
                    break
                await asyncio.sleep(0.01)
        self.state = "stopped"
        tasks = [*self._tasks, *self._building]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        log.info("fanout: stopped instance=%s sent=%d received=%d", self.instance,
                 self.counters["sent"], self.counters["received"])

    async def _run(self) -> None:
        import asyncpg  # type: ignore[import-untyped]

        delay = RECONNECT_MIN
        lost_at: float | None = None
        while True:
            self.state = "connecting"
            try:
                conn = await asyncpg.connect(**self._connect_args, server_settings={
                    "application_name": f"callpop-fanout {self.instance}"[:63]})
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                self.state = "lost"
                lost_at = lost_at or time.monotonic()
                log.warning("fanout: cannot connect to PostgreSQL to LISTEN (%s: %s); retrying in %.1f s",
                            type(exc).__name__, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX)
                continue
            self._generation += 1
            generation = self._generation
            try:
                conn.add_termination_listener(lambda _c, g=generation: self._wake(g))
                await conn.add_listener(CHANNEL, self._on_notify)
                self.backend_pid = conn.get_server_pid()
                self.state = "listening"
                delay = RECONNECT_MIN
                if lost_at is None:
                    log.info("fanout: listening on %s instance=%s backend_pid=%s", CHANNEL, self.instance,
                             self.backend_pid)
                else:
                    self.reconnects += 1
                    log.warning("fanout: resubscribed to %s after %.1f s instance=%s backend_pid=%s; notifications "
                                "of that time are lost, tabs here get a fresh snapshot", CHANNEL,
                                time.monotonic() - lost_at, self.instance, self.backend_pid)
                    self.relayed = RelayedCalls()  # ends said meanwhile were missed: keep no phantom
                    self._hub.resend_snapshots()
                lost_at = None
                await self._serve(conn, generation)
            except (_Lost, OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                lost_at = time.monotonic()
                self.state = "lost"
                detail = "terminated" if isinstance(exc, _Lost) else f"{type(exc).__name__}: {exc}"
                log.warning("fanout: LISTEN connection lost (%s) instance=%s; reconnecting in %.1f s, %d "
                            "notifications waiting", detail, self.instance, delay, self._outbox.qsize())
            finally:
                conn.terminate()
            await asyncio.sleep(delay)

    async def _announce_forever(self) -> None:
        """Announce the extensions with a tab open here every ANNOUNCE_EVERY seconds, and
        a moment after one opens or closes (changes of the same moment go together)."""
        while True:
            self._presence_changed.clear()
            self._presence_version += 1
            for envelope in announcements(self.instance, self._presence_version, self._hub.watched_extensions(),
                                          self._links()):
                self._send(_Announcement(encode(envelope)))
            reaped = self.presence.reap()
            for name in reaped:
                log.warning("fanout: instance %s not heard from for %.0f s: its desks and calls are forgotten "
                            "(%d calls)", name, 3 * ANNOUNCE_EVERY, self.relayed.forget(name))
            if reaped:
                self._peers_changed()
            try:
                async with asyncio.timeout(ANNOUNCE_EVERY):
                    await self._presence_changed.wait()
            except TimeoutError:
                continue
            await asyncio.sleep(0.05)

    def _wake(self, generation: int) -> None:
        """The connection of *generation* was terminated: wake the sender to notice."""
        try:
            self._outbox.put_nowait(generation)
        except asyncio.QueueFull:
            pass  # the sender is busy sending and will fail on the dead connection itself

    async def _serve(self, conn: Any, generation: int) -> None:
        """Send what is published here; check the connection when nothing is."""
        while True:
            batch = self._retry
            self._retry = []
            if not batch:
                try:
                    async with asyncio.timeout(self._keepalive):
                        item = await self._outbox.get()
                except TimeoutError:
                    async with asyncio.timeout(self._keepalive):
                        await conn.fetchval("SELECT 1")
                    continue
                if isinstance(item, int):
                    if item == generation:
                        raise _Lost()
                    continue  # the wake-up of a connection already replaced
                batch = [item]
            while len(batch) < BATCH and not self._outbox.empty():
                item = self._outbox.get_nowait()
                if isinstance(item, str):
                    batch.append(item)
                elif item == generation:
                    self._retry = batch
                    raise _Lost()
            self._sending = len(batch)
            try:
                await conn.execute("SELECT pg_notify($1, p) FROM unnest($2::text[]) WITH ORDINALITY AS t(p, n) "
                                   "ORDER BY n", CHANNEL, batch)
            except BaseException:
                self._retry = batch  # sent again on the next connection (duplicates are dropped there)
                raise
            finally:
                self._sending = 0
            announced = sum(isinstance(p, _Announcement) for p in batch)
            self.counters["sent"] += len(batch) - announced
            self.counters["presence_sent"] += announced

    # --- the other instances' side -------------------------------------------------------

    def _on_notify(self, conn: Any, pid: int, _channel: str, payload: str) -> None:
        if pid == conn.get_server_pid():
            return  # our own, echoed back
        try:
            self.deliver(payload)
        except Exception:
            self._throttle.log(logging.ERROR, "deliver", "fanout: delivering a relayed message failed",
                               exc_info=True)

    def deliver(self, payload: str) -> None:
        """Deliver one notification from another instance to the tabs here, at once unless
        it waits for its card, or behind a message of the same call that does."""
        received = time.perf_counter()
        envelope = decode(payload)
        if envelope is None:
            self.counters["dropped_malformed"] += 1
            self._throttle.log(logging.WARNING, "malformed", "fanout: a notification on %s is not a callpop "
                               "message (%d bytes); ignored", CHANNEL, len(payload))
            return
        if envelope["k"] == "w":
            self.counters["presence_received"] += 1
            if envelope.get("bye"):
                self.presence.gone(envelope["o"])
                log.info("fanout: instance %s stopped: its desks and calls are forgotten (%d calls)", envelope["o"],
                         self.relayed.forget(envelope["o"]))
            else:
                self.presence.heard(envelope["o"], envelope["v"], envelope["n"], envelope["of"], envelope["x"],
                                    envelope.get("p"))
            self._peers_changed()
            return
        self.counters["received"] += 1
        if envelope["k"] == "d":
            closed = self._hub.disconnect_user(envelope["e"], envelope["r"], older_than=envelope["g"],
                                               session=envelope.get("t"), origin="relay")
            log.info("fanout: %s logged out on instance %s: closed %d tab(s) here", envelope["e"],
                     envelope["o"], closed)
            return
        call = envelope["m"].get("call")
        held = self._held.get(call) if isinstance(call, str) else None
        if held is not None:
            held.append((envelope, received))
        elif isinstance(call, str) and "ref" in envelope["m"]:
            self._held[call] = [(envelope, received)]
            task = asyncio.create_task(self._deliver_held(call), name=f"fanout-card-{call}")
            self._building.add(task)
            task.add_done_callback(self._building.discard)
        else:
            self._publish(envelope, received)

    async def _deliver_held(self, call: str) -> None:
        """Build the card of *call*'s first held message, then deliver what is held for
        that call in order; other calls are never held up by it."""
        held = self._held[call]
        try:
            while held:
                envelope, received = held[0]
                ref = envelope["m"].pop("ref", None)
                if ref is not None:
                    envelope["m"]["card"] = await self._card(envelope["m"], ref)
                held.pop(0)
                self._publish(envelope, received)
        finally:
            del self._held[call]

    def _peers_changed(self) -> None:
        if self.on_peers_changed is not None:
            self.on_peers_changed()

    def _publish(self, envelope: dict[str, Any], received: float) -> None:
        self.relayed.apply(envelope["o"], envelope["m"])
        self._hub.publish(envelope["m"], agents=envelope["a"], employee_ids=envelope["e"],
                          supervisors=envelope["s"], origin="relay")
        if self.on_relayed is not None:
            self.on_relayed(time.perf_counter() - received)

    async def _card(self, message: dict[str, Any], ref: dict[str, Any]) -> dict[str, Any] | None:
        call = str(message.get("call"))
        card = self._cards.get(call)
        if card is None and self._card_source is not None:
            try:
                async with asyncio.timeout(CARD_TIMEOUT):
                    card = await self._card_source(call, ref.get("direction"), ref.get("number"),
                                                   ref.get("caller_name"))
            except Exception:
                self._throttle.log(logging.ERROR, "card", "fanout: building the card of relayed call %s failed",
                                   call, exc_info=True)
                return None
            self._cards[call] = card
            if len(self._cards) > CARD_CACHE:
                self._cards.popitem(last=False)
        return card

    @property
    def waiting(self) -> int:
        """Notifications published here and not yet sent (queued, being sent, to retry)."""
        return self._outbox.qsize() + self._sending + len(self._retry)

    def stats(self) -> dict[str, Any]:
        return {"state": self.state, "instance": self.instance, "reconnects": self.reconnects,
                "waiting": self.waiting, "peers": self.presence.peers(), **self.counters}


FANOUT: web.AppKey[Fanout] = web.AppKey("fanout", Fanout)
