"""The deployment files name only what the code knows: commands, environment variables."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

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


def _fenced(path: Path) -> list[str]:
    """The fenced code blocks of a Markdown file, continuation lines joined."""
    blocks: list[list[str]] = []
    inside = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if re.match(r"\s*(\d+\.\s+)?```", line):  # "4. ```sh" opens one inside a numbered list
            inside = not inside
            if inside:
                blocks.append([])
        elif inside:
            blocks[-1].append(line.strip())
    return [re.sub(r"\\\n", " ", "\n".join(block)) for block in blocks]


def _secrets_example() -> str:
    return next(b for b in _fenced(ROOT / "docs" / "operations.md") if b.startswith("CALLPOP_DATABASE_URL="))


def test_the_secrets_file_example_reads_the_same_under_systemd_and_the_documented_commands(
        tmp_path: Path) -> None:
    """systemd's EnvironmentFile= keeps a '# comment' after a value as part of the value, and
    the documented ``env $(... secrets.env)`` would run the comment's words as a command: the
    token the dialplan sends would never match."""
    example = _secrets_example()
    for line in example.splitlines():
        assert line.startswith("#") or re.fullmatch(r"CALLPOP_[A-Z_]+=\S*", line), line
    secrets = tmp_path / "secrets.env"
    secrets.write_text(example.replace("=...", "=x1"), encoding="utf-8")
    commands = [line.strip() for block in _fenced(ROOT / "docs" / "operations.md") + _fenced(ROOT / "README.md")
                for line in block.splitlines() if "callpop db upgrade" in line]
    assert len(commands) >= 3
    for command in commands:
        assert "/etc/callpop/secrets.env" in command and "CALLPOP_SETTINGS=/etc/callpop/settings.toml" in command
        assert "/opt/callpop/bin/callpop db upgrade" in command, command  # `callpop` is not on the PATH
        prefix = command.split("CALLPOP_SETTINGS=")[0].removeprefix("sudo -u callpop ")
        shell = prefix.replace("/etc/callpop/secrets.env", str(secrets)) + ' sh -c \'echo "$CALLPOP_DIALPLAN_TOKEN"\''
        done = subprocess.run(["sh", "-c", shell], capture_output=True, text=True, timeout=10)
        assert (done.returncode, done.stdout, done.stderr) == (0, "x1\n", ""), command


def test_the_units_install_notes_migrate_the_database_the_unit_uses() -> None:
    """Without the secrets file ``db upgrade`` would migrate the default SQLite file instead."""
    notes = [line for line in (ROOT / "deploy" / "callpop.service").read_text(encoding="utf-8").splitlines()
             if "bin/callpop db upgrade" in line]
    assert notes and all("/etc/callpop/secrets.env" in line for line in notes), notes
