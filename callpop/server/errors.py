"""Which HTTP status a domain error becomes: one table, looked up along the class hierarchy.

Every error a caller can cause derives from ``callpop.store.errors.StoreError``; a subclass
without its own entry inherits its nearest base's status. The API handlers (``api_base``)
and the error middleware both ask ``status_for``; nothing matches class names as text.

A request the web layer turns down itself (no login, a role, a CSRF token, a bad query of a
page, too many tabs) raises a :class:`Refusal`: the same one path as a domain error, so a
person reads it in their language and a program gets the same JSON shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from callpop.store.errors import Conflict, Forbidden, NotFound, StoreError, ValidationError

__all__ = ["STATUS", "Refusal", "status_for"]


class Refusal(Exception):
    """The server refuses a request: *status*, the English text (a message id of the
    catalogs, with ``%(name)s`` filled from *params*), the *field* at fault if any.

    ``str()`` is the English text for programs and logs; ``error_text.refusal_text`` says it
    in the user's language. Raise it from a handler or a middleware; the error middleware
    answers JSON to scripts and a page to a browser."""

    def __init__(self, status: int, message: str, *, field: str | None = None,
                 headers: Mapping[str, str] | None = None, **params: object) -> None:
        self.status = status
        self.message_id = message
        self.params = params
        self.field = field
        self.headers = dict(headers or {})
        super().__init__(message % params if params else message)

STATUS: Final[dict[type[Exception], int]] = {
    ValidationError: 422,
    NotFound: 404,
    Forbidden: 403,
    Conflict: 409,
    StoreError: 400,
}


def status_for(exc: BaseException, *, published: bool = True) -> int | None:
    """The status of a domain error, or None when *exc* is not one (a bug: answer 500).

    422 says "well-formed, but a field fails the schema published in the OpenAPI document";
    only the declared API operations publish one, so elsewhere (pages, forms, the
    middleware's catch-all) the same error is a plain 400 (*published* false).
    """
    if isinstance(exc, Refusal):
        return exc.status
    for cls in type(exc).__mro__:
        status = STATUS.get(cls)
        if status is not None:
            return 400 if status == 422 and not published else status
    return None
