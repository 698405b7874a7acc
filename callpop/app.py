"""The application factory and ``callpop run``.

Every resource is opened and closed in a cleanup context, in this order: database, push
hub, pipeline, the CDR reconciler (with ``[cdr] url``), fan-out to the other instances,
AMI connection (so at shutdown the AMI connection stops first, the other instances stop
hearing from this one, the pipeline finishes the calls in flight, tabs are told the server
is going away, and the database is closed last). With no ``[ami] host`` configured, the AMI
context starts the built-in simulated PBX on loopback and connects to it: callpop always
talks real AMI over TCP.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import gc
import logging
import secrets
import signal
import sys
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from aiohttp import web

from callpop.fanout import FANOUT, Fanout, fanout_enabled, instance_name
from callpop.gc_pacing import GcPacer
from callpop.logs import pbx_context
from callpop.metrics import METRICS, Metrics, login_metrics_middleware, metrics_ctx
from callpop.pipeline import PIPELINE, Pipeline
from callpop.push import Hub
from callpop.server.auth import auth_middleware
from callpop.server.headers import setup_security_headers
from callpop.server.keys import AMI, DB, EXTRA, HUB, SECRET, SETTINGS, TRACKER, connections
from callpop.server.middleware import error_middleware
from callpop.server.pbx_prefetch import PREFETCH_PACER, PrefetchPacer
from callpop.server.routes import setup_routes
from callpop.server.templating import setup_templates
from callpop.server.ws import recheck_accounts
from callpop.settings import Settings
from callpop.store_hooks import StoreHooks

if TYPE_CHECKING:
    from callpop.telephony.connection import AmiConnection

__all__ = ["create_app", "main", "simulator_agents", "stop_on_signals"]

log = logging.getLogger(__name__)

AMI_STOP_TIMEOUT = 5.0


def simulator_agents(settings: Settings) -> list[str]:
    """Extensions the built-in PBX rings: the configured agents, else the demo managers'."""
    configured = sorted(set(settings.agents.values()))
    return configured or [str(101 + i) for i in range(max(1, settings.demo.managers))]


def create_app(settings: Settings, *, db: Any | None = None, tracker: Any | None = None,
               start_ami: bool = True, store: StoreHooks | None = None,
               pace_gc: bool = False) -> web.Application:
    """The whole web application. ``db``: an open Database the caller keeps (tests); else
    one is opened from settings and closed at shutdown. ``tracker``: the call tracker (a new
    one when AMI is started). ``start_ami=False``: no AMI connection (tests feed the
    pipeline directly). ``store``: replaces the store functions the pipeline calls.
    ``pace_gc``: the daemon's garbage collection (start-up objects frozen, collections
    paced by the calls: callpop/gc_pacing.py); tests leave it off."""
    app = web.Application(middlewares=[error_middleware, login_metrics_middleware, auth_middleware],
                          client_max_size=2 * 1024 * 1024)
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app[SECRET] = settings.web.secret_key.encode() if settings.web.secret_key else secrets.token_bytes(32)
    app[EXTRA] = {}
    if tracker is None and start_ami:
        from callpop.telephony.tracker import CallTracker, TrackerConfig

        tracker = CallTracker(TrackerConfig.from_settings(settings))
        if settings.more_ami:  # one tracker per further PBX (telephony/pbxes.py)
            from callpop.telephony.pbxes import Trackers

            app[EXTRA]["calls"] = Trackers(tracker, {
                name: CallTracker(TrackerConfig.from_settings(settings, name)) for name in settings.more_ami})
    if tracker is not None:
        app[TRACKER] = tracker
    setup_templates(app)
    setup_routes(app)
    setup_security_headers(app)
    app.cleanup_ctx.append(_database_ctx(db))
    app.cleanup_ctx.append(_directory_watch_ctx)
    app.cleanup_ctx.append(_caller_index_ctx)
    app.cleanup_ctx.append(_hub_ctx)
    app.cleanup_ctx.append(_login_gate_ctx)
    app.cleanup_ctx.append(_pipeline_ctx(store))
    app.cleanup_ctx.append(_dialplan_listener_ctx)
    app.cleanup_ctx.append(_cdr_ctx)
    app.cleanup_ctx.append(_fanout_ctx)
    app.cleanup_ctx.append(metrics_ctx)
    app.cleanup_ctx.append(_ami_ctx(start_ami))
    if pace_gc:
        app.cleanup_ctx.append(_gc_ctx)
    return app


