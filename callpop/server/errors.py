"""Which HTTP status a domain error becomes: one table, looked up along the class hierarchy.

Every error a caller can cause derives from ``callpop.store.errors.StoreError``; a subclass
without its own entry inherits its nearest base's status. The API handlers (``api_base``)
and the error middleware both ask ``status_for``; nothing matches class names as text.
"""

from __future__ import annotations

from typing import Final

from callpop.store.errors import Conflict, Forbidden, NotFound, StoreError, ValidationError

__all__ = ["STATUS", "status_for"]

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
    for cls in type(exc).__mro__:
        status = STATUS.get(cls)
        if status is not None:
            return 400 if status == 422 and not published else status
    return None
