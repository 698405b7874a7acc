"""Typed, frozen settings: one dataclass per section of settings.toml, with its defaults.

Every key has a default here and a documented line in settings.toml (a test keeps the two
in step). Reading the file and checking its values is callpop/settings_file.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AmiSettings",
    "BonusKpi",
    "BonusLevel",
    "BonusSettings",
    "CdrSettings",
    "DatabaseSettings",
    "DemoSettings",
    "DialRule",
    "DialingSettings",
    "DialplanSettings",
    "HistorySettings",
    "JournalSettings",
    "KpiSettings",
    "LoggingSettings",
    "MetricsSettings",
    "PbxSettings",
    "PhoneSettings",
    "PushSettings",
    "Settings",
    "WebSettings",
    "ami_secret_variable",
    "default_bonus_kpis",
    "default_levels",
]


def ami_secret_variable(name: str = "") -> str:
    """The environment variable with the AMI secret of PBX *name* ("" = the first, [ami])."""
    return f"CALLPOP_AMI_SECRET_{name.upper().replace('-', '_')}" if name else "CALLPOP_AMI_SECRET"


@dataclass(frozen=True, slots=True)
class AmiSettings:
    host: str = ""
    port: int = 5038
    username: str = "callpop"
    secret: str = field(default="", repr=False)
    events: str = "call,agent,system"
    ping_interval: float = 10.0
    pong_timeout: float = 5.0
    reconnect_min: float = 1.0
    reconnect_max: float = 30.0
    queue_warn: int = 10000
    allow_plain_login: bool = False
    tls: bool = False
    tls_ca_file: str = ""
    tls_verify: bool = True
    early_lookups: int = 64

    @property
    def simulated(self) -> bool:
        """No Asterisk configured: callpop starts its own simulated PBX."""
        return not self.host


@dataclass(frozen=True, slots=True)
class PbxSettings:
    id: str = "main"
    agent_extension_pattern: str = r"^\d{2,6}$"
    trunk_devices: tuple[str, ...] = ()
    originate_context: str = "from-internal"
    originate_allowed: tuple[str, ...] = ()
    idle_channel_timeout: float = 14400.0
    idle_sweep_interval: float = 300.0


@dataclass(frozen=True, slots=True)
class DialplanSettings:
    """The plain-text endpoints the PBX's dialplan asks (callpop/server/pbx.py)."""

    token: str = field(default="", repr=False)
    allow: tuple[str, ...] = ("127.0.0.1", "::1")
    timeout: float = 0.08
    name_max_length: int = 40
    transliterate: bool = False
    cache_seconds: float = 5.0
    memory_index: bool = True
    index_refresh: float = 30.0
    listen: str = ""

    def listen_address(self) -> tuple[str, int] | None:
        """``listen`` as (host, port): ``"127.0.0.1:8089"``, ``"[::1]:8089"``; None when
        empty; ValueError when it is neither."""
        if not self.listen:
            return None
        host, sep, port = self.listen.rpartition(":")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(self.listen)
        return host, int(port)


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    allow: tuple[str, ...] = ("127.0.0.1", "::1")


@dataclass(frozen=True, slots=True)
class DialRule:
    """Click-to-call: an E.164 number matching ``pattern`` is dialled as ``dial`` (a
    ``re.sub`` replacement), optionally in its own ``context`` (another trunk)."""

    pattern: str
    dial: str
    context: str = ""


@dataclass(frozen=True, slots=True)
class DialingSettings:
    rules: tuple[DialRule, ...] = ()
    prefix: str = ""
    agent_caller_id: str = "{name} <{extension}>"
    outbound_number: str = ""
    outbound_numbers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PhoneSettings:
    default_region: str = "RU"
    min_external_digits: int = 7


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    url: str = field(default="sqlite+aiosqlite:///var/callpop.db", repr=False)
    echo: bool = False
    sqlite_reads_in_thread: bool = True
    sqlite_change_check: float = 0.2


@dataclass(frozen=True, slots=True)
class JournalSettings:
    spool_path: str = "var/callpop-journal-spool.db"
    write_timeout: float = 5.0
    retry_interval: float = 2.0
    heartbeat_interval: float = 1.0
    max_open_hours: float = 4.0


@dataclass(frozen=True, slots=True)
class CdrSettings:
    """The PBX's CDR store, read to put right the rows callpop could not see whole
    (callpop/cdr_reconciler.py); off while ``url`` is empty."""

    url: str = field(default="", repr=False)
    password: str = field(default="", repr=False)
    table: str = "cdr"
    calldate_column: str = "calldate"
    duration_column: str = "duration"
    billsec_column: str = "billsec"
    disposition_column: str = "disposition"
    channel_column: str = "channel"
    dstchannel_column: str = "dstchannel"
    uniqueid_column: str = "uniqueid"
    linkedid_column: str = "linkedid"
    sequence_column: str = "sequence"
    wait_after_end: float = 10.0
    give_up_after: float = 3600.0
    interval: float = 15.0
    timeout: float = 5.0