async def _gc_ctx(app: web.Application) -> AsyncIterator[None]:
    """Freeze what start-up built (modules, SQLAlchemy mappers, templates: never garbage)
    so a full collection walks only what calls and tabs allocate, then let the pacer
    choose when collections run."""
    gc.collect()
    gc.freeze()
    log.debug("gc: %d start-up objects frozen", gc.get_freeze_count())
    pacer = GcPacer(app[PIPELINE].quiet_for)
    app[EXTRA]["gc"] = pacer
    task = asyncio.create_task(pacer.run(), name="gc-pacer")
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def _database_ctx(given: Any | None) -> Any:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        if given is not None:
            app[DB] = given
            yield
            return
        from callpop.store.db import open_database

        database = await open_database(app[SETTINGS].database, create_if_empty=True)
        app[DB] = database
        yield
        await database.close()

    return ctx


async def _directory_watch_ctx(app: web.Application) -> AsyncIterator[None]:
    """Other processes' writes to clients, numbers and employees forget the answers they
    change (callpop/store/directory_changes.py)."""
    from callpop.store.directory_changes import DirectoryWatch

    watch = DirectoryWatch(app[DB], check_every=app[SETTINGS].database.sqlite_change_check)
    app[EXTRA]["directory_watch"] = watch
    watch.start()
    yield
    await watch.stop()


async def _caller_index_ctx(app: web.Application) -> AsyncIterator[None]:
    """The directory's numbers in memory for the dialplan's first question
    (callpop/store/caller_index.py); after the directory watch, which says when it may answer."""
    settings = app[SETTINGS].dialplan
    if not settings.memory_index:
        yield
        return
    from callpop.store.caller_index import IndexKeeper

    keeper = IndexKeeper(app[DB], app[EXTRA]["directory_watch"], settings.index_refresh)
    app[EXTRA]["caller_index"] = keeper
    keeper.start()
    yield
    await keeper.stop()


async def _dialplan_listener_ctx(app: web.Application) -> AsyncIterator[None]:
    """The dialplan's questions on a port of their own when ``[dialplan] listen`` is set
    (callpop/server/pbx_listener.py); after the hub and the pipeline, which answers use."""
    address = app[SETTINGS].dialplan.listen_address()
    if address is None:
        yield
        return
    from callpop.server.pbx_listener import DialplanListener

    listener = DialplanListener(app)
    await listener.start(*address)
    app[EXTRA]["dialplan_listener"] = listener
    yield
    await listener.stop()


async def _login_gate_ctx(app: web.Application) -> AsyncIterator[None]:
    from callpop.accounts import check_password
    from callpop.server.login_gate import LOGIN_GATE, LoginGate

    gate = LoginGate(app[SETTINGS].web, check_password)
    app[LOGIN_GATE] = gate
    yield
    gate.close()


async def _hub_ctx(app: web.Application) -> AsyncIterator[None]:
    hub = Hub(app[SETTINGS].push, instance=instance_name(app[SETTINGS].push))
    app[HUB] = hub
    recheck = asyncio.create_task(recheck_accounts(hub, app[DB], app[SETTINGS].push.account_recheck),
                                  name="account-recheck")
    yield
    recheck.cancel()
    await asyncio.gather(recheck, return_exceptions=True)
    await hub.close_all()


