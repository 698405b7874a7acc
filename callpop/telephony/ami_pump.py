"""The one consumer between the AMI reader and the tracker.

The reader (inside ``data_received``) only calls :meth:`EventPump.enqueue` with a batch of
timestamped messages; one task feeds them to the tracker in stream order and awaits the
sink with the call events. An exception on one message is logged with that message
(secrets redacted) and the next message is handled: one odd event never stops the
stream. The queue is unbounded on purpose: it is a backlog gauge (``queue_warn``), never a
place to lose calls.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from callpop.logs import Throttle
from callpop.telephony.events import Arrival, CallEvent
from callpop.telephony.protocol import AmiMessage, Batch

__all__ = ["AmiStats", "EventPump", "IdleSweep", "Sink", "Tracker"]

log = logging.getLogger(__name__)

Sink = Callable[[Sequence[CallEvent]], Awaitable[None]]
Prefetch = Callable[[Sequence[Arrival]], None]
_REDACT = frozenset({"secret", "key", "password"})
_SNAPSHOT_ITEM = "CoreShowChannel"
_SNAPSHOT_END = "CoreShowChannelsComplete"


class Tracker(Protocol):
    """What the connection needs from :class:`callpop.telephony.tracker.CallTracker`."""

    def feed(self, message: AmiMessage, now: float | None = None) -> list[CallEvent]: ...

    @property
    def arrivals(self) -> Sequence[Arrival]:
        """The last ``feed``'s hints (read only when the pump has a prefetch)."""
        ...


@dataclass(frozen=True, slots=True)
class IdleSweep:
    """Every *every* seconds the consumer calls ``run(clock())`` (the tracker's
    ``sweep_chunks`` with its idle bound) in stream order, between two batches, and
    delivers each part like any call events, letting the reader run between parts."""

    run: Callable[[float], Iterable[list[CallEvent]]]
    every: float
    clock: Callable[[], float]


@dataclass(slots=True)
class AmiStats:
    """Counters for logs, /health and the bench."""

    bytes_received: int = 0
    messages: int = 0
    events_emitted: int = 0
    handler_errors: int = 0
    sink_errors: int = 0
    connects: int = 0
    logins: int = 0
    reconnects: int = 0
    resyncs: int = 0
    missed_pongs: int = 0
    sweeps: int = 0
    backlog: int = 0
    queue_high_water: int = 0


class _NewSession:
    """Queue marker: a new TCP session starts; forget half-counted listings."""


@dataclass(frozen=True, slots=True)
class _Lost:
    """Queue marker: the connection dropped; the PBX was last heard at ``at``. Behind the
    session's events, so the tracker learns it after everything that was read."""

    at: float | None


_NEW_SESSION = _NewSession()
_STOP = object()
_SWEEP = object()


def printable(message: Mapping[str, Any], limit: int = 1500) -> str:
    """A message for a log line: secrets redacted, bounded length."""
    shown = {k: ("***" if k.lower() in _REDACT else v) for k, v in message.items()}
    text = repr(shown)
    return text if len(text) <= limit else text[:limit] + "...}"


