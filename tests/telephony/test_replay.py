"""``callpop replay`` as a user runs it, and the stream reader under it."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from callpop.telephony.amitext import StreamFormatError, iter_messages, parse_message
from tests.support.captures import EXPECTED, capture, expected, without_talk
from tests.support.paths import ROOT


def replay(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "callpop", "replay", *map(str, args)],
                          capture_output=True, text=True, encoding="utf-8", cwd=ROOT, timeout=60)


def lines(stdout: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_json_lines_capture_prints_the_expected_events_exactly() -> None:
    done = replay(capture("sip-09a-cid-cyrillic", "jsonl"))
    assert done.returncode == 0, done.stderr
    assert done.stdout == (EXPECTED / "sip-09a-cid-cyrillic.jsonl").read_text(encoding="utf-8")
    assert done.stderr == ""


def test_raw_capture_and_json_list(tmp_path: Path) -> None:
    raw = replay(capture("04-ring-group", "ami"))
    assert raw.returncode == 0, raw.stderr
    assert without_talk(lines(raw.stdout)) == without_talk(expected("04-ring-group"))
    text = capture("05-queue-answered", "jsonl").read_text(encoding="utf-8")
    bare = [json.loads(line)["event"] for line in text.splitlines()]
    listed = tmp_path / "events.json"
    listed.write_text(json.dumps(bare, ensure_ascii=False), encoding="utf-8")
    done = replay(listed)
    assert done.returncode == 0, done.stderr
    assert without_talk(lines(done.stdout)) == without_talk(expected("05-queue-answered"))


def test_settings_agents_table_names_the_agent(tmp_path: Path) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text('[agents]\n"PJSIP/101" = "7001"\n', encoding="utf-8")
    done = replay(capture("sip-01-incoming-answered", "jsonl"), "--settings", settings)
    assert done.returncode == 0, done.stderr
    assert [e.get("agent") for e in lines(done.stdout)] == ["7001", "7001", None]
    assert lines(done.stdout)[-1]["answered_by"] == ["7001"]


def test_unreadable_or_undecodable_file_fails_with_one_line(tmp_path: Path) -> None:
    missing = replay(tmp_path / "nope.ami")
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr.startswith("replay: cannot read") and missing.stderr.count("\n") == 1
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(bytes(range(256)) * 4)
    bad = replay(garbage)
    assert bad.returncode == 1 and "not an AMI stream" in bad.stderr


def test_malformed_messages_are_skipped_and_counted(tmp_path: Path) -> None:
    data = capture("01-incoming-answered", "ami").read_bytes()
    first_event = data.index(b"Event: Newchannel")
    broken = data[:first_event] + b"this is not a header\r\n\r\nEvent: Hangup\r\n\r\n" + data[first_event:]
    path = tmp_path / "broken.ami"
    path.write_bytes(broken)
    done = replay(path)
    assert done.returncode == 0
    assert without_talk(lines(done.stdout)) == without_talk(expected("01-incoming-answered"))
    # one frame is not AMI at all; the Hangup names no channel
    assert done.stderr == "replay: skipped 2 malformed messages\n"


# --- the reader -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["09a-cid-cyrillic", "sip-11-coreshowchannels-midcall"])
def test_raw_and_json_lines_captures_hold_the_same_messages(name: str) -> None:
    raw = [m for m, clock in iter_messages(capture(name, "ami").read_bytes()) if clock is None]
    timed = list(iter_messages(capture(name, "jsonl").read_bytes()))
    assert raw == [m for m, _ in timed]
    clocks = [c for _, c in timed]
    present = [c for c in clocks if c is not None]
    assert present == clocks and present == sorted(present)


def test_json_lines_clock_is_wall_time_with_monotonic_steps() -> None:
    data = capture("01-incoming-answered", "jsonl").read_bytes()
    first = json.loads(data.splitlines()[0])
    (_, clock), *_ = iter_messages(data)
    assert clock == pytest.approx(datetime.fromisoformat(first["wall"]).timestamp(), abs=1e-3)


def test_raw_frames_decode_whole_messages_and_keep_repeated_keys() -> None:
    name = "Иван Петров".encode()
    frame = b"Event: VarSet\r\nVariable: A=1\r\nVariable: B=2\r\nCallerIDName: " + name + b"\r\nEmpty: "
    assert parse_message(frame) == {"Event": "VarSet", "Variable": ["A=1", "B=2"],
                                    "CallerIDName": "Иван Петров", "Empty": ""}
    stream = b"Asterisk Call Manager/11.0.0\r\n" + frame + b"\r\n\r\nEvent: X\r\n\r\n"
    assert [m["Event"] for m, _ in iter_messages(stream)] == ["VarSet", "X"]


def test_json_lines_bad_line_is_reported_not_fatal() -> None:
    data = b'{"Event": "A"}\nnot json\n{"t": 1.0, "event": {"Event": "B"}}\n[1]\n'
    bad: list[str] = []
    assert [(m["Event"], c) for m, c in iter_messages(data, bad.append)] == [("A", None), ("B", 1.0)]
    assert len(bad) == 2


def test_json_list_that_does_not_parse_is_a_format_error() -> None:
    with pytest.raises(StreamFormatError):
        list(iter_messages(b'[{"Event": "A"},'))


def test_json_objects_that_are_not_ami_messages_are_counted_as_malformed(tmp_path: Path) -> None:
    text = capture("01-incoming-answered", "jsonl").read_text(encoding="utf-8")
    first, rest = text.split("\n", 1)
    path = tmp_path / "odd.jsonl"
    path.write_text(first + '\n{"a": 1}\n{"t": 0.5, "event": {"Channel": "PJSIP/1-0001"}}\n' + rest,
                    encoding="utf-8")
    done = replay(path)
    assert done.returncode == 0, done.stderr
    assert lines(done.stdout) == expected("01-incoming-answered")
    assert done.stderr == "replay: skipped 2 malformed messages\n"


def test_raw_capture_cut_mid_message_is_reported(tmp_path: Path) -> None:
    data = capture("01-incoming-answered", "ami").read_bytes()
    cut = data + b"Event: Newchannel\r\nChannel: PJSIP/trunk-00"
    path = tmp_path / "cut.ami"
    path.write_bytes(cut)
    done = replay(path)
    assert done.returncode == 0, done.stderr
    assert without_talk(lines(done.stdout)) == without_talk(expected("01-incoming-answered"))
    assert done.stderr == ("replay: the stream ends in the middle of a message; "
                           f"ignored {len(cut) - len(data)} bytes\n")
    whole = replay(capture("01-incoming-answered", "ami"))
    assert whole.stderr == ""