@dataclass(frozen=True, slots=True)
class HistorySettings:
    promises: int = 20
    agreements: int = 10
    calls: int = 10
    notes: int = 10


@dataclass(frozen=True, slots=True)
class WebSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    secret_key: str = field(default="", repr=False)
    cookie_secure: bool = False
    cookie_domain: str = ""
    session_hours: int = 12
    default_language: str = "ru"
    login_failures_per_ip: int = 30
    login_failures_per_login: int = 10
    login_window: float = 300.0
    password_checks: int = 2
    password_queue: int = 16


@dataclass(frozen=True, slots=True)
class PushSettings:
    queue_size: int = 256
    send_timeout: float = 5.0
    dismiss_after: float = 8.0
    account_recheck: float = 30.0
    max_tabs_per_employee: int = 8
    fanout: str = "auto"
    instance_id: str = ""
    instance_urls: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class KpiSettings:
    min_talk_seconds: int = 30
    count_inbound: bool = True
    count_outbound: bool = True
    one_per_client_per_day: bool = True
    regular_min_paid_agreements: int = 2
    regular_window_months: int = 12
    working_days: tuple[int, ...] = (1, 2, 3, 4, 5)
    timezone: str = "Europe/Moscow"


@dataclass(frozen=True, slots=True)
class BonusKpi:
    weight: float = 0.25
    threshold: float = 50.0
    target: float = 100.0
    accelerator: float = 1.0
    cap: float = 150.0


@dataclass(frozen=True, slots=True)
class BonusLevel:
    name: str
    from_pct: float
    pay_pct: float


def default_bonus_kpis() -> dict[str, BonusKpi]:
    return {
        "contacts": BonusKpi(0.4, 50, 100, 1.5, 150),
        "collections": BonusKpi(0.3, 50, 100, 1.5, 150),
        "win_rate": BonusKpi(0.2, 50, 100, 1.0, 120),
        "new_vs_regular": BonusKpi(0.1, 50, 100, 1.0, 120),
    }


def default_levels() -> tuple[BonusLevel, ...]:
    return (
        BonusLevel("unacceptable", 0, 0),
        BonusLevel("low", 70, 50),
        BonusLevel("plan", 100, 100),
        BonusLevel("excellent", 120, 130),
    )


@dataclass(frozen=True, slots=True)
class BonusSettings:
    scheme: str = "linear"
    base: float = 50000.0
    currency: str = "RUB"
    kpi: Mapping[str, BonusKpi] = field(default_factory=default_bonus_kpis)
    levels: tuple[BonusLevel, ...] = field(default_factory=default_levels)


@dataclass(frozen=True, slots=True)
class DemoSettings:
    clients: int = 3000
    managers: int = 4
    call_interval: float = 6.0
    short_call_share: float = 0.2
    seed: int = 42
    ami_port: int = 0
    database: str = field(default="sqlite+aiosqlite:///var/callpop-demo.db", repr=False)


@dataclass(frozen=True, slots=True)
class LoggingSettings:
    level: str = "INFO"
    format: str = "text"


@dataclass(frozen=True, slots=True)
class Settings:
    ami: AmiSettings = field(default_factory=AmiSettings)
    pbx: PbxSettings = field(default_factory=PbxSettings)
    dialplan: DialplanSettings = field(default_factory=DialplanSettings)
    dialing: DialingSettings = field(default_factory=DialingSettings)
    phones: PhoneSettings = field(default_factory=PhoneSettings)
    agents: Mapping[str, str] = field(default_factory=dict)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    journal: JournalSettings = field(default_factory=JournalSettings)
    cdr: CdrSettings = field(default_factory=CdrSettings)
    history: HistorySettings = field(default_factory=HistorySettings)
    web: WebSettings = field(default_factory=WebSettings)
    push: PushSettings = field(default_factory=PushSettings)
    kpi: KpiSettings = field(default_factory=KpiSettings)
    bonus: BonusSettings = field(default_factory=BonusSettings)
    demo: DemoSettings = field(default_factory=DemoSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    more_ami: Mapping[str, AmiSettings] = field(default_factory=dict)  # [ami.NAME]: more PBXs
    source: str = "defaults"

    def pbxes(self) -> list[tuple[str, AmiSettings]]:
        """Every PBX to connect to, with its id: ``[ami]`` as ``[pbx] id`` (unless only
        ``[ami.NAME]`` tables name hosts), then each ``[ami.NAME]`` as NAME."""
        first = [] if self.more_ami and self.ami.simulated else [(self.pbx.id, self.ami)]
        return first + sorted(self.more_ami.items())

    def replace(self, **changes: Any) -> Settings:
        """A copy with whole sections replaced (tests and the demo use it)."""
        return dataclasses.replace(self, **changes)

