"""What an operator's Prometheus scrapes from ``/metrics``, and whether callpop is ready.

Most figures are read from the live objects at scrape time (AMI connection state and
counters, tabs connected, calls in flight, journal backlog), so nothing on the hot path
pays for them. Three are recorded as they happen: the ring→pop histogram (the time from
the AMI event's reception to the pop being queued to the tabs), database errors (an
SQLAlchemy ``handle_error`` listener on the engines: every failed statement or
connection, whoever ran it) and failed logins (a middleware watching ``POST /login``).

Each application has its own registry, so two apps in one process (tests, the demo)
never share counters. Counters are cumulative; events per second is
``rate(callpop_ami_events_total[1m])`` in PromQL.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError

from callpop.server.keys import DB, EXTRA, HUB, connections

__all__ = ["METRICS", "Metrics", "login_metrics_middleware", "metrics_ctx", "readiness"]

log = logging.getLogger(__name__)

AMI_STATES = ("idle", "connecting", "connected", "logged_in", "lost", "stopped")
DB_CHECK_TIMEOUT = 2.0  # a database that takes longer to say "1" is not ready
RING_TO_POP_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """The registry of one application and the figures recorded as they happen."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.ring_to_pop = Histogram(
            "callpop_ring_to_pop_seconds", "From the AMI event that rang a phone to its pop queued to the tabs",
            buckets=RING_TO_POP_BUCKETS, registry=self.registry)
        self.database_errors = Counter("callpop_database_errors", "Failed database statements and connections",
                                       registry=self.registry)
        self.login_failures = Counter("callpop_login_failures", "Refused logins (wrong password, throttled)",
                                      ["reason"], registry=self.registry)

    def observe_pop(self, rang_at: float | None) -> None:
        """The pipeline queued a pop for a ringing received at *rang_at* (epoch seconds)."""
        if rang_at is not None:
            self.ring_to_pop.observe(max(0.0, time.time() - rang_at))

    def database_error(self, _context: Any) -> None:
        self.database_errors.inc()


METRICS: web.AppKey[Metrics] = web.AppKey("metrics", Metrics)


class _Live(Collector):
    """Figures read from the running application at scrape time."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    def collect(self) -> Iterator[Metric]:
        from callpop.pipeline import PIPELINE

        app = self._app
        up = GaugeMetricFamily("callpop_ami_up", "1 when logged in to the PBX's AMI", labels=["pbx"])
        state = GaugeMetricFamily("callpop_ami_state", "The AMI connection's state (1 = current)",
                                  labels=["pbx", "state"])
        reconnects = CounterMetricFamily("callpop_ami_reconnects", "AMI sessions lost and started again",
                                         labels=["pbx"])
        events = CounterMetricFamily("callpop_ami_events", "AMI messages read", labels=["pbx"])
        backlog = GaugeMetricFamily("callpop_ami_backlog", "AMI messages waiting for the tracker", labels=["pbx"])
        for pbx, ami in connections(app).items():
            up.add_metric([pbx], 1.0 if ami.state == "logged_in" else 0.0)
            for name in AMI_STATES:
                state.add_metric([pbx, name], 1.0 if ami.state == name else 0.0)
            reconnects.add_metric([pbx], ami.stats.reconnects)
            events.add_metric([pbx], ami.stats.messages)
            backlog.add_metric([pbx], ami.stats.backlog)
        yield from (up, state, reconnects, events, backlog)
        pipeline = app.get(PIPELINE)
        if pipeline is not None:
            yield CounterMetricFamily("callpop_pops", "Pops queued to tabs (a phone rang for an outside call)",
                                      value=pipeline.pops)
            yield GaugeMetricFamily("callpop_calls_in_flight", "Calls the pipeline follows now",
                                    value=pipeline.active)
            yield GaugeMetricFamily("callpop_journal_backlog", "Journal writes waiting for the database",
                                    value=pipeline.journal.backlog)
            yield CounterMetricFamily("callpop_journal_failed", "Journal writes that failed",
                                      value=pipeline.journal.failed)
        hub = app.get(HUB)
        if hub is not None:
            yield GaugeMetricFamily("callpop_websocket_clients", "Desk tabs connected", value=hub.connections)
        yield from _fanout(app)
        yield from _cdr(app)
        yield from _directory_watch(app)
        yield from _caller_index(app)


def _cdr(app: web.Application) -> Iterator[Metric]:
    """The CDR reconciler (callpop/cdr_reconciler.py); nothing when ``[cdr] url`` is unset."""
    cdr = app[EXTRA].get("cdr")
    if cdr is None:
        return
    yield CounterMetricFamily("callpop_cdr_reconciled", "Uncertain call rows put right from the PBX's CDR",
                              value=cdr.reconciled)
    yield CounterMetricFamily("callpop_cdr_unusable", "Uncertain call rows whose CDR rows could not be used",
                              value=cdr.unusable)
    yield CounterMetricFamily("callpop_cdr_unmatched", "Uncertain call rows given up without CDR rows",
                              value=cdr.unmatched)
    yield CounterMetricFamily("callpop_cdr_unreachable", "Reconciliation passes that could not read the CDR "
                              "database", value=cdr.unreachable)
    yield GaugeMetricFamily("callpop_cdr_waiting", "Uncertain call rows waiting for their CDR rows",
                            value=cdr.waiting)


def _directory_watch(app: web.Application) -> Iterator[Metric]:
    """Other processes' directory writes heard of (callpop/store/directory_changes.py)."""
    watch = app[EXTRA].get("directory_watch")
    if watch is None or watch.state == "off":
        return
    yield GaugeMetricFamily("callpop_directory_watch_up", "1 when other processes' directory writes are heard "
                            "of (PostgreSQL: LISTEN connection up; SQLite: counter readable)",
                            value=1.0 if watch.state in ("listening", "polling") else 0.0)
    yield CounterMetricFamily("callpop_directory_changes", "Directory writes of other processes heard of "
                              "(notifications, or moves of SQLite's counter)", value=watch.heard)
    yield CounterMetricFamily("callpop_directory_watch_reconnects", "LISTEN connections for directory writes "
                              "lost and made again", value=watch.reconnects)


