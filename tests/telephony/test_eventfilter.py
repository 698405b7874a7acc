"""The manager.conf event filter: the tracker sees the same calls on the filtered stream,
and deploy/manager.conf lists exactly the events the tracker reads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from callpop.settings import Settings
from callpop.telephony.amitext import parse_message
from callpop.telephony.eventfilter import manager_conf, passes, used_events
from callpop.telephony.replay import replay_bytes
from tests.support.paths import FIXTURES, ROOT

AMI = FIXTURES / "ami"
CAPTURES = sorted(AMI.glob("*.ami")) + sorted((AMI / "pjsip").glob("*.ami"))


def filtered(data: bytes, events: tuple[str, ...]) -> tuple[bytes, int, int]:
    """The capture as Asterisk would send it to the filtered user; messages kept, total."""
    head, sep, rest = data.partition(b"\r\n")
    frames = [f for f in rest.split(b"\r\n\r\n") if f.strip()]
    kept = [f for f in frames if passes(parse_message(f), events)]
    return head + sep + b"".join(f + b"\r\n\r\n" for f in kept), len(kept), len(frames)


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.name)
def test_the_tracker_gives_the_same_call_events_on_the_filtered_stream(capture: Path) -> None:
    settings = Settings()
    data = capture.read_bytes()
    small, kept, total = filtered(data, used_events(settings))
    assert kept < total  # the capture was recorded with read = all: the filter drops something
    full_events = [e.as_dict() for e in replay_bytes(data, settings)]
    assert full_events  # every capture is a call
    assert [e.as_dict() for e in replay_bytes(small, settings)] == full_events


def test_the_burst_loses_most_of_its_events_and_no_call() -> None:
    data = (AMI / "pjsip" / "sip-10-burst-50.ami").read_bytes()
    small, kept, total = filtered(data, used_events())
    assert kept * 2 < total
    ended = [e for e in replay_bytes(small, Settings()) if e.event == "ended"]
    assert len({e.call for e in ended}) == 50


def test_deploy_manager_conf_is_the_generated_one() -> None:
    text = (ROOT / "deploy" / "manager.conf").read_text(encoding="utf-8")
    assert text == manager_conf(), "regenerate: python -c 'from callpop.telephony.eventfilter import *; " \
                                   "print(manager_conf(), end=\"\")' > deploy/manager.conf"
    assert "read = call,agent\n" in text and "write = originate,reporting\n" in text
    for name in ("Newchannel", "Hangup", "BridgeEnter", "AgentConnect", "CoreShowChannel"):
        assert f"eventfilter(action(include),name({name})) =" in text
    named = re.findall(r"tests/\S+\.py", text)  # the check the file tells the reader about exists
    assert named and all((ROOT / path).is_file() for path in named), named


def test_responses_and_listings_always_pass() -> None:
    assert passes({"Response": "Success", "ActionID": "1"}, ())
    assert passes({"Event": "CoreShowChannel", "ActionID": "resync-1"}, ())
    assert not passes({"Event": "VarSet"}, used_events())
