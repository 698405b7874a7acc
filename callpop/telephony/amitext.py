"""Reading recorded AMI streams: raw AMI text, JSON lines, or one JSON list.

``callpop replay``, the simulated PBX and the benches all read the captures in
``tests/fixtures/ami/`` through :func:`iter_messages`, so a stream means the same thing
to each of them. Raw AMI is framed on bytes (a blank CRLF line ends a message) and each
whole message is decoded as UTF-8, so a Cyrillic caller name is never cut in two. A key
that repeats inside one message (``Variable`` in ``VarSet``-like events) becomes a list,
as in the ``.jsonl`` captures.

The clock that comes with each message is wall-clock epoch seconds when the source has one
(the ``.jsonl`` captures carry ``t``, monotonic seconds since connect, and ``wall``, the UTC
time; we anchor ``t`` on the first ``wall`` so differences are exact) and None otherwise
(raw AMI recorded with ``timestampevents = no`` has no clock at all).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any

__all__ = ["AmiMessage", "StreamFormatError", "iter_messages", "parse_message", "parse_text"]

AmiMessage = Mapping[str, "str | list[str]"]
"""One AMI message (event or response), AMI key names as received; read-only once parsed.
The one name for it everywhere: parser, pump, tracker."""
_Fields = dict[str, "str | list[str]"]
OnMalformed = Callable[[str], None]
OnTruncated = Callable[[int], None]

_BANNER = b"Asterisk Call Manager/"
_FRAME_END = re.compile(rb"\r?\n\r?\n")


class StreamFormatError(ValueError):
    """The bytes are not any of the stream formats we read (not one bad message: the whole file)."""


def parse_text(text: str, *, strict: bool = False) -> AmiMessage:
    """One decoded AMI message to a dict: the one parser the daemon and replay share.

    A key that repeats (``Variable``) becomes a list. A line that is not ``Key: value``
    (``Key:`` alone is an empty value) is skipped on a live socket (the banner), and with
    *strict* — recordings, where replay counts such messages as malformed — raises
    ValueError, as does an empty message. Lines may end in CRLF (the wire) or LF (a
    capture saved by an editor)."""
    message: _Fields = {}
    for line in text.split("\r\n") if "\r\n" in text else text.split("\n"):
        key, sep, value = line.partition(": ")
        if not sep:
            if not line:
                continue
            key, sep, value = line.partition(":")
            if not sep or not key or line.startswith(" "):
                if strict:
                    raise ValueError(f"not a 'Key: value' line: {line[:60]!r}")
                continue
        elif not key:
            if strict:
                raise ValueError(f"not a 'Key: value' line: {line[:60]!r}")
            continue
        old = message.get(key)
        if old is None:
            message[key] = value
        elif isinstance(old, list):
            old.append(value)
        else:
            message[key] = [old, value]
    if strict and not message:
        raise ValueError("empty message")
    return message


def parse_message(frame: bytes) -> AmiMessage:
    """One recorded AMI frame (without its blank line), strictly: see :func:`parse_text`.
    Undecodable bytes become U+FFFD rather than losing the message: a carrier's Latin-1
    caller name must not drop a Hangup."""
    return parse_text(frame.decode("utf-8", errors="replace"), strict=True)


def _iter_raw(data: bytes, on_malformed: OnMalformed | None, on_truncated: OnTruncated | None
              ) -> Iterator[tuple[AmiMessage, float | None]]:
    if data.startswith(_BANNER):
        _, _, data = data.partition(b"\n")
    good = bad = 0
    frames = data.split(b"\r\n\r\n") if b"\r\n\r\n" in data else _FRAME_END.split(data)
    if frames and frames[-1].strip():
        # bytes after the last blank line: a capture cut mid-message. The daemon's framer
        # never delivers such a message, so neither do we (its last lines may be missing).
        tail = frames.pop()
        if on_truncated is not None:
            on_truncated(len(tail))
    for frame in frames:
        if not frame.strip():
            continue
        try:
            message = parse_message(frame)
        except ValueError as exc:
            bad += 1
            if on_malformed is not None:
                on_malformed(str(exc))
            continue
        good += 1
        yield message, None
    if bad and not good:
        raise StreamFormatError("no AMI message in it (expected 'Key: value' lines ending in a blank line)")


def _event_of(record: Any) -> tuple[AmiMessage, Any, Any] | None:
    """A JSON record is either ``{"t", "wall", "event": {...}}`` or a bare event object."""
    if not isinstance(record, dict):
        return None
    inner = record.get("event")
    if isinstance(inner, dict):
        body, t, wall = inner, record.get("t"), record.get("wall")
    else:
        body, t, wall = record, None, None
    message: _Fields = {}
    for key, value in body.items():
        if isinstance(value, str):
            message[key] = value
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            message[key] = list(value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            message[key] = str(value)
        else:
            return None
    if not message or ("Event" not in message and "Response" not in message):
        return None  # every AMI message is an event or a response to an action
    return message, t, wall


_BAD_LINE = object()  # a JSON-lines line that does not parse


class _Clock:
    """Turns the ``t``/``wall`` of JSON records into epoch seconds."""

    def __init__(self) -> None:
        self.anchor: float | None = None  # wall - t of the first record that has both

    def __call__(self, t: Any, wall: Any) -> float | None:
        wall_s: float | None = None
        if isinstance(wall, str):
            try:
                wall_s = datetime.fromisoformat(wall).timestamp()
            except ValueError:
                wall_s = None
        if isinstance(t, int | float) and not isinstance(t, bool):
            if self.anchor is None and wall_s is not None:
                self.anchor = wall_s - float(t)
            return float(t) + (self.anchor or 0.0)
        return wall_s


def _iter_records(records: Iterator[Any], on_malformed: OnMalformed | None
                  ) -> Iterator[tuple[AmiMessage, float | None]]:
    clock = _Clock()
    for record in records:
        parsed = None if record is _BAD_LINE else _event_of(record)
        if parsed is None:
            if on_malformed is not None:
                on_malformed("line is not JSON" if record is _BAD_LINE
                             else f"not an AMI event object: {str(record)[:60]!r}")
            continue
        message, t, wall = parsed
        yield message, clock(t, wall)


def _json_lines(text: str) -> Iterator[Any]:
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except ValueError:
            yield _BAD_LINE


def iter_messages(data: bytes, on_malformed: OnMalformed | None = None,
                  on_truncated: OnTruncated | None = None) -> Iterator[tuple[AmiMessage, float | None]]:
    """Every message of a recorded stream with its clock (epoch seconds or None).

    The format is read from the content: ``[`` starts a JSON list, ``{`` JSON lines,
    anything else is raw AMI. A message that cannot be read is skipped and reported to
    *on_malformed*; raw AMI that ends without the blank line of its last message has that
    message dropped and its byte count reported to *on_truncated*; a file that is none of
    the formats raises StreamFormatError.
    """
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"[") or head.startswith(b"{"):
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StreamFormatError(f"JSON stream is not UTF-8: {exc}") from None
        if head.startswith(b"["):
            try:
                records = json.loads(text)
            except ValueError as exc:
                raise StreamFormatError(f"not a JSON list of events: {exc}") from None
            if not isinstance(records, list):
                raise StreamFormatError("not a JSON list of events")
            yield from _iter_records(iter(records), on_malformed)
            return
        yield from _iter_records(_json_lines(text), on_malformed)
        return
    if b"\x00" in head[:4096] or (head and b":" not in head[:200] and not head.startswith(_BANNER)):
        raise StreamFormatError("neither raw AMI (Key: value lines) nor JSON")
    yield from _iter_raw(head, on_malformed, on_truncated)