class EventPump:
    """Queue + the one consumer task; see the module docstring."""

    def __init__(self, tracker: Tracker, sink: Sink, stats: AmiStats, queue_warn: int,
                 prefetch: Prefetch | None = None, sweep: IdleSweep | None = None,
                 on_resync: Callable[[float | None], None] | None = None,
                 on_lost: Callable[[], None] | None = None) -> None:
        self._tracker = tracker
        self._sweep = sweep
        self._sweep_timer: asyncio.Task[None] | None = None
        self._on_resync = on_resync
        self._on_lost = on_lost
        self._sink = sink
        self._prefetch = prefetch
        self.stats = stats
        self._queue_warn = queue_warn
        self._queue: asyncio.Queue[Batch | _NewSession | _Lost | object] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._listing_items: dict[str, int] = {}
        self._our_listings: dict[str, float | None] = {}  # action id -> asked at
        self._warned = False
        self._throttle = Throttle(log)

    def start(self) -> None:
        self._task = asyncio.create_task(self._consume(), name="ami-consumer")
        if self._sweep is not None and self._sweep.every > 0:
            self._sweep_timer = asyncio.create_task(self._tick(self._sweep.every), name="ami-idle-sweep")

    async def _tick(self, every: float) -> None:
        """Queue a sweep every *every* seconds: it runs in the consumer, in stream order."""
        while True:
            await asyncio.sleep(every)
            self._queue.put_nowait(_SWEEP)

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task

    # --- called from the reader (no awaits) ------------------------------------------------

    def new_session(self) -> None:
        self._queue.put_nowait(_NEW_SESSION)

    def lost(self, at: float | None) -> None:
        """The connection dropped; *at*: when the PBX was last heard."""
        self._queue.put_nowait(_Lost(at))

    def expect_listing(self, action_id: str, asked_at: float | None = None) -> None:
        """A CoreShowChannels of ours, asked for at *asked_at* (epoch s): log when the
        tracker has applied it and tell ``on_resync`` when it was asked for."""
        self._our_listings[action_id] = asked_at

    def forget_listing(self, action_id: str) -> None:
        self._our_listings.pop(action_id, None)

    def enqueue(self, batch: Batch) -> None:
        self._queue.put_nowait(batch)
        st = self.stats
        st.backlog += len(batch)
        if st.backlog > st.queue_high_water:
            st.queue_high_water = st.backlog
        if st.backlog > self._queue_warn and not self._warned:
            self._warned = True
            log.warning("ami: %d messages waiting for the tracker (queue_warn=%d): the tracker or the "
                        "sink is too slow; nothing is dropped", st.backlog, self._queue_warn)

    # --- the consumer ----------------------------------------------------------------------

    async def _consume(self) -> None:
        """tracker.feed in stream order, then the sink, per message.

        The tracker is called inline (no coroutine per message: most AMI events give no
        call event); the sink is awaited only when there are call events. Between reads
        the loop gets a turn, so a burst never starves the reader.
        """
        queue = self._queue
        stats = self.stats
        tracker = self._tracker
        feed = tracker.feed
        prefetch = self._prefetch
        while True:
            item = await queue.get()
            if item is _STOP:
                return
            if isinstance(item, _NewSession):
                self._listing_items.clear()
                continue
            if isinstance(item, _Lost):
                self._lost(item.at)
                continue
            if item is _SWEEP:
                await self._run_sweep()
                continue
            assert isinstance(item, list)
            stats.backlog -= len(item)
            stats.messages += len(item)
            for msg, now in item:
                try:
                    events = feed(msg, now)
                except Exception:
                    stats.handler_errors += 1
                    self._throttle.log(logging.ERROR, "tracker", "ami: tracker failed on this message, skipped: %s",
                                       printable(msg), exc_info=True)
                    continue
                if prefetch is not None and tracker.arrivals:
                    try:
                        prefetch(tracker.arrivals)
                    except Exception:
                        self._throttle.log(logging.ERROR, "prefetch", "ami: prefetch failed on %s; the lookup "
                                           "waits for the ringing", tracker.arrivals, exc_info=True)
                if events:
                    await self._deliver(events)
                name = msg.get("Event")
                if name == _SNAPSHOT_ITEM or name == _SNAPSHOT_END:
                    self._listing_part(msg, len(events))
            if self._warned and stats.backlog < self._queue_warn // 2:
                self._warned = False
                log.info("ami: tracker caught up (%d messages waiting)", stats.backlog)
            await asyncio.sleep(0)  # let the reader run between batches

    def _lost(self, at: float | None) -> None:
        """Tell the tracker (calls the next listing no longer shows end at *at*) and the
        pipeline (the desks learn that what they show may be stale)."""
        lost = getattr(self._tracker, "link_lost", None)
        if lost is not None:
            try:
                lost(at)
            except Exception:
                log.exception("ami: tracker failed on the connection loss")
        if self._on_lost is not None:
            try:
                self._on_lost()
            except Exception:
                log.exception("ami: connection-loss hook failed")

    async def _run_sweep(self) -> None:
        sweep = self._sweep
        if sweep is None:
            return
        self.stats.sweeps += 1
        try:
            for events in sweep.run(sweep.clock()):
                if events:
                    await self._deliver(events)
                await asyncio.sleep(0)  # the reader runs between parts of a large sweep
        except Exception:
            self.stats.handler_errors += 1
            log.exception("ami: idle channel sweep failed; the next one runs in %.0f s", sweep.every)

    async def _deliver(self, events: list[CallEvent]) -> None:
        self.stats.events_emitted += len(events)
        try:
            await self._sink(events)
        except Exception:
            self.stats.sink_errors += 1
            self._throttle.log(logging.ERROR, "sink", "ami: call event sink failed on %s",
                               [e.as_dict() for e in events], exc_info=True)

    def _listing_part(self, msg: AmiMessage, emitted: int) -> None:
        """Count and log our own resynchronisations (the tracker applies every listing)."""
        action_id = str(msg.get("ActionID", ""))
        if action_id not in self._our_listings:
            return
        if msg["Event"] == _SNAPSHOT_ITEM:
            self._listing_items[action_id] = self._listing_items.get(action_id, 0) + 1
            return
        asked_at = self._our_listings.pop(action_id)
        self.stats.resyncs += 1
        log.info("ami: resynchronised from CoreShowChannels: %d channels up, %d call events",
                 self._listing_items.pop(action_id, 0), emitted)
        if self._on_resync is not None:
            try:
                self._on_resync(asked_at)
            except Exception:
                log.exception("ami: resync hook failed")

    async def stop(self) -> None:
        """Handle what is queued (2 s at most), then end the consumer."""
        timer, self._sweep_timer = self._sweep_timer, None
        if timer is not None:
            timer.cancel()
        task = self._task
        if task is None or task.done():
            return
        self._queue.put_nowait(_STOP)
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=2.0)
        except (TimeoutError, asyncio.CancelledError):
            task.cancel()
            if self.stats.backlog:
                log.warning("ami: stopped with %d messages not handled", self.stats.backlog)
