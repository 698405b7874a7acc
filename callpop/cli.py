"""The ``callpop`` command: one sub-command per job, each implemented in its own module.

The parser lives here so ``callpop --help`` shows every job; the work is imported lazily
from the module named in ``_HANDLERS`` so a quick command (replay) never pays for the web
stack's imports.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from callpop.settings import Settings
from callpop.settings_file import SettingsError, load_settings

Handler = Callable[[argparse.Namespace, Settings], int]

_HANDLERS: dict[str, str] = {
    "demo": "callpop.demo.launch:main",
    "run": "callpop.app:main",
    "replay": "callpop.telephony.replay:main",
    "simulate": "callpop.simulator.pbx:main",
    "import": "callpop.store.imports.importer:main",
    "db": "callpop.store.db:main",
    "user": "callpop.store.employees:main",
    "regular": "callpop.store.records.regular:main",
    "watch": "callpop.watch:main",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callpop", description="Screen pops for sales teams on Asterisk.")
    parser.add_argument("--settings", metavar="FILE", help="settings file (default: ./settings.toml)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("--settings", metavar="FILE", default=argparse.SUPPRESS,
                       help="settings file (default: ./settings.toml)")
        return p

    demo = add("demo", "set up the database with a demo company and run callpop against the simulated PBX")
    demo.add_argument("--port", type=int, help="web port (default: [web] port)")
    demo.add_argument("--no-calls", action="store_true", help="do not start simulated calls")

    add("run", "run the daemon: AMI connection, tracker, pops and the web application")

    replay = add("replay", "replay a recorded AMI stream through the tracker, print call events as JSON lines")
    replay.add_argument("file", help="raw AMI capture (.ami), JSON lines (.jsonl) or a JSON list of events")

    sim = add("simulate", "run the simulated PBX alone (an AMI server playing call scenarios)")
    sim.add_argument("--port", type=int, default=5038)
    sim.add_argument("--interval", type=float, help="seconds between calls (default: [demo] call_interval)")

    imp = add("import", "import clients, agreements, promises, payments or receivables from CSV")
    imp.add_argument("kind", choices=["clients", "agreements", "promises", "payments", "receivables"])
    imp.add_argument("file")

    db = add("db", "database schema")
    db.add_argument("action", choices=["upgrade", "current"])

    user = add("user", "add or change an employee (login, role, extensions, password)")
    user.add_argument("login")
    user.add_argument("--name")
    user.add_argument("--role", choices=["manager", "supervisor", "admin"])
    user.add_argument("--extension", action="append", default=[], help="agent extension (repeatable)")
    user.add_argument("--password", help="password (default: asked on the terminal)")
    state = user.add_mutually_exclusive_group()
    state.add_argument("--deactivate", dest="active", action="store_false", default=None,
                       help="the employee may no longer log in; every session ends at once")
    state.add_argument("--activate", dest="active", action="store_true", help="let the employee log in again")
    user.add_argument("--end-sessions", action="store_true",
                      help="log the employee out everywhere (a lost laptop, a copied cookie)")

    add("regular", "re-apply the regular-client rule to every client (nightly: clients leave the window with time)")

    watch = add("watch", "log in to callpop and print the pops of one agent in the terminal")
    watch.add_argument("--agent", required=True, help="agent extension, e.g. 101")
    watch.add_argument("--url", default=None, help="callpop base URL (default: from [web])")
    watch.add_argument("--login", default=None, help="login (default: the agent's employee)")
    watch.add_argument("--password", default=None, help="password (env CALLPOP_PASSWORD)")
    return parser


def _resolve(spec: str) -> Handler:
    module, _, attr = spec.partition(":")
    handler: Handler = getattr(importlib.import_module(module), attr)
    return handler


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.settings)
    except SettingsError as exc:
        print(f"callpop: bad settings: {exc}", file=sys.stderr)
        return 2
    try:
        return _resolve(_HANDLERS[args.command])(args, settings)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
