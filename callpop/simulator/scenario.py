"""Call scenarios for the simulated PBX: real Asterisk captures turned into templates.

Each scenario is a stream recorded from Asterisk 22 with chan_pjsip (the files in
``scenarios/`` are ``tests/fixtures/ami/pjsip/*.jsonl`` without the session messages).
At load time every value is cut into constant text and *slots*: channel names, Uniqueids
and Linkedids, bridge ids, the client's number and name, the agents' extensions and the
ActionID of an OriginateResponse. Placing a call fills the slots with fresh values, so the
bytes on the wire are the captured ones except for what identifies this call.

A template is compiled once into one ``%``-format string per event and a list of steps
(events less than 10 ms apart in the capture go out together, with no sleep between them),
plus, after each step, the channels that are up: that is what CoreShowChannels lists.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callpop.simulator.live import CHAN_FIELDS, track
from callpop.simulator.transfers import build_transfer
from callpop.telephony.amitext import AmiMessage

__all__ = ["ALL_EVENTS", "CLASS_BITS", "SCENARIOS", "CompiledEvent", "ScenarioSpec", "Step", "Template",
           "event_mask", "load_template"]

DATA = Path(__file__).with_name("scenarios")
STEP_GAP = 0.010

# Slot kinds; a slot is (kind, arg).
UID, CHAN, BRIDGE, CLIENT, NAME, AGENT, ACTION_LINE = "uid", "chan", "bridge", "client", "name", "agent", "action"

@dataclass(frozen=True, slots=True)
class ScenarioSpec:
    """``roles``: the capture's agent extensions, the one who answers (or dials) first.
    ``client_forms``: how the capture writes the client's number (as presented/dialled,
    then the trunk's digits-only form for outbound calls). ``group``: the other roles only
    ring (a ring group or queue): once the first answers, their phones are free again."""

    name: str
    roles: tuple[str, ...]
    client_forms: tuple[str, ...]
    name_token: str | None = None
    direction: str = "inbound"
    group: bool = False


SCENARIOS: dict[str, ScenarioSpec] = {s.name: s for s in (
    ScenarioSpec("incoming_answered", ("101",), ("+79161234567",), "Иван Петров"),
    ScenarioSpec("incoming_noanswer", ("102",), ("+79161234567",)),
    ScenarioSpec("caller_hangup", ("101",), ("+79161234567",)),
    ScenarioSpec("ring_group", ("103", "101", "102"), ("+79161234567",), group=True),
    ScenarioSpec("queue_answered", ("102", "101", "103", "104"), ("+79161234567",), group=True),
    ScenarioSpec("queue_abandoned", ("101", "102", "103", "104"), ("+79161234567",)),
    ScenarioSpec("outbound", ("101",), ("84950001122", "74950001122"), direction="outbound"),
    ScenarioSpec("click_to_call", ("101",), ("84950001122", "74950001122"), direction="outbound"),
    ScenarioSpec("blind_transfer", ("101", "102"), ("+79161234567",), "Иван Петров"),
    ScenarioSpec("attended_transfer", ("101", "102"), ("+79161234567",), "Иван Петров"),
)}


# Asterisk's event classes (manager.c): the "Events:" of a Login picks among them.
CLASS_BITS = {name: 1 << i for i, name in enumerate((
    "system", "call", "log", "verbose", "command", "agent", "user", "config", "dtmf", "reporting",
    "cdr", "dialplan", "originate", "agi", "cc", "aoc", "test", "security", "message"))}
ALL_EVENTS = (1 << len(CLASS_BITS)) - 1


def event_mask(events: str | None) -> int:
    """The ``Events:`` header of a Login (or a Privilege header) -> bit mask.
    Missing, "on" or "all" = everything."""
    if events is None or events.strip().lower() in ("on", "all", "yes", "true"):
        return ALL_EVENTS
    return sum(CLASS_BITS.get(c.strip().lower(), 0) for c in set(events.split(",")))


@dataclass(frozen=True, slots=True)
class CompiledEvent:
    name: str
    mask: int  # its Privilege classes (without "all")
    fmt: str
    slots: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ChannelShape:
    """A channel that is up after a step, ready to be listed by CoreShowChannels:
    ``head`` runs from Channel: to ApplicationData:, then comes Duration (computed when
    listed), then ``tail`` (BridgeId:)."""

    head: str
    head_slots: tuple[int, ...]
    tail: str
    tail_slots: tuple[int, ...]
    created_at: float


@dataclass(frozen=True, slots=True)
class Step:
    at: float
    events: tuple[CompiledEvent, ...]
    channels: tuple[ChannelShape, ...]


@dataclass(frozen=True, slots=True)
class Template:
    spec: ScenarioSpec
    steps: tuple[Step, ...]
    slots: tuple[tuple[str, Any], ...]
    linkedid_slot: int
    # (step where the client and the first agent are bridged, first step after it where the
    # talk ends: a hangup, a bridge leave, a hold or a transfer); None: nobody talks.
    # ``place_call(talk_seconds=...)`` delays the second step and all after it.
    talk_span: tuple[int, int] | None = None


class _Compiler:
    def __init__(self, spec: ScenarioSpec, uniqueids: set[str]) -> None:
        self.spec = spec
        self.uniqueids = uniqueids
        self.slots: list[tuple[str, Any]] = []
        self.index: dict[tuple[str, Any], int] = {}
        alts = [r"(?P<chan>PJSIP/(?P<res>[A-Za-z0-9_]+)-[0-9a-f]{8})",
                r"(?P<bridge>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})",
                r"(?P<uid>(?<![\d.])\d{10}\.\d+(?![\d.]))"]
        forms = "|".join(re.escape(f) for f in spec.client_forms)
        alts.append(rf"(?P<client>(?<![\d+])(?:{forms})(?!\d))")
        if spec.name_token:
            alts.append(f"(?P<name>{re.escape(spec.name_token)})")
        roles = "|".join(re.escape(r) for r in spec.roles)
        alts.append(rf"(?P<agent>(?<![\w.])(?:{roles})(?![\w]))")
        self.token = re.compile("|".join(alts))

    def slot(self, kind: str, arg: Any) -> int:
        key = (kind, arg)
        if key not in self.index:
            self.index[key] = len(self.slots)
            self.slots.append(key)
        return self.index[key]

    def value(self, text: str) -> tuple[str, list[int]]:
        """A value -> (%-format, slot indexes)."""
        out: list[str] = []
        slots: list[int] = []
        pos = 0
        for m in self.token.finditer(text):
            kind = m.lastgroup if m.lastgroup != "res" else "chan"
            tok = m.group(0)
            if kind == "uid" and tok not in self.uniqueids:
                continue
            out.append(text[pos:m.start()].replace("%", "%%"))
            pos = m.end()
            if kind == "chan":
                res = m.group("res")
                role = self.spec.roles.index(res) if res in self.spec.roles else res
                slots.append(self.slot(CHAN, (tok, role)))
            elif kind == "client":
                slots.append(self.slot(CLIENT, self.spec.client_forms.index(tok)))
            elif kind == "agent":
                slots.append(self.slot(AGENT, self.spec.roles.index(tok)))
            elif kind == "name":
                slots.append(self.slot(NAME, None))
            else:
                slots.append(self.slot(kind or "", tok))
            out.append("%s")
        out.append(text[pos:].replace("%", "%%"))
        return "".join(out), slots

    def fields(self, event: AmiMessage) -> tuple[str, list[int]]:
        parts: list[str] = []
        slots: list[int] = []
        for key, raw in event.items():
            for value in (raw if isinstance(raw, list) else [raw]):
                if key == "ActionID":
                    parts.append("%s")
                    slots.append(self.slot(ACTION_LINE, None))
                    continue
                if key.endswith(("CallerIDName", "ConnectedLineName")) and \
                        event.get(key[:-4] + "Num") in self.spec.client_forms:
                    fmt, vslots = "%s", [self.slot(NAME, None)]
                else:
                    fmt, vslots = self.value(value)
                parts.append(f"{key.replace('%', '%%')}: {fmt}\r\n")
                slots.extend(vslots)
        return "".join(parts), slots


def _live_channels(live: Mapping[str, dict[str, str]], comp: _Compiler) -> tuple[ChannelShape, ...]:
    shapes = []
    for chan, f in live.items():
        body = {"Channel": chan, **{k: f.get(k, "") for k in CHAN_FIELDS},
                "Application": f.get("Application", ""), "ApplicationData": f.get("ApplicationData", "")}
        head, head_slots = comp.fields(body)
        tail, tail_slots = comp.fields({"BridgeId": f.get("BridgeId", "")})
        shapes.append(ChannelShape(head, tuple(head_slots), tail, tuple(tail_slots), float(f["_created"])))
    return tuple(shapes)


def compile_template(spec: ScenarioSpec, records: Iterable[tuple[float, dict[str, Any]]]) -> Template:
    items = list(records)
    uniqueids = {str(e[k]) for _, e in items for k in ("Uniqueid", "Linkedid", "DestUniqueid", "DestLinkedid")
                 if k in e}
    comp = _Compiler(spec, uniqueids)
    t0 = items[0][0]
    steps: list[Step] = []
    live: dict[str, dict[str, str]] = {}
    current: list[CompiledEvent] = []
    step_at = 0.0
    last = 0.0
    for t, event in items:
        rel = t - t0
        if current and rel - last > STEP_GAP:
            steps.append(Step(step_at, tuple(current), _live_channels(live, comp)))
            current = []
        if not current:
            step_at = rel
        last = rel
        fmt, slots = comp.fields(event)
        classes = [c for c in str(event.get("Privilege", "")).split(",") if c and c != "all"]
        mask = event_mask(",".join(classes)) if classes else ALL_EVENTS
        current.append(CompiledEvent(str(event["Event"]), mask, fmt + "\r\n", tuple(slots)))
        track(live, event, rel)
    if current:
        steps.append(Step(step_at, tuple(current), _live_channels(live, comp)))
    first = items[0][1]
    linkedid = str(first.get("Linkedid") or first.get("Uniqueid"))
    return Template(spec, tuple(steps), tuple(comp.slots), comp.index[(UID, linkedid)],
                    _talk_span(steps, items))


_TALK_ENDS = frozenset(("HangupRequest", "SoftHangupRequest", "Hangup", "BridgeLeave", "BlindTransfer",
                        "AttendedTransfer", "Hold"))


def _talk_span(steps: Sequence[Step], items: Sequence[tuple[float, dict[str, Any]]]) -> tuple[int, int] | None:
    """Where the first conversation starts (two channels in a bridge) and the step that ends it."""
    bridged = next((t - items[0][0] for t, e in items
                    if e.get("Event") == "BridgeEnter" and str(e.get("BridgeNumChannels")) == "2"), None)
    if bridged is None:
        return None
    start = max(i for i, s in enumerate(steps) if s.at <= bridged + 1e-9)
    for i in range(start + 1, len(steps)):
        if any(ev.name in _TALK_ENDS for ev in steps[i].events):
            return start, i
    return None


def read_records(path: Path) -> list[tuple[float, dict[str, Any]]]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if "event" in rec:
            out.append((float(rec["t"]), rec["event"]))
    return out


def load_template(name: str) -> Template:
    """Compile one scenario (transfers are built from the answered-call capture)."""
    spec = SCENARIOS[name]
    if name.endswith("_transfer"):
        records: Sequence[tuple[float, dict[str, Any]]] = build_transfer(
            name, read_records(DATA / "incoming_answered.jsonl"))
    else:
        records = read_records(DATA / f"{name}.jsonl")
    return compile_template(spec, records)
