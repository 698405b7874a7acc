"""The deployment files name only what the code knows: commands, environment variables."""

from __future__ import annotations

import re

from callpop.cli import build_parser
from callpop.settings_file import settings_from_mapping
from tests.support.paths import ROOT

FILES = [ROOT / "deploy" / "callpop.service", ROOT / "docs" / "operations.md", ROOT / "README.md"]


def test_every_environment_variable_named_is_read_by_callpop() -> None:
    named = {v for f in FILES for v in re.findall(r"\bCALLPOP_[A-Z_]+\b", f.read_text(encoding="utf-8"))}
    assert {"CALLPOP_SETTINGS", "CALLPOP_AMI_SECRET", "CALLPOP_DATABASE_URL", "CALLPOP_SECRET_KEY"} <= named
    secrets = {"CALLPOP_AMI_SECRET": "s", "CALLPOP_DATABASE_URL": "sqlite+aiosqlite:///x.db",
               "CALLPOP_SECRET_KEY": "k" * 32, "CALLPOP_DIALPLAN_TOKEN": "t", "CALLPOP_AMI_HOST": "pbx",
               "CALLPOP_CDR_URL": "postgresql+asyncpg://cdr@pbx-db/asterisk", "CALLPOP_CDR_PASSWORD": "c"}
    settings = settings_from_mapping({}, environ=secrets)
    read = {"CALLPOP_SETTINGS", "CALLPOP_TEST_PG_URL", "CALLPOP_PASSWORD", "CALLPOP_BROWSER",
            "CALLPOP_BENCH_PG_URL"} | set(secrets)
    assert named <= read, named - read
    assert (settings.ami.secret, settings.web.secret_key, settings.dialplan.token) == ("s", "k" * 32, "t")
    assert (settings.cdr.url, settings.cdr.password) == ("postgresql+asyncpg://cdr@pbx-db/asterisk", "c")


def test_the_unit_runs_a_real_command_as_an_unprivileged_user() -> None:
    unit = (ROOT / "deploy" / "callpop.service").read_text(encoding="utf-8")
    exec_start = re.search(r"^ExecStart=(\S+) (.+)$", unit, flags=re.M)
    assert exec_start is not None and exec_start.group(1).endswith("/bin/callpop")
    build_parser().parse_args(exec_start.group(2).split())  # a command callpop has
    assert re.search(r"^User=callpop$", unit, flags=re.M) and "NoNewPrivileges=yes" in unit
    assert re.search(r"^KillSignal=SIGTERM$", unit, flags=re.M)


def test_the_nginx_example_balances_two_instances_and_passes_the_socket_upgrade() -> None:
    from callpop.server.routes import ROUTES
    from callpop.server.ws import HEARTBEAT

    conf = re.sub(r"#[^\n]*", "", (ROOT / "deploy" / "nginx.conf").read_text(encoding="utf-8"))
    upstream = re.search(r"upstream callpop \{(.*?)\}", conf, flags=re.S)
    assert upstream is not None
    assert len(re.findall(r"^\s*server \S+:\d+ ", upstream.group(1), flags=re.M)) == 2
    locations = dict(re.findall(r"location (\S+) \{(.*?)\}", conf, flags=re.S))
    assert {"/ws", "/health"} <= {route.path for route in ROUTES if route.method == "GET"}
    socket = locations["/ws"]
    # a location with its own proxy_set_header inherits none: the Origin check needs Host
    for header in ("Host $host", "Upgrade $http_upgrade", "Connection $connection_upgrade"):
        assert f"proxy_set_header {header};" in socket, header
    read_timeout = re.search(r"proxy_read_timeout (\d+)s;", socket)
    assert read_timeout is not None and int(read_timeout.group(1)) > HEARTBEAT
    assert all("proxy_pass http://callpop;" in body for body in locations.values())
