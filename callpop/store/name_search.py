"""Name search that works as people type: any case, any word order, Cyrillic too.

"яковлев борис", "Борис Яковлев" and "БОРИС" all find "Яковлев Борис": every word of the
query must be in the name or the company, in any order. SQLite's ``lower()`` and ``LIKE``
fold ASCII only, so on SQLite the columns are folded by ``callpop_fold`` (Unicode case
folding in Python, registered on every connection by ``store.db``); PostgreSQL's
``lower()`` folds Cyrillic under any UTF-8 locale.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, or_

__all__ = ["MAX_WORDS", "words_match"]

MAX_WORDS = 6  # more words than a name and a company have only slow the scan down


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def words_match(query: str, dialect: str, name: Any, company: Any) -> ColumnElement[bool]:
    """True for a row whose *name* or *company* contains every word of *query*."""
    words = query.split()[:MAX_WORDS]
    if not words:
        return false()
    hits: list[ColumnElement[bool]] = []
    for word in words:
        if dialect == "sqlite":
            pattern = _like(word.casefold())
            hits.append(or_(func.callpop_fold(name).like(pattern, escape="\\"),
                            func.callpop_fold(company).like(pattern, escape="\\")))
        else:
            pattern = _like(word.lower())
            hits.append(or_(func.lower(name).like(pattern, escape="\\"),
                            func.lower(company).like(pattern, escape="\\")))
    return and_(*hits)
