"""The journal's durable local queue: call rows that could not reach the database wait here.

When the database is unavailable (PostgreSQL restarting, SQLite locked or read-only), pops
go on and the journal's writes (a call's first ringing, its answer, its end) are appended
to this local SQLite file, in order, committed before they count as taken: a daemon killed
while the database is down loses none of them. When the database answers again they are
written in the same order; the journal's writes are upserts, so a write replayed after a
crash that came between the database commit and the spool's delete changes nothing.

The same file keeps the daemon's heartbeat: the last moment it was following calls, which
bounds when the calls it was following ended if it is killed (callpop/store/journal_recovery.py).

Plain ``sqlite3`` with synchronous calls: the writer runs them on a worker thread.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

from callpop.telephony.events import AgentTalk, Answered, Ended, Ringing

__all__ = ["Spool", "SpoolInUse", "SpooledJob", "decode_event", "encode_event"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL,
                                 client_id INTEGER, event TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value REAL NOT NULL);
"""
_EVENTS: dict[str, type[Any]] = {"ringing": Ringing, "answered": Answered, "ended": Ended}


def encode_event(event: Ringing | Answered | Ended) -> str:
    data = {f.name: getattr(event, f.name) for f in dataclasses.fields(event) if f.init}
    if isinstance(event, Ended):
        data["talks"] = [[t.agent, t.talk_seconds, t.at_most] for t in event.talks]
    return json.dumps({"type": event.event, **data}, ensure_ascii=False)


def decode_event(text: str) -> Ringing | Answered | Ended:
    data = json.loads(text)
    cls = _EVENTS[data.pop("type")]
    if cls is Ended:
        # [agent, seconds] before the upper bound was kept: a spool left by an older daemon
        data["talks"] = tuple(AgentTalk(t[0], int(t[1]), None if len(t) < 3 or t[2] is None else int(t[2]))
                              for t in data["talks"])
        for key in ("answered_by", "agents_rang"):
            data[key] = tuple(data[key])
    event: Ringing | Answered | Ended = cls(**data)
    return event


@dataclasses.dataclass(frozen=True, slots=True)
class SpooledJob:
    id: int
    kind: str
    client_id: int | None
    event: Ringing | Answered | Ended


class SpoolInUse(RuntimeError):
    """Another callpop process has this spool file open."""


class Spool:
    """The spool file; every method is synchronous and thread-safe (one lock).

    One process per file: two instances sharing a spool would write each other's calls
    and take each other's heartbeat for their own, so the file is locked (``PATH.lock``,
    an flock released when the process ends, killed or not) and a second opener refused."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._owner = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._owner, 32, 0).decode("ascii", "replace").strip() or "?"
            os.close(self._owner)
            raise SpoolInUse(f"[journal] spool_path {self.path} is in use by another callpop process (pid "
                             f"{holder}): give each instance its own spool_path") from None
        os.ftruncate(self._owner, 0)
        os.pwrite(self._owner, f"{os.getpid()}\n".encode("ascii"), 0)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # WAL with NORMAL: a commit survives the daemon being killed (the OS has it); only a
        # power cut may lose the last ones
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()
            if self._owner >= 0:
                os.close(self._owner)  # releases the flock
                self._owner = -1

    def append(self, jobs: list[tuple[str, int | None, Ringing | Answered | Ended]]) -> list[int]:
        """Keep *jobs*, in order, in one transaction; returns their ids."""
        ids: list[int] = []
        with self._lock, self._db:
            for kind, client_id, event in jobs:
                cur = self._db.execute("INSERT INTO jobs (kind, client_id, event) VALUES (?, ?, ?)",
                                       (kind, client_id, encode_event(event)))
                ids.append(int(cur.lastrowid or 0))
        return ids

    def head(self, limit: int) -> list[SpooledJob]:
        with self._lock:
            rows = self._db.execute("SELECT id, kind, client_id, event FROM jobs ORDER BY id LIMIT ?",
                                    (limit,)).fetchall()
        return [SpooledJob(r[0], r[1], r[2], decode_event(r[3])) for r in rows]

    def delete(self, ids: list[int]) -> None:
        with self._lock, self._db:
            self._db.executemany("DELETE FROM jobs WHERE id = ?", [(i,) for i in ids])

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM jobs").fetchone()[0])

    def beat(self, epoch: float) -> None:
        with self._lock, self._db:
            self._db.execute("INSERT INTO state (key, value) VALUES ('heartbeat', ?) "
                             "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (epoch,))

    def last_beat(self) -> float | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM state WHERE key = 'heartbeat'").fetchone()
        return None if row is None else float(row[0])