async def _fanout_ctx(app: web.Application) -> AsyncIterator[None]:
    """After the pipeline's: pushes across instances on PostgreSQL unless ``[push] fanout =
    "off"`` (callpop/fanout.py); the snapshot then adds the calls only the others told of,
    and the pipeline learns which PBXs they follow."""
    settings, db, hub = app[SETTINGS], app[DB], app[HUB]
    if not fanout_enabled(settings.push, db):
        log.info("fanout: off (%s); this instance's tabs see what it produces",
                 "SQLite" if db.dialect == "sqlite" else '[push] fanout = "off"')
        yield
        return
    _args, connect_args = db.engine.dialect.create_connect_args(db.engine.url)
    pipeline = app.get(PIPELINE)

    def links() -> dict[str, bool]:
        return {pbx: ami.state == "logged_in" for pbx, ami in connections(app).items()}

    fanout = Fanout(dict(connect_args), hub, pipeline.card_for if pipeline is not None else None, links=links)
    app[FANOUT] = fanout
    hub.relay = fanout
    if pipeline is not None:
        def snapshot(watched: frozenset[str] | None) -> list[dict[str, Any]]:
            """The pipeline's calls, and those only the other instances told of."""
            own = pipeline.snapshot(watched)
            return own + fanout.relayed.snapshot(watched, {m["call"] for m in own})

        hub.set_snapshot_source(snapshot)
        pipeline.peers_follow = fanout.presence.follows
        fanout.on_peers_changed = pipeline.peers_changed
    fanout.start()
    yield
    hub.relay = None
    if pipeline is not None:
        hub.set_snapshot_source(pipeline.snapshot)
        pipeline.peers_follow = None
    await fanout.stop()


def _pipeline_ctx(store: StoreHooks | None) -> Any:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        pipeline = Pipeline(app[SETTINGS], app[DB], app[HUB], app[EXTRA].get("calls") or app.get(TRACKER),
                            store=store)
        app[PIPELINE] = pipeline
        # the dialplan's card lookups, held back while questions are answered
        pacer = app[PREFETCH_PACER] = PrefetchPacer(pipeline.prefetch)
        pipeline.start()
        yield
        pacer.close()
        await pipeline.close()

    return ctx


def _idle_sweep(settings: Settings, tracker: Any) -> Any:
    """The tracker's sweep of channels nothing was heard of (None when turned off)."""
    from callpop.telephony.ami_pump import IdleSweep

    idle = settings.pbx.idle_channel_timeout
    if idle <= 0 or settings.pbx.idle_sweep_interval <= 0:
        return None
    return IdleSweep(lambda now: tracker.sweep_chunks(now, idle), settings.pbx.idle_sweep_interval, time.time)


async def _cdr_ctx(app: web.Application) -> AsyncIterator[None]:
    """After the pipeline's (its journal writer writes the corrections): with ``[cdr] url``,
    uncertain call rows are put right from the PBX's CDR store (callpop/cdr_reconciler.py)."""
    settings, pipeline = app[SETTINGS], app.get(PIPELINE)
    if not settings.cdr.url or pipeline is None or not pipeline.journal.extras:
        yield
        return
    from callpop.cdr_reconciler import CdrReconciler

    reconciler = CdrReconciler(settings, app[DB], pipeline.journal)
    if not reconciler.start():  # logged: no driver for that database; the pops go on
        yield
        return
    app[EXTRA]["cdr"] = reconciler
    yield
    await reconciler.close()


