"""Statements compiled once and run straight on the sqlite3 connection.

A card lookup is five indexed statements whose SQLite work is ~15 µs each; SQLAlchemy's
execution path (parameter processing, cursor wrapping, result metadata) costs several
times that per statement, in Python, on the hot path of every pop. For the handful of
fixed statements the lookup runs, we compile the SQL once, remember the positional order
of its parameters and the result processors of its columns (so times still come back as
aware UTC datetimes and money as Decimal), and execute on the driver connection. Other
backends, and anything not prepared here, go through SQLAlchemy as usual.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import CompoundSelect, Select
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection

__all__ = ["Prepared", "execute"]

_DIALECT = sqlite.dialect()


@dataclass(frozen=True, slots=True)
class Prepared:
    """One statement, ready for the sqlite3 driver."""

    statement: Select[Any] | CompoundSelect[Any]
    sql: str
    order: tuple[str, ...]
    fixed: Mapping[str, Any]
    processors: tuple[Callable[[Any], Any] | None, ...]

    @classmethod
    def of(cls, statement: Select[Any] | CompoundSelect[Any]) -> Prepared:
        compiled = statement.compile(dialect=_DIALECT)
        if compiled.positiontup is None:  # pragma: no cover - the sqlite dialect is positional
            raise RuntimeError("expected a positional (qmark) compilation")
        if any(bp.expanding for bp in compiled.binds.values()):
            raise ValueError("expanding IN parameters cannot be prepared; use SQLAlchemy")
        processors = tuple(
            col.type.dialect_impl(_DIALECT).result_processor(_DIALECT, None)
            for col in statement.selected_columns)
        return cls(statement=statement, sql=str(compiled), order=tuple(compiled.positiontup),
                   fixed={name: bp.effective_value for name, bp in compiled.binds.items() if not bp.required},
                   processors=processors)

    def rows(self, conn: Connection, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Run on *conn*: raw on SQLite, through SQLAlchemy on anything else."""
        if conn.dialect.name != "sqlite":
            return [tuple(r) for r in conn.execute(self.statement, dict(params))]
        values = {**self.fixed, **params}
        raw = conn.connection.driver_connection
        assert raw is not None
        fetched = raw.execute(self.sql, [values[name] for name in self.order]).fetchall()
        procs = self.processors
        if not any(procs):
            return fetched  # type: ignore[no-any-return]
        return [tuple(p(v) if p is not None else v for p, v in zip(procs, row, strict=True)) for row in fetched]


def execute(conn: Connection, prepared: Prepared, params: Mapping[str, Any]) -> Sequence[tuple[Any, ...]]:
    return prepared.rows(conn, params)
