"""A drill-down's rows as a person reads them: dates in the user's format, talk time as
m:ss, amounts grouped, words instead of codes, and no internal ids (the PBX's call key
means nothing to a manager). The store's rows stay plain for the API and tests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from callpop.server.l10n import Formats, talk_time
from callpop.store.kpi.drill import Drill

__all__ = ["CODED_COLUMNS", "HIDDEN_COLUMNS", "present"]

HIDDEN_COLUMNS = frozenset({"call", "answer_unseen", "end_unseen"})
CODED_COLUMNS = frozenset({"counted", "reason", "direction", "status", "source", "what"})
_MOMENTS = frozenset({"started", "date", "closed", "created", "due"})


def _moment(value: Any, f: Formats) -> str:
    if not isinstance(value, str) or not value:
        return "" if value is None else str(value)
    try:
        return f.moment(dt.datetime.strptime(value, "%Y-%m-%d %H:%M"))
    except ValueError:
        return value


def present(result: Drill, f: Formats, word: Callable[[str], str]) -> tuple[list[str], list[list[str]]]:
    """(shown columns, rows of display strings). *word* says a code ("inbound",
    "short_talk") in words, or returns it unchanged when it is not one."""
    keep = [i for i, col in enumerate(result.columns) if col not in HIDDEN_COLUMNS]
    unseen = [result.columns.index(c) for c in ("answer_unseen", "end_unseen") if c in result.columns]
    columns = [result.columns[i] for i in keep]
    rows: list[list[str]] = []
    for row in result.rows:
        out = []
        for i in keep:
            col, value = result.columns[i], row[i]
            if col in _MOMENTS:
                out.append(_moment(value, f))
            elif col == "talk_seconds":
                # an answer or end not seen: the talk is only known to be at least this long
                out.append(("≥ " if any(row[u] for u in unseen) else "") + talk_time(value))
            elif col == "amount":
                out.append("" if value in (None, "") else f.number(float(value)))
            elif col in CODED_COLUMNS:
                out.append(word(str(value)) if value is not None else "")
            else:
                out.append("" if value is None else str(value))
        rows.append(out)
    return columns, rows
