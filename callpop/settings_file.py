"""Reading settings.toml into :class:`callpop.settings.Settings`, and checking it.

A bad value stops start-up with the key's name, the expected form and what was found, so
an operator never has to guess which line of the file is wrong. Secrets may come from the
environment instead of the file.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import phonenumbers

from callpop.settings import (
    AmiSettings,
    BonusKpi,
    BonusLevel,
    BonusSettings,
    CdrSettings,
    DatabaseSettings,
    DemoSettings,
    DialingSettings,
    DialplanSettings,
    DialRule,
    HistorySettings,
    JournalSettings,
    KpiSettings,
    LoggingSettings,
    MetricsSettings,
    PbxSettings,
    PhoneSettings,
    PushSettings,
    Settings,
    WebSettings,
    ami_secret_variable,
    default_bonus_kpis,
    default_levels,
)

__all__ = ["SettingsError", "build_dialing", "load_settings", "settings_from_mapping"]


class SettingsError(ValueError):
    """A settings file that cannot be used; the message names the key."""


# --- validation -------------------------------------------------------------------------

_CHOICES: dict[str, tuple[str, ...]] = {
    "bonus.scheme": ("linear", "levels"),
    "web.default_language": ("ru", "en"),
    "logging.level": ("DEBUG", "INFO", "WARNING", "ERROR"),
    "logging.format": ("text", "json"),
    "push.fanout": ("auto", "off"),
}
_NON_NEGATIVE = (int, float)
_ENV_SECRETS = {
    ("ami", "secret"): "CALLPOP_AMI_SECRET",
    ("ami", "host"): "CALLPOP_AMI_HOST",
    ("database", "url"): "CALLPOP_DATABASE_URL",
    ("web", "secret_key"): "CALLPOP_SECRET_KEY",
    ("demo", "database"): "CALLPOP_DEMO_DATABASE_URL",
    ("dialplan", "token"): "CALLPOP_DIALPLAN_TOKEN",
    ("cdr", "url"): "CALLPOP_CDR_URL",
    ("cdr", "password"): "CALLPOP_CDR_PASSWORD",
}

T = TypeVar("T")
MIN_SECRET_KEY = 32  # bytes: an HMAC-SHA256 key shorter than its output is guessable sooner


def _describe(value: object) -> str:
    return f"{value!r} ({type(value).__name__})"


def _coerce(key: str, value: object, annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise SettingsError(f"{key}: expected true or false, found {_describe(value)}")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        raise SettingsError(f"{key}: expected a whole number >= 0, found {_describe(value)}")
    if annotation is float:
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            return float(value)
        raise SettingsError(f"{key}: expected a number >= 0, found {_describe(value)}")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise SettingsError(f"{key}: expected a quoted string, found {_describe(value)}")
    if origin is tuple:
        (item_type, _ellipsis) = typing.get_args(annotation)
        if not isinstance(value, list):
            raise SettingsError(f"{key}: expected a list like [1, 2], found {_describe(value)}")
        return tuple(_coerce(f"{key}[{i}]", v, item_type) for i, v in enumerate(value))
    raise SettingsError(f"{key}: unsupported setting type {annotation!r}")  # pragma: no cover


def _build(cls: type[T], section: str, raw: object) -> T:
    if not isinstance(raw, dict):
        raise SettingsError(f"[{section}]: expected a table, found {_describe(raw)}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(raw) - known)
    if unknown:
        raise SettingsError(
            f"[{section}] {unknown[0]}: unknown key (known keys: {', '.join(sorted(known))})"
        )
    values: dict[str, Any] = {}
    for name, value in raw.items():
        key = f"{section}.{name}"
        coerced = _coerce(key, value, hints[name])
        choices = _CHOICES.get(key)
        if choices is not None and coerced not in choices:
            raise SettingsError(f"{key}: expected one of {', '.join(choices)}, found {_describe(value)}")
        values[name] = coerced
    return cls(**values)


def _build_agents(raw: object) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise SettingsError(f"[agents]: expected a table of device = \"extension\", found {_describe(raw)}")
    agents: dict[str, str] = {}
    for device, ext in raw.items():
        if not isinstance(ext, str | int) or isinstance(ext, bool) or not str(ext).strip():
            raise SettingsError(
                f'agents."{device}": expected an extension like "101", found {_describe(ext)}'
            )
        if "/" not in device:
            raise SettingsError(
                f'agents."{device}": expected a device like "PJSIP/101" (technology/resource)'
            )
        agents[device] = str(ext).strip()
    return agents


def build_dialing(raw: object) -> DialingSettings:
    """[dialing]: rules are ``{ pattern = '...', dial = '...', context = '...' }`` tables,
    checked here (a pattern that does not compile, or a replacement that refers to a group
    the pattern lacks, stops start-up rather than the first click-to-call)."""
    if not isinstance(raw, dict):
        raise SettingsError(f"[dialing]: expected a table, found {_describe(raw)}")
    raw = dict(raw)
    rules_raw = raw.pop("rules", [])
    numbers_raw = raw.pop("outbound_numbers", {})
    plain = _build(DialingSettings, "dialing", raw)
    if not isinstance(rules_raw, list):
        raise SettingsError(f"dialing.rules: expected a list of {{ pattern = ..., dial = ... }}, "
                            f"found {_describe(rules_raw)}")
    rules = []
    for i, spec in enumerate(rules_raw):
        key = f"dialing.rules[{i}]"
        if not isinstance(spec, dict) or not {"pattern", "dial"} <= set(spec) <= {"pattern", "dial", "context"} \
                or not all(isinstance(v, str) for v in spec.values()):
            raise SettingsError(f"{key}: expected {{ pattern = '<regex>', dial = '<replacement>' "
                                f"[, context = '<context>'] }}, found {_describe(spec)}")
        try:
            re.compile(spec["pattern"]).sub(spec["dial"], "")
            re.sub(spec["pattern"], spec["dial"], "+" + "1" * 15)
        except (re.error, IndexError) as exc:
            raise SettingsError(f"{key}: expected a regular expression and a replacement using its "
                                f"groups, found {spec['pattern']!r} -> {spec['dial']!r} ({exc})") from None
        rules.append(DialRule(spec["pattern"], spec["dial"], spec.get("context", "")))
    if not isinstance(numbers_raw, dict) or not all(isinstance(v, str) for v in numbers_raw.values()):
        raise SettingsError(f"[dialing.outbound_numbers]: expected extension = \"number\" lines, "
                            f"found {_describe(numbers_raw)}")
    try:
        plain.agent_caller_id.format(name="", extension="")
    except (KeyError, IndexError, ValueError) as exc:
        raise SettingsError(f"dialing.agent_caller_id: expected a template with {{name}} and {{extension}}, "
                            f"found {plain.agent_caller_id!r} ({exc})") from None
    return dataclasses.replace(plain, rules=tuple(rules),
                               outbound_numbers={str(k): v for k, v in numbers_raw.items()})


def _build_bonus(raw: object) -> BonusSettings:
    if not isinstance(raw, dict):
        raise SettingsError(f"[bonus]: expected a table, found {_describe(raw)}")
    raw = dict(raw)
    kpi_raw = raw.pop("kpi", None)
    levels_raw = raw.pop("levels", None)
    plain = _build(BonusSettings, "bonus", raw)
    kpis = dict(default_bonus_kpis())
    if kpi_raw is not None:
        if not isinstance(kpi_raw, dict):
            raise SettingsError(f"[bonus.kpi]: expected tables, found {_describe(kpi_raw)}")
        for name, table in kpi_raw.items():
            if name not in kpis:
                raise SettingsError(
                    f"[bonus.kpi.{name}]: unknown KPI (known: {', '.join(sorted(kpis))})"
                )
            merged = {**dataclasses.asdict(kpis[name]), **(table if isinstance(table, dict) else {})}
            if not isinstance(table, dict):
                raise SettingsError(f"[bonus.kpi.{name}]: expected a table, found {_describe(table)}")
            kpis[name] = _build(BonusKpi, f"bonus.kpi.{name}", merged)
    levels = default_levels()
    if levels_raw is not None:
        if not isinstance(levels_raw, dict) or not levels_raw:
            raise SettingsError(f"[bonus.levels]: expected a table of levels, found {_describe(levels_raw)}")
        parsed = []
        for name, spec in levels_raw.items():
            key = f"bonus.levels.{name}"
            if not isinstance(spec, dict) or set(spec) != {"from", "pay"}:
                raise SettingsError(f"{key}: expected {{ from = <% of plan>, pay = <% of base> }}, "
                                    f"found {_describe(spec)}")
            parsed.append(BonusLevel(name, _coerce(f"{key}.from", spec["from"], float),
                                     _coerce(f"{key}.pay", spec["pay"], float)))
        levels = tuple(sorted(parsed, key=lambda lv: lv.from_pct))
    return dataclasses.replace(plain, kpi=kpis, levels=levels)


_SECTIONS: dict[str, type[Any]] = {
    "ami": AmiSettings,
    "pbx": PbxSettings,
    "dialplan": DialplanSettings,
    "phones": PhoneSettings,
    "database": DatabaseSettings,
    "journal": JournalSettings,
    "cdr": CdrSettings,
    "history": HistorySettings,
    "web": WebSettings,
    "push": PushSettings,
    "kpi": KpiSettings,
    "demo": DemoSettings,
    "logging": LoggingSettings,
    "metrics": MetricsSettings,
}


def _build_more_ami(base: dict[str, Any], tables: dict[str, Any], first_id: str,
                    env: Mapping[str, str]) -> dict[str, AmiSettings]:
    """``[ami.NAME]``: another PBX, its keys over ``[ami]``'s (a host of its own is
    required); its secret may come from CALLPOP_AMI_SECRET_<NAME>."""
    out: dict[str, AmiSettings] = {}
    for name, table in tables.items():
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", name) or name == first_id:
            raise SettingsError(f"[ami.{name}]: expected a PBX id of letters, digits, - or _ other than "
                                f"[pbx] id ({first_id!r})")
        merged = {**{k: v for k, v in base.items() if k not in ("host", "secret")}, **table}
        secret = env.get(ami_secret_variable(name))
        if secret:
            merged["secret"] = secret
        ami = _build(AmiSettings, f"ami.{name}", merged)
        if ami.simulated:
            raise SettingsError(f"ami.{name}.host: expected the address of that PBX's AMI, found nothing")
        out[name] = ami
    return out


def _check_networks(key: str, entries: tuple[str, ...]) -> None:
    import ipaddress

    for i, entry in enumerate(entries):
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise SettingsError(f"{key}[{i}]: expected an address or network like 127.0.0.1 or "
                                f"10.0.0.0/24, found {entry!r}") from None


def _check_dialplan(dialplan: DialplanSettings) -> None:
    _check_networks("dialplan.allow", dialplan.allow)
    if not 0 < dialplan.timeout <= 0.1:
        raise SettingsError(f"dialplan.timeout: expected seconds above 0 and at most 0.1 (the dialplan waits "
                            f"for the answer), found {dialplan.timeout!r}")
    try:
        dialplan.listen_address()
    except ValueError:
        raise SettingsError(f"dialplan.listen: expected an address and port like 127.0.0.1:8089 or [::1]:8089, "
                            f"or \"\" for none, found {dialplan.listen!r}") from None
    if not dialplan.index_refresh >= 1:
        raise SettingsError(f"dialplan.index_refresh: expected seconds, at least 1 (each new copy reads "
                            f"every client), found {dialplan.index_refresh!r}")


def _check_push(push: PushSettings) -> None:
    if push.instance_id and not re.fullmatch(r"[A-Za-z0-9_.-]{1,40}", push.instance_id):
        raise SettingsError(f"push.instance_id: expected up to 40 letters, digits, '.', '-' or '_', "
                            f"found {push.instance_id!r}")
    for i, url in enumerate(push.instance_urls):
        if not re.fullmatch(r"https?://[A-Za-z0-9.\-]+(:\d{1,5})?/?", url):
            raise SettingsError(f"push.instance_urls[{i}]: expected an instance's base URL like "
                                f"http://cp1.example:8080, found {url!r}")


_URL = re.compile(r"^(sqlite|postgresql|mysql|mariadb)\+\w+://")
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _check_cdr(cdr: CdrSettings) -> None:
    """[cdr]: an async SQLAlchemy URL, and names a table and columns can have (they go
    into SQL as identifiers)."""
    if not cdr.url:
        return
    if not _URL.match(cdr.url):
        raise SettingsError("cdr.url: expected an SQLAlchemy async URL like "
                            "postgresql+asyncpg://user@host/asterisk or sqlite+aiosqlite:////var/log/asterisk/"
                            f"master.db, found one starting {cdr.url.split('://', 1)[0].split(':', 1)[0]!r}")
    if not all(_COLUMN.match(part) for part in cdr.table.split(".", 1)):
        raise SettingsError(f"cdr.table: expected a table name like cdr or asteriskcdrdb.cdr, found {cdr.table!r}")
    for name in ("calldate", "duration", "billsec", "disposition", "channel", "dstchannel", "uniqueid",
                 "linkedid", "sequence"):
        value = getattr(cdr, f"{name}_column")
        optional = name in ("linkedid", "sequence")
        if not (_COLUMN.match(value) or (optional and value == "")):
            expected = 'a column name or ""' if optional else "a column name"
            raise SettingsError(f"cdr.{name}_column: expected {expected}, found {value!r}")
    if cdr.interval <= 0:
        raise SettingsError(f"cdr.interval: expected a number > 0, found {cdr.interval}")


def settings_from_mapping(data: Mapping[str, Any], *, source: str = "<mapping>",
                          environ: Mapping[str, str] | None = None) -> Settings:
    """Build settings from parsed TOML; missing keys keep their defaults."""
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    env = os.environ if environ is None else environ
    for (section, key), var in _ENV_SECRETS.items():
        if env.get(var):
            data.setdefault(section, {})[key] = env[var]
    special = {"agents", "bonus", "dialing"}
    unknown = sorted(set(data) - set(_SECTIONS) - special)
    if unknown:
        raise SettingsError(f"[{unknown[0]}]: unknown section (known: "
                            f"{', '.join(sorted([*_SECTIONS, *special]))})")
    ami_raw = data.get("ami", {})
    more_raw = {k: v for k, v in ami_raw.items() if isinstance(v, dict)} if isinstance(ami_raw, dict) else {}
    if more_raw:
        data["ami"] = {k: v for k, v in ami_raw.items() if k not in more_raw}
    sections: dict[str, Any] = {name: _build(cls, name, data.get(name, {})) for name, cls in _SECTIONS.items()}
    more_ami = _build_more_ami(data.get("ami", {}), more_raw, sections["pbx"].id, env)
    try:
        re.compile(sections["pbx"].agent_extension_pattern)
    except re.error as exc:
        raise SettingsError(f"pbx.agent_extension_pattern: expected a regular expression, found "
                            f"{sections['pbx'].agent_extension_pattern!r} ({exc})") from None
    if sections["phones"].default_region not in phonenumbers.SUPPORTED_REGIONS:
        raise SettingsError(f"phones.default_region: expected a two-letter region like RU or GB, "
                            f"found {sections['phones'].default_region!r}")
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(sections["kpi"].timezone)
    except Exception:
        raise SettingsError(f"kpi.timezone: expected an IANA zone like Europe/Moscow, "
                            f"found {sections['kpi'].timezone!r}") from None
    key = sections["web"].secret_key
    if key and len(key.encode("utf-8")) < MIN_SECRET_KEY:
        raise SettingsError(f"web.secret_key: expected at least {MIN_SECRET_KEY} bytes (e.g. the output of "
                            f"`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`), found "
                            f"{len(key.encode('utf-8'))} bytes")
    for i, pattern in enumerate(sections["pbx"].originate_allowed):
        try:
            re.compile(pattern)
        except re.error as exc:
            raise SettingsError(f"pbx.originate_allowed[{i}]: expected a regular expression, found "
                                f"{pattern!r} ({exc})") from None
    ca_file = sections["ami"].tls_ca_file
    if ca_file and not Path(ca_file).is_file():
        raise SettingsError(f"ami.tls_ca_file: expected a PEM file of the CA, found {ca_file!r} (no such file)")
    _check_cdr(sections["cdr"])
    _check_dialplan(sections["dialplan"])
    _check_networks("metrics.allow", sections["metrics"].allow)
    _check_push(sections["push"])
    bad_days = [d for d in sections["kpi"].working_days if not 1 <= d <= 7]
    if bad_days:
        raise SettingsError(f"kpi.working_days: expected days 1 (Monday) to 7, found {bad_days[0]}")
    return Settings(
        **sections,
        agents=_build_agents(data.get("agents", {})),
        bonus=_build_bonus(data.get("bonus", {})),
        dialing=build_dialing(data.get("dialing", {})),
        more_ami=more_ami,
        source=source,
    )


def load_settings(path: str | Path | None = None, *, environ: Mapping[str, str] | None = None) -> Settings:
    """Read settings.toml (or *path*); no file at the default path means all defaults."""
    env = os.environ if environ is None else environ
    explicit = path is not None or bool(env.get("CALLPOP_SETTINGS"))
    p = Path(path or env.get("CALLPOP_SETTINGS") or "settings.toml")
    if not p.exists():
        if explicit:
            raise SettingsError(f"{p}: settings file not found")
        return settings_from_mapping({}, source="defaults", environ=env)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{p}: not valid TOML: {exc}") from None
    try:
        return settings_from_mapping(data, source=str(p), environ=env)
    except SettingsError as exc:
        raise SettingsError(f"{p}: {exc}") from None