def _ami_ctx(start: bool) -> Any:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        if not start:
            app[AMI] = None
            yield
            return
        from callpop.telephony.connection import AmiConnection
        from callpop.telephony.pbxes import namespaced_prefetch, namespaced_sink

        settings = app[SETTINGS]
        ami_settings = settings.ami
        simulator = None
        connections: dict[str, AmiConnection] = {}
        if ami_settings.simulated and not settings.more_ami:
            from callpop.simulator.pbx import SimulatedPbx

            secret = ami_settings.secret or secrets.token_urlsafe(12)
            simulator = SimulatedPbx(ami_settings.username, secret, simulator_agents(settings), 1.0,
                                     rng_seed=settings.demo.seed)
            port = await simulator.start("127.0.0.1", settings.demo.ami_port)
            ami_settings = dataclasses.replace(ami_settings, host="127.0.0.1", port=port, secret=secret)
            app[EXTRA]["simulator"] = simulator
            log.info("no [ami] host configured: simulated PBX listening on 127.0.0.1:%d", port)
        pipeline = app[PIPELINE]
        others = getattr(app[EXTRA].get("calls"), "others", {})
        for name, pbx_settings in settings.pbxes():
            first = name == settings.pbx.id
            tracker = app[TRACKER] if first else others[name]
            sink = pipeline.handle if first else namespaced_sink(name, pipeline.handle)
            prefetch = pipeline.prefetch if first else namespaced_prefetch(name, pipeline.prefetch)
            connections[name] = AmiConnection(ami_settings if first else pbx_settings, tracker, sink,
                                              prefetch=prefetch, idle_sweep=_idle_sweep(settings, tracker),
                                              on_resync=functools.partial(pipeline.resynced, "" if first else name),
                                              on_lost=functools.partial(pipeline.pbx_lost, "" if first else name),
                                              name="" if first else name)
        app[AMI] = next(iter(connections.values()))
        app[EXTRA]["ami"] = connections
        several = len(connections) > 1
        tasks = [asyncio.create_task(_follow(n, c, several), name=f"ami-connection-{n}")
                 for n, c in connections.items()]
        yield
        for connection, task in zip(connections.values(), tasks, strict=True):
            try:
                async with asyncio.timeout(AMI_STOP_TIMEOUT):
                    await connection.stop()
                    await task
            except TimeoutError:
                log.warning("ami: the connection did not stop within %g s; cancelling it", AMI_STOP_TIMEOUT)
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if simulator is not None:
            await simulator.stop()

    return ctx


async def _follow(name: str, connection: AmiConnection, several: bool) -> None:
    """Run one PBX's connection; with several PBXs its log lines (and those of what its
    events set off) carry the PBX's id, so "ami: lost" says which one went away."""
    if not several:
        await connection.run()
        return
    with pbx_context(name):
        await connection.run()


# --- callpop run ------------------------------------------------------------------------


async def _serve(settings: Settings, app: web.Application, *, banner: str = "", refuse_demo: bool = False) -> None:
    """Serve *app* until interrupted; logs where it listens. With *refuse_demo* it stops
    before listening when accounts still have the demo password."""
    runner = web.AppRunner(app, access_log=logging.getLogger("aiohttp.access"), shutdown_timeout=5)
    await runner.setup()
    site = web.TCPSite(runner, settings.web.host, settings.web.port)
    try:
        if refuse_demo:
            from callpop.demo.guard import refuse_demo_accounts

            await refuse_demo_accounts(app[DB])
        await site.start()
        url = f"http://{settings.web.host}:{settings.web.port}/"
        ami = app.get(AMI)
        log.info("callpop listening on %s (AMI %s)", url, "off" if ami is None else ami.state)
        if banner:
            print(banner.format(url=url), flush=True)
        await stop_on_signals().wait()
        log.info("stopping: finishing calls in flight, closing tabs")
    finally:
        await runner.cleanup()


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT (systemd, docker stop, Ctrl-C): the daemon then
    shuts down through its cleanup contexts instead of dying mid-write."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not on Windows
            pass
    return stop


def main(args: argparse.Namespace, settings: Settings) -> int:
    """``callpop run``: the daemon (AMI, tracker, pops and the web application)."""
    from callpop.demo.guard import DemoAccountsPresent
    from callpop.journal_spool import SpoolInUse
    from callpop.logs import setup_logging
    from callpop.store.db import SchemaError

    setup_logging(settings.logging)
    try:
        asyncio.run(_serve(settings, create_app(settings, pace_gc=True), refuse_demo=True))
    except (SchemaError, DemoAccountsPresent, SpoolInUse) as exc:
        print(f"callpop run: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"callpop run: cannot start: {exc}", file=sys.stderr)
        return 2
    return 0
