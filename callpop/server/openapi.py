"""The OpenAPI 3.1 document of ``/api/``, generated from the route list (``routes.ROUTES``).

Each ``/api`` route names its handler together with the schemas the handler validates
with (``store/records/schemas.py``); the document is built from those same objects, so what is
published is what is enforced. A test checks that every ``/api`` route of the running
application appears here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from callpop.server.routing import ApiDoc, Route
from callpop.store.records.validation import Schema

__all__ = ["ERROR_SCHEMA", "build_document", "openapi_path"]

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "error": {"type": "string", "description": "what is wrong, in English: for programs and logs"},
        "field": {"type": ["string", "null"],
                  "description": "the input field at fault, e.g. due_at or phones[0].number"},
        "message": {"type": "string",
                    "description": "the same for a person, in the user's language, naming the field by its label"},
    },
    "required": ["error", "message"],
}
_ERRORS = {
    "401": "not logged in",
    "403": "CSRF token missing, or not allowed (e.g. a colleague's promise)",
    "404": "no such record",
    "409": "conflicts with stored data (duplicate number or external id)",
    "422": "a field is missing or wrong; `field` names it",
}


# aiohttp's variable with a pattern, which may hold braces itself: {id:\d{1,10}}
_VARIABLE = re.compile(r"\{(\w+)(?::(?:[^{}]|\{[^{}]*\})*)?\}")


def _path_params(path: str) -> list[dict[str, Any]]:
    return [{"name": name, "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
            for name in _VARIABLE.findall(path)]


def openapi_path(path: str) -> str:
    """aiohttp's ``{id:\\d+}`` is OpenAPI's ``{id}``."""
    return _VARIABLE.sub(r"{\1}", path)


def _ref(schema: Schema) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{schema.name}"}


def _operation(route: Route, ep: ApiDoc, schemas: dict[str, Any]) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": route.operation_id, "summary": ep.summary, "tags": [ep.tag]}
    params = _path_params(route.path)
    if ep.query is not None:
        for f in ep.query.fields:
            params.append({"name": f.name, "in": "query", "required": f.required, "schema": f.json_schema()})
    if ep.idempotent:
        params.append({"name": "Idempotency-Key", "in": "header", "required": False,
                       "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{8,64}$"},
                       "description": "a random id for this content (a UUID): the same request sent again "
                                      "with it, to any instance, answers 200 with the record the first made "
                                      "instead of storing a copy"})
    if params:
        op["parameters"] = params
    for schema in (ep.body, ep.response):
        if schema is not None:
            _collect(schema, schemas)
    if ep.body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(ep.body)}}}
    if ep.response_doc is not None:
        content: dict[str, Any] | None = ep.response_doc
    elif ep.response is None:
        content = None
    elif ep.paged:
        content = {"type": "object", "required": ["items", "total", "limit", "offset"], "properties": {
            "items": {"type": "array", "items": _ref(ep.response)}, "total": {"type": "integer"},
            "limit": {"type": "integer"}, "offset": {"type": "integer"}}}
    else:
        content = _ref(ep.response)
    ok: dict[str, Any] = {"description": "OK" if ep.status != 201 else "created"}
    if content is not None:
        ok["content"] = {"application/json": {"schema": content}}
    responses: dict[str, Any] = {str(ep.status): ok}
    if ep.idempotent:
        responses["200"] = {"description": "made before by a request with this Idempotency-Key",
                            "content": ok.get("content", {})}
    for code, text in _ERRORS.items():
        if code == "403" and route.method == "GET":
            continue
        responses[code] = {"description": text, "content": {"application/json": {"schema": {
            "$ref": "#/components/schemas/Error"}}}}
    op["responses"] = responses
    return op


def _collect(schema: Schema, into: dict[str, Any]) -> None:
    into[schema.name] = schema.json_schema()
    for f in schema.fields:
        if f.items is not None:
            _collect(f.items, into)


def build_document(routes: Sequence[Route], *, version: str = "0.1.0") -> dict[str, Any]:
    """The document of every route that carries an ``ApiDoc``."""
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
    paths: dict[str, Any] = {}
    for route in routes:
        if route.doc is not None:
            paths.setdefault(openapi_path(route.path), {})[route.method.lower()] = _operation(route, route.doc, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "callpop API",
            "version": version,
            "description": (
                "Clients, phones, agreements, promises, notes, payments and receivables of callpop. "
                "Log in at /login (session cookie); every POST/PATCH/DELETE sends the session's CSRF token "
                "in the X-CSRF-Token header (GET /api/me returns it). Times are ISO 8601; a time without "
                "an offset is the company's local time ([kpi] timezone). Amounts are decimal strings."),
        },
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {"session": {"type": "apiKey", "in": "cookie", "name": "callpop_session"}},
        },
        "security": [{"session": []}],
    }
