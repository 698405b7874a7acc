"""Saving a promise, agreement or note once, however often the desk sends it.

A desk that sent a save and never heard back cannot know whether it was stored: its
instance may have died after the commit, or the answer may have been lost on the way. It
sends the same request again, to the same instance or to another one, with the same
``Idempotency-Key`` (a random id the browser made for that content). The key is stored on
the row, unique per author, so the second request finds the first one's row and answers
with it instead of adding a copy; two requests racing on two instances meet at the unique
index and the loser answers with the winner's row. A key is one employee's: the same key
from a colleague is a different save. A key sent again with a different client or text is
a mistake of the caller, refused rather than answered with a row that is not what it sent.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from callpop.settings import Settings
from callpop.store.errors import Conflict, ValidationError
from callpop.store.records.sales import MODELS, Actor, author_column, create_record, get_record, parse_context
from callpop.store.records.schemas import RESOURCES

__all__ = ["IDEMPOTENT_KINDS", "KEY_HEADER", "create_once", "valid_key"]

KEY_HEADER = "Idempotency-Key"
#: what the desk writes after a call; money rows come from supervisors and 1C
IDEMPOTENT_KINDS = frozenset({"promise", "agreement", "note"})
_KEY = re.compile(r"[A-Za-z0-9_.:-]{8,64}")
# what identifies the content: a key sent again with other values here is refused
_CONTENT = {"promise": ("client_id", "text"), "agreement": ("client_id", "title"), "note": ("client_id", "text")}


def valid_key(raw: str) -> str:
    """The key as sent, or a ``ValidationError`` naming the header."""
    key = raw.strip()
    if not _KEY.fullmatch(key):
        raise ValidationError(KEY_HEADER, "expected 8 to 64 letters, digits or - _ . : (a UUID, say)")
    return key


async def _earlier(session: AsyncSession, kind: str, actor: Actor, key: str) -> Any:
    model: Any = MODELS[kind]
    author = getattr(model, author_column(kind) or "")
    return (await session.execute(select(model).where(author == actor.id, model.idempotency_key == key))).scalar()


def _check_same(kind: str, row: Any, data: object, settings: Settings) -> None:
    values = RESOURCES[kind].create.parse(data, parse_context(settings))
    for name in _CONTENT[kind]:
        if values.get(name) != getattr(row, name):
            raise Conflict(KEY_HEADER, f"this key already saved {kind} {row.id} with another {name}: "
                                       f"send a new key for new content")


async def create_once(session: AsyncSession, kind: str, data: object, actor: Actor, settings: Settings,
                      key: str, *, now: dt.datetime | None = None) -> tuple[dict[str, Any], bool]:
    """The record *key* created, made now if it is new; and whether it was made now. The
    request's first write: a lost race rolls back *session*'s transaction."""
    assert kind in IDEMPOTENT_KINDS, kind
    row = await _earlier(session, kind, actor, key)
    if row is None:
        try:
            return await create_record(session, kind, data, actor, settings, now=now, idempotency_key=key), True
        except IntegrityError:
            # another copy saved it meanwhile (it held the unique index until it committed).
            # The whole transaction goes back, not a savepoint: on SQLite a savepoint's
            # reads would pin a snapshot its insert then could not write on.
            await session.rollback()
            row = await _earlier(session, kind, actor, key)
            if row is None:
                raise
    _check_same(kind, row, data, settings)
    return await get_record(session, kind, row.id, now=now), False
