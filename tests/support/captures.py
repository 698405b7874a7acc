"""Helpers shared by the tracker and replay tests: where the captures are, how to replay one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from callpop.settings_file import settings_from_mapping
from callpop.telephony.amitext import iter_messages
from callpop.telephony.events import CallEvent
from callpop.telephony.tracker import CallTracker, TrackerConfig
from tests.support.paths import FIXTURES

AMI = FIXTURES / "ami"
EXPECTED = FIXTURES / "expected"
STREAMS = FIXTURES / "streams"

CAPTURES = sorted(p.stem for p in AMI.glob("*.ami")) + sorted(p.stem for p in (AMI / "pjsip").glob("*.ami"))
CONFIG = TrackerConfig.from_settings(settings_from_mapping({}))
# The sip13-* streams (an Asterisk 13 PBX with chan_sip phones SIP/1500100NN): the phones
# are agents 201..204 by the [agents] table, as an operator of such a PBX would set it.
SIP13_CONFIG = TrackerConfig.from_settings(settings_from_mapping({"agents": {
    "SIP/150010001": "201", "SIP/150010002": "202", "SIP/150010003": "203", "SIP/150010004": "204"}}))


def config_for(name: str) -> TrackerConfig:
    return SIP13_CONFIG if name.startswith("sip13-") else CONFIG


def capture(name: str, ext: str) -> Path:
    return (AMI / "pjsip" if name.startswith("sip-") else AMI) / f"{name}.{ext}"


def expected(name: str) -> list[dict[str, Any]]:
    text = (EXPECTED / f"{name}.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def messages(path: Path) -> list[tuple[dict[str, Any], float | None]]:
    return list(iter_messages(path.read_bytes()))


def run(msgs: list[tuple[dict[str, Any], float | None]], tracker: CallTracker | None = None,
        config: TrackerConfig = CONFIG) -> list[CallEvent]:
    tracker = tracker or CallTracker(config)
    events: list[CallEvent] = []
    for message, clock in msgs:
        events.extend(tracker.feed(message, clock))
    return events


def dicts(events: list[CallEvent]) -> list[dict[str, Any]]:
    return [e.as_dict() for e in events]


def without_talk(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events minus ``talk_seconds``, which needs a clock a raw capture does not have."""
    return [{k: v for k, v in e.items() if k != "talk_seconds"} for e in events]
