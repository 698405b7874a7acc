"""The least-privilege AMI user in deploy/manager.conf may send every action callpop sends
and read every event it reads, and has no write class nothing needs.

The actions are found in callpop's own code (every ``{"Action": "..."}`` it builds), so a
new action without an entry in the privileges table fails here; the table is Asterisk's
(main/manager.c) and docs/operations.md shows it."""

from __future__ import annotations

import ast
import re

from callpop.telephony.amitext import parse_message
from callpop.telephony.eventfilter import ACTION_CLASSES, READ_CLASSES, allowed, used_events
from tests.support.paths import FIXTURES, ROOT

PACKAGE = ROOT / "callpop"
SIMULATOR = PACKAGE / "simulator"  # the simulated PBX answers actions, it does not send them


def sent_actions() -> set[str]:
    """Every action name callpop puts in an ``"Action"`` key of a dict it builds."""
    found: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        if SIMULATOR in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    if isinstance(key, ast.Constant) and key.value == "Action":
                        assert isinstance(value, ast.Constant), f"{path}: an Action name must be a literal"
                        found.add(value.value)
    return found


def conf_classes(name: str) -> frozenset[str]:
    text = (ROOT / "deploy" / "manager.conf").read_text(encoding="utf-8")
    match = re.search(rf"^{name}\s*=\s*([\w,]+)", text, re.MULTILINE)
    assert match is not None, f"deploy/manager.conf has no {name} = line"
    return frozenset(match.group(1).split(","))


def test_every_action_callpop_sends_is_allowed_by_the_snippets_write_classes() -> None:
    actions = sent_actions()
    assert {"Login", "Originate", "CoreShowChannels", "Ping"} <= actions  # the scan sees the connection's code
    unknown = actions - ACTION_CLASSES.keys()
    assert not unknown, f"add the privilege Asterisk registers for {sorted(unknown)} to ACTION_CLASSES"
    write = conf_classes("write")
    assert {a for a in actions if not allowed(a, write)} == set()


def test_no_write_class_is_there_that_no_action_needs() -> None:
    write = conf_classes("write")
    assert not write & {"all", "system", "command", "config"}
    for cls in write:
        assert not all(allowed(a, write - {cls}) for a in sent_actions()), f"'{cls}' is not needed"


def test_the_events_callpop_reads_come_in_the_snippets_read_classes() -> None:
    """On the recorded burst (read = all), each event the tracker handles is marked with
    a class the snippet reads."""
    read = conf_classes("read")
    assert read == frozenset(READ_CLASSES)
    data = (FIXTURES / "ami" / "pjsip" / "sip-10-burst-50.ami").read_bytes()
    wanted = set(used_events())
    seen: dict[str, set[str]] = {}
    for frame in data.partition(b"\r\n")[2].split(b"\r\n\r\n"):
        message = parse_message(frame) if frame.strip() else {}
        name, privilege = message.get("Event"), message.get("Privilege")
        if name in wanted and privilege and "ActionID" not in message:
            seen.setdefault(name, set()).update(privilege.split(","))
    assert len(seen) >= 10
    assert {name for name, classes in seen.items() if not classes & read} == set()


def test_the_operations_guide_shows_the_same_table() -> None:
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]*) \|", text, re.MULTILINE))
    assert rows.keys() >= ACTION_CLASSES.keys()
    for action, classes in ACTION_CLASSES.items():
        shown = frozenset(re.findall(r"`(\w+)`", rows[action]))
        assert shown == classes, action

