"""Logging set-up for the long-running commands (run, demo, simulate).

``text``: ``time level logger message`` with the key=value pairs the modules already write
into their messages, for a person reading a terminal. ``json``: one object per line for a
log shipper, with a ``call`` field on every line written while handling a call (the call
id the desk and the journal use), so an operator can pull one call's whole story out of
the log with one filter. The pipeline's per-call worker, its early lookup and the journal
writer set the call with :func:`call_context`; a context variable carries it into every
module they call. Either way the log never carries secrets: modules log logins, call ids
and counts, never passwords, cookies or AMI secrets.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import TextIO

from callpop.settings import LoggingSettings

__all__ = ["CALL_ID", "PBX_ID", "CallIdFilter", "JsonFormatter", "TextFormatter", "Throttle", "call_context",
           "pbx_context", "setup_logging"]

_TEXT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
CALL_ID: ContextVar[str | None] = ContextVar("callpop_call", default=None)
# With several PBXs ([ami.NAME]), the PBX a connection's task (and what it calls) works for.
PBX_ID: ContextVar[str | None] = ContextVar("callpop_pbx", default=None)


@contextlib.contextmanager
def call_context(call: str) -> Iterator[None]:
    """Every log line written inside is about *call*."""
    token = CALL_ID.set(call)
    try:
        yield
    finally:
        CALL_ID.reset(token)


@contextlib.contextmanager
def pbx_context(pbx: str) -> Iterator[None]:
    """Every log line written inside (and in the tasks started inside) is about PBX *pbx*."""
    token = PBX_ID.set(pbx)
    try:
        yield
    finally:
        PBX_ID.reset(token)


class CallIdFilter(logging.Filter):
    """Puts the current call (if any) on the record as ``call``, and the PBX as ``pbx``;
    ``extra={"call": ...}`` wins."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "call", None) is None:
            record.call = CALL_ID.get()
        if getattr(record, "pbx", None) is None:
            record.pbx = PBX_ID.get()
        return True


class TextFormatter(logging.Formatter):
    """The human format, with ``pbx=NAME`` after the message when several PBXs are followed."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        text = super().formatMessage(record)
        pbx = getattr(record, "pbx", None)
        return f"{text} pbx={pbx}" if pbx is not None else text


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, msg (+ exc when there is one)."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        call = getattr(record, "call", None)
        if call is not None:
            data["call"] = str(call)
        pbx = getattr(record, "pbx", None)
        if pbx is not None:
            data["pbx"] = str(pbx)
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


def setup_logging(settings: LoggingSettings, stream: TextIO | None = None) -> None:
    """Replace the root handlers with one configured from [logging]."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(CallIdFilter())
    if settings.format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter(_TEXT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.level)
    # aiohttp's access log is one line per request: useful at DEBUG only
    logging.getLogger("aiohttp.access").setLevel(logging.DEBUG if settings.level == "DEBUG" else logging.WARNING)
    # Alembic narrates every plugin it loads at INFO; callpop logs the upgrade itself
    logging.getLogger("alembic").setLevel(logging.DEBUG if settings.level == "DEBUG" else logging.WARNING)


class Throttle:
    """Repeated log lines at most once per *interval* per key, with a count of the rest.

    A flood (a hundred thousand callers, a database that stopped answering) must not turn
    into a hundred thousand tracebacks: the first line of a kind is written as usual, the
    next ones within *interval* seconds are only counted, and the first one after it says
    how many were held back. Different keys (call ids are not keys: the kind of failure is)
    never hide each other.
    """

    def __init__(self, logger: logging.Logger, interval: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._log = logger
        self._interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def log(self, level: int, key: str, msg: str, *args: object, exc_info: bool = False) -> bool:
        """Write the line unless one of this *key* was written less than *interval* ago;
        returns whether it was written."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        self._last[key] = now
        held = self._held.pop(key, 0)
        if held:
            msg += f" (and {held} more like it in the last {self._interval:g} s)"
        self._log.log(level, msg, *args, exc_info=exc_info, stacklevel=2)
        return True

    def held(self, key: str) -> int:
        """Lines of *key* counted but not yet reported."""
        return self._held.get(key, 0)
