"""The manager's own API shortcuts: who am I, my due promises, a client's card and its
history pages, and click-to-call.

Click-to-call rings the manager's *own* phone first and then dials the client (AMI
Originate): the device is the ``[agents]`` entry mapped to the manager's extension, or
``PJSIP/<extension>`` when there is none; the number, the context and the caller IDs
follow ``[dialing]`` (callpop/dialing.py). A manager without an extension cannot originate.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from callpop.dialing import originate_plan, pbx_of
from callpop.phones import may_dial, phone_key
from callpop.server.api_base import actor_of, json_response, path_id, read_json, session_for, translate_errors
from callpop.server.auth import csrf_token, require_user
from callpop.server.errors import Refusal
from callpop.server.keys import SETTINGS, connections
from callpop.store import directory, employees
from callpop.store.errors import Conflict, Forbidden, NotFound, ValidationError
from callpop.store.records import sales
from callpop.store.records.validation import Field, Schema

__all__ = [
    "CARD_DOC", "HISTORY_DOC", "HISTORY_QUERY", "LOOKUP_DOC", "LOOKUP_QUERY", "ME_OUT", "ME_PATCH", "ORIGINATE_IN",
    "ORIGINATE_OUT", "client_card", "client_history", "due_promises", "get_me", "lookup", "originate", "update_me",
]

log = logging.getLogger(__name__)

LANGUAGES = ("ru", "en")
ME_OUT = Schema("Me", (
    Field("id", "id", read_only=True), Field("login", "string", read_only=True),
    Field("name", "string", read_only=True), Field("role", "string", "manager | supervisor | admin", read_only=True),
    Field("extensions", "list", read_only=True), Field("language", "string", read_only=True),
    Field("csrf_token", "string", "send it back in X-CSRF-Token with every write", read_only=True),
))
ME_PATCH = Schema("MePatch", (Field("language", "choice", "UI language", required=True, choices=LANGUAGES),))
ORIGINATE_IN = Schema("OriginateInput", (
    Field("client_phone", "phone", "the number to call", required=True, max_length=64),
))
ORIGINATE_OUT = Schema("OriginateResult", (
    Field("status", "string", "queued: your phone rings, then the client's", read_only=True),
    Field("channel", "string", "your device", read_only=True),
    Field("number", "string", "what is dialled", read_only=True),
))
HISTORY_QUERY = Schema("HistoryQuery", (
    Field("section", "choice", required=True, choices=("promises", "agreements", "calls", "notes")),
    Field("offset", "int", minimum=0, maximum=1_000_000),
    Field("limit", "int", minimum=1, maximum=100),
))
LOOKUP_QUERY = Schema("LookupQuery", (
    Field("number", "string", "a caller's number as the PBX or a person writes it", required=True, max_length=64),
))
LOOKUP_DOC: dict[str, Any] = {"type": "object", "required": ["number", "e164", "looked_up", "matches"],
                               "properties": {
    "number": {"type": "string"}, "e164": {"type": ["string", "null"]},
    "looked_up": {"type": "boolean", "description": "false for withheld, short or unreadable numbers"},
    "matches": {"type": "array", "items": {"type": "object"},
                "description": "the ClientCards (as in the pop); several when the number is shared"}}}
CARD_DOC: dict[str, Any] = {"type": "object", "description": (
    "The ClientCard of docs/websocket.md: client, status, responsible, phones, open promises "
    "(overdue first), agreements, last_calls, notes; *_more says a section has more (see /history).")}
HISTORY_DOC: dict[str, Any] = {"type": "object", "properties": {
    "items": {"type": "array", "items": {"type": "object"}}, "has_more": {"type": "boolean"}}}


def _me_json(request: web.Request) -> dict[str, Any]:
    user = require_user(request)
    return ME_OUT.dump({"id": user.id, "login": user.login, "name": user.name, "role": user.role,
                        "extensions": list(user.extensions), "language": user.language,
                        "csrf_token": csrf_token(request)})


@translate_errors
async def get_me(request: web.Request) -> web.StreamResponse:
    return json_response(_me_json(request))


@translate_errors
async def update_me(request: web.Request) -> web.StreamResponse:
    actor = actor_of(request)
    values = ME_PATCH.parse(await read_json(request), sales.parse_context(request.app[SETTINGS]))
    async with session_for(request) as s:
        await employees.set_language(s, actor.id, values["language"])
    data = _me_json(request)
    data["language"] = values["language"]
    return json_response(data)


@translate_errors
async def due_promises(request: web.Request) -> web.StreamResponse:
    user = require_user(request)
    async with session_for(request) as s:
        items = await sales.due_promises(s, user.id, request.app[SETTINGS])
    return json_response({"items": items, "total": len(items), "limit": len(items), "offset": 0})


@translate_errors
async def client_card(request: web.Request) -> web.StreamResponse:
    require_user(request)
    ident = path_id(request)
    async with session_for(request) as s:
        card = await directory.client_card(s, ident, request.app[SETTINGS])
    if card is None:
        raise NotFound("client", ident)
    return json_response(card.to_json())


@translate_errors
async def lookup(request: web.Request) -> web.StreamResponse:
    """What the pop shows for a number: the same Lookup JSON as the pop's cards."""
    require_user(request)
    query = LOOKUP_QUERY.parse(request.query, sales.parse_context(request.app[SETTINGS]))
    async with session_for(request) as s:
        found = await directory.lookup(s, query["number"], request.app[SETTINGS])
    return json_response(found.to_json())


