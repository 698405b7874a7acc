"""``callpop demo``: the whole product on one laptop in one command.

Upgrades the database, seeds the demo company once (managers 101.., a supervisor and an
admin, thousands of clients with a year of history), starts the application against the
built-in simulated PBX (a real AMI server on loopback, unless ``[ami] host`` names an
Asterisk), prints the URL and the demo logins, and has the PBX place a realistic call
every ``[demo] call_interval`` seconds: mostly known clients, some unknown numbers, some
withheld, ring groups and queues, Cyrillic names and one caller name that is HTML (the
desk must show it as text). Answered calls talk 35-90 s, except ``[demo] short_call_share``
of them, so most become KPI contacts and the earnings figure moves. A newcomer logs in and
sees pops at once.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import random
import sys
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web

from callpop.app import create_app
from callpop.server.keys import EXTRA
from callpop.settings import Settings

__all__ = ["demo_callers", "demo_settings", "main", "run_demo"]

log = logging.getLogger(__name__)

# Callers who are not in the directory: the unknown-number card (create / attach).
_UNKNOWN_NAMES = ("Сергей Кузнецов", "ИП Васильев", None, "Ольга", None, "Dmitry Orlov")
_WITHHELD = (("anonymous", "Anonymous"), ("<unknown>", None))
_HTML_NAME = ("+79035550202", "<img src=x onerror=alert(1)>")

Ready = Callable[[str, Any], None]


def demo_callers(known: Sequence[tuple[str, str | None]], seed: int) -> list[tuple[str, str | None]]:
    """The numbers the simulated PBX calls from, weighted like a real sales line: about
    three quarters known clients, the rest unknown numbers, withheld numbers and one
    hostile caller name."""
    rng = random.Random(seed)
    callers: list[tuple[str, str | None]] = []
    pool = list(known)
    rng.shuffle(pool)
    callers.extend(pool[:36] or [("+79161234567", "Иван Петров")])
    for name in _UNKNOWN_NAMES:
        callers.append((f"+7{rng.choice(('916', '903', '925', '495'))}{rng.randrange(10**7):07d}", name))
    callers.extend(_WITHHELD)
    callers.append(_HTML_NAME)
    return callers


async def run_demo(settings: Settings, *, calls: bool = True, ready: Ready | None = None,
                   stop: asyncio.Event | None = None) -> None:
    """Set up and serve the demo until *stop* is set (or forever)."""
    from callpop.demo.seed import demo_client_numbers, seed_demo
    from callpop.store.db import open_database, upgrade

    await upgrade(settings.database.url)
    db = await open_database(settings.database)
    runner: web.AppRunner | None = None
    dialer: asyncio.Task[None] | None = None
    try:
        accounts = await seed_demo(db, settings)
        known = await demo_client_numbers(db)
        app = create_app(settings, db=db, pace_gc=True)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2)
        await runner.setup()
        site = web.TCPSite(runner, settings.web.host, settings.web.port)
        await site.start()
        port = runner.addresses[0][1] if runner.addresses else settings.web.port
        url = f"http://{settings.web.host}:{port}/"
        simulator = app[EXTRA].get("simulator")
        if calls and simulator is not None:
            callers = demo_callers(known, settings.demo.seed)
            dialer = asyncio.create_task(simulator.run_demo_calls(settings.demo.call_interval, callers,
                                                                  short_share=settings.demo.short_call_share),
                                         name="demo-calls")
        _print_banner(url, accounts, settings, simulated=simulator is not None, calls=dialer is not None)
        if ready is not None:
            ready(url, accounts)
        await (stop or asyncio.Event()).wait()
    finally:
        if dialer is not None:
            dialer.cancel()
            await asyncio.gather(dialer, return_exceptions=True)
        if runner is not None:
            await runner.cleanup()  # the desks' sockets close with 1001: they show the connection lost
        await db.close()
        if runner is not None:
            print("callpop demo: stopped (open desks show the connection as lost)", flush=True)


def _print_banner(url: str, accounts: Any, settings: Settings, *, simulated: bool, calls: bool) -> None:
    lines = ["", "=" * 72, f"callpop demo is running: open {url}", ""]
    lines += [f"  {line}" for line in accounts.lines()]
    lines += ["", f"Demo database: {settings.database.url} (its own: `callpop run` refuses demo passwords)"]
    lines.append("")
    if simulated and calls:
        lines.append(f"The simulated PBX places a call every ~{settings.demo.call_interval:g} s to the managers' "
                     f"extensions.")
    elif simulated:
        lines.append("The simulated PBX is up; no calls are placed (--no-calls).")
    else:
        lines.append(f"Connected to Asterisk at {settings.ami.host}:{settings.ami.port}: real calls pop.")
    lines += ["Try: ./run watch --agent 101 --login <login above>   (Ctrl-C stops the demo)", "=" * 72, ""]
    print("\n".join(lines), flush=True)


def demo_settings(settings: Settings) -> Settings:
    """The demo runs on its own database ([demo] database), never the one ``run`` uses:
    its accounts log in with the password "demo"."""
    return settings.replace(database=dataclasses.replace(settings.database, url=settings.demo.database))


async def _run_until_signal(settings: Settings, *, calls: bool) -> None:
    from callpop.app import stop_on_signals

    await run_demo(settings, calls=calls, stop=stop_on_signals())


def main(args: argparse.Namespace, settings: Settings) -> int:
    from callpop.logs import setup_logging

    setup_logging(settings.logging)
    settings = demo_settings(settings)
    if args.port is not None:
        settings = settings.replace(web=dataclasses.replace(settings.web, port=args.port))
    try:
        asyncio.run(_run_until_signal(settings, calls=not args.no_calls))
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"callpop demo: cannot start: {exc}", file=sys.stderr)
        return 2
    return 0
