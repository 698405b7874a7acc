"""What one URL of callpop is: method, path, handler, name, who may call it, and, for the
JSON API, what the OpenAPI document says about it.

``routes.ROUTES`` is the one list of these; the aiohttp router and ``/api/openapi.json`` are
both built from it, so a route cannot be served without being described or the reverse.
``access`` is required on every route and enforced where the router is built (``guarded``),
before the handler runs: a handler that forgot its ``require_user`` still cannot leak. The
finer rules (a colleague's record, money) stay in the store; the authorization matrix test
checks the answers of every route for every kind of user.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web

from callpop.store.records.validation import Schema

__all__ = ["Access", "ApiDoc", "Handler", "Route", "endpoint", "guarded", "page"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: anyone (the login form, health, the API's own description), any logged-in employee, or
#: supervisors and admins only
Access = Literal["anyone", "employee", "supervisor"]
SUPERVISOR_ROLES = ("supervisor", "admin")


@dataclass(frozen=True, slots=True)
class ApiDoc:
    """The OpenAPI operation of an ``/api`` route: the schemas its handler validates with."""

    summary: str
    tag: str
    body: Schema | None = None
    query: Schema | None = None
    response: Schema | None = None
    paged: bool = False
    status: int = 200
    response_doc: dict[str, Any] | None = None
    #: takes an ``Idempotency-Key`` header: sent again, it answers with what the first made
    idempotent: bool = False


@dataclass(frozen=True, slots=True)
class Route:
    """One entry of the route list."""

    method: str
    path: str
    handler: Handler
    access: Access
    name: str | None = None
    #: set on every ``/api`` route; the OpenAPI document is built from it
    doc: ApiDoc | None = None

    @property
    def public(self) -> bool:
        """Answers without a login."""
        return self.access == "anyone"

    @property
    def api(self) -> bool:
        return self.path.startswith("/api/")

    @property
    def operation_id(self) -> str:
        return self.handler.__name__


def page(method: str, path: str, handler: Handler, name: str | None = None, *, access: Access) -> Route:
    """A page, form or socket route (not in the OpenAPI document)."""
    return Route(method, path, handler, access, name)


def guarded(route: Route) -> Handler:
    """The route's handler behind its ``access``: not logged in is a redirect to the login
    form (pages) or 401 (API, socket); the wrong role is 403."""
    if route.access == "anyone":
        return route.handler
    from callpop.server.auth import require_role, require_user

    handler = route.handler

    async def guard(request: web.Request) -> web.StreamResponse:
        if route.access == "supervisor":
            require_role(request, *SUPERVISOR_ROLES)
        else:
            require_user(request)
        return await handler(request)

    guard.__name__ = guard.__qualname__ = handler.__name__
    return guard


def endpoint(method: str, path: str, handler: Handler, summary: str, tag: str, *, access: Access,
             name: str | None = None,
             body: Schema | None = None, query: Schema | None = None, response: Schema | None = None,
             paged: bool = False, status: int = 200, response_doc: dict[str, Any] | None = None,
             idempotent: bool = False) -> Route:
    """An ``/api`` route with the operation the OpenAPI document publishes for it."""
    return Route(method, path, handler, access, name,
                 ApiDoc(summary, tag, body, query, response, paged, status, response_doc, idempotent))