@translate_errors
async def client_history(request: web.Request) -> web.StreamResponse:
    require_user(request)
    ident = path_id(request)
    query = HISTORY_QUERY.parse(request.query, sales.parse_context(request.app[SETTINGS]))
    async with session_for(request) as s:
        rows = await directory.client_history(s, ident, query["section"], offset=query.get("offset") or 0,
                                              limit=query.get("limit") or 20)
    return json_response({"items": [item.to_json() for item in rows.items], "has_more": rows.has_more})


@translate_errors
async def originate(request: web.Request) -> web.StreamResponse:
    user = require_user(request)
    settings = request.app[SETTINGS]
    values = ORIGINATE_IN.parse(await read_json(request), sales.parse_context(settings))
    if not user.extensions:
        raise Conflict("client_phone", "you have no extension to call from: ask an administrator to add one")
    key = phone_key(values["client_phone"], settings.phones.default_region, settings.phones.min_external_digits)
    if key.e164 is None:
        raise ValidationError("client_phone", f"cannot dial {key.raw!r}: not a valid public number")
    if not may_dial(key.e164, settings.pbx.originate_allowed, settings.phones.default_region):
        log.warning("click-to-call refused for employee %s: %s is not in [pbx] originate_allowed", user.id, key.e164)
        raise Forbidden(f"calls to {key.e164} are not allowed from callpop: ask an administrator "
                        f"([pbx] originate_allowed)", field="client_phone")
    plan = originate_plan(user.extensions[0], user.name, key.e164, settings)
    channel, number = plan.channel, plan.exten
    ami = connections(request.app).get(pbx_of(user.extensions[0], settings)[0])  # the manager's own PBX
    if ami is None:
        raise Refusal(503, "the PBX is not connected")
    try:
        await ami.originate(channel, number, plan.context, caller_id=plan.caller_id, variables=plan.variables)
    except Exception as exc:  # AmiNotConnected, AmiRefused, a timeout: all mean "not now"
        log.warning("originate %s -> %s@%s failed: %s", channel, number, plan.context, exc)
        raise Refusal(503, "the PBX did not place the call: %(reason)s", reason=str(exc)) from None
    log.info("click-to-call by employee %s: %s -> %s@%s", user.id, channel, number, plan.context)
    return json_response(ORIGINATE_OUT.dump({"status": "queued", "channel": channel, "number": number}), 202)
