"""What one URL of callpop is: method, path, handler, name, whether it needs a login, and,
for the JSON API, what the OpenAPI document says about it.

``routes.ROUTES`` is the one list of these; the aiohttp router and ``/api/openapi.json`` are
both built from it, so a route cannot be served without being described or the reverse.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from callpop.store.records.validation import Schema

__all__ = ["ApiDoc", "Handler", "Route", "endpoint", "page"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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


@dataclass(frozen=True, slots=True)
class Route:
    """One entry of the route list."""

    method: str
    path: str
    handler: Handler
    name: str | None = None
    #: answers without a login (the login form, health, the API's own description)
    public: bool = False
    #: set on every ``/api`` route; the OpenAPI document is built from it
    doc: ApiDoc | None = None

    @property
    def api(self) -> bool:
        return self.path.startswith("/api/")

    @property
    def operation_id(self) -> str:
        return self.handler.__name__


def page(method: str, path: str, handler: Handler, name: str | None = None, *, public: bool = False) -> Route:
    """A page, form or socket route (not in the OpenAPI document)."""
    return Route(method, path, handler, name, public)


def endpoint(method: str, path: str, handler: Handler, summary: str, tag: str, *, name: str | None = None,
             public: bool = False,
             body: Schema | None = None, query: Schema | None = None, response: Schema | None = None,
             paged: bool = False, status: int = 200, response_doc: dict[str, Any] | None = None) -> Route:
    """An ``/api`` route with the operation the OpenAPI document publishes for it."""
    return Route(method, path, handler, name, public,
                 ApiDoc(summary, tag, body, query, response, paged, status, response_doc))
