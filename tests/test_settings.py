"""Settings: the shipped file documents every key with its real default, and a bad
value stops start-up with a message naming the key, the expected form and what was found."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from callpop.settings import Settings
from callpop.settings_file import SettingsError, load_settings, settings_from_mapping

ROOT = Path(__file__).resolve().parents[1]
SETTINGS_TOML = ROOT / "settings.toml"


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        if f.name == "source":
            continue
        value = getattr(obj, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            out.update(_flatten(value, key + "."))
        else:
            out[key] = value
    return out


def test_shipped_settings_equal_the_defaults() -> None:
    """settings.toml is the documentation: every value in it must be the code's default."""
    shipped = load_settings(SETTINGS_TOML, environ={})
    assert _flatten(shipped) == _flatten(Settings())


def test_every_key_is_documented_with_its_default() -> None:
    text = SETTINGS_TOML.read_text(encoding="utf-8")
    data = tomllib.loads(text)
    lines = text.splitlines()
    undocumented = []
    for section, table in data.items():
        if section in ("agents", "bonus"):
            continue
        for key in table:
            line = next((ln for ln in lines if re.match(rf"^{re.escape(key)}\s*=", ln)), "")
            if "# default" not in line:
                undocumented.append(f"{section}.{key}")
    assert undocumented == []
    # and no key of the code is missing from the file
    for section in ("ami", "pbx", "dialplan", "dialing", "phones", "database", "history", "web", "push", "kpi",
                    "demo", "logging", "metrics"):
        fields = {f.name for f in dataclasses.fields(getattr(Settings(), section))}
        assert fields == set(data[section]), section


def test_missing_keys_keep_defaults() -> None:
    s = settings_from_mapping({"kpi": {"min_talk_seconds": 45}}, environ={})
    assert s.kpi.min_talk_seconds == 45
    assert s.kpi.count_inbound is True
    assert s.ami.port == 5038


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"ami": {"port": "5038"}}, "ami.port: expected a whole number >= 0, found '5038' (str)"),
        ({"kpi": {"count_inbound": "yes"}}, "kpi.count_inbound: expected true or false, found 'yes'"),
        ({"kpi": {"min_talk_seconds": -5}}, "kpi.min_talk_seconds: expected a whole number >= 0, found -5"),
        ({"kpi": {"min_talk_secs": 5}}, "[kpi] min_talk_secs: unknown key"),
        ({"kpi": {"timezone": "Mars/Olympus"}}, "kpi.timezone: expected an IANA zone"),
        ({"phones": {"default_region": "XX"}}, "phones.default_region: expected a two-letter region"),
        ({"bonus": {"scheme": "magic"}}, "bonus.scheme: expected one of linear, levels, found 'magic'"),
        ({"bonus": {"kpi": {"contacts": {"weight": "a lot"}}}}, "bonus.kpi.contacts.weight: expected a number"),
        ({"agents": {"101": "101"}}, 'agents."101": expected a device like "PJSIP/101"'),
        ({"pbx": {"agent_extension_pattern": "(("}}, "pbx.agent_extension_pattern: expected a regular expression"),
        ({"push": {"fanout": "on"}}, "push.fanout: expected one of auto, off, found 'on'"),
        ({"push": {"instance_id": "cp 1"}}, "push.instance_id: expected up to 40 letters, digits"),
        ({"nonsense": {}}, "[nonsense]: unknown section"),
    ],
)
def test_bad_values_name_the_key(data: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError) as err:
        settings_from_mapping(data, environ={})
    assert message in str(err.value)


def test_secrets_come_from_the_environment_and_never_print() -> None:
    s = settings_from_mapping({}, environ={"CALLPOP_AMI_SECRET": "s3cret", "CALLPOP_DATABASE_URL": "sqlite+aiosqlite:///x.db"})
    assert s.ami.secret == "s3cret"
    assert s.database.url == "sqlite+aiosqlite:///x.db"
    assert "s3cret" not in repr(s)


def test_agents_mapping_accepts_devices() -> None:
    s = settings_from_mapping({"agents": {"PJSIP/101": "101", "Local/101@agent-phone": 101}}, environ={})
    assert s.agents == {"PJSIP/101": "101", "Local/101@agent-phone": "101"}


def test_cli_reports_a_bad_settings_file(tmp_path: Path) -> None:
    bad = tmp_path / "settings.toml"
    bad.write_text('[ami]\nport = "five"\n', encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "callpop", "--settings", str(bad), "db", "current"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "ami.port: expected a whole number" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_reports_invalid_toml(tmp_path: Path) -> None:
    bad = tmp_path / "settings.toml"
    bad.write_text("[ami\nport = 1\n", encoding="utf-8")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(bad, environ={})