def _caller_index(app: web.Application) -> Iterator[Metric]:
    """The directory in memory for the dialplan (callpop/store/caller_index.py)."""
    keeper = app[EXTRA].get("caller_index")
    if keeper is None:
        return
    index = keeper.index
    yield GaugeMetricFamily("callpop_dialplan_memory_current", "1 when the dialplan's questions are answered "
                            "from the directory in memory (0: read from the database until a new copy is read)",
                            value=0.0 if keeper.stale() or not keeper.current() else 1.0)
    yield GaugeMetricFamily("callpop_dialplan_memory_clients", "Clients in the directory's copy in memory",
                            value=0 if index is None else index.clients)
    yield GaugeMetricFamily("callpop_dialplan_memory_bytes", "Approximate size of that copy",
                            value=0 if index is None else index.nbytes())
    yield CounterMetricFamily("callpop_dialplan_memory_answers", "Dialplan questions answered from memory",
                              value=keeper.answered)
    yield CounterMetricFamily("callpop_dialplan_memory_reads", "Copies of the directory read (each reads "
                              "every client)", value=keeper.builds)


FANOUT_STATES = ("connecting", "listening", "lost", "stopped")
FANOUT_DROPS = ("oversized", "backlog", "malformed")


def _fanout(app: web.Application) -> Iterator[Metric]:
    """Fan-out to the other instances (callpop/fanout.py); nothing when it is off."""
    from callpop.fanout import FANOUT

    fanout = app.get(FANOUT)
    hub = app.get(HUB)
    if fanout is None or hub is None:
        return
    yield GaugeMetricFamily("callpop_fanout_up", "1 when the LISTEN connection to PostgreSQL is up",
                            value=1.0 if fanout.state == "listening" else 0.0)
    state = GaugeMetricFamily("callpop_fanout_state", "The LISTEN connection's state (1 = current)",
                              labels=["state"])
    for name in FANOUT_STATES:
        state.add_metric([name], 1.0 if fanout.state == name else 0.0)
    yield state
    yield GaugeMetricFamily("callpop_fanout_peers", "Other instances heard from (presence announcements)",
                            value=len(fanout.presence.peers()))
    yield GaugeMetricFamily("callpop_fanout_waiting", "Messages for the other instances not sent yet",
                            value=fanout.waiting)
    yield CounterMetricFamily("callpop_fanout_reconnects", "LISTEN connections lost and subscribed again",
                              value=fanout.reconnects)
    yield CounterMetricFamily("callpop_fanout_sent", "Messages notified to the other instances",
                              value=fanout.counters["sent"])
    yield CounterMetricFamily("callpop_fanout_received", "Messages notified by the other instances",
                              value=fanout.counters["received"])
    dupes = CounterMetricFamily("callpop_fanout_duplicates", "Second copies of a message dropped (copy: "
                                "whether the one dropped was made here or relayed)", labels=["copy"])
    for copy in ("local", "relay"):
        dupes.add_metric([copy], hub.counters[f"duplicates_{copy}"])
    yield dupes
    dropped = CounterMetricFamily("callpop_fanout_dropped", "Messages the other instances did not get, or "
                                  "this one did not deliver, by reason", labels=["reason"])
    for reason in FANOUT_DROPS:
        dropped.add_metric([reason], fanout.counters[f"dropped_{reason}"])
    yield dropped


async def metrics_ctx(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context, after the pipeline's: wire the live collector, the pop observer
    and the database error listeners; unwire them at shutdown."""
    from callpop.pipeline import PIPELINE
    from callpop.store.db import reader_engine

    metrics = app[METRICS]
    live = _Live(app)
    metrics.registry.register(live)
    pipeline = app.get(PIPELINE)
    if pipeline is not None:
        pipeline.on_pop = metrics.observe_pop
    engines = [app[DB].engine.sync_engine]
    reader = reader_engine(app[DB].engine)
    if reader is not None:
        engines.append(reader)
    for engine in engines:
        event.listen(engine, "handle_error", metrics.database_error)
    yield
    for engine in engines:
        event.remove(engine, "handle_error", metrics.database_error)
    metrics.registry.unregister(live)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def login_metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count refused logins by what the login page answered (401 wrong, 429 throttled)."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if request.method == "POST" and request.path == "/login" and exc.status in (401, 429):
            request.app[METRICS].login_failures.labels("throttled" if exc.status == 429 else "wrong").inc()
        raise
    if request.method == "POST" and request.path == "/login" and response.status in (401, 429):
        request.app[METRICS].login_failures.labels("throttled" if response.status == 429 else "wrong").inc()
    return response


async def readiness(app: web.Application) -> list[str]:
    """Why callpop cannot do its job now ([] = ready): the PBX's AMI is not logged in,
    or the database does not answer."""
    from sqlalchemy import text

    reasons = [f"ami {pbx}: {ami.state}" for pbx, ami in connections(app).items() if ami.state != "logged_in"]
    try:
        async with asyncio.timeout(DB_CHECK_TIMEOUT), app[DB].sessions() as session:
            await session.execute(text("SELECT 1"))
    except Exception as exc:
        if not isinstance(exc, DBAPIError):  # a refused connection never reaches handle_error
            app[METRICS].database_errors.inc()
        reasons.append(f"database: {type(exc).__name__}")
    return reasons
