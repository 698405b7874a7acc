"""Logging set-up for the long-running commands (run, demo, simulate).

``text``: ``time level logger message`` with the key=value pairs the modules already write
into their messages, for a person reading a terminal. ``json``: one object per line for a
log shipper. Either way the log never carries secrets: modules log logins, call ids and
counts, never passwords, cookies or AMI secrets.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import TextIO

from callpop.settings import LoggingSettings

__all__ = ["JsonFormatter", "setup_logging"]

_TEXT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, msg (+ exc when there is one)."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


def setup_logging(settings: LoggingSettings, stream: TextIO | None = None) -> None:
    """Replace the root handlers with one configured from [logging]."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if settings.format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(_TEXT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.level)
    # aiohttp's access log is one line per request: useful at DEBUG only
    logging.getLogger("aiohttp.access").setLevel(logging.DEBUG if settings.level == "DEBUG" else logging.WARNING)
    # Alembic narrates every plugin it loads at INFO; callpop logs the upgrade itself
    logging.getLogger("alembic").setLevel(logging.DEBUG if settings.level == "DEBUG" else logging.WARNING)
